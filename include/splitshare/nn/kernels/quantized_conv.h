#pragma once

#include <splitshare/nn/kernels/fused_conv.h>

#include <torch/torch.h>

namespace splitshare::nn {

/// Per-tensor affine quantization of activations on uint8: real = scale * (q - zero_point).
struct QuantParams {
  double scale = 1.0;
  int64_t zero_point = 0;
};

/// The uint8 parameters that cover [lo, hi] (widened to hold 0, so zero is exact: padding and
/// ReLU's floor). Values after a ReLU (lo = 0) get zero_point 0 and all 256 levels above it.
QuantParams uint8_params(double lo, double hi);

/// x float [N, C, H, W] -> uint8 [N, C, H, W] channels-last: round(x / scale) + zero_point,
/// clamped to [0, 255].
torch::Tensor quantize_uint8(const torch::Tensor& x, const QuantParams& params);
/// q uint8 -> float: scale * (q - zero_point), in q's memory format.
torch::Tensor dequantize_uint8(const torch::Tensor& q, const QuantParams& params);

/// A convolution's weight quantized for oneDNN's int8 kernels: per output channel symmetric
/// int8 (scale = max |w| / 127 of the channel), for uint8 inputs quantized with `input`.
struct QuantizedConvWeight {
  torch::Tensor int8;         ///< int8 [C_out, C_in/groups, kH, kW]
  torch::Tensor scales;       ///< float32 [C_out]
  torch::Tensor zero_points;  ///< int64 [C_out], zeros
  torch::Tensor bias;         ///< float32 [C_out] (the folded BatchNorm's shift), kept in float
  FusedConvSpec spec;
  QuantParams input;
  /// pack_quantized_conv(*this, {}): for inputs of any shape.
  torch::Tensor packed;
};

/// Whether this libtorch has oneDNN's int8 convolution operators (`onednn::qconv_prepack`,
/// `onednn::qconv2d_pointwise` and its `.binary` form: what PyTorch 2's X86InductorQuantizer
/// lowers to).
bool quantized_conv_available();

/// Whether oneDNN's int8 convolutions on this CPU add each pair of uint8 x int8 products in 16
/// bits with saturation (x86 without VNNI, e.g. AVX2-only CPUs), measured once per process on
/// one small convolution whose pairs overflow. False without the int8 operators. Where it is
/// true, int8 results can be far from the float ones (inputs near the top of their range).
bool int8_pairs_saturate();

/// weight float [C_out, C_in/groups, kH, kW], bias float [C_out] -> the int8 weight for uint8
/// inputs quantized with `input`, packed for inputs of any shape.
QuantizedConvWeight quantize_conv_weight(const torch::Tensor& weight, const torch::Tensor& bias,
                                         const FusedConvSpec& spec, const QuantParams& input);

/// `weight` packed into oneDNN's layout for inputs of `input_sizes` [N, C_in, H, W] (empty: for
/// any shape, which costs a reorder of the weight on every call: 2.5x slower at batch 1).
torch::Tensor pack_quantized_conv(const QuantizedConvWeight& weight, at::IntArrayRef input_sizes);

/// qx uint8 [N, C_in, H, W] (quantized with `input`) -> relu?(conv(x) + bias) as uint8
/// quantized with `output` [N, C_out, H', W'] channels-last; int32 accumulation in oneDNN.
torch::Tensor quantized_conv(const torch::Tensor& qx, const QuantParams& input, const QuantizedConvWeight& weight,
                             const QuantParams& output, bool relu);
/// The same with `packed` (pack_quantized_conv for qx's sizes) instead of weight.packed.
torch::Tensor quantized_conv(const torch::Tensor& qx, const QuantParams& input, const QuantizedConvWeight& weight,
                             const torch::Tensor& packed, const QuantParams& output, bool relu);

/// relu(conv(x) + bias + accum) as uint8 quantized with `output`, where accum uint8 (the
/// block's shortcut, quantized with `accum_params`) has the output's sizes. oneDNN sums into
/// accum's buffer: it is consumed.
torch::Tensor quantized_conv_add_relu(const torch::Tensor& qx, const QuantParams& input,
                                      const QuantizedConvWeight& weight, torch::Tensor accum,
                                      const QuantParams& accum_params, const QuantParams& output);
/// The same with `packed` (pack_quantized_conv for qx's sizes) instead of weight.packed.
torch::Tensor quantized_conv_add_relu(const torch::Tensor& qx, const QuantParams& input,
                                      const QuantizedConvWeight& weight, const torch::Tensor& packed,
                                      torch::Tensor accum, const QuantParams& accum_params,
                                      const QuantParams& output);

}  // namespace splitshare::nn
