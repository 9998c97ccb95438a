#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

namespace splitshare::nn {

/// a [M, K] x b [K, N] -> [M, N], as torch::mm. For float32 CPU tensors, when OpenBLAS
/// runs single-threaded (util::configure_threads) and libtorch has several intra-op
/// threads, the product is cut into one block of rows (or of columns) per thread on
/// libtorch's pool: one pool of threads instead of two competing for the same cores.
/// Anything else (other devices or types, a single thread, small products, calls from
/// inside a parallel region) goes to torch::mm. Not differentiable on the split path:
/// call it without gradients (or from an autograd Function), as `linear` does.
torch::Tensor parallel_mm(const torch::Tensor& a, const torch::Tensor& b);

/// Several products a_i [M_i, K_i] x b_i [K_i, N_i] -> [M_i, N_i], in order. Where each
/// would be split (parallel_mm_splits) and whole products balance across the threads
/// (longest first, to the least loaded thread; no thread above 1.15x its share), each
/// product runs whole on one thread: about 10% faster at the heads' sizes than cutting
/// each in blocks, which packs shared operands once per thread. Otherwise one
/// parallel_mm after another.
std::vector<torch::Tensor> parallel_mm_many(const std::vector<std::pair<torch::Tensor, torch::Tensor>>& products);

/// Whether parallel_mm cuts a x b across threads (rather than handing it to torch::mm).
bool parallel_mm_splits(const torch::Tensor& a, const torch::Tensor& b);

/// input [N, C] x weight [K, C]^T + bias [K] -> [N, K], as torch::nn::functional::linear,
/// differentiable. Float32 CPU inputs outside autocast take `parallel_mm` both ways (forward,
/// and the input and weight gradients of the backward); anything else runs the same
/// product through torch's own operators, so autocast still applies.
torch::Tensor linear(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias);

/// Several linear layers at once: inputs[i] [N_i, C_i] x weights[i] [K_i, C_i]^T + biases[i]
/// -> [N_i, K_i]. Without gradients to record, float32 on the CPU, the products go through
/// parallel_mm_many; otherwise one `linear` after another.
std::vector<torch::Tensor> linear_many(const std::vector<torch::Tensor>& inputs,
                                       const std::vector<torch::Tensor>& weights,
                                       const std::vector<torch::Tensor>& biases);

}  // namespace splitshare::nn
