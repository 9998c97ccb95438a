#include <splitshare/nn/inference.h>

#include "support.h"

namespace sn = splitshare::nn;
using splitshare::testing::expect_close;

namespace {

// A tiny classifier whose BatchNorms have non-trivial running statistics and affines,
// so a wrongly folded scale or shift shows.
sn::Classifier make(const std::string& arch, sn::HeadOptions head, sn::Stem stem, int64_t width) {
  torch::manual_seed(0);
  sn::Classifier model(sn::ClassifierOptions()
                           .arch(arch)
                           .num_classes(7)
                           .in_channels(3)
                           .stem(stem)
                           .width(width)
                           .head(head));
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.5, 0.5);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
  }
  for (auto& item : model->named_parameters()) {
    if (item.key().find("bn") != std::string::npos || item.key().find("downsample.1") != std::string::npos) {
      item.value().uniform_(0.5, 1.5);
    }
  }
  return model;
}

void expect_same_as_eval_forward(sn::Classifier& model, const torch::Tensor& images, sn::InferenceOptions options) {
  model->eval();
  sn::HeadOutput plain;
  {
    torch::NoGradGuard no_grad;
    plain = model->forward(images);
  }
  const sn::InferenceModel folded(*model, options);
  const auto fast = folded.forward(images);
  const double scale = plain.logits.abs().max().item<double>();
  expect_close(fast.logits, plain.logits, 1e-4 * scale, 1e-4);
  ASSERT_EQ(fast.head_logits.size(), plain.head_logits.size());
  for (size_t i = 0; i < plain.head_logits.size(); ++i) {
    expect_close(fast.head_logits[i], plain.head_logits[i], 1e-4 * scale, 1e-4);
  }
}

}  // namespace

TEST(InferenceModel, MatchesEvalForwardForEveryBlockAndHead) {
  const auto ssm = sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4);
  struct Case {
    std::string arch;
    sn::HeadOptions head;
    sn::Stem stem;
    int64_t width, size;
  };
  const std::vector<Case> cases = {
      {"resnet10", sn::HeadOptions().kind(sn::HeadKind::kLinear), sn::Stem::kSmall, 8, 8},
      {"resnet10", ssm, sn::Stem::kImageNet, 8, 32},
      {"resnet50", ssm, sn::Stem::kSmall, 4, 8},
      {"resnet50", sn::HeadOptions().kind(sn::HeadKind::kKFC).k(3), sn::Stem::kSmall, 4, 8},
      {"resnext50_32x4d", sn::HeadOptions(ssm).last_plain(true), sn::Stem::kSmall, 16, 8},  // 32 groups of 1
      {"resnet10", sn::HeadOptions(ssm).sum(true), sn::Stem::kSmall, 8, 8},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.arch + " " + sn::to_string(c.head.kind()));
    auto model = make(c.arch, c.head, c.stem, c.width);
    auto images = torch::randn({3, 3, c.size, c.size});
    for (bool mkldnn : {true, false}) {
      for (bool channels_last : {true, false}) {
        SCOPED_TRACE(std::string(mkldnn ? "mkldnn" : "dense") + (channels_last ? " channels-last" : ""));
        expect_same_as_eval_forward(model, images, sn::InferenceOptions().mkldnn(mkldnn).channels_last(channels_last));
      }
    }
  }
}

TEST(InferenceModel, BatchOfOneAndFoldingIsASnapshot) {
  auto model = make("resnet10", sn::HeadOptions(), sn::Stem::kSmall, 8);
  auto image = torch::randn({1, 3, 8, 8});
  expect_same_as_eval_forward(model, image, sn::InferenceOptions());
  model->eval();
  const sn::InferenceModel folded(*model);
  const auto before = folded.forward(image).logits;
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.mul_(2);
  }
  // The folded copy keeps the weights it was built from; a new one sees the change.
  expect_close(folded.forward(image).logits, before, 0, 0);
  expect_same_as_eval_forward(model, image, sn::InferenceOptions());
}

TEST(InferenceModel, RejectsImagesWithTheWrongChannelCount) {
  auto model = make("resnet10", sn::HeadOptions(), sn::Stem::kSmall, 8);
  const sn::InferenceModel folded(*model);
  const auto message = splitshare::testing::expect_error([&] { folded.forward(torch::randn({1, 1, 8, 8})); });
  EXPECT_NE(message.find("expected images [N, 3, H, W]"), std::string::npos) << message;
}

TEST(InferenceModel, PacksWeightsOncePerInputShapeAndLeavesTheImagesAlone) {
  auto model = make("resnet10", sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(2), sn::Stem::kImageNet, 8);
  model->eval();
  const sn::InferenceModel folded(*model);
  ASSERT_TRUE(folded.uses_mkldnn()) << "this libtorch should have oneDNN's fused convolutions";
  const auto small = torch::randn({1, 3, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto large = torch::randn({5, 3, 40, 40});
  const auto small_copy = small.clone();
  const auto first = folded.forward(small).logits;
  EXPECT_EQ(folded.packed_shapes(), 1u);
  const auto other = folded.forward(large).logits;
  EXPECT_EQ(folded.packed_shapes(), 2u);
  // Packed weights cached for one shape give the same answer when that shape comes back,
  // and the residual sums (written in place) never touch the caller's images.
  expect_close(folded.forward(small).logits, first, 0, 0);
  EXPECT_EQ(folded.packed_shapes(), 2u);
  expect_close(small, small_copy, 0, 0);
  torch::NoGradGuard no_grad;
  expect_close(other, model->forward(large).logits, 1e-4 * other.abs().max().item<double>(), 1e-4);
  for (int64_t n = 2; n <= 6; ++n) folded.forward(torch::randn({n, 3, 32, 32}));
  EXPECT_EQ(folded.packed_shapes(), 4u) << "the cache keeps the last few shapes only";
}

TEST(InferenceModel, Bfloat16BackboneStaysCloseToFloat32) {
  auto model = make("resnet10", sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4), sn::Stem::kSmall, 16);
  model->eval();
  const auto images = torch::randn({16, 3, 16, 16});
  const auto exact = sn::InferenceModel(*model).forward(images);
  for (bool mkldnn : {true, false}) {
    SCOPED_TRACE(mkldnn ? "mkldnn" : "dense");
    const sn::InferenceModel half(*model, sn::InferenceOptions().dtype(torch::kBFloat16).mkldnn(mkldnn));
    const auto out = half.forward(images);
    ASSERT_EQ(out.logits.scalar_type(), torch::kFloat);
    // bf16 keeps 8 bits of mantissa: a few parts in a thousand per layer.
    const double scale = exact.logits.abs().max().item<double>();
    expect_close(out.logits, exact.logits, 0.05 * scale, 0.05);
    EXPECT_GT((out.logits - exact.logits).abs().max().item<double>(), 0) << "bf16 should round somewhere";
    ASSERT_EQ(out.head_logits.size(), 4u);
  }
  const auto message = splitshare::testing::expect_error(
      [&] { sn::InferenceModel(*model, sn::InferenceOptions().dtype(torch::kHalf)); });
  EXPECT_NE(message.find("dtype must be float32 or bfloat16"), std::string::npos) << message;
}
