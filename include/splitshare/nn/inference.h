#pragma once

#include <splitshare/nn/classifier.h>

#include <torch/torch.h>

#include <vector>

namespace splitshare::nn {

/// How an InferenceModel runs.
///
/// ```
/// InferenceModel fast(*model, InferenceOptions().mkldnn(false));
/// ```
struct InferenceOptions {
  /// CPU: keep activations as oneDNN (mkldnn) tensors and reorder the folded weights
  /// once, into oneDNN's blocked layout, as torch.utils.mkldnn does. Otherwise (and on
  /// other devices, or without oneDNN) dense tensors in `channels_last` format.
  TORCH_ARG(bool, mkldnn) = true;
  /// Dense path only: NHWC activations and weights.
  TORCH_ARG(bool, channels_last) = true;
};

/// A frozen, evaluation-mode copy of a Classifier for fast inference: every
/// BatchNorm2d folded into the convolution before it (weight * gamma/sigma, bias
/// beta - mean * gamma/sigma), ReLU applied in place, and the head folded too
/// (each SSM split's BatchNorm becomes one scale and shift). Gives the same
/// HeadOutput as `model->eval(); model->forward(images)` up to float rounding.
/// It copies the weights: build a new one after the model's weights change.
class InferenceModel {
 public:
  /// Folds `model`'s current weights and running statistics (its train/eval mode is
  /// ignored and left as it is).
  explicit InferenceModel(ClassifierImpl& model, InferenceOptions options = {});

  /// images [N, C_in, H, W] float on the model's device -> combined logits [N, K]
  /// and per-sub-classifier logits (S x [N, K]). Runs under InferenceMode.
  HeadOutput forward(const torch::Tensor& images) const;

  /// Whether the oneDNN path is in use.
  bool uses_mkldnn() const { return mkldnn_; }

  /// A convolution with its BatchNorm folded in.
  struct Conv {
    torch::Tensor weight, bias;
    std::vector<int64_t> stride, padding;
    int64_t groups = 1;
  };
  /// A residual block: conv1..conv3 (conv3 undefined weight for basic blocks) and an
  /// optional downsample.
  struct Block {
    Conv conv1, conv2, conv3, downsample;
    bool bottleneck = false, has_downsample = false;
  };
  /// One linear classifier of the head on the first `width` features, optionally after
  /// a per-feature scale, shift and ReLU (an SSM split's folded BatchNorm).
  struct HeadPart {
    int64_t width = 0;
    torch::Tensor scale, shift, weight, bias;
  };

 private:
  torch::Tensor conv(const Conv& c, const torch::Tensor& x) const;
  Conv fold(torch::nn::Conv2dImpl& conv, BatchNormImpl& bn) const;

  InferenceOptions options_;
  bool mkldnn_ = false;
  bool imagenet_stem_ = true;
  Conv stem_;
  std::vector<Block> blocks_;
  std::vector<HeadPart> head_;
  double head_scale_ = 1.0;
};

}  // namespace splitshare::nn
