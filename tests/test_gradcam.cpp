// Grad-CAM and Grad-CAM++ per split: the maps against closed forms and an autograd
// reference on a tiny model, the per-split channel restriction, targets, statistics,
// the colormap, PNG writing, the bitmap font, the Figure 2 grid and the CLI.
#include <splitshare/data/image_io.h>
#include <splitshare/data/loader.h>
#include <splitshare/explain/colormap.h>
#include <splitshare/explain/figure.h>
#include <splitshare/explain/gradcam.h>
#include <splitshare/explain/image_write.h>
#include <splitshare/train/checkpoint.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "support.h"

namespace ss = splitshare::nn;
namespace sx = splitshare::explain;
using splitshare::testing::expect_close;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

constexpr int64_t kSplits = 4;
constexpr int64_t kClasses = 3;

// resnet10 of width 4: C = 32 feature channels, a 2x2 map for 12x12 inputs.
ss::Classifier tiny_model(ss::HeadOptions head, uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto model = ss::make_classifier(ss::ClassifierOptions()
                                       .arch("resnet10")
                                       .width(4)
                                       .in_channels(1)
                                       .stem(ss::Stem::kSmall)
                                       .num_classes(kClasses)
                                       .head(head));
  model->eval();
  return model;
}

ss::HeadOptions ssm_head() { return ss::HeadOptions().kind(ss::HeadKind::kSSM).splits(kSplits); }

// Moves the SSM BatchNorm statistics and affines away from their defaults so that the
// scale and the ReLU mask of each sub-classifier matter in the gradients.
ss::SplitAndShareImpl& randomize_ssm(ss::Classifier& model) {
  auto ssm = std::dynamic_pointer_cast<ss::SplitAndShareImpl>(model->head.ptr());
  EXPECT_TRUE(ssm != nullptr);
  torch::NoGradGuard no_grad;
  for (int64_t j = 0; j < kSplits; ++j) {
    auto* bn = ssm->bn[j]->as<torch::nn::BatchNorm1d>();
    bn->running_mean.uniform_(0.0, 0.4);
    bn->running_var.uniform_(0.05, 0.5);
    bn->weight.uniform_(-1.5, 1.5);
    bn->bias.normal_(0.0, 0.3);
  }
  return *ssm;
}

torch::Tensor tiny_images(int64_t n = 3, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randn({n, 1, 12, 12});
}

torch::Tensor features_of(ss::Classifier& model, const torch::Tensor& images) {
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
torch::Tensor ssm_head_gradient(ss::SplitAndShareImpl& ssm, int64_t j, const torch::Tensor& pooled,
                                const torch::Tensor& targets) {
  const int64_t width = (j + 1) * ssm.split_width();
  auto* bn = ssm.bn[j]->as<torch::nn::BatchNorm1d>();
  auto* fc = ssm.fc[j]->as<torch::nn::Linear>();
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

TEST(Colormap, JetMatchesOpenCvAtKnownPoints) {
  EXPECT_EQ(sx::jet(0.0), (sx::Rgb{0, 0, 128}));
  EXPECT_EQ(sx::jet(0.5), (sx::Rgb{128, 255, 128}));
  EXPECT_EQ(sx::jet(1.0), (sx::Rgb{128, 0, 0}));
  EXPECT_EQ(sx::jet(-3.0), sx::jet(0.0));
  EXPECT_EQ(sx::jet(7.0), sx::jet(1.0));
  const auto ramp = torch::linspace(0, 1, 11, torch::kFloat64).view({1, 11});
  const auto rgb = sx::apply_jet(ramp);
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 1, 11}));
  for (int64_t i = 0; i < 11; ++i) {
    const auto expected = sx::jet(ramp[0][i].item<double>());
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(rgb[c][0][i].item<int64_t>(), expected[c]) << i << " " << c;
  }
}

TEST(Colormap, OverlayBlendsHalfAndHalf) {
  const auto grey = torch::full({1, 2, 2}, 200, torch::kUInt8);
  const auto map = torch::tensor({{0.0f, 1.0f}, {0.5f, 0.0f}});
  const auto out = sx::overlay_heatmap(grey, map);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, 2}));
  // 0.5 * 200 + 0.5 * jet(0) = (100, 100, 164); jet(1) = (128, 0, 0) -> (164, 100, 100).
  EXPECT_EQ(out[0][0][0].item<int64_t>(), 100);
  EXPECT_EQ(out[2][0][0].item<int64_t>(), 164);
  EXPECT_EQ(out[0][0][1].item<int64_t>(), 164);
  EXPECT_EQ(out[1][0][1].item<int64_t>(), 100);
  EXPECT_EQ(out[1][1][0].item<int64_t>(), 228);  // green 255 at 0.5
  EXPECT_THROW(sx::overlay_heatmap(grey, torch::zeros({3, 3})), c10::Error);
}

