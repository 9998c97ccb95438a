#pragma once

#include <torch/torch.h>

#include <vector>

namespace splitshare::nn {

/// oneDNN convolutions with their bias, ReLU and residual sum fused into one kernel, on
/// dense channels-last CPU tensors (float32 or bfloat16), through the `mkldnn::` operators
/// PyTorch's own inductor uses when it freezes a model. The weights are packed once per
/// input shape into oneDNN's blocked layout: a weight packed for a different shape makes
/// oneDNN reorder it on every call (2.9x slower at batch 1 for ResNet-50 here).
struct FusedConvSpec {
  std::vector<int64_t> stride, padding;
  int64_t groups = 1;
};

/// Whether this libtorch has oneDNN and the fused convolution operators, and for bfloat16
/// whether oneDNN runs bfloat16 convolutions on this CPU (AVX-512 or AVX-NE-CONVERT; without
/// them PyTorch refuses to pack bfloat16 weights).
bool fused_conv_available(torch::ScalarType dtype = torch::kFloat);

/// weight [C_out, C_in/groups, kH, kW] (float32 or bfloat16) -> the same weight as an
/// opaque oneDNN tensor, laid out for inputs of `input_sizes` [N, C_in, H, W].
torch::Tensor pack_conv_weight(const torch::Tensor& weight, const FusedConvSpec& spec,
                               at::IntArrayRef input_sizes);

/// x [N, C_in, H, W] channels-last -> relu?(conv(x, packed) + bias) [N, C_out, H', W']
/// channels-last, in x's dtype; bias [C_out] in x's dtype.
torch::Tensor fused_conv(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& bias,
                         const FusedConvSpec& spec, bool relu);

/// residual [N, C_out, H', W'] channels-last <- relu(conv(x, packed) + bias + residual), in
/// place; returns residual.
torch::Tensor& fused_conv_add_relu_(torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& packed,
                                    const torch::Tensor& bias, const FusedConvSpec& spec);

}  // namespace splitshare::nn
