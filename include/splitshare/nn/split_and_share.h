#pragma once

#include <splitshare/nn/batch_norm.h>

#include <torch/torch.h>

#include <vector>

namespace splitshare::nn {

/// What every classifier head returns.
struct HeadOutput {
  /// Combined logits [N, num_classes] (mean, or sum, of the sub-classifiers).
  torch::Tensor logits;
  /// Logits of each sub-classifier, each [N, num_classes]; a single-head
  /// classifier returns one entry equal to `logits`.
  std::vector<torch::Tensor> head_logits;
  /// With a head-selection gate (nn::Gate): the heads' own combination [N, K] that `logits`
  /// replaced; undefined without one.
  torch::Tensor ungated;
};

/// Options for the Split-and-Share Module.
///
/// ```
/// SplitAndShare ssm(SplitAndShareOptions(2048, 1000).splits(4));
/// ```
struct SplitAndShareOptions {
  SplitAndShareOptions(int64_t in_features, int64_t num_classes)
      : in_features_(in_features), num_classes_(num_classes) {}
  /// Channels C of the input feature vector; must be divisible by `splits`.
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, num_classes);
  /// Number of sub-classifiers S; sub-classifier i sees channels [0, (i+1)*C/S).
  TORCH_ARG(int64_t, splits) = 4;
  /// Combine sub-classifier logits by their mean (Algorithm 1) or their sum (Figure 1's wording).
  TORCH_ARG(bool, mean) = true;
  /// BatchNorm+ReLU on the first S-1 splits only, as Section 3's text says and Table 4's
  /// parameter count shows (ResNet-50 + SSM: 28,638,176 = "28.63 M"); false = on all S, as
  /// Algorithm 1 writes it (28,642,272). Default: the text's (see the README for why).
  TORCH_ARG(bool, last_plain) = true;
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(double, momentum) = 0.1;
  /// Compute per-channel batch statistics once for all splits and run one GEMM
  /// instead of S; numerically the same model (see split_and_share.cpp).
  TORCH_ARG(bool, fused) = true;
};

/// The Split-and-Share Module (Algorithm 1). Sub-classifier i (0-based) computes
/// Linear_i(ReLU(BatchNorm_i(x[:, :(i+1)*C/S]))); the output is their mean.
/// Parameter names: `fc.{i}.weight|bias`, `bn.{i}.weight|bias|running_mean|running_var|num_batches_tracked`.
class SplitAndShareImpl : public torch::nn::Cloneable<SplitAndShareImpl> {
 public:
  explicit SplitAndShareImpl(SplitAndShareOptions options);

  /// (Re)creates the splits' layers from `options` (clone() calls it on the copy).
  void reset() override;

  /// features [N, C] -> combined logits [N, K] and S sub-classifier logits [N, K].
  HeadOutput forward(const torch::Tensor& features);

  /// The straightforward S-branch computation (Algorithm 1 as written); the
  /// reference for the fused path.
  HeadOutput forward_reference(const torch::Tensor& features);

  /// Width of one split, C/S.
  int64_t split_width() const { return options.in_features() / options.splits(); }
  /// Whether sub-classifier i has BatchNorm+ReLU.
  bool has_norm(int64_t i) const { return !(options.last_plain() && i == options.splits() - 1); }
  /// Sub-classifier i's norm layer (i must have one).
  BatchNormImpl& norm(int64_t i) { return *bn[i]->as<BatchNormImpl>(); }

  SplitAndShareOptions options;
  torch::nn::ModuleList bn{nullptr};
  torch::nn::ModuleList fc{nullptr};

 private:
  HeadOutput forward_fused(const torch::Tensor& features);
};
TORCH_MODULE(SplitAndShare);

}  // namespace splitshare::nn
