// Grad-CAM and Grad-CAM++ per split: the maps against closed forms and an autograd
// reference on a tiny model, the per-split channel restriction, targets, statistics.
#include <splitshare/explain/figure.h>
#include <splitshare/explain/gradcam.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "support.h"
#include "tiny_models.h"

namespace sn = splitshare::nn;
namespace sx = splitshare::explain;
using splitshare::testing::expect_close;
using splitshare::testing::kClasses;
using splitshare::testing::kSplits;
using splitshare::testing::ssm_head;
using splitshare::testing::tiny_images;
using splitshare::testing::tiny_model;

namespace {

// Moves the SSM BatchNorm statistics and affines away from their defaults so that the
// scale and the ReLU mask of each sub-classifier matter in the gradients.
sn::SplitAndShareImpl& randomize_ssm(sn::Classifier& model) {
  auto ssm = std::dynamic_pointer_cast<sn::SplitAndShareImpl>(model->head.ptr());
  EXPECT_TRUE(ssm != nullptr);
  torch::NoGradGuard no_grad;
  for (int64_t j = 0; j < kSplits; ++j) {
    if (!ssm->has_norm(j)) continue;  // the default SSM: the last split is plain
    auto* bn = ssm->bn[j]->as<splitshare::nn::BatchNormImpl>();
    bn->running_mean.uniform_(0.0, 0.4);
    bn->running_var.uniform_(0.05, 0.5);
    bn->weight.uniform_(-1.5, 1.5);
    bn->bias.normal_(0.0, 0.3);
  }
  return *ssm;
}

torch::Tensor features_of(sn::Classifier& model, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return model->forward_features(images);
}

// relu(sum_k w_k A_k) over the channels of `a` [N, C', h, w], weights [N, C'] (double).
torch::Tensor weighted_map(const torch::Tensor& a, const torch::Tensor& w) {
  return torch::relu((a.to(torch::kDouble) * w.to(torch::kDouble).unsqueeze(-1).unsqueeze(-1)).sum(1));
}

// The Grad-CAM++ weights when the gradient is the same at every position of a channel
// (global average pooling): g = d / (h w) and w_k = h w * alpha * relu(g).
torch::Tensor plus_plus_weights(const torch::Tensor& a, const torch::Tensor& d) {
  const double hw = static_cast<double>(a.size(2) * a.size(3));
  const auto g = d.to(torch::kDouble) / hw;
  const auto sum_a = a.to(torch::kDouble).sum({2, 3});
  auto alpha = g * g / (2 * g * g + sum_a * g * g * g + 1e-6);
  alpha = torch::where(g != 0, alpha, torch::zeros_like(alpha));
  return hw * alpha * torch::relu(g);
}

// d logit_j[target] / d pooled feature, worked out by hand for SSM sub-classifier j in
// evaluation mode: W_j[t, k] * gamma_k / sqrt(var_k + eps) where the BN output is > 0.
torch::Tensor ssm_head_gradient(sn::SplitAndShareImpl& ssm, int64_t j, const torch::Tensor& pooled,
                                const torch::Tensor& targets) {
  const int64_t width = (j + 1) * ssm.split_width();
  auto* fc = ssm.fc[j]->as<torch::nn::Linear>();
  if (!ssm.has_norm(j)) return fc->weight.detach().to(torch::kDouble).index_select(0, targets);  // linear in x
  auto* bn = ssm.bn[j]->as<splitshare::nn::BatchNormImpl>();
  const auto x = pooled.to(torch::kDouble).narrow(1, 0, width);
  const auto inv = torch::rsqrt(bn->running_var.to(torch::kDouble) + ssm.options.eps());
  const auto gamma = bn->weight.detach().to(torch::kDouble);
  const auto z = (x - bn->running_mean.to(torch::kDouble)) * inv * gamma + bn->bias.detach().to(torch::kDouble);
  const auto w = fc->weight.detach().to(torch::kDouble).index_select(0, targets);  // [N, width]
  return w * (z > 0).to(torch::kDouble) * gamma * inv;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(GradCam, WeightsFollowTheirDefinitions) {
  torch::manual_seed(5);
  const auto a = torch::rand({2, 3, 2, 4});
  const auto g = torch::randn({2, 3, 2, 4});
  // Grad-CAM: spatial mean of the gradient.
  expect_close(sx::cam_weights(a, g, sx::CamMethod::kGradCam), g.mean({2, 3}), 1e-6);
  // Grad-CAM++: element by element, in double.
  auto expected = torch::zeros({2, 3}, torch::kDouble);
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t k = 0; k < 3; ++k) {
      const double sum_a = a[n][k].sum().item<double>();
      double w = 0;
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t j = 0; j < 4; ++j) {
          const double gij = g[n][k][i][j].item<double>();
          const double alpha = gij == 0 ? 0 : gij * gij / (2 * gij * gij + sum_a * gij * gij * gij + 1e-6);
          w += alpha * std::max(gij, 0.0);
        }
      }
      expected[n][k] = w;
    }
  }
  expect_close(sx::cam_weights(a, g, sx::CamMethod::kGradCamPlusPlus), expected, 1e-5, 1e-4);
  const auto map = sx::class_activation_map(a, g, sx::CamMethod::kGradCam);
  expect_close(map, weighted_map(a, g.mean({2, 3})), 1e-6);
  EXPECT_GE(map.min().item<double>(), 0.0);
  EXPECT_EQ(sx::parse_cam_method("gradcampp"), sx::CamMethod::kGradCamPlusPlus);
  EXPECT_EQ(sx::to_string(sx::CamMethod::kGradCam), "gradcam");
  EXPECT_THROW(sx::parse_cam_method("scorecam"), c10::Error);
}

