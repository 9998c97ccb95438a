#include <splitshare/train/amp.h>

#include <cmath>

#include <ATen/autocast_mode.h>

namespace splitshare::train {
namespace {

bool autocast_enabled(torch::DeviceType type) { return at::autocast::is_autocast_enabled(type); }

torch::ScalarType autocast_dtype(torch::DeviceType type) { return at::autocast::get_autocast_dtype(type); }

void set_autocast(torch::DeviceType type, bool enabled, torch::ScalarType dtype) {
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
}

}  // namespace

std::string to_string(Precision precision) {
  switch (precision) {
    case Precision::kFloat32: return "fp32";
    case Precision::kBFloat16: return "bf16";
    case Precision::kFloat16: return "fp16";
  }
  return "?";
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32" || text == "off") return Precision::kFloat32;
  if (text == "bf16") return Precision::kBFloat16;
  if (text == "fp16") return Precision::kFloat16;
  TORCH_CHECK(false, "unknown precision '", text, "': expected bf16, fp16 or fp32");
}

torch::Dtype dtype_of(Precision precision) {
  switch (precision) {
    case Precision::kBFloat16: return torch::kBFloat16;
    case Precision::kFloat16: return torch::kHalf;
    case Precision::kFloat32: break;
  }
  return torch::kFloat;
}

AutocastGuard::AutocastGuard(const torch::Device& device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  TORCH_CHECK(device.is_cpu() || device.is_cuda(), "autocast: unsupported device ", device);
  TORCH_CHECK(device.is_cuda() || precision == Precision::kBFloat16,
              "autocast: fp16 needs a CUDA device; use bf16 on the CPU");
  device_type_ = device.type();
  previous_enabled_ = autocast_enabled(device_type_);
  previous_dtype_ = autocast_dtype(device_type_);
  set_autocast(device_type_, true, dtype_of(precision));
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // The cast weights are cached while autocast is on; drop them when the outermost guard ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(device_type_, previous_enabled_, previous_dtype_);
}

GradScaler::GradScaler(GradScalerOptions options) : options_(std::move(options)), scale_(options_.init_scale()) {
  TORCH_CHECK(options_.init_scale() > 0, "GradScaler: init_scale must be positive, got ", options_.init_scale());
  TORCH_CHECK(options_.growth_factor() > 1, "GradScaler: growth_factor must be > 1, got ", options_.growth_factor());
  TORCH_CHECK(options_.backoff_factor() > 0 && options_.backoff_factor() < 1,
              "GradScaler: backoff_factor must be in (0, 1), got ", options_.backoff_factor());
  TORCH_CHECK(options_.growth_interval() >= 1, "GradScaler: growth_interval must be >= 1, got ",
              options_.growth_interval());
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) const {
  return options_.enabled() ? loss * scale_ : loss;
}

bool GradScaler::unscale(torch::optim::Optimizer& optimizer) {
  if (!options_.enabled() || unscaled_) return found_inf_;
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / scale_;
  torch::Tensor found;
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) {
      auto& grad = p.mutable_grad();
      if (!grad.defined()) continue;
      auto bad = grad.isfinite().logical_not().any();
      found = found.defined() ? found.logical_or(bad.to(found.device())) : bad;
      grad.mul_(inverse);
    }
  }
  found_inf_ = found.defined() && found.item<bool>();
  unscaled_ = true;
  return found_inf_;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
  if (!options_.enabled()) {
    optimizer.step();
    return true;
  }
  if (unscale(optimizer)) {
    ++skipped_;
    return false;
  }
  optimizer.step();
  return true;
}

nlohmann::json GradScaler::state() const {
  return {{"scale", scale_}, {"good_steps", good_steps_}, {"skipped", skipped_}};
}

void GradScaler::load_state(const nlohmann::json& state, const std::string& source) {
  if (state.is_null() || state.empty()) return;
  try {
    const double scale = state.at("scale").get<double>();
    TORCH_CHECK(std::isfinite(scale) && scale > 0, source, ": loss scale must be positive and finite, got ", scale);
    scale_ = scale;
    good_steps_ = state.at("good_steps").get<int64_t>();
    skipped_ = state.at("skipped").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, source, ": malformed loss-scaler state: ", e.what());
  }
}

void GradScaler::update() {
  if (!options_.enabled()) return;
  if (found_inf_) {
    scale_ *= options_.backoff_factor();
    good_steps_ = 0;
  } else if (unscaled_ && ++good_steps_ >= options_.growth_interval()) {
    scale_ *= options_.growth_factor();
    good_steps_ = 0;
  }
  unscaled_ = false;
  found_inf_ = false;
}

}  // namespace splitshare::train
