#include <splitshare/train/optimizer.h>

#include <splitshare/train/fused_optimizers.h>

#include <set>

namespace splitshare::train {

std::string to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdamW: return "adamw";
    case OptimizerKind::kRmsprop: return "rmsprop";
  }
  return "?";
}

OptimizerKind parse_optimizer_kind(const std::string& text) {
  if (text == "sgd") return OptimizerKind::kSgd;
  if (text == "adamw") return OptimizerKind::kAdamW;
  if (text == "rmsprop") return OptimizerKind::kRmsprop;
  TORCH_CHECK(false, "unknown optimizer '", text, "': expected sgd, adamw or rmsprop");
}

double default_base_lr(OptimizerKind kind, int64_t step_batch) {
  const auto b = static_cast<double>(step_batch);
  switch (kind) {
    case OptimizerKind::kSgd: return 0.1 * b / 256.0;
    case OptimizerKind::kAdamW: return 0.001 * b / 256.0;
    case OptimizerKind::kRmsprop: return 0.016 * b / 1536.0;
  }
  return 0.1 * b / 256.0;
}

bool default_no_decay_bn_bias(OptimizerKind kind) { return kind == OptimizerKind::kAdamW; }

std::vector<ParameterGroup> split_no_decay(const std::vector<ParameterGroup>& groups) {
  std::vector<ParameterGroup> out;
  for (const auto& group : groups) {
    ParameterGroup decayed{{}, group.lr_factor, group.decay}, plain{{}, group.lr_factor, false};
    for (const auto& p : group.params) (p.dim() <= 1 ? plain : decayed).params.push_back(p);
    if (!decayed.params.empty()) out.push_back(std::move(decayed));
    if (!plain.params.empty()) out.push_back(std::move(plain));
  }
  return out;
}

namespace {

void check_options(const OptimizerOptions& o) {
  TORCH_CHECK(o.weight_decay() >= 0, "weight decay must be >= 0, got ", o.weight_decay());
  TORCH_CHECK(o.momentum() >= 0 && o.momentum() < 1, "momentum must be in [0, 1), got ", o.momentum());
  TORCH_CHECK(o.betas().size() == 2, "betas takes two values (beta1,beta2), got ", o.betas().size());
  for (double b : o.betas()) TORCH_CHECK(b >= 0 && b < 1, "betas must lie in [0, 1), got ", b);
  TORCH_CHECK(o.eps() > 0, "eps must be > 0, got ", o.eps());
  TORCH_CHECK(o.alpha() > 0 && o.alpha() < 1, "RMSprop alpha must be in (0, 1), got ", o.alpha());
  TORCH_CHECK(!o.nesterov() || o.kind() == OptimizerKind::kSgd, "Nesterov momentum is an SGD option, not ",
              to_string(o.kind()), "'s");
}

// The options of one group of the optimizer `o` describes.
std::unique_ptr<torch::optim::OptimizerOptions> group_options(const OptimizerOptions& o, double lr, bool decay) {
  const double wd = decay ? o.weight_decay() : 0.0;
  switch (o.kind()) {
    case OptimizerKind::kSgd:
      return std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(lr).momentum(o.momentum()).weight_decay(wd).nesterov(o.nesterov()));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(lr).betas({o.betas()[0], o.betas()[1]}).eps(o.eps()).weight_decay(wd));
    case OptimizerKind::kRmsprop:
      return std::make_unique<torch::optim::RMSpropOptions>(
          torch::optim::RMSpropOptions(lr).alpha(o.alpha()).eps(o.eps()).weight_decay(wd).momentum(o.momentum()));
  }
  TORCH_CHECK(false, "unknown optimizer kind");
}

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<ParameterGroup>& groups,
                                                        const OptimizerOptions& options, double lr) {
  check_options(options);
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& g : groups) param_groups.emplace_back(g.params, group_options(options, lr * g.lr_factor, g.decay));
  switch (options.kind()) {
    case OptimizerKind::kSgd:
      return std::make_unique<FusedSGD>(
          param_groups, static_cast<torch::optim::SGDOptions&>(*group_options(options, lr, true)));
    case OptimizerKind::kAdamW:
      return std::make_unique<FusedAdamW>(
          param_groups, static_cast<torch::optim::AdamWOptions&>(*group_options(options, lr, true)));
    case OptimizerKind::kRmsprop:
      return std::make_unique<torch::optim::RMSprop>(
          param_groups, static_cast<torch::optim::RMSpropOptions&>(*group_options(options, lr, true)));
  }
  TORCH_CHECK(false, "unknown optimizer kind");
}

void set_learning_rates(torch::optim::Optimizer& optimizer, const std::vector<ParameterGroup>& groups, double lr) {
  auto& param_groups = optimizer.param_groups();
  TORCH_CHECK(param_groups.size() == groups.size(), "set_learning_rates: the optimizer has ", param_groups.size(),
              " groups, given ", groups.size());
  for (size_t i = 0; i < param_groups.size(); ++i) param_groups[i].options().set_lr(lr * groups[i].lr_factor);
}

