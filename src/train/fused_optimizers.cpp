#include <splitshare/train/fused_optimizers.h>

#include <ATen/ATen.h>

#include <map>
#include <optional>

namespace splitshare::train {

namespace {

// Whether ATen's fused kernels can update `p`: they walk the raw storage of the parameter, its
// gradient and its state tensors in step, so all must share one dense layout.
bool fusable(const torch::Tensor& p) {
  const auto& g = p.grad();
  if (!g.defined()) return true;
  const auto device = p.device().type();
  return (device == torch::kCPU || device == torch::kCUDA) && p.is_floating_point() && !g.is_sparse() &&
         g.scalar_type() == p.scalar_type() && g.device() == p.device() && p.is_non_overlapping_and_dense() &&
         g.strides() == p.strides();
}

// The same for a state tensor (momentum buffer, moments) already made for `p`.
bool same_layout(const torch::Tensor& state, const torch::Tensor& p) {
  return !state.defined() || (state.scalar_type() == p.scalar_type() && state.device() == p.device() &&
                              state.strides() == p.strides());
}

// Whether every parameter with a gradient of `optimizer` (and its state) suits the fused kernels;
// `state_tensors` lists a parameter's existing state tensors.
template <typename State, typename Fields>
bool all_fusable(torch::optim::Optimizer& optimizer, Fields state_tensors) {
  std::optional<torch::Device> device;
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!fusable(p) || (device && *device != p.device())) return false;
      device = p.device();
      auto it = optimizer.state().find(p.unsafeGetTensorImpl());
      if (it == optimizer.state().end()) continue;
      for (const auto& t : state_tensors(static_cast<State&>(*it->second))) {
        if (!same_layout(t, p)) return false;
      }
    }
  }
  return true;
}

// Runs `closure` with gradients on, as torch::optim's step does.
torch::Tensor run_closure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  at::AutoGradMode enable(true);
  return closure();
}

}  // namespace

torch::Tensor FusedSGD::step(LossClosure closure) {
  auto sgd_state = [](torch::optim::SGDParamState& s) { return std::vector<torch::Tensor>{s.momentum_buffer()}; };
  // The closure first: the gradients it makes decide whether the kernel applies.
  auto loss = run_closure(closure);
  fused_ = all_fusable<torch::optim::SGDParamState>(*this, sgd_state);
  if (!fused_) {
    torch::optim::SGD::step();
    return loss;
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
    const bool momentum = o.momentum() != 0;
    // Parameters whose momentum buffer exists, and those stepping for the first time (their
    // buffer starts as the gradient, as torch::optim::SGD's clone does).
    std::vector<torch::Tensor> params[2], grads[2], buffers[2];
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto it = state_.find(p.unsafeGetTensorImpl());
      const int first = momentum && it == state_.end() ? 1 : 0;
      if (first) {
        auto s = std::make_unique<torch::optim::SGDParamState>();
        s->momentum_buffer(torch::empty_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(p.unsafeGetTensorImpl(), std::move(s)).first;
      }
      params[first].push_back(p);
      grads[first].push_back(p.grad());
      if (momentum) buffers[first].push_back(static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer());
    }
    for (int first = 0; first < 2; ++first) {
      if (params[first].empty()) continue;
      at::_fused_sgd_(params[first], grads[first], buffers[first], o.weight_decay(), o.momentum(), o.lr(),
                      o.dampening(), o.nesterov(), /*maximize=*/false, /*is_first_step=*/first == 1);
    }
  }
  return loss;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  auto adam_state = [](torch::optim::AdamWParamState& s) {
    return std::vector<torch::Tensor>{s.exp_avg(), s.exp_avg_sq(), s.max_exp_avg_sq()};
  };
  auto loss = run_closure(closure);
  fused_ = all_fusable<torch::optim::AdamWParamState>(*this, adam_state);
  if (!fused_) {
    torch::optim::AdamW::step();
    return loss;
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
    // The kernel reads each parameter's step count from a float tensor on its device; parameters
    // at the same count (usually all) share one, so a step makes one such tensor, not one each.
    std::map<int64_t, torch::Tensor> step_tensors;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0).exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      if (o.amsgrad() && !s.max_exp_avg_sq().defined()) {
        s.max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      }
      s.step(s.step() + 1);
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
      if (o.amsgrad()) max_exp_avg_sqs.push_back(s.max_exp_avg_sq());
      auto& count = step_tensors[s.step()];
      if (!count.defined()) count = torch::full({}, static_cast<double>(s.step()), p.options().dtype(torch::kFloat));
      steps.push_back(count);
    }
    if (params.empty()) continue;
    const auto [beta1, beta2] = o.betas();
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, o.lr(), beta1, beta2,
                      o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
  }
  return loss;
}

}  // namespace splitshare::train
