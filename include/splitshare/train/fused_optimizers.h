#pragma once

#include <torch/torch.h>

namespace splitshare::train {

/// torch::optim::SGD whose step runs ATen's fused SGD kernel: one pass over each parameter, its
/// gradient and its momentum buffer instead of three or four separate element-wise passes.
/// Same options, the same per-parameter state (SGDParamState, so checkpoints and
/// optimizer_state_by_name see no difference) and the same updates as torch::optim::SGD up to
/// floating-point rounding. Where the fused kernel does not apply (a sparse gradient, a gradient
/// of another dtype, device or memory layout than its parameter, a non-floating parameter, a
/// device other than CPU and CUDA) the whole step is torch::optim::SGD's.
class FusedSGD : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  /// Updates every parameter that has a gradient; returns the closure's loss (undefined without one).
  torch::Tensor step(LossClosure closure = nullptr) override;
  /// Whether the last step ran the fused kernel (false: torch::optim::SGD's step, or no step yet).
  bool last_step_fused() const { return fused_; }

 private:
  bool fused_ = false;
};

/// torch::optim::AdamW on ATen's fused AdamW kernel (one pass per parameter instead of about ten),
/// with the same state (AdamWParamState, step counts included), updates up to rounding, and the
/// same fall-back rule as FusedSGD.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  /// Updates every parameter that has a gradient; returns the closure's loss (undefined without one).
  torch::Tensor step(LossClosure closure = nullptr) override;
  /// Whether the last step ran the fused kernel (false: torch::optim::AdamW's step, or no step yet).
  bool last_step_fused() const { return fused_; }

 private:
  bool fused_ = false;
};

}  // namespace splitshare::train