namespace {

// The key of a parameter in the optimizer's state map.
void* state_key(const torch::Tensor& parameter) { return parameter.unsafeGetTensorImpl(); }

torch::Tensor step_tensor(int64_t step) { return torch::tensor(step, torch::kInt64); }

// The (field, tensor) pairs of one parameter's state; undefined tensors are left out.
std::vector<std::pair<std::string, torch::Tensor>> state_fields(torch::optim::OptimizerParamState& s,
                                                                OptimizerKind kind) {
  std::vector<std::pair<std::string, torch::Tensor>> f;
  switch (kind) {
    case OptimizerKind::kSgd:
      f = {{"", static_cast<torch::optim::SGDParamState&>(s).momentum_buffer()}};
      break;
    case OptimizerKind::kAdamW: {
      auto& a = static_cast<torch::optim::AdamWParamState&>(s);
      f = {{"step", step_tensor(a.step())}, {"exp_avg", a.exp_avg()}, {"exp_avg_sq", a.exp_avg_sq()},
           {"max_exp_avg_sq", a.max_exp_avg_sq()}};
      break;
    }
    case OptimizerKind::kRmsprop: {
      auto& r = static_cast<torch::optim::RMSpropParamState&>(s);
      f = {{"step", step_tensor(r.step())}, {"square_avg", r.square_avg()},
           {"momentum_buffer", r.momentum_buffer()}, {"grad_avg", r.grad_avg()}};
      break;
    }
  }
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, t] : f) {
    if (t.defined()) out.emplace_back(name, t);
  }
  return out;
}

std::string key_of(const std::string& parameter, const std::string& field) {
  return field.empty() ? parameter : parameter + "#" + field;
}

}  // namespace

std::map<std::string, torch::Tensor> optimizer_state_by_name(
    const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters, torch::optim::Optimizer& optimizer,
    OptimizerKind kind) {
  std::map<std::string, torch::Tensor> out;
  auto& state = optimizer.state();
  for (const auto& [name, parameter] : named_parameters) {
    auto it = state.find(state_key(parameter));
    if (it == state.end()) continue;
    for (const auto& [field, tensor] : state_fields(*it->second, kind)) out[key_of(name, field)] = tensor;
  }
  return out;
}

namespace {

// A copy of `saved` on the parameter's device and layout, after checking its shape.
torch::Tensor like_parameter(const torch::Tensor& parameter, const torch::Tensor& saved, const std::string& key,
                             const std::string& source) {
  TORCH_CHECK(saved.sizes() == parameter.sizes(), source, ": optimizer state ", key, " has shape ", saved.sizes(),
              ", the parameter ", parameter.sizes());
  return torch::empty_like(parameter).copy_(saved);
}

// One parameter's state from the saved tensors named `name`[#field]; counts what it used.
std::unique_ptr<torch::optim::OptimizerParamState> parameter_state(
    const std::string& name, const torch::Tensor& p, OptimizerKind kind,
    const std::map<std::string, torch::Tensor>& saved, const std::string& source, std::set<std::string>& used) {
  auto get = [&](const std::string& field, bool is_step) -> torch::Tensor {
    auto it = saved.find(key_of(name, field));
    if (it == saved.end()) return {};
    used.insert(it->first);
    return is_step ? it->second : like_parameter(p, it->second, it->first, source);
  };
  auto step = [&]() {
    auto t = get("step", true);
    TORCH_CHECK(t.defined(), source, ": optimizer state of ", name, " has no step: it was saved by another optimizer");
    return t.item<int64_t>();
  };
  if (kind == OptimizerKind::kSgd) {
    auto m = get("", false);
    if (!m.defined()) return nullptr;
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(m);
    return s;
  }
  if (!saved.count(key_of(name, "step"))) return nullptr;
  if (kind == OptimizerKind::kAdamW) {
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step()).exp_avg(get("exp_avg", false)).exp_avg_sq(get("exp_avg_sq", false));
    s->max_exp_avg_sq(get("max_exp_avg_sq", false));
    return s;
  }
  auto s = std::make_unique<torch::optim::RMSpropParamState>();
  s->step(step()).square_avg(get("square_avg", false)).momentum_buffer(get("momentum_buffer", false));
  s->grad_avg(get("grad_avg", false));
  return s;
}

}  // namespace

void restore_optimizer_state(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
                             torch::optim::Optimizer& optimizer, OptimizerKind kind,
                             const std::map<std::string, torch::Tensor>& state, const std::string& source) {
  std::set<std::string> used;
  for (const auto& [name, parameter] : named_parameters) {
    auto s = parameter_state(name, parameter, kind, state, source, used);
    if (s) optimizer.state()[state_key(parameter)] = std::move(s);
  }
  std::string unused;
  for (const auto& [key, tensor] : state) {
    if (!used.count(key) && unused.size() < 200) unused += " " + key;
  }
  TORCH_CHECK(used.size() == state.size(), source, ": ", state.size() - used.size(),
              " optimizer state tensors match no parameter of the model or not the ", to_string(kind),
              " optimizer:", unused);
}

}  // namespace splitshare::train
