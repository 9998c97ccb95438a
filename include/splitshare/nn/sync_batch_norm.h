#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

namespace splitshare::nn {

/// Sums each tensor over all ranks of a data-parallel group, in place (e.g.
/// `train::Distributed::all_reduce_sum`). Empty = a single process.
using AllReduceSum = std::function<void(std::vector<torch::Tensor>&)>;

/// Training-mode batch normalisation with the statistics of the global batch: every rank's
/// per-channel [sum, sum of squares, count] are summed with `all_reduce`, and the backward
/// pass sums [sum dy, sum dy * x_hat] the same way (PyTorch's SyncBatchNorm). Ranks may
/// hold batches of different sizes (even none). Updates running_mean, running_var (with
/// the unbiased variance of the global batch) and num_batches_tracked in place.
/// input [N, C, ...] -> [N, C, ...]; weight, bias, running statistics [C].
torch::Tensor sync_batch_norm(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias,
                              const torch::Tensor& running_mean, const torch::Tensor& running_var,
                              const torch::Tensor& num_batches_tracked, const torch::nn::BatchNormOptions& options,
                              const std::shared_ptr<const AllReduceSum>& all_reduce);

/// Per-column mean and biased variance of `x` [N, C] over the rows of all ranks ([C] each,
/// differentiable: the backward pass all-reduces their gradients), and the global N.
struct GlobalMoments {
  torch::Tensor mean, var;
  double count = 0;
};
GlobalMoments global_moments(const torch::Tensor& x, const std::shared_ptr<const AllReduceSum>& all_reduce);

}  // namespace splitshare::nn
