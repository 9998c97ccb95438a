#pragma once

#include <splitshare/nn/inference.h>
#include <splitshare/nn/kernels/quantized_conv.h>
#include <splitshare/nn/predictor.h>

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
class QuantizedModel : public Predictor {
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
  HeadOutput forward(const torch::Tensor& images) const override;

  /// One residual block of the int8 model (after quantize()): its convolutions as indices into
  /// weights() and its activations as indices into params(). `last_out` is the last
  /// convolution's output before the sum, which forward() never materialises (the kernel fuses
  /// the sum and ReLU) but a graph of separate operators needs.
  struct Int8Block {
    size_t conv1 = 0, conv2 = 0, conv3 = 0, downsample = 0;
    size_t conv1_out = 0, conv2_out = 0, downsample_out = 0, last_out = 0, out = 0;
  };
  /// What the QDQ ONNX export writes: the folded float model (NCHW, its head and gate run in
  /// float), each point's uint8 parameters (the input is 0, the stem's output 1), the int8
  /// convolutions (the stem's is 0) and the blocks in order.
  const InferenceModel& folded() const { return *folded_; }
  const std::vector<QuantParams>& params() const { return params_; }
  const std::vector<QuantizedConvWeight>& weights() const { return weights_; }
  const std::vector<Int8Block>& int8_blocks() const { return blocks_; }

 private:
  // Every convolution's weight packed for the input shape it sees with one image shape.
  using Packs = std::vector<torch::Tensor>;
  struct PackCache;

  void widen(size_t& point, const torch::Tensor& values);
  torch::Tensor observe_conv(const InferenceModel::Conv& c, const torch::Tensor& x, bool relu, size_t& point);
  size_t add_weight(const InferenceModel::Conv& c, const QuantParams& input);
  void quantize_block(const InferenceModel::Block& b, size_t& point, const QuantParams& input);
  const torch::Tensor& packed(size_t conv, const torch::Tensor& x, Packs& packs) const;
  torch::Tensor int8_block(const InferenceModel::Block& b, const Int8Block& q, const torch::Tensor& x,
                           const QuantParams& input, Packs& packs) const;

  std::shared_ptr<InferenceModel> folded_;
  std::vector<Range> observed_, ranges_;
  std::vector<QuantParams> params_;
  std::vector<QuantizedConvWeight> weights_;  // the stem first
  std::vector<Int8Block> blocks_;
  std::shared_ptr<PackCache> cache_;
};

}  // namespace splitshare::nn
