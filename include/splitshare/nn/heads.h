#pragma once

#include <splitshare/nn/split_and_share.h>

#include <torch/torch.h>

#include <string>

namespace splitshare::nn {

/// The classifier heads the zoo offers.
enum class HeadKind {
  /// One Linear(C, K), torchvision's `fc`.
  kLinear,
  /// The Split-and-Share Module.
  kSSM,
  /// k parallel Linear(C, K) on the full feature, averaged (Table 4's 2FC/3FC).
  kKFC,
};

/// "linear", "ssm", "kfc".
std::string to_string(HeadKind kind);
/// Inverse of to_string; throws naming the text and the accepted names.
HeadKind parse_head_kind(const std::string& text);

/// A single linear classifier. Parameter names: `fc.weight`, `fc.bias`.
class LinearHeadImpl : public torch::nn::Cloneable<LinearHeadImpl> {
 public:
  LinearHeadImpl(int64_t in_features, int64_t num_classes);
  /// (Re)creates `fc` (clone() calls it on the copy).
  void reset() override;
  /// features [N, C] -> logits [N, K] (head_logits holds the same tensor once).
  HeadOutput forward(const torch::Tensor& features);

  torch::nn::Linear fc{nullptr};

 private:
  int64_t in_features_, num_classes_;
};
TORCH_MODULE(LinearHead);

/// The k-FC head (`--head kfc`, Table 4's 2FC/3FC): k parallel linear classifiers on the same
/// feature, averaged.
/// Parameter names: `fc.{i}.weight`, `fc.{i}.bias`.
class KFCHeadImpl : public torch::nn::Cloneable<KFCHeadImpl> {
 public:
  KFCHeadImpl(int64_t in_features, int64_t num_classes, int64_t k);
  /// (Re)creates the k layers (clone() calls it on the copy).
  void reset() override;
  /// features [N, C] -> mean logits [N, K] and the k logits [N, K].
  HeadOutput forward(const torch::Tensor& features);

  torch::nn::ModuleList fc{nullptr};

 private:
  int64_t in_features_, num_classes_, k_;
};
TORCH_MODULE(KFCHead);

/// Which head to build, and its settings.
struct HeadOptions {
  TORCH_ARG(HeadKind, kind) = HeadKind::kSSM;
  /// SSM: number of splits (sub-classifiers).
  TORCH_ARG(int64_t, splits) = 4;
  /// kfc: number of parallel classifiers.
  TORCH_ARG(int64_t, k) = 2;
  /// SSM: no BatchNorm/ReLU on the last split (Section 3's text, Table 4's count; the
  /// default); false = BatchNorm/ReLU on every split (Algorithm 1).
  TORCH_ARG(bool, last_plain) = true;
  /// SSM: combine by sum instead of mean.
  TORCH_ARG(bool, sum) = false;
  /// SSM: use the fused implementation.
  TORCH_ARG(bool, fused) = true;
};

/// Builds the head `options` describes for C = in_features and K = num_classes.
/// The returned module's forward takes features [N, C] and returns a HeadOutput.
torch::nn::AnyModule make_head(int64_t in_features, int64_t num_classes, const HeadOptions& options);

/// How sub-classifiers are trained (paper Table 2).
enum class LossKind {
  /// Cross-entropy on the combined logits (the paper's SSM).
  kJoint,
  /// Sum of per-sub-classifier cross-entropies (SSM-individual).
  kIndividual,
};

/// "joint", "individual".
std::string to_string(LossKind kind);
LossKind parse_loss_kind(const std::string& text);

/// How LossKind::kIndividual combines the sub-classifiers' losses (the paper does not say).
enum class IndividualReduction {
  /// The sum: each head gets the gradient it would get if trained alone (the default).
  kSum,
  /// The mean: the same total step size as one joint loss.
  kMean,
};

/// "sum", "mean".
std::string to_string(IndividualReduction reduction);
IndividualReduction parse_individual_reduction(const std::string& text);

/// How each cross-entropy term of head_loss is computed.
struct LossOptions {
  /// Label smoothing in [0, 1): the target puts 1 - s on the label and s / K on every class.
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// Per-class weights, float [K]; undefined = none. With int64 targets the mean is weighted
  /// (divided by the weights of the targets), with soft targets divided by N (PyTorch's rule).
  TORCH_ARG(torch::Tensor, class_weights) = {};
};

/// Cross-entropy of `output` against int64 targets [N] or soft targets, float [N, K] (rows
/// summing to 1: mixup, CutMix), per `kind` (`reduction` combines the per-head losses of
/// kIndividual: every head takes the same targets); a scalar.
torch::Tensor head_loss(const HeadOutput& output, const torch::Tensor& targets, LossKind kind,
                        IndividualReduction reduction = IndividualReduction::kSum, const LossOptions& options = {});

}  // namespace splitshare::nn
