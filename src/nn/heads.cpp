#include <splitshare/nn/heads.h>

#include "kernels/matmul.h"

namespace splitshare::nn {

std::string to_string(HeadKind kind) {
  switch (kind) {
    case HeadKind::kLinear: return "linear";
    case HeadKind::kSSM: return "ssm";
    case HeadKind::kKFC: return "kfc";
  }
  return "?";
}

HeadKind parse_head_kind(const std::string& text) {
  if (text == "linear") return HeadKind::kLinear;
  if (text == "ssm") return HeadKind::kSSM;
  if (text == "kfc") return HeadKind::kKFC;
  TORCH_CHECK(false, "unknown head '", text, "': expected one of linear, ssm, kfc");
}

std::string to_string(LossKind kind) {
  return kind == LossKind::kJoint ? "joint" : "individual";
}

LossKind parse_loss_kind(const std::string& text) {
  if (text == "joint") return LossKind::kJoint;
  if (text == "individual") return LossKind::kIndividual;
  TORCH_CHECK(false, "unknown loss '", text, "': expected joint or individual");
}

LinearHeadImpl::LinearHeadImpl(int64_t in_features, int64_t num_classes)
    : in_features_(in_features), num_classes_(num_classes) {
  TORCH_CHECK(in_features >= 1 && num_classes >= 1, "LinearHead: in_features and num_classes must be positive, got ",
              in_features, " and ", num_classes);
  reset();
}

void LinearHeadImpl::reset() { fc = register_module("fc", torch::nn::Linear(in_features_, num_classes_)); }

HeadOutput LinearHeadImpl::forward(const torch::Tensor& features) {
  auto logits = linear(features, fc->weight, fc->bias);
  return {logits, {logits}};
}

KFCHeadImpl::KFCHeadImpl(int64_t in_features, int64_t num_classes, int64_t k)
    : in_features_(in_features), num_classes_(num_classes), k_(k) {
  TORCH_CHECK(k >= 1, "kfc head: k must be at least 1, got ", k);
  TORCH_CHECK(in_features >= 1 && num_classes >= 1, "kfc head: in_features and num_classes must be positive, got ",
              in_features, " and ", num_classes);
  reset();
}

void KFCHeadImpl::reset() {
  fc = register_module("fc", torch::nn::ModuleList());
  for (int64_t i = 0; i < k_; ++i) fc->push_back(torch::nn::Linear(in_features_, num_classes_));
}

HeadOutput KFCHeadImpl::forward(const torch::Tensor& features) {
  HeadOutput out;
  for (const auto& module : *fc) {
    auto* layer = module->as<torch::nn::Linear>();
    out.head_logits.push_back(linear(features, layer->weight, layer->bias));
  }
  out.logits = torch::stack(out.head_logits).mean(0);
  return out;
}

torch::nn::AnyModule make_head(int64_t in_features, int64_t num_classes, const HeadOptions& options) {
  switch (options.kind()) {
    case HeadKind::kLinear:
      return torch::nn::AnyModule(LinearHead(in_features, num_classes));
    case HeadKind::kKFC:
      return torch::nn::AnyModule(KFCHead(in_features, num_classes, options.k()));
    case HeadKind::kSSM:
      return torch::nn::AnyModule(SplitAndShare(SplitAndShareOptions(in_features, num_classes)
                                                    .splits(options.splits())
                                                    .last_plain(options.last_plain())
                                                    .mean(!options.sum())
                                                    .fused(options.fused())));
  }
  TORCH_CHECK(false, "unknown head kind");
}

std::string to_string(IndividualReduction reduction) {
  return reduction == IndividualReduction::kSum ? "sum" : "mean";
}

IndividualReduction parse_individual_reduction(const std::string& text) {
  if (text == "sum") return IndividualReduction::kSum;
  if (text == "mean") return IndividualReduction::kMean;
  TORCH_CHECK(false, "unknown individual-loss reduction '", text, "': expected sum or mean");
}

namespace {

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets, const LossOptions& options) {
  TORCH_CHECK(options.label_smoothing() >= 0 && options.label_smoothing() < 1,
              "label smoothing must be in [0, 1), got ", options.label_smoothing());
  // Soft targets: in float32 with the logits (autocast may give bf16 logits, and the
  // targets must share their type).
  const bool soft = targets.is_floating_point();
  const auto x = soft ? logits.to(torch::kFloat32) : logits;
  const auto t = soft ? targets.to(torch::kFloat32) : targets;
  TORCH_CHECK(!soft || t.sizes() == x.sizes(), "soft targets must be [N, K] like the logits ", x.sizes(), ", got ",
              t.sizes());
  auto o = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing());
  if (options.class_weights().defined()) {
    TORCH_CHECK(options.class_weights().numel() == x.size(-1), "class weights: ", options.class_weights().numel(),
                " values for ", x.size(-1), " classes");
    o.weight(options.class_weights().to(x.device(), x.scalar_type()));
  }
  return torch::nn::functional::cross_entropy(x, t, o);
}

}  // namespace

torch::Tensor head_loss(const HeadOutput& output, const torch::Tensor& targets, LossKind kind,
                        IndividualReduction reduction, const LossOptions& options) {
  if (kind == LossKind::kJoint) return cross_entropy(output.logits, targets, options);
  TORCH_CHECK(!output.head_logits.empty(), "head_loss: the head returned no sub-classifier logits");
  auto loss = cross_entropy(output.head_logits[0], targets, options);
  for (size_t i = 1; i < output.head_logits.size(); ++i) {
    loss = loss + cross_entropy(output.head_logits[i], targets, options);
  }
  if (reduction == IndividualReduction::kMean) loss = loss / static_cast<double>(output.head_logits.size());
  return loss;
}

}  // namespace splitshare::nn
