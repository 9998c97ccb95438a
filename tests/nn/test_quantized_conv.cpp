// oneDNN's int8 convolutions behind nn/kernels/quantized_conv.h: affine uint8 activations,
// per-channel int8 weights, ReLU and the residual sum fused, against the float convolution.
#include <splitshare/nn/kernels/quantized_conv.h>

#include "nn/kernels/uint8_pool.h"

#include <ATen/cpu/Utils.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "support.h"

namespace sn = splitshare::nn;

namespace {

// The largest difference between the int8 result (dequantized) and the float one, in units of
// the output's quantization step.
double steps_off(const torch::Tensor& q, const sn::QuantParams& output, const torch::Tensor& expected) {
  return (sn::dequantize_uint8(q, output) - expected).abs().max().item<double>() / output.scale;
}

sn::QuantParams params_of(const torch::Tensor& t) {
  return sn::uint8_params(t.min().item<double>(), t.max().item<double>());
}

}  // namespace

TEST(QuantizedConv, Uint8ParametersHoldZeroExactlyAndRoundTripWithinHalfAStep) {
  const auto relu = sn::uint8_params(0.0, 2.55);
  EXPECT_NEAR(relu.scale, 0.01, 1e-12);
  EXPECT_EQ(relu.zero_point, 0);
  const auto signed_range = sn::uint8_params(-1.0, 1.0);
  EXPECT_EQ(signed_range.zero_point, 128);
  EXPECT_EQ(sn::uint8_params(0.5, 3.0).zero_point, 0);  // widened down to 0
  EXPECT_EQ(sn::uint8_params(-3.0, -1.0).zero_point, 255);  // widened up to 0
  torch::manual_seed(3);
  const auto x = torch::rand({2, 3, 5, 5}) * 2 - 1;
  const auto q = sn::quantize_uint8(x, signed_range);
  EXPECT_EQ(q.scalar_type(), torch::kByte);
  EXPECT_TRUE(q.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_LE((sn::dequantize_uint8(q, signed_range) - x).abs().max().item<double>(), signed_range.scale / 2 + 1e-7);
  EXPECT_EQ(sn::dequantize_uint8(sn::quantize_uint8(torch::zeros({1, 1, 1, 1}), signed_range), signed_range).item<float>(),
            0.0f);
  EXPECT_THROW(sn::uint8_params(1.0, -1.0), c10::Error);
  EXPECT_THROW(sn::uint8_params(0.0, std::nan("")), c10::Error);
}

TEST(QuantizedConv, Int8ConvolutionsMatchTheFloatOnesWithinAFewSteps) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  const char* isa = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (isa != nullptr && std::string(isa) == "AVX2") EXPECT_TRUE(sn::int8_pairs_saturate());
  if (isa == nullptr && at::cpu::is_avx512_vnni_supported()) EXPECT_FALSE(sn::int8_pairs_saturate());
  // A known limit, stated in docs/platform.md: up to 31 steps off there.
  if (sn::int8_pairs_saturate()) GTEST_SKIP() << "this CPU's int8 convolutions add pairs of products in 16 bits";
  torch::manual_seed(7);
  for (const bool strided : {false, true}) {
    SCOPED_TRACE(strided);
    const sn::FusedConvSpec spec{strided ? std::vector<int64_t>{2, 2} : std::vector<int64_t>{1, 1}, {1, 1}, 1};
    // A stem's input: signed, so a zero point; and a block's: after a ReLU.
    for (const bool after_relu : {false, true}) {
      auto x = torch::randn({2, 16, 12, 12});
      if (after_relu) x = torch::relu(x);
      const auto w = torch::randn({24, 16, 3, 3}) * 0.1, b = torch::randn({24}) * 0.1;
      const auto input = params_of(x);
      const auto weight = sn::quantize_conv_weight(w, b, spec, input);
      const auto linear = torch::conv2d(x, w, b, spec.stride, spec.padding);
      const auto out_params = params_of(linear);
      const auto plain = sn::quantized_conv(sn::quantize_uint8(x, input), input, weight, out_params, false);
      EXPECT_EQ(plain.sizes(), linear.sizes());
      // Packed for this input's shape: the same bytes.
      const auto packed = sn::pack_quantized_conv(weight, x.sizes());
      EXPECT_TRUE(torch::equal(
          sn::quantized_conv(sn::quantize_uint8(x, input), input, weight, packed, out_params, false), plain));
      EXPECT_LE(steps_off(plain, out_params, linear), 4.0) << "relu input " << after_relu;
      const auto relu_params = params_of(torch::relu(linear));
      const auto relu = sn::quantized_conv(sn::quantize_uint8(x, input), input, weight, relu_params, true);
      EXPECT_LE(steps_off(relu, relu_params, torch::relu(linear)), 4.0) << "relu input " << after_relu;
      EXPECT_EQ(sn::dequantize_uint8(relu, relu_params).min().item<float>(), 0.0f);
    }
  }
}

