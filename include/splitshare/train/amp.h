#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

namespace splitshare::train {

/// Arithmetic of the forward pass.
enum class Precision {
  /// Everything in float32 (the default).
  kFloat32,
  /// bfloat16 autocast (CPU and CUDA); float32 range, so no loss scaling.
  kBFloat16,
  /// float16 autocast (CUDA) with dynamic loss scaling (GradScaler).
  kFloat16,
};

/// "fp32", "bf16", "fp16".
std::string to_string(Precision precision);
/// Accepts fp32|off, bf16, fp16; throws naming the text otherwise.
Precision parse_precision(const std::string& text);
/// The tensor type of `precision`: kFloat, kBFloat16 or kHalf.
torch::Dtype dtype_of(Precision precision);

/// Autocast to `precision` on `device`'s type for the guard's lifetime (forward pass and
/// loss; not backward). Restores the previous state; float32 does nothing. Throws for
/// fp16 on the CPU (a GPU recipe with loss scaling; bf16 is the CPU's reduced type).
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  torch::DeviceType device_type_ = torch::kCPU;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat;
};

/// Dynamic loss scaling (PyTorch's torch.cuda.amp.GradScaler defaults).
struct GradScalerOptions {
  TORCH_ARG(double, init_scale) = 65536.0;
  TORCH_ARG(double, growth_factor) = 2.0;
  TORCH_ARG(double, backoff_factor) = 0.5;
  /// Consecutive finite steps before the scale grows.
  TORCH_ARG(int64_t, growth_interval) = 2000;
  /// Disabled: scale() returns the loss, step() just steps.
  TORCH_ARG(bool, enabled) = true;
};

/// Loss scaling for float16 training: backward runs on loss * scale so small gradients do
/// not flush to zero; the gradients are divided by the scale before the step, and a step
/// whose gradients hold an inf or NaN is skipped and the scale reduced.
///
/// ```
/// GradScaler scaler;
/// scaler.scale(loss).backward();
/// scaler.step(optimizer);  // false: skipped (inf/NaN)
/// scaler.update();
/// ```
class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});

  /// loss * scale (loss unchanged when disabled).
  torch::Tensor scale(const torch::Tensor& loss) const;
  /// Divides the optimizer's gradients by the scale (once per step); true when one of
  /// them is not finite. Call it before clipping or inspecting gradients.
  bool unscale(torch::optim::Optimizer& optimizer);
  /// Unscales if not done yet and steps, unless a gradient is not finite. Returns whether
  /// the optimizer stepped.
  bool step(torch::optim::Optimizer& optimizer);
  /// Backs the scale off after a skipped step, grows it after growth_interval good ones.
  void update();

  double current_scale() const { return scale_; }
  /// The state that must survive a resume: scale, good steps since the last change,
  /// skipped steps ({"scale": …, "good_steps": …, "skipped": …}).
  nlohmann::json state() const;
  /// Restores state(); `source` names the file in error messages.
  void load_state(const nlohmann::json& state, const std::string& source);
  int64_t skipped_steps() const { return skipped_; }
  bool enabled() const { return options_.enabled(); }

 private:
  GradScalerOptions options_;
  double scale_;
  int64_t good_steps_ = 0;
  int64_t skipped_ = 0;
  bool unscaled_ = false;
  bool found_inf_ = false;
};

}  // namespace splitshare::train
