#pragma once

#include <splitshare/nn/inference.h>
#include <splitshare/nn/kernels/quantized_conv.h>

#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

namespace splitshare::nn {

/// A Classifier with an int8 backbone: post-training static quantization. BatchNorm folded
/// into the convolutions (InferenceModel), weights int8 per output channel (symmetric), every
/// activation uint8 per tensor with a scale and zero point from ranges observed on
/// calibration images; oneDNN's int8 convolutions with ReLU and the residual sum fused. The
/// pooled features are dequantized and the head (SSM splits, their folded BatchNorm, the
/// linear classifiers, a gate) runs in float32.
///
/// ```
/// QuantizedModel q(*model);
/// for (auto& batch : calibration) q.observe(batch.images);
/// q.quantize(q.observed());
/// auto out = q.forward(images);
/// ```
class QuantizedModel {
 public:
  /// An observed activation range [lo, hi].
  using Range = std::pair<double, double>;

  /// Folds `model`'s current weights; ready to observe.
  explicit QuantizedModel(ClassifierImpl& model);

  /// images [N, C, H, W] float -> runs the float model and widens the range of every
  /// quantization point (the input, each convolution's output, each block's output).
  void observe(const torch::Tensor& images);
  /// The ranges observed so far, one per point in forward order (points()).
  const std::vector<Range>& observed() const { return observed_; }
  /// How many points the model has: the length quantize() expects.
  size_t points() const;

  /// Quantizes the weights for activations in `ranges` (observed(), or a checkpoint's record);
  /// forward runs int8 from then on. Throws naming the count when it does not fit.
  void quantize(std::vector<Range> ranges);
  bool quantized() const { return !params_.empty(); }
  /// The ranges the model was quantized with.
  const std::vector<Range>& ranges() const { return ranges_; }

  /// images [N, C_in, H, W] float -> combined logits [N, K] and per-sub-classifier logits
  /// (S x [N, K]) float32, through the int8 backbone. Runs under InferenceMode.
  HeadOutput forward(const torch::Tensor& images) const;

 private:
  // Indices into weights_ (the convolutions) and params_ (the activations).
  struct QBlock {
    size_t conv1 = 0, conv2 = 0, conv3 = 0, downsample = 0;
    size_t conv1_out = 0, conv2_out = 0, downsample_out = 0, out = 0;
  };
  // Every convolution's weight packed for the input shape it sees with one image shape.
  using Packs = std::vector<torch::Tensor>;
  struct PackCache;

  void widen(size_t& point, const torch::Tensor& values);
  torch::Tensor observe_conv(const InferenceModel::Conv& c, const torch::Tensor& x, bool relu, size_t& point);
  size_t add_weight(const InferenceModel::Conv& c, const QuantParams& input);
  void quantize_block(const InferenceModel::Block& b, size_t& point, const QuantParams& input);
  const torch::Tensor& packed(size_t conv, const torch::Tensor& x, Packs& packs) const;
  torch::Tensor int8_block(const InferenceModel::Block& b, const QBlock& q, const torch::Tensor& x,
                           const QuantParams& input, Packs& packs) const;

  std::shared_ptr<InferenceModel> folded_;
  std::vector<Range> observed_, ranges_;
  std::vector<QuantParams> params_;
  std::vector<QuantizedConvWeight> weights_;  // the stem first
  std::vector<QBlock> blocks_;
  std::shared_ptr<PackCache> cache_;
};

}  // namespace splitshare::nn
