#include <splitshare/train/ema.h>

namespace splitshare::train {

WeightEma::WeightEma(std::vector<std::pair<std::string, torch::Tensor>> named, double decay) : decay_(decay) {
  TORCH_CHECK(decay >= 0 && decay < 1, "EMA decay must be in [0, 1), got ", decay);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : named) {
    names_.push_back(name);
    tracked_.push_back(tensor);
    averages_.push_back(tensor.detach().clone());
  }
}

void WeightEma::update() {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> averages, current;
  for (size_t i = 0; i < tracked_.size(); ++i) {
    if (tracked_[i].is_floating_point()) {
      averages.push_back(averages_[i]);
      current.push_back(tracked_[i].detach());
    } else {
      averages_[i].copy_(tracked_[i]);
    }
  }
  // ema + (1 - decay) * (current - ema) == decay * ema + (1 - decay) * current
  if (!averages.empty()) torch::_foreach_lerp_(averages, current, 1.0 - decay_);
}

std::map<std::string, torch::Tensor> WeightEma::state() const {
  std::map<std::string, torch::Tensor> out;
  for (size_t i = 0; i < names_.size(); ++i) out[names_[i]] = averages_[i];
  return out;
}

void WeightEma::load_state(const std::map<std::string, torch::Tensor>& saved, const std::string& source) {
  TORCH_CHECK(saved.size() == names_.size(), source, ": the EMA holds ", saved.size(), " tensors, the model ",
              names_.size());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < names_.size(); ++i) {
    auto it = saved.find(names_[i]);
    TORCH_CHECK(it != saved.end(), source, ": the EMA has no tensor ", names_[i]);
    TORCH_CHECK(it->second.sizes() == averages_[i].sizes(), source, ": EMA tensor ", names_[i], " has shape ",
                it->second.sizes(), ", the model's ", averages_[i].sizes());
    averages_[i].copy_(it->second);
  }
}

void WeightEma::swap() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tracked_.size(); ++i) {
    auto held = tracked_[i].detach().clone();
    tracked_[i].detach().copy_(averages_[i]);
    averages_[i].copy_(held);
  }
}

}  // namespace splitshare::train
