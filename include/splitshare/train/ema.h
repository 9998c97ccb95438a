#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace splitshare::train {

/// An exponential moving average of a module's parameters and floating-point buffers
/// (BatchNorm running statistics), timm's ModelEmaV2: after each update,
/// ema = decay * ema + (1 - decay) * current; integer buffers (num_batches_tracked) are copied.
/// Keyed by name (`named` gives each tensor's checkpoint name), so it is saved and restored
/// by name and survives any parameter-group layout.
class WeightEma {
 public:
  /// Starts from the current values of `named` (name, tensor) pairs; decay in [0, 1).
  WeightEma(std::vector<std::pair<std::string, torch::Tensor>> named, double decay);

  /// Moves the average towards the tracked tensors' current values.
  void update();
  /// The averages by name (on the tensors' devices).
  std::map<std::string, torch::Tensor> state() const;
  /// Replaces the averages with `saved` (every name must be present, shapes equal); throws naming `source`.
  void load_state(const std::map<std::string, torch::Tensor>& saved, const std::string& source);
  /// Swaps the tracked tensors' values with the averages (call again to swap back): the
  /// module then computes with the EMA weights, e.g. for evaluation or saving.
  void swap();

 private:
  std::vector<std::string> names_;
  std::vector<torch::Tensor> tracked_;
  std::vector<torch::Tensor> averages_;
  double decay_;
};

/// Runs the module with the EMA weights for the lifetime of this guard.
class EmaSwapGuard {
 public:
  explicit EmaSwapGuard(WeightEma* ema) : ema_(ema) {
    if (ema_) ema_->swap();
  }
  ~EmaSwapGuard() {
    if (ema_) ema_->swap();
  }
  EmaSwapGuard(const EmaSwapGuard&) = delete;
  EmaSwapGuard& operator=(const EmaSwapGuard&) = delete;

 private:
  WeightEma* ema_;
};

}  // namespace splitshare::train
