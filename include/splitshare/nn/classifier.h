#pragma once

#include <splitshare/nn/gate.h>
#include <splitshare/nn/heads.h>
#include <splitshare/nn/resnet.h>
#include <splitshare/nn/split_and_share.h>

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace splitshare::nn {

/// A whole image classifier: a ResNet-family backbone and a head.
///
/// ```
/// Classifier model(ClassifierOptions().arch("resnet50").num_classes(1000)
///                      .head(HeadOptions().kind(HeadKind::kSSM).splits(4)));
/// ```
struct ClassifierOptions {
  /// Backbone name, see resnet_architectures().
  TORCH_ARG(std::string, arch) = "resnet18";
  TORCH_ARG(int64_t, num_classes) = 1000;
  TORCH_ARG(HeadOptions, head) = HeadOptions();
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(Stem, stem) = Stem::kImageNet;
  /// Channels of the first stage (64 = torchvision); smaller values make quick models.
  TORCH_ARG(int64_t, width) = 64;
  TORCH_ARG(bool, zero_init_residual) = false;
  /// A head-selection gate on the sub-classifiers (`splitshare select`): the combined logits
  /// become the gated combination. Its heads, features and classes must be the model's.
  TORCH_ARG(std::optional<GateOptions>, gate) = std::nullopt;
};

/// Backbone + head. In memory the parameters live under `backbone.` and `head.`;
/// checkpoints use torchvision's names without those prefixes (see export_name).
class ClassifierImpl : public torch::nn::Cloneable<ClassifierImpl> {
 public:
  explicit ClassifierImpl(ClassifierOptions options);
  /// (Re)creates the backbone and the head from `options`: `model->clone()` gives an
  /// independent copy (same weights and buffers, e.g. for an EMA of the weights).
  void reset() override;

  /// images [N, C_in, H, W] -> combined logits [N, K] and per-sub-classifier logits (with a
  /// gate: the gated logits, and the heads' own mean or sum in `ungated`).
  HeadOutput forward(const torch::Tensor& images);
  /// images [N, C_in, H, W] -> last feature map [N, C, H', W'].
  torch::Tensor forward_features(const torch::Tensor& images);
  /// feature map [N, C, H', W'] -> head output (global average pool, then the head).
  HeadOutput forward_head(const torch::Tensor& feature_map);
  /// C, the feature dimension the head sees.
  int64_t feature_dim() const { return backbone->feature_dim(); }
  /// Puts `gate` on the model, replacing any (options().gate follows): its parameters are
  /// `gate.*` in checkpoints. Throws when its heads, features or classes are not the model's.
  void set_gate(Gate gate);

  ClassifierOptions options;
  ResNet backbone{nullptr};
  torch::nn::AnyModule head;
  /// Null without a gate.
  Gate gate{nullptr};

 private:
  /// pooled features [N, C] -> the head's output, gated when there is a gate.
  HeadOutput run_head(const torch::Tensor& features);
};
TORCH_MODULE(Classifier);

/// The number of sub-classifiers `options` makes: 1 (linear), the splits (SSM) or k (k-FC).
int64_t head_count(const HeadOptions& options);

/// Builds the model; throws on bad options (unknown arch, splits not dividing C, …).
Classifier make_classifier(const ClassifierOptions& options);

/// The checkpoint name of an in-memory parameter or buffer name: the leading
/// `backbone.` or `head.` is dropped ("backbone.layer1.0.conv1.weight" ->
/// "layer1.0.conv1.weight", "head.fc.0.weight" -> "fc.0.weight").
std::string export_name(const std::string& name);

/// Parameters and buffers under their checkpoint names, in registration order.
std::vector<std::pair<std::string, torch::Tensor>> named_state(ClassifierImpl& model);

/// What load_state found wrong; empty lists mean a perfect match.
struct StateMismatch {
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  /// "name: expected [a, b], got [c, d]".
  std::vector<std::string> wrong_shape;
  bool ok() const { return missing.empty() && unexpected.empty() && wrong_shape.empty(); }
  /// A readable summary naming every problem.
  std::string describe() const;
};

/// Copies `state` (checkpoint names) into the model. Entries whose names or shapes do
/// not match are reported and skipped; nothing is copied for them.
StateMismatch load_state(ClassifierImpl& model, const std::map<std::string, torch::Tensor>& state);

/// Number of trainable parameter elements of a module.
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace splitshare::nn
