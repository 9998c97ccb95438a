#pragma once

#include <splitshare/nn/classifier.h>

#include <splitshare/nn/kernels/fused_conv.h>
#include <splitshare/nn/predictor.h>

#include <torch/torch.h>

#include <memory>
#include <vector>

namespace splitshare::nn {

/// How an InferenceModel runs.
///
/// ```
/// InferenceModel fast(*model, InferenceOptions().mkldnn(false));
/// ```
struct InferenceOptions {
  /// CPU: fused oneDNN convolutions (convolution + bias + ReLU, and convolution + residual
  /// sum + ReLU, each one kernel; nn/fused_conv.h) on channels-last activations, with the
  /// folded weights packed once per input shape. Otherwise (other devices, or a libtorch
  /// without those operators) torch::conv2d, then ReLU and the sum, in `channels_last`
  /// format or not.
  TORCH_ARG(bool, mkldnn) = true;
  /// Dense path only: NHWC activations and weights.
  TORCH_ARG(bool, channels_last) = true;
  /// The backbone's arithmetic: torch::kFloat, or torch::kBFloat16 (weights folded in
  /// float32, then rounded; on CPUs with AVX512-BF16 about 1.8x faster). The head and
  /// the logits stay float32.
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat;
};

/// A frozen, evaluation-mode copy of a Classifier for fast inference: every
/// BatchNorm2d folded into the convolution before it (weight * gamma/sigma, bias
/// beta - mean * gamma/sigma), ReLU applied in place, and the head folded too
/// (each SSM split's BatchNorm becomes one scale and shift). Gives the same
/// HeadOutput as `model->eval(); model->forward(images)` up to float rounding.
/// It copies the weights: build a new one after the model's weights change.
class InferenceModel : public Predictor {
 public:
  /// Folds `model`'s current weights and running statistics (its train/eval mode is
  /// ignored and left as it is).
  explicit InferenceModel(ClassifierImpl& model, InferenceOptions options = {});

  /// images [N, C_in, H, W] float on the model's device -> combined logits [N, K]
  /// and per-sub-classifier logits (S x [N, K]). Runs under InferenceMode.
  HeadOutput forward(const torch::Tensor& images) const override;

  /// The folded head (and gate) on pooled features [N, F] float32 -> combined logits [N, K]
  /// and per-sub-classifier logits (S x [N, K]): forward's last step, for backbones run
  /// another way (QuantizedModel).
  HeadOutput head_forward(const torch::Tensor& features) const;

  /// Whether the fused oneDNN path is in use.
  bool uses_mkldnn() const { return mkldnn_; }

  /// How many input shapes have packed weights cached (the fused path packs on the
  /// first forward of each shape and keeps the last few).
  size_t packed_shapes() const;

  /// A convolution with its BatchNorm folded in; `index` numbers it for the packed weights.
  struct Conv {
    torch::Tensor weight, bias;
    FusedConvSpec spec;
    size_t index = 0;
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

  /// The folded layers, read by the TorchScript export (train/export.h): the stem
  /// convolution (followed by a 3x3 stride-2 max-pool when `imagenet_stem()`), the
  /// residual blocks of layer1 … layer4 in order, and the head's linear classifiers,
  /// whose logits summed and multiplied by `head_scale()` give the combined logits.
  /// With `mkldnn(false).channels_last(false)` the weights are plain NCHW tensors.
  const Conv& stem() const { return stem_; }
  bool imagenet_stem() const { return imagenet_stem_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  const std::vector<HeadPart>& head() const { return head_; }
  double head_scale() const { return head_scale_; }
  /// The model's head-selection gate (an evaluation-mode copy), or null without one: it
  /// turns the combination above into `logits` and that into `ungated`.
  const GateImpl* gate() const { return gate_.get(); }

 private:
  using Packs = std::vector<torch::Tensor>;
  struct PackCache;

  torch::Tensor backbone(torch::Tensor x, Packs& packs) const;
  torch::Tensor conv(const Conv& c, const torch::Tensor& x, Packs& packs, bool relu) const;
  torch::Tensor conv_add_relu(const Conv& c, const torch::Tensor& x, torch::Tensor residual, Packs& packs) const;
  const torch::Tensor& packed(const Conv& c, const torch::Tensor& x, Packs& packs) const;
  Conv fold(torch::nn::Conv2dImpl& conv, BatchNormImpl& bn);

  InferenceOptions options_;
  std::shared_ptr<PackCache> cache_;
  size_t convs_ = 0;
  bool mkldnn_ = false;
  bool imagenet_stem_ = true;
  Conv stem_;
  std::vector<Block> blocks_;
  std::vector<HeadPart> head_;
  double head_scale_ = 1.0;
  std::shared_ptr<GateImpl> gate_;
};

}  // namespace splitshare::nn