TEST(GradCam, LinearHeadMapIsTheClassWeightsTimesTheFeatureMap) {
  auto model = tiny_model(sn::HeadOptions().kind(sn::HeadKind::kLinear));
  const auto images = tiny_images();
  const auto targets = torch::tensor({0, 2, 1}, torch::kLong);
  const auto a = features_of(model, images);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{3, 32, 2, 2}));
  const auto w = model->head.ptr()->named_parameters()["fc.weight"].detach().index_select(0, targets);  // [N, C]
  const double hw = 4.0;

  auto cams = sx::explain_heads(*model, images, targets, sx::CamMethod::kGradCam);
  EXPECT_TRUE(torch::equal(cams.targets, targets));
  EXPECT_TRUE(cams.heads.empty());  // a linear head has no sub-classifiers
  expect_close(cams.whole, weighted_map(a, w / hw), 1e-6, 1e-4);
  EXPECT_GT(cams.whole.max().item<double>(), 0.0);

  auto plus = sx::explain_heads(*model, images, targets, sx::CamMethod::kGradCamPlusPlus);
  expect_close(plus.whole, weighted_map(a, plus_plus_weights(a, w)), 1e-6, 1e-4);
}

TEST(GradCam, EachSplitIsExplainedOverItsOwnChannelsWithRespectToItsOwnHead) {
  auto model = tiny_model(ssm_head());
  auto& ssm = randomize_ssm(model);
  const auto images = tiny_images();
  const auto targets = torch::tensor({1, 0, 2}, torch::kLong);
  const auto a = features_of(model, images);
  const auto pooled = a.mean({2, 3});
  const int64_t c = a.size(1), w = c / kSplits;
  const double hw = 4.0;

  auto cams = sx::explain_heads(*model, images, targets, sx::CamMethod::kGradCam);
  auto plus = sx::explain_heads(*model, images, targets, sx::CamMethod::kGradCamPlusPlus);
  ASSERT_EQ(cams.heads.size(), static_cast<size_t>(kSplits));
  ASSERT_EQ(cams.head_probabilities.size(), static_cast<size_t>(kSplits));

  auto whole_d = torch::zeros({3, c}, torch::kDouble);
  for (int64_t j = 0; j < kSplits; ++j) {
    EXPECT_EQ(cams.head_channels[j].begin, j * w);
    EXPECT_EQ(cams.head_channels[j].end, (j + 1) * w);
    const auto d = ssm_head_gradient(ssm, j, pooled, targets);  // [N, (j+1) w]
    whole_d.narrow(1, 0, (j + 1) * w).add_(d / kSplits);

    // Autograd reference on another code path: the unfused SSM on the pooled features.
    auto leaf = pooled.detach().clone().requires_grad_(true);
    auto out = ssm.forward_reference(leaf);
    out.head_logits[j].gather(1, targets.view({-1, 1})).sum().backward();
    expect_close(leaf.grad().narrow(1, 0, (j + 1) * w), d, 1e-6, 1e-4);

    // Split j: channels j*C/S ... (j+1)*C/S - 1 only, w.r.t. sub-classifier j.
    const auto own = d.narrow(1, j * w, w);
    const auto a_own = a.narrow(1, j * w, w);
    expect_close(cams.heads[j], weighted_map(a_own, own / hw), 1e-6, 1e-4);
    expect_close(plus.heads[j], weighted_map(a_own, plus_plus_weights(a_own, own)), 1e-6, 1e-4);
    if (j > 0) {
      // Without the restriction (all channels the head sees) the map would differ.
      const auto unrestricted = weighted_map(a.narrow(1, 0, (j + 1) * w), d / hw);
      EXPECT_GT(max_abs_diff(unrestricted, cams.heads[j]), 1e-3 * unrestricted.abs().max().item<double>()) << j;
      EXPECT_GT(max_abs_diff(cams.heads[j], cams.heads[0]), 1e-6) << "split " << j << " equals split 0";
    }
  }
  expect_close(cams.whole, weighted_map(a, whole_d / hw), 1e-6, 1e-4);

  // The probabilities captioned in the figure are the softmax of each output.
  const auto output = [&] {
    torch::NoGradGuard no_grad;
    return model->forward(images);
  }();
  expect_close(cams.probabilities, torch::softmax(output.logits, 1), 1e-6);
  for (int64_t j = 0; j < kSplits; ++j) {
    expect_close(cams.head_probabilities[j], torch::softmax(output.head_logits[j], 1), 1e-6);
  }
}

