#pragma once

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/checkpoint/quantization.h>
#include <splitshare/data/loader.h>
#include <splitshare/nn/classifier.h>

#include <torch/torch.h>

#include <functional>
#include <string>

namespace splitshare::train {

/// How quantize_checkpoint calibrates.
///
/// ```
/// auto summary = quantize_checkpoint("runs/train/best.pt", *bundle.train, "model-int8.pt",
///                                    QuantizeOptions().images(256));
/// ```
struct QuantizeOptions {
  /// Calibration images: the first ones of the stream's epoch 0 (a shuffled training split
  /// gives a random sample). Their activation extremes become the uint8 ranges.
  TORCH_ARG(int64_t, images) = 512;
  /// Images after those, not used for calibration, on which the int8 model is compared with
  /// the float one (QuantizeSummary); 0 skips the comparison.
  TORCH_ARG(int64_t, check_images) = 256;
  /// The data spec recorded in QuantizationRecord::data.
  TORCH_ARG(std::string, data) = "";
};

/// What quantize_checkpoint did.
struct QuantizeSummary {
  QuantizationRecord record;
  /// On the check images: how many, the share where the int8 model's top class is the float
  /// model's, and the largest |logit| difference relative to the float logits' largest |value|.
  int64_t checked = 0;
  double agreement = 0;
  double max_relative_difference = 0;
};

/// Runs the float model (BatchNorm folded) on the first `options.images()` images of `stream`
/// and records every quantization point's range (nn::QuantizedModel::observe).
/// `on_progress(done, total)` after each batch. Throws when the stream has no images.
QuantizationRecord calibrate(nn::ClassifierImpl& model, data::BatchStream& stream, const QuantizeOptions& options,
                             const std::function<void(int64_t, int64_t)>& on_progress = nullptr);

/// Post-training static quantization of the checkpoint `checkpoint`: calibrate on `stream`
/// (normalised as the checkpoint's preprocessing says), compare int8 with float on the check
/// images, and write `out`: the same float tensors and metadata, plus the record
/// (kQuantizationFile), so `eval`, `predict` and `export` run it in int8 (make_predictor).
/// Written atomically; throws when `out` is the checkpoint itself or the model has no int8
/// form here (a libtorch without oneDNN's int8 convolutions).
QuantizeSummary quantize_checkpoint(const std::string& checkpoint, data::BatchStream& stream, const std::string& out,
                                    const QuantizeOptions& options = {},
                                    const std::function<void(int64_t, int64_t)>& on_progress = nullptr);

}  // namespace splitshare::train
