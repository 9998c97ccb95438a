#include <splitshare/nn/kernels/quantized_conv.h>

#include "dispatch.h"

#include <algorithm>
#include <cmath>
#include <optional>

namespace splitshare::nn {
namespace {

using dispatch::call;
using dispatch::find_op;
using dispatch::no_scalars;

const c10::OperatorHandle& op_or_throw(const std::optional<c10::OperatorHandle>& op, const char* name) {
  TORCH_CHECK(op.has_value(), "int8 convolution: this libtorch has no ", name);
  return *op;
}

std::vector<int64_t> ones() { return {1, 1}; }

// Four input channels of 255 against weights of 127: 1,020 exactly, about 516 when each pair of
// products (2 x 255 x 127 = 64,770) is clamped to 32,767.
bool probe_pair_saturation() {
  const FusedConvSpec spec{{1, 1}, {0, 0}, 1};
  const auto input = uint8_params(0.0, 255.0);
  const auto weight = quantize_conv_weight(torch::ones({1, 4, 1, 1}), torch::zeros({1}), spec, input);
  const auto output = uint8_params(0.0, 1100.0);
  const auto q = quantized_conv(quantize_uint8(torch::full({1, 4, 1, 1}, 255.0), input), input, weight, output, false);
  return dequantize_uint8(q, output).item<double>() < 900.0;
}

}  // namespace

bool int8_pairs_saturate() {
  if (!quantized_conv_available()) return false;
  static const bool saturate = probe_pair_saturation();
  return saturate;
}

QuantParams uint8_params(double lo, double hi) {
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "uint8_params: the range [", lo, ", ", hi,
              "] is not a finite interval");
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  const double scale = std::max(hi - lo, 1e-8) / 255.0;
  const auto zero_point = static_cast<int64_t>(std::clamp(std::round(-lo / scale), 0.0, 255.0));
  return {scale, zero_point};
}

torch::Tensor quantize_uint8(const torch::Tensor& x, const QuantParams& params) {
  TORCH_CHECK(x.dim() == 4 && x.is_floating_point(), "quantize_uint8: expected a float [N, C, H, W] tensor, got ",
              x.sizes(), " of ", x.scalar_type());
  return torch::clamp(torch::round(x.to(torch::kFloat) * (1.0 / params.scale)) + static_cast<double>(params.zero_point),
                      0, 255)
      .to(torch::kByte)
      .contiguous(torch::MemoryFormat::ChannelsLast);
}

torch::Tensor dequantize_uint8(const torch::Tensor& q, const QuantParams& params) {
  TORCH_CHECK(q.scalar_type() == torch::kByte, "dequantize_uint8: expected uint8, got ", q.scalar_type());
  return (q.to(torch::kFloat) - static_cast<double>(params.zero_point)) * params.scale;
}

bool quantized_conv_available() {
  return at::hasMKLDNN() && find_op("onednn::qconv_prepack", "").has_value() &&
         find_op("onednn::qconv2d_pointwise", "").has_value() &&
         find_op("onednn::qconv2d_pointwise", "binary").has_value();
}

QuantizedConvWeight quantize_conv_weight(const torch::Tensor& weight, const torch::Tensor& bias,
                                         const FusedConvSpec& spec, const QuantParams& input) {
  TORCH_CHECK(weight.dim() == 4, "quantize_conv_weight: expected a 4-d weight, got ", weight.sizes());
  TORCH_CHECK(bias.defined() && bias.dim() == 1 && bias.size(0) == weight.size(0), "quantize_conv_weight: expected a "
              "bias of ", weight.size(0), " values");
  const auto w = weight.to(torch::kFloat).contiguous();
  QuantizedConvWeight out;
  out.scales = std::get<0>(w.abs().flatten(1).max(1)).clamp_min(1e-12) / 127.0;
  out.zero_points = torch::zeros({weight.size(0)}, torch::kLong);
  out.bias = bias.to(torch::kFloat).contiguous();
  out.spec = spec;
  out.input = input;
  out.int8 = torch::clamp(torch::round(w / out.scales.view({-1, 1, 1, 1})), -128, 127).to(torch::kChar);
  out.packed = pack_quantized_conv(out, {});
  return out;
}

torch::Tensor pack_quantized_conv(const QuantizedConvWeight& weight, at::IntArrayRef input_sizes) {
  static const auto prepack = find_op("onednn::qconv_prepack", "");
  return call(op_or_throw(prepack, "onednn::qconv_prepack"),
              {weight.int8, weight.scales, weight.input.scale, weight.input.zero_point, weight.spec.stride,
               weight.spec.padding, ones(), weight.spec.groups,
               input_sizes.empty() ? c10::IValue() : c10::IValue(input_sizes.vec())});
}

torch::Tensor quantized_conv(const torch::Tensor& qx, const QuantParams& input, const QuantizedConvWeight& weight,
                             const QuantParams& output, bool relu) {
  return quantized_conv(qx, input, weight, weight.packed, output, relu);
}

torch::Tensor quantized_conv(const torch::Tensor& qx, const QuantParams& input, const QuantizedConvWeight& weight,
                             const torch::Tensor& packed, const QuantParams& output, bool relu) {
  static const auto op = find_op("onednn::qconv2d_pointwise", "");
  TORCH_CHECK(qx.scalar_type() == torch::kByte, "quantized_conv: expected a uint8 input, got ", qx.scalar_type());
  return call(op_or_throw(op, "onednn::qconv2d_pointwise"),
              {qx, input.scale, input.zero_point, packed, weight.scales, weight.zero_points, weight.bias,
               weight.spec.stride, weight.spec.padding, ones(), weight.spec.groups, output.scale, output.zero_point,
               c10::IValue(), std::string(relu ? "relu" : "none"), no_scalars(), c10::IValue(std::string())});
}

torch::Tensor quantized_conv_add_relu(const torch::Tensor& qx, const QuantParams& input,
                                      const QuantizedConvWeight& weight, torch::Tensor accum,
                                      const QuantParams& accum_params, const QuantParams& output) {
  return quantized_conv_add_relu(qx, input, weight, weight.packed, std::move(accum), accum_params, output);
}

torch::Tensor quantized_conv_add_relu(const torch::Tensor& qx, const QuantParams& input,
                                      const QuantizedConvWeight& weight, const torch::Tensor& packed,
                                      torch::Tensor accum, const QuantParams& accum_params,
                                      const QuantParams& output) {
  static const auto op = find_op("onednn::qconv2d_pointwise", "binary");
  TORCH_CHECK(qx.scalar_type() == torch::kByte && accum.scalar_type() == torch::kByte,
              "quantized_conv_add_relu: expected uint8 input and shortcut, got ", qx.scalar_type(), " and ",
              accum.scalar_type());
  return call(op_or_throw(op, "onednn::qconv2d_pointwise.binary"),
              {qx, input.scale, input.zero_point, packed, weight.scales, weight.zero_points, accum, weight.bias,
               weight.spec.stride, weight.spec.padding, ones(), weight.spec.groups, output.scale, output.zero_point,
               c10::IValue(), accum_params.scale, accum_params.zero_point, std::string("sum"), c10::Scalar(1.0),
               c10::IValue(std::string("relu")), no_scalars(), c10::IValue(std::string())});
}

}  // namespace splitshare::nn
