#include <splitshare/nn/gate.h>

namespace splitshare::nn {

std::string to_string(GateInput input) {
  switch (input) {
    case GateInput::kFeatures: return "features";
    case GateInput::kLogits: return "logits";
    case GateInput::kBoth: return "both";
  }
  return "?";
}

GateInput parse_gate_input(const std::string& text) {
  if (text == "features") return GateInput::kFeatures;
  if (text == "logits") return GateInput::kLogits;
  if (text == "both") return GateInput::kBoth;
  TORCH_CHECK(false, "unknown gate input '", text, "': expected features, logits or both");
}

torch::Tensor gate_input(GateInput input, const torch::Tensor& features, const torch::Tensor& head_logits) {
  TORCH_CHECK(head_logits.dim() == 3 && features.dim() == 2 && head_logits.size(1) == features.size(0),
              "gate: head_logits [S, N, K] and features [N, F] expected, got ", head_logits.sizes(), " and ",
              features.sizes());
  const auto n = features.size(0);
  // [S, N, K] -> [N, S*K]: each head's log-probabilities side by side.
  auto logits = torch::log_softmax(head_logits, -1).permute({1, 0, 2}).reshape({n, -1});
  switch (input) {
    case GateInput::kFeatures: return features;
    case GateInput::kLogits: return logits;
    case GateInput::kBoth: return torch::cat({features, logits}, 1);
  }
  return features;
}

GateImpl::GateImpl(GateOptions options_in) : options(std::move(options_in)) { reset(); }

void GateImpl::reset() {
  TORCH_CHECK(options.heads() >= 2, "gate: needs at least 2 heads to choose from, got ", options.heads());
  TORCH_CHECK(options.hidden() >= 0, "gate: hidden units must be >= 0, got ", options.hidden());
  int64_t in = 0;
  if (options.input() != GateInput::kLogits) in += options.features();
  if (options.input() != GateInput::kFeatures) in += options.heads() * options.classes();
  const int64_t width = options.hidden() > 0 ? options.hidden() : options.heads();
  fc1 = register_module("fc1", torch::nn::Linear(in, width));
  if (options.hidden() > 0) fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.heads()));
  // Start as the plain mean of the heads: zero scores give equal weights.
  torch::NoGradGuard no_grad;
  auto& last = options.hidden() > 0 ? fc2 : fc1;
  last->weight.zero_();
  last->bias.zero_();
}

torch::Tensor GateImpl::weights(const torch::Tensor& features, const torch::Tensor& head_logits) {
  TORCH_CHECK(head_logits.size(0) == options.heads(), "gate: built for ", options.heads(), " heads, got ",
              head_logits.size(0));
  auto scores = fc1->forward(gate_input(options.input(), features, head_logits));
  if (options.hidden() > 0) scores = fc2->forward(torch::relu(scores));
  auto w = torch::softmax(scores, 1);
  if (options.hard() && !is_training()) {
    w = torch::one_hot(w.argmax(1), options.heads()).to(w.scalar_type());
  }
  return w;
}

torch::Tensor GateImpl::forward(const torch::Tensor& features, const torch::Tensor& head_logits) {
  const auto w = weights(features, head_logits);  // [N, S]
  // sum_s w[n, s] * head_logits[s, n, k]
  return (w.t().unsqueeze(-1) * head_logits).sum(0);
}

}  // namespace splitshare::nn