TEST(ImageWrite, PngRoundTripsThroughTheDecoder) {
  torch::manual_seed(3);
  for (int64_t channels : {1, 3}) {
    const auto image = torch::randint(0, 256, {channels, 9, 13}, torch::kUInt8);
    const auto bytes = sx::encode_png(image);
    ASSERT_GT(bytes.size(), 8u);
    const auto decoded = splitshare::data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                                        "roundtrip.png",
                                                        splitshare::data::DecodeOptions().channels(channels));
    EXPECT_TRUE(torch::equal(decoded, image)) << channels << " channels";
  }
  TempDir dir;
  sx::write_png(dir.file("a.png"), torch::zeros({3, 4, 5}, torch::kUInt8));
  EXPECT_EQ(splitshare::data::read_image_info(dir.file("a.png")).width, 5);
  EXPECT_THROW(sx::write_png(dir.file("missing/a.png"), torch::zeros({3, 4, 5}, torch::kUInt8)), c10::Error);
  EXPECT_THROW(sx::encode_png(torch::zeros({2, 4, 5}, torch::kUInt8)), c10::Error);
}

TEST(ImageWrite, TextUsesTheBuiltInFont) {
  EXPECT_EQ(sx::text_width("", 1), 0);
  EXPECT_EQ(sx::text_width("ab", 1), 11);
  EXPECT_EQ(sx::text_width("ab", 2), 22);
  EXPECT_EQ(sx::fit_text("short", 100), "short");
  const auto fitted = sx::fit_text("a rather long class name", 60);
  EXPECT_LE(sx::text_width(fitted), 60);
  EXPECT_EQ(fitted.substr(fitted.size() - 3), "...");

  auto canvas = torch::zeros({3, 9, 8}, torch::kUInt8);
  sx::draw_text(canvas, "T", 1, 1, {255, 10, 20});
  // 'T': a full top bar, then the middle column.
  for (int64_t x = 1; x <= 5; ++x) EXPECT_EQ(canvas[0][1][x].item<int64_t>(), 255) << x;
  for (int64_t y = 2; y <= 7; ++y) {
    EXPECT_EQ(canvas[0][y][3].item<int64_t>(), 255) << y;
    EXPECT_EQ(canvas[0][y][2].item<int64_t>(), 0) << y;
  }
  EXPECT_EQ(canvas[1][1][1].item<int64_t>(), 10);
  EXPECT_EQ(canvas.sum().item<int64_t>(), (5 + 6) * (255 + 10 + 20));
  // Clipped at the border, not an error; unknown bytes draw a box.
  sx::draw_text(canvas, "\x01", 5, 5, {1, 1, 1});
  EXPECT_EQ(canvas[0][5][5].item<int64_t>(), 1);
}

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
  auto model = tiny_model(ss::HeadOptions().kind(ss::HeadKind::kLinear));
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
  const auto ssm = sx::head_channel_ranges(ss::HeadOptions().kind(ss::HeadKind::kSSM).splits(4), 2048);
  ASSERT_EQ(ssm.size(), 4u);
  EXPECT_EQ(ssm[1].begin, 512);  // "Channel 512~1023" w.r.t. the second sub-classifier
  EXPECT_EQ(ssm[1].end, 1024);
  EXPECT_EQ(ssm[3].end, 2048);
  const auto kfc = sx::head_channel_ranges(ss::HeadOptions().kind(ss::HeadKind::kKFC).k(3), 64);
  ASSERT_EQ(kfc.size(), 3u);
  EXPECT_EQ(kfc[2].begin, 0);
  EXPECT_EQ(kfc[2].end, 64);
  EXPECT_TRUE(sx::head_channel_ranges(ss::HeadOptions().kind(ss::HeadKind::kLinear), 64).empty());

  auto model = tiny_model(ss::HeadOptions().kind(ss::HeadKind::kKFC).k(2));
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

