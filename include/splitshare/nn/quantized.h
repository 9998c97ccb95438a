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
  struct QBlock {
    QuantizedConvWeight conv1, conv2, conv3, downsample;
    // Indices into params_ of the outputs (downsample_out only with a downsample).
    size_t conv1_out = 0, conv2_out = 0, downsample_out = 0, out = 0;
  };
  void widen(size_t& point, const torch::Tensor& values);
  torch::Tensor observe_conv(const InferenceModel::Conv& c, const torch::Tensor& x, bool relu, size_t& point);
  void quantize_block(const InferenceModel::Block& b, size_t& point, const QuantParams& input);
  torch::Tensor int8_block(const InferenceModel::Block& b, const QBlock& q, const torch::Tensor& x,
                           const QuantParams& input) const;

  std::shared_ptr<InferenceModel> folded_;
  std::vector<Range> observed_, ranges_;
  std::vector<QuantParams> params_;
  QuantizedConvWeight stem_;
  std::vector<QBlock> blocks_;
};

}  // namespace splitshare::nn