TEST(GradCam, TargetClassChangesTheMapAndPredictionIsTheDefault) {
  // Default BatchNorm statistics: every head passes its (non-negative) features on, so
  // every map depends on the class row of its head's weights.
  auto model = tiny_model(ssm_head(), 2);
  const auto images = tiny_images(4, 7);
  auto zero = sx::explain_heads(*model, images, torch::zeros({4}, torch::kLong));
  auto one = sx::explain_heads(*model, images, torch::ones({4}, torch::kLong));
  EXPECT_GT(max_abs_diff(zero.whole, one.whole), 1e-4);
  for (int64_t j = 0; j < kSplits; ++j) EXPECT_GT(max_abs_diff(zero.heads[j], one.heads[j]), 1e-6) << j;

  auto predicted = sx::explain_heads(*model, images);
  EXPECT_TRUE(torch::equal(predicted.targets, predicted.probabilities.argmax(1)));
  auto explicit_targets = sx::explain_heads(*model, images, predicted.targets);
  expect_close(predicted.whole, explicit_targets.whole, 0.0);

  EXPECT_THROW(sx::explain_heads(*model, images, torch::full({4}, kClasses, torch::kLong)), c10::Error);
  EXPECT_THROW(sx::explain_heads(*model, images, torch::zeros({3}, torch::kLong)), c10::Error);
}