TEST(Figure, GridHasARowPerImageAndAColumnPerMap) {
  auto model = tiny_model(ssm_head());
  torch::manual_seed(11);
  const auto pixels = torch::randint(0, 256, {2, 1, 12, 12}, torch::kUInt8);
  const auto images = (pixels.to(torch::kFloat32) / 255.0 - 0.3) / 0.2;
  const std::vector<std::string> classes = {"cat", "dog", "bird"};
  expect_close(sx::denormalize(images, {0.3}, {0.2}), pixels, 0.0);

  const auto labels = torch::tensor({2, 0}, torch::kLong);
  auto cams = sx::explain_heads(*model, images, labels);
  const sx::FigureOptions options;  // 12 px images are enlarged 11x to reach 128 px
  EXPECT_EQ(sx::display_scale(12, 12, options), 11);
  const auto grid = sx::render_cam_grid(pixels, cams, classes, labels, options);
  const int64_t cell = 132, columns = 2 + kSplits;
  EXPECT_EQ(grid.size(0), 3);
  EXPECT_EQ(grid.size(2), 2 * 6 + columns * cell + (columns - 1) * 6);
  const auto titles = sx::cam_column_titles(cams);
  ASSERT_EQ(static_cast<int64_t>(titles.size()), columns);
  EXPECT_EQ(titles[3], "split 2  ch 8-15");

  // The whole-model cell of the first row is exactly the overlay of its map.
  const int64_t top = 6 + sx::kLineHeight + 4, left = 6 + cell + 6;
  const auto overlay = sx::cam_overlay(pixels[0], cams.whole[0], options);
  EXPECT_TRUE(torch::equal(grid.narrow(1, top, cell).narrow(2, left, cell), overlay));
  // The input cell is the image, enlarged, in grey.
  EXPECT_TRUE(torch::equal(grid[0].narrow(0, top, cell).narrow(1, 6, cell),
                           pixels[0][0].repeat_interleave(11, 0).repeat_interleave(11, 1)));
  // Captions: dark text under the cells.
  const auto caption = grid.narrow(1, top + cell, 2 * sx::kLineHeight).narrow(2, 6, cell);
  EXPECT_GT((caption < 128).sum().item<int64_t>(), 20);
}

TEST(Figure, ValidationGridTakesTheFirstImagesAndTheirLabels) {
  auto model = tiny_model(ssm_head());
  torch::manual_seed(4);
  splitshare::data::TensorDataset dataset;
  dataset.images = torch::randint(0, 256, {5, 1, 12, 12}, torch::kUInt8);
  dataset.labels = torch::tensor({1, 2, 0, 1, 2}, torch::kLong);
  dataset.classes = {"a", "b", "c"};
  auto stream = splitshare::data::make_tensor_loader(dataset, {0.5}, {0.25},
                                                     splitshare::data::LoaderOptions().batch_size(2));
  splitshare::data::Preprocess preprocess;
  preprocess.channels = 1;
  preprocess.mean = {0.5};
  preprocess.std = {0.25};
  const auto grid = sx::validation_grid(*model, *stream, preprocess, dataset.classes, 3);
  const int64_t cell = 132, caption = 2 * sx::kLineHeight + 4;
  EXPECT_EQ(grid.size(1), 2 * 6 + sx::kLineHeight + 4 + 3 * (cell + caption) + 2 * 6);
  // Row 3 shows the third image.
  const int64_t top = 6 + sx::kLineHeight + 4 + 2 * (cell + caption + 6);
  EXPECT_TRUE(torch::equal(grid[1].narrow(0, top, cell).narrow(1, 6, cell),
                           dataset.images[2][0].repeat_interleave(11, 0).repeat_interleave(11, 1)));
}

// ---- the command-line tool ----

namespace {

const std::string kCli = SPLITSHARE_CLI;

splitshare::train::CheckpointMetadata save_tiny_checkpoint(const std::string& path, int64_t classes,
                                                           std::vector<std::string> names, int64_t size) {
  auto model = tiny_model(ss::HeadOptions().kind(ss::HeadKind::kSSM).splits(kSplits));
  splitshare::train::CheckpointMetadata meta;
  meta.model = model->options;
  meta.model.num_classes(classes);
  model = ss::make_classifier(meta.model);
  meta.classes = std::move(names);
  meta.preprocess.channels = 1;
  meta.preprocess.size = size;
  meta.preprocess.mean = {0.3};
  meta.preprocess.std = {0.3};
  splitshare::train::save_checkpoint(*model, meta, path);
  return meta;
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(splitshare::testing::read_file(path));
}

}  // namespace

