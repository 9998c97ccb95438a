#pragma once

#include <torch/torch.h>

#include <string>

namespace splitshare::nn {

/// What a head-selection gate looks at.
enum class GateInput {
  /// The pooled feature vector the head reads [N, F].
  kFeatures,
  /// Each sub-classifier's log-probabilities, concatenated [N, S*K].
  kLogits,
  /// Both, concatenated.
  kBoth,
};

/// "features", "logits", "both".
std::string to_string(GateInput input);
/// Inverse of to_string; throws naming the text and the accepted names.
GateInput parse_gate_input(const std::string& text);

/// A gate that chooses, per sample and without the label, how to weigh the S sub-classifiers of
/// a trained multi-head model (Section 6's open question: the oracle that picks the right head
/// per sample adds about 6 points on ImageNet).
struct GateOptions {
  GateOptions(int64_t heads, int64_t features, int64_t classes) : heads_(heads), features_(features), classes_(classes) {}
  /// S, F (the pooled feature width) and K of the model the gate sits on.
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, features);
  TORCH_ARG(int64_t, classes);
  TORCH_ARG(GateInput, input) = GateInput::kBoth;
  /// 0: a linear gate; N > 0: one hidden layer of N units with ReLU.
  TORCH_ARG(int64_t, hidden) = 0;
  /// false: softmax weights over the heads; true: the head of the largest weight only
  /// (trained with the softmax, one-hot at evaluation).
  TORCH_ARG(bool, hard) = false;
};

/// The gate: parameters `gate.fc1.*` (and `gate.fc2.*` with a hidden layer) when registered
/// as `gate` in a model.
class GateImpl : public torch::nn::Cloneable<GateImpl> {
 public:
  explicit GateImpl(GateOptions options);
  void reset() override;

  /// features [N, F], head_logits [S, N, K] -> weights [N, S]: softmax over the heads, or
  /// one-hot of its argmax for a hard gate outside training.
  torch::Tensor weights(const torch::Tensor& features, const torch::Tensor& head_logits);
  /// The gated logits [N, K] = sum_s weights[:, s] * head_logits[s].
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& head_logits);

  GateOptions options;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Gate);

/// The gate's input [N, D] for `input`: features, per-head log-softmax [N, S*K], or both.
torch::Tensor gate_input(GateInput input, const torch::Tensor& features, const torch::Tensor& head_logits);

}  // namespace splitshare::nn
