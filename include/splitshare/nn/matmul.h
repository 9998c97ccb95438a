#pragma once

#include <torch/torch.h>

namespace splitshare::nn {

/// a [M, K] x b [K, N] -> [M, N], as torch::mm. For float32 CPU tensors, when OpenBLAS
/// runs single-threaded (util::configure_threads) and libtorch has several intra-op
/// threads, the product is cut into one block of rows (or of columns) per thread on
/// libtorch's pool: one pool of threads instead of two competing for the same cores.
/// Anything else (other devices or types, a single thread, small products, calls from
/// inside a parallel region) goes to torch::mm. Not differentiable on the split path:
/// call it without gradients (or from an autograd Function), as `linear` does.
torch::Tensor parallel_mm(const torch::Tensor& a, const torch::Tensor& b);

/// Whether parallel_mm cuts a x b across threads (rather than handing it to torch::mm).
bool parallel_mm_splits(const torch::Tensor& a, const torch::Tensor& b);

/// input [N, C] x weight [K, C]^T + bias [K] -> [N, K], as torch::nn::functional::linear,
/// differentiable. Float32 CPU inputs outside autocast take `parallel_mm` both ways (forward,
/// and the input and weight gradients of the backward); anything else runs the same
/// product through torch's own operators, so autocast still applies.
torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias);

}  // namespace splitshare::nn