TEST(GradCamCli, ImageFilesGiveOverlaysAGridAndStatistics) {
  TempDir dir;
  save_tiny_checkpoint(dir.file("ck.pt"), 3, {"cat", "dog", "bird"}, 16);
  std::filesystem::create_directories(dir.path() / "dog");
  std::filesystem::create_directories(dir.path() / "bird");
  torch::manual_seed(9);
  sx::write_png(dir.file("dog/rex.png"), torch::randint(0, 256, {1, 20, 20}, torch::kUInt8));
  sx::write_png(dir.file("bird/tweety.png"), torch::randint(0, 256, {3, 16, 24}, torch::kUInt8));
  const std::string images = dir.file("dog/rex.png") + " " + dir.file("bird/tweety.png");
  std::string log;
  ASSERT_EQ(run_command(kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") + " " + images +
                            " --target label --out " + dir.file("out"), &log), 0) << log;
  const auto report = read_json(dir.file("out/gradcam.json"));
  EXPECT_EQ(report["method"], "gradcam");
  EXPECT_EQ(report["feature_channels"], 32);
  EXPECT_EQ(report["input_size"], nlohmann::json({16, 16}));
  ASSERT_EQ(report["images"].size(), 2u);
  const auto& first = report["images"][0];
  EXPECT_EQ(first["label_name"], "dog");
  EXPECT_EQ(first["target"], 1);
  EXPECT_EQ(report["images"][1]["target_name"], "bird");
  ASSERT_EQ(first["maps"].size(), 1u + kSplits);
  EXPECT_EQ(first["maps"][0]["name"], "whole");
  EXPECT_EQ(first["maps"][0]["channels"], nlohmann::json({0, 32}));
  EXPECT_EQ(first["maps"][2]["name"], "split2");
  EXPECT_EQ(first["maps"][2]["channels"], nlohmann::json({8, 16}));
  for (const auto& image : report["images"]) {
    EXPECT_TRUE(std::filesystem::exists(dir.file("out/" + image["input"].get<std::string>())));
    for (const auto& map : image["maps"]) {
      const auto file = dir.file("out/" + map["file"].get<std::string>());
      ASSERT_TRUE(std::filesystem::exists(file)) << file;
      EXPECT_EQ(splitshare::data::read_image_info(file).width, 128);  // 16 px enlarged 8x
      for (auto key : {"peak_pixel", "peak_cell", "top20_energy", "peak", "mean"}) {
        EXPECT_TRUE(map["stats"].contains(key)) << key;
      }
      EXPECT_GE(map["probability"].get<double>(), 0.0);
    }
  }
  const auto grid = splitshare::data::read_image_info(dir.file("out/grid.png"));
  EXPECT_EQ(grid.width, 2 * 6 + 6 * 128 + 5 * 6);

  // A class by name, and Grad-CAM++.
  ASSERT_EQ(run_command(kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") + " " + images +
                            " --target cat --method gradcampp --out " + dir.file("pp"), &log), 0) << log;
  const auto pp = read_json(dir.file("pp/gradcam.json"));
  EXPECT_EQ(pp["method"], "gradcampp");
  EXPECT_EQ(pp["images"][1]["target"], 0);

  // Clear errors.
  const std::string gradcam = kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") + " ";
  EXPECT_NE(run_command(gradcam + images + " --target zebra --out " + dir.file("bad"), &log), 0);
  EXPECT_NE(log.find("--target 'zebra'"), std::string::npos) << log;
  EXPECT_NE(run_command(gradcam + dir.file("dog/rex.png") + " --method scorecam", &log), 0);
  EXPECT_NE(log.find("unknown Grad-CAM method 'scorecam'"), std::string::npos) << log;
  EXPECT_NE(run_command(gradcam, &log), 0);
  EXPECT_NE(log.find("give image files or --data"), std::string::npos) << log;
}

TEST(GradCamCli, DataPicksValidationImagesWithTheirLabels) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  }
  TempDir dir;
  save_tiny_checkpoint(dir.file("ck.pt"), 10, {}, 28);
  std::string log;
  ASSERT_EQ(run_command(kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") +
                            " --data fashion-mnist --first 1 --count 3 --out " + dir.file("out"), &log), 0) << log;
  const auto report = read_json(dir.file("out/gradcam.json"));
  ASSERT_EQ(report["images"].size(), 3u);
  // t10k labels start 9, 2, 1, 1: images 1..3 are 2, 1, 1, explained w.r.t. those labels.
  EXPECT_EQ(report["images"][0]["label"], 2);
  EXPECT_EQ(report["images"][1]["label"], 1);
  EXPECT_EQ(report["images"][0]["target"], 2);
  EXPECT_EQ(report["images"][2]["source"], "fashion-mnist[3]");
  EXPECT_EQ(report["input_size"], nlohmann::json({28, 28}));
}
