#pragma once

#include <splitshare/nn/split_and_share.h>

#include <torch/torch.h>

namespace splitshare::nn {

/// What evaluation and prediction run images through: a classifier frozen for inference,
/// in float (InferenceModel) or int8 (QuantizedModel). Forwards may run concurrently.
class Predictor {
 public:
  virtual ~Predictor() = default;

  /// images [N, C_in, H, W] float32 -> combined logits [N, K] and per-sub-classifier logits
  /// (S x [N, K]) float32. Runs under InferenceMode.
  virtual HeadOutput forward(const torch::Tensor& images) const = 0;

 protected:
  Predictor() = default;
  Predictor(const Predictor&) = default;
  Predictor& operator=(const Predictor&) = default;
  Predictor(Predictor&&) = default;
  Predictor& operator=(Predictor&&) = default;
};

}  // namespace splitshare::nn
