// Post-training int8 quantization (nn/quantized.h): the int8 backbone against the float model
// on every block kind and head, and the order of calibrate, quantize, run.
#include <splitshare/nn/quantized.h>

#include "support.h"

namespace sn = splitshare::nn;

namespace {

// A tiny classifier with non-trivial BatchNorm statistics (as test_inference.cpp's).
sn::Classifier make(const std::string& arch, sn::HeadOptions head, sn::Stem stem, int64_t width) {
  torch::manual_seed(0);
  sn::Classifier model(
      sn::ClassifierOptions().arch(arch).num_classes(7).in_channels(3).stem(stem).width(width).head(head));
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.5, 0.5);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
  }
  model->eval();
  return model;
}

// The largest difference between two logit tensors over the float logits' spread.
double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return (got - expected).abs().max().item<double>() / (expected.max() - expected.min()).item<double>();
}

}  // namespace

TEST(QuantizedModel, Int8LogitsFollowTheFloatModelOnEveryBlockAndHead) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  // A known limit, stated in docs/platform.md: 7-24 % off and not repeatable there.
  if (sn::int8_pairs_saturate()) GTEST_SKIP() << "this CPU's int8 convolutions add pairs of products in 16 bits";
  const auto ssm = sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4);
  struct Case {
    std::string arch;
    sn::HeadOptions head;
    sn::Stem stem;
    int64_t width, size;
  };
  const std::vector<Case> cases = {
      {"resnet10", sn::HeadOptions().kind(sn::HeadKind::kLinear), sn::Stem::kSmall, 8, 16},
      {"resnet10", ssm, sn::Stem::kImageNet, 8, 32},
      {"resnet50", ssm, sn::Stem::kSmall, 4, 16},
      {"resnet50", sn::HeadOptions().kind(sn::HeadKind::kKFC).k(3), sn::Stem::kSmall, 4, 16},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.arch + " " + sn::to_string(c.head.kind()));
    auto model = make(c.arch, c.head, c.stem, c.width);
    torch::manual_seed(5);
    const auto calibration = torch::randn({32, 3, c.size, c.size});
    const auto images = torch::randn({16, 3, c.size, c.size});
    sn::QuantizedModel quantized(*model);
    quantized.observe(calibration.narrow(0, 0, 16));
    quantized.observe(calibration.narrow(0, 16, 16));
    ASSERT_EQ(quantized.observed().size(), quantized.points());
    quantized.quantize(quantized.observed());
    const sn::InferenceModel folded(*model);
    const auto expected = folded.forward(images);
    const auto got = quantized.forward(images);
    EXPECT_LT(relative_error(got.logits, expected.logits), 0.05);  // 1-2 % measured
    ASSERT_EQ(got.head_logits.size(), expected.head_logits.size());
    for (size_t i = 0; i < got.head_logits.size(); ++i) {
      EXPECT_LT(relative_error(got.head_logits[i], expected.head_logits[i]), 0.05) << "head " << i;
    }
    const auto agree = got.logits.argmax(1).eq(expected.logits.argmax(1)).to(torch::kFloat).mean().item<double>();
    EXPECT_GE(agree, 0.85);  // 94-100 % measured
  }
}

TEST(QuantizedModel, RangesComeFromCalibrationAndAreCheckedBeforeUse) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  auto model = make("resnet10", sn::HeadOptions(), sn::Stem::kSmall, 8);
  sn::QuantizedModel quantized(*model);
  const auto images = torch::randn({4, 3, 16, 16});
  EXPECT_NE(splitshare::testing::expect_error([&] { quantized.forward(images); }).find("not quantized yet"),
            std::string::npos);
  quantized.observe(images);
  const auto first = quantized.observed();
  EXPECT_EQ(first[0].first, images.min().item<double>());
  EXPECT_EQ(first[0].second, images.max().item<double>());
  EXPECT_EQ(first[1].first, 0.0);  // the stem's output is after a ReLU
  quantized.observe(images * 3);  // ranges only widen
  EXPECT_EQ(quantized.observed()[0].second, (images * 3).max().item<double>());
  for (size_t i = 1; i < first.size(); ++i) EXPECT_GE(quantized.observed()[i].second, first[i].second);
  auto too_few = quantized.observed();
  too_few.pop_back();
  const auto message = splitshare::testing::expect_error([&] { quantized.quantize(too_few); });
  EXPECT_NE(message.find(std::to_string(too_few.size()) + " activation ranges for a model with " +
                         std::to_string(quantized.points()) + " quantization points"),
            std::string::npos)
      << message;
  quantized.quantize(quantized.observed());
  EXPECT_TRUE(quantized.quantized());
  const auto four = quantized.forward(images).logits;
  EXPECT_EQ(four.sizes(), (std::vector<int64_t>{4, 7}));
  // Weights packed per input shape: each batch size gets its own (oneDNN may pick another kernel
  // for it, so float rounding may differ), and a shape seen before reuses its packs.
  EXPECT_LT(relative_error(quantized.forward(images.narrow(0, 0, 1)).logits, four.narrow(0, 0, 1)), 0.02);
  // Without VNNI the same batch twice differs (docs/platform.md): a known limit, not checked there.
  if (!sn::int8_pairs_saturate()) EXPECT_TRUE(torch::equal(quantized.forward(images).logits, four));
  EXPECT_THROW(quantized.forward(torch::randn({2, 1, 16, 16})), c10::Error);
}
