#pragma once
// Max-pooling of uint8 activations in channels-last layout, for the int8 model's stem. libtorch
// 2.14's channels-last max-pool refuses uint8 (it checks sizes against the element type's
// range), and its NCHW one plus two layout copies cost a quarter of a ResNet-50 int8 forward
// at batch 64. Internal to src/nn/.

#include <torch/torch.h>

namespace splitshare::nn::detail {

/// x uint8 [N, C, H, W] channels-last -> the max over each `kernel` x `kernel` window with
/// `stride` and `padding` (padded positions are ignored), uint8 [N, C, H', W'] channels-last
/// with H' = (H + 2 padding - kernel) / stride + 1 (likewise W'), as torch::max_pool2d.
torch::Tensor max_pool_uint8(const torch::Tensor& x, int64_t kernel, int64_t stride, int64_t padding);

}  // namespace splitshare::nn::detail
