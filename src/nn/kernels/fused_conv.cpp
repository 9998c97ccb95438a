#include <splitshare/nn/kernels/fused_conv.h>

#include "dispatch.h"

#include <optional>

namespace splitshare::nn {
namespace {

using dispatch::call;
using dispatch::find_op;
using dispatch::no_scalars;

}  // namespace

bool fused_conv_available(torch::ScalarType dtype) {
  const bool ops = at::hasMKLDNN() && find_op("mkldnn::_convolution_pointwise", "").has_value() &&
                   find_op("mkldnn::_convolution_pointwise_", "binary").has_value();
  if (!ops || dtype != torch::kBFloat16) return ops;
  const auto supported = find_op("mkldnn::_is_mkldnn_bf16_supported", "");
  if (!supported.has_value()) return false;
  torch::jit::Stack stack;
  supported->callBoxed(&stack);
  return stack.front().toBool();
}

torch::Tensor pack_conv_weight(const torch::Tensor& weight, const FusedConvSpec& spec,
                               at::IntArrayRef input_sizes) {
  TORCH_CHECK(weight.dim() == 4, "pack_conv_weight: expected a 4-d weight, got ", weight.sizes());
  TORCH_CHECK(input_sizes.size() == 4, "pack_conv_weight: expected 4-d input sizes, got ", input_sizes);
  return at::mkldnn_reorder_conv2d_weight(weight.contiguous().to_mkldnn(), spec.padding, spec.stride, {1, 1},
                                          spec.groups, input_sizes);
}

torch::Tensor fused_conv(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& bias,
                         const FusedConvSpec& spec, bool relu) {
  static const auto op = find_op("mkldnn::_convolution_pointwise", "");
  TORCH_CHECK(op.has_value(), "fused_conv: this libtorch has no mkldnn::_convolution_pointwise");
  return call(*op, {x, packed, bias, spec.padding, spec.stride, std::vector<int64_t>{1, 1}, spec.groups,
                    std::string(relu ? "relu" : "none"), no_scalars(), c10::IValue()});
}

torch::Tensor& fused_conv_add_relu_(torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& packed,
                                    const torch::Tensor& bias, const FusedConvSpec& spec) {
  static const auto op = find_op("mkldnn::_convolution_pointwise_", "binary");
  TORCH_CHECK(op.has_value(), "fused_conv_add_relu_: this libtorch has no mkldnn::_convolution_pointwise_.binary");
  call(*op, {residual, x, packed, bias, spec.padding, spec.stride, std::vector<int64_t>{1, 1}, spec.groups,
             std::string("add"), c10::Scalar(1.0), std::string("relu"), no_scalars(), c10::IValue()});
  return residual;
}

}  // namespace splitshare::nn