TEST(GradCam, LeavesNoParameterGradientsAndRestoresTheMode) {
  auto model = tiny_model(ssm_head());
  model->train();
  const auto images = tiny_images();
  torch::Tensor before;
  {
    torch::NoGradGuard no_grad;
    model->eval();
    before = model->forward(images).logits;
    model->train();
  }
  auto cams = sx::explain_heads(*model, images);
  EXPECT_TRUE(model->is_training());
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
  // Evaluation mode was used: BatchNorm running statistics did not move.
  torch::NoGradGuard no_grad;
  model->eval();
  expect_close(model->forward(images).logits, before, 0.0);
}

TEST(GradCam, HeadChannelRangesFollowThePaper) {
  const auto ssm = sx::head_channel_ranges(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4), 2048);
  ASSERT_EQ(ssm.size(), 4u);
  EXPECT_EQ(ssm[1].begin, 512);  // "Channel 512~1023" w.r.t. the second sub-classifier
  EXPECT_EQ(ssm[1].end, 1024);
  EXPECT_EQ(ssm[3].end, 2048);
  const auto kfc = sx::head_channel_ranges(sn::HeadOptions().kind(sn::HeadKind::kKFC).k(3), 64);
  ASSERT_EQ(kfc.size(), 3u);
  EXPECT_EQ(kfc[2].begin, 0);
  EXPECT_EQ(kfc[2].end, 64);
  EXPECT_TRUE(sx::head_channel_ranges(sn::HeadOptions().kind(sn::HeadKind::kLinear), 64).empty());

  auto model = tiny_model(sn::HeadOptions().kind(sn::HeadKind::kKFC).k(2));
  auto cams = sx::explain_heads(*model, tiny_images());
  ASSERT_EQ(cams.heads.size(), 2u);
  EXPECT_EQ(sx::cam_column_titles(cams)[2], "head 1");
}

TEST(GradCam, MapStatistics) {
  auto hot = torch::zeros({5, 5});
  hot[1][3] = 2.0;
  auto s = sx::map_stats(hot, 5, 5);
  EXPECT_EQ(s.peak_row, 1);
  EXPECT_EQ(s.peak_col, 3);
  EXPECT_EQ(s.peak_y, 1);
  EXPECT_EQ(s.peak_x, 3);
  EXPECT_NEAR(s.peak, 2.0, 1e-6);
  EXPECT_NEAR(s.mean, 2.0 / 25, 1e-6);
  EXPECT_NEAR(s.top20_energy, 1.0, 1e-9);  // all of the mass in one pixel

  EXPECT_NEAR(sx::map_stats(torch::ones({2, 2}), 10, 10).top20_energy, 0.2, 1e-9);  // flat
  EXPECT_TRUE(std::isnan(sx::map_stats(torch::zeros({2, 2}), 8, 8).top20_energy));
  EXPECT_TRUE(sx::to_json(sx::map_stats(torch::zeros({2, 2}), 8, 8))["top20_energy"].is_null());

  // A hot bottom-right cell of a 2x2 map peaks in the bottom-right of a 16x16 input.
  auto corner = torch::zeros({2, 2});
  corner[1][1] = 1.0;
  s = sx::map_stats(corner, 16, 16);
  EXPECT_GE(s.peak_y, 8);
  EXPECT_GE(s.peak_x, 8);
  EXPECT_GT(s.top20_energy, 0.4);
  EXPECT_LT(s.top20_energy, 1.0);
  const auto j = sx::to_json(s);
  EXPECT_EQ(j["map_size"], nlohmann::json({2, 2}));
  EXPECT_EQ(j["peak_cell"], nlohmann::json({1, 1}));

  const auto normalized = sx::normalize_maps(torch::tensor({{{1.0f, 3.0f}, {2.0f, 5.0f}}}));
  expect_close(normalized, torch::tensor({{{0.0f, 0.5f}, {0.25f, 1.0f}}}), 1e-6);
  EXPECT_EQ(sx::normalize_maps(torch::full({1, 2, 2}, 3.0)).abs().sum().item<double>(), 0.0);
}