TEST(QuantizedConv, TheResidualSumAndReluAreFusedIntoTheConvolution) {
  if (!sn::quantized_conv_available()) GTEST_SKIP() << "libtorch without oneDNN's int8 convolutions";
  torch::manual_seed(11);
  const sn::FusedConvSpec spec{{1, 1}, {1, 1}, 1};
  const auto x = torch::relu(torch::randn({2, 16, 8, 8}));
  const auto w = torch::randn({16, 16, 3, 3}) * 0.1, b = torch::randn({16}) * 0.1;
  const auto input = params_of(x);
  const auto weight = sn::quantize_conv_weight(w, b, spec, input);
  // A shortcut after a ReLU, and one from a downsampling convolution (signed: a zero point).
  for (const bool signed_shortcut : {false, true}) {
    SCOPED_TRACE(signed_shortcut);
    auto shortcut = torch::randn({2, 16, 8, 8});
    if (!signed_shortcut) shortcut = torch::relu(shortcut);
    const auto expected = torch::relu(torch::conv2d(x, w, b, spec.stride, spec.padding) + shortcut);
    const auto shortcut_params = params_of(shortcut), out_params = params_of(expected);
    const auto sum = sn::quantized_conv_add_relu(sn::quantize_uint8(x, input), input, weight,
                                                 sn::quantize_uint8(shortcut, shortcut_params), shortcut_params,
                                                 out_params);
    EXPECT_LE(steps_off(sum, out_params, expected), 4.0);
    // The sum is really there: without it the result is far off.
    const auto alone = sn::quantized_conv(sn::quantize_uint8(x, input), input, weight, out_params, true);
    EXPECT_GT(steps_off(alone, out_params, expected), 20.0);
  }
}

TEST(QuantizedConv, Uint8MaxPoolIsTorchsOnChannelsLastBytes) {
  struct Case {
    int64_t n, c, h, w, kernel, stride, padding;
  };
  for (const auto& k : std::vector<Case>{{2, 64, 112, 112, 3, 2, 1}, {3, 17, 9, 7, 3, 2, 1}, {1, 5, 8, 8, 2, 2, 0},
                                         {2, 3, 5, 6, 3, 1, 1}}) {
    SCOPED_TRACE(std::to_string(k.c) + " channels, " + std::to_string(k.h) + "x" + std::to_string(k.w));
    torch::manual_seed(k.c);
    const auto x = torch::randint(0, 256, {k.n, k.c, k.h, k.w}, torch::kLong).to(torch::kByte);
    const auto expected = torch::max_pool2d(x, k.kernel, k.stride, k.padding);
    const auto got = splitshare::nn::detail::max_pool_uint8(x.contiguous(torch::MemoryFormat::ChannelsLast), k.kernel,
                                                            k.stride, k.padding);
    EXPECT_TRUE(got.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(got.equal(expected));
  }
  EXPECT_NE(splitshare::testing::expect_error([] {
              splitshare::nn::detail::max_pool_uint8(torch::zeros({1, 1, 4, 4}), 3, 2, 1);
            }).find("expected uint8"),
            std::string::npos);
}

TEST(QuantizedConv, QuantizeUint8IsTorchsRoundAndClampInOnePass) {
  const sn::QuantParams params{0.05, 37};
  torch::manual_seed(2);
  auto x = torch::randn({2, 3, 9, 11}) * 4;
  // Ties (half steps, rounded to even), far out of range, and exact steps.
  x.view(-1).narrow(0, 0, 6).copy_(torch::tensor({0.025f, 0.075f, -0.025f, 1e6f, -1e6f, 0.5f}));
  const auto expected = torch::clamp(torch::round(x * (1.0 / params.scale)) + 37.0, 0, 255).to(torch::kByte);
  for (const auto& input : {x, x.contiguous(torch::MemoryFormat::ChannelsLast)}) {
    const auto q = sn::quantize_uint8(input, params);
    EXPECT_TRUE(q.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(q.equal(expected));
  }
}
