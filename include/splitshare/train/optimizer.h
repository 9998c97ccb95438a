#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace splitshare::train {

/// The update rule of training.
enum class OptimizerKind {
  /// SGD with momentum (the paper's, the default).
  kSgd,
  /// Adam with decoupled weight decay (Loshchilov & Hutter), the usual fine-tuning optimizer.
  kAdamW,
  /// RMSprop (PyTorch's formulation: eps outside the square root).
  kRmsprop,
};

std::string to_string(OptimizerKind kind);
/// "sgd" | "adamw" | "rmsprop"; throws naming the text otherwise.
OptimizerKind parse_optimizer_kind(const std::string& text);

/// The optimizer's hyper-parameters (the learning rate comes from the schedule).
struct OptimizerOptions {
  TORCH_ARG(OptimizerKind, kind) = OptimizerKind::kSgd;
  /// SGD and RMSprop momentum.
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(bool, nesterov) = false;
  TORCH_ARG(double, weight_decay) = 1e-4;
  /// AdamW's (beta1, beta2).
  TORCH_ARG(std::vector<double>, betas) = {0.9, 0.999};
  /// AdamW and RMSprop denominator term.
  TORCH_ARG(double, eps) = 1e-8;
  /// RMSprop's smoothing constant of the squared-gradient average.
  TORCH_ARG(double, alpha) = 0.99;
};

/// The learning rate when none is given, scaled linearly with the global batch of one
/// optimizer step (per-rank batch x accumulation x ranks): SGD 0.1 x batch / 256 (the paper's), AdamW 0.001 x batch / 256, RMSprop
/// 0.016 x batch / 1536 (timm's EfficientNet recipe).
double default_base_lr(OptimizerKind kind, int64_t step_batch);

/// The weight decay when none is given for AdamW (decoupled, so much larger than SGD's L2):
/// 0.05, the usual value of timm's and DeiT's AdamW recipes.
inline constexpr double kAdamWWeightDecay = 0.05;

/// Whether weight decay skips BatchNorm and bias parameters by default: on for AdamW (as in
/// timm), off for SGD and RMSprop (the paper decays every parameter).
bool default_no_decay_bn_bias(OptimizerKind kind);

/// Parameters that share a learning-rate factor and whether they are decayed.
struct ParameterGroup {
  std::vector<torch::Tensor> params;
  /// This group's rate over the schedule's.
  double lr_factor = 1.0;
  bool decay = true;
};

/// Splits every group into its decayed parameters and its BatchNorm and bias parameters
/// (1-d tensors: timm's rule), the latter with decay = false; empty groups are dropped.
std::vector<ParameterGroup> split_no_decay(const std::vector<ParameterGroup>& groups);

/// The optimizer of `options` over `groups` (a group with decay = false gets weight decay 0):
/// SGD and AdamW on ATen's fused kernels (FusedSGD, FusedAdamW), RMSprop as torch::optim's.
/// Checks the hyper-parameters (betas in [0, 1), eps > 0, ...) naming the bad value.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<ParameterGroup>& groups,
                                                        const OptimizerOptions& options, double lr);

/// Sets every group's rate to lr * its factor.
void set_learning_rates(torch::optim::Optimizer& optimizer, const std::vector<ParameterGroup>& groups, double lr);

/// The optimizer's per-parameter state keyed by name: SGD's momentum buffer under the
/// parameter's own name, other tensors as "<name>#<field>" (AdamW: step, exp_avg,
/// exp_avg_sq; RMSprop: step, square_avg, momentum_buffer, grad_avg). Independent of the
/// groups' layout, so a checkpoint restores it by name. Parameters without state are absent.
std::map<std::string, torch::Tensor> optimizer_state_by_name(
    const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters, torch::optim::Optimizer& optimizer,
    OptimizerKind kind);

/// The inverse of optimizer_state_by_name: tensors are copied onto each parameter's device
/// and layout. Throws naming `source` when a name matches no parameter, a shape differs, or
/// the state belongs to another optimizer.
void restore_optimizer_state(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
                             torch::optim::Optimizer& optimizer, OptimizerKind kind,
                             const std::map<std::string, torch::Tensor>& state, const std::string& source);

}  // namespace splitshare::train
