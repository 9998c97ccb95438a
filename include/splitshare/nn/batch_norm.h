#pragma once

#include <splitshare/nn/sync_batch_norm.h>

#include <torch/torch.h>

#include <memory>

namespace splitshare::nn {

/// The one norm layer of splitshare's models: torch::nn::BatchNorm1d/2d's computation,
/// options and state names (weight, bias, running_mean, running_var, num_batches_tracked),
/// so checkpoints move between the two, plus an optional collective. With a collective
/// (set from outside by convert_sync_batch_norm), training uses the statistics of the
/// global batch (sync_batch_norm); evaluation always uses the running statistics.
///
/// ```
/// BatchNorm bn(torch::nn::BatchNormOptions(64));
/// auto y = bn->forward(x);  // x [N, 64] or [N, 64, H, W]
/// ```
class BatchNormImpl : public torch::nn::Cloneable<BatchNormImpl> {
 public:
  explicit BatchNormImpl(torch::nn::BatchNormOptions options);
  explicit BatchNormImpl(int64_t num_features) : BatchNormImpl(torch::nn::BatchNormOptions(num_features)) {}
  /// (Re)creates the parameters and buffers (weight 1, bias 0, mean 0, variance 1).
  void reset() override;

  /// input [N, C] or [N, C, H, W] (any memory format) -> the same shape.
  torch::Tensor forward(const torch::Tensor& input);
  /// Whether a collective is set (the layer is synchronised in training).
  bool synchronised() const { return collective && *collective; }
  void pretty_print(std::ostream& stream) const override;

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  /// Null for a single process; shared by every layer of a converted model and by the
  /// autograd graph of each forward.
  std::shared_ptr<const AllReduceSum> collective;
};
TORCH_MODULE(BatchNorm);

/// Synchronises every nn::BatchNorm inside `module` over a data-parallel group: sets their
/// collective (an empty `all_reduce` unsets it). Models are not touched otherwise: layers,
/// names and tensors stay, so checkpoints are unchanged. Returns the number of layers set.
/// torch::nn::BatchNorm* layers of other models are left alone.
int64_t convert_sync_batch_norm(torch::nn::Module& module, const AllReduceSum& all_reduce);

}  // namespace splitshare::nn
