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

/// BatchNorm2d with synchronised statistics in training (sync_batch_norm); plain batch
/// norm on the running statistics in evaluation. Options and parameter/buffer names are
/// BatchNorm2d's (weight, bias, running_mean, running_var, num_batches_tracked), so its
/// state loads into and from a BatchNorm2d.
///
/// ```
/// SyncBatchNorm bn(torch::nn::BatchNormOptions(64),
///                  [&](std::vector<torch::Tensor>& t) { dist->all_reduce_sum(t); });
/// ```
class SyncBatchNormImpl : public torch::nn::Cloneable<SyncBatchNormImpl> {
 public:
  SyncBatchNormImpl(torch::nn::BatchNormOptions options, AllReduceSum all_reduce);
  void reset() override;

  /// input [N, C, H, W] (any memory format) -> [N, C, H, W].
  torch::Tensor forward(const torch::Tensor& input);

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  /// The collective (shared with the autograd graph of each forward).
  std::shared_ptr<const AllReduceSum> all_reduce;
};
TORCH_MODULE(SyncBatchNorm);

/// `bn`'s forward; in training with a non-null `all_reduce`, sync_batch_norm on `bn`'s
/// own parameters and buffers instead (the ResNet code calls its norms through this).
torch::Tensor batch_norm_forward(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& input,
                                 const std::shared_ptr<const AllReduceSum>& all_reduce);

/// Makes every ResNet backbone, residual block and SplitAndShare head inside `module`
/// normalise with synchronised statistics (their `batch_norm_all_reduce`); the BatchNorm
/// layers, names and tensors stay as they are. Returns the number of BatchNorm layers
/// affected (the SSM head's count as one: they share one set of statistics). Other
/// modules' norm layers are left alone; the head's unfused reference path is not synchronised.
int64_t convert_sync_batch_norm(torch::nn::Module& module, const AllReduceSum& all_reduce);

}  // namespace splitshare::nn
