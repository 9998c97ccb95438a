#pragma once
// What the TorchScript (export.cpp) and ONNX (export_onnx.cpp) exports share: the model they
// are built from, the random images they are checked on and that check. Internal to src/train/.

#include <splitshare/nn/inference.h>
#include <splitshare/nn/predictor.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <string>

namespace splitshare::train::detail {

/// The model folded for export: plain NCHW float32 weights, no packed oneDNN weights.
nn::InferenceModel dense_fold(nn::ClassifierImpl& model);

/// The image side the self-check uses: the checkpoint's crop or size, else 224 / 32 by stem.
int64_t verify_side(const CheckpointMetadata& metadata);

/// Two random images [2, C, side, side] from `seed`.
torch::Tensor verify_images(const nn::InferenceModel& folded, const CheckpointMetadata& metadata, uint64_t seed);

/// The largest difference of an export's logits [N, K] and head_logits [S, N, K] from the
/// folded model's (the float InferenceModel, or the int8 QuantizedModel) on CPU `images`;
/// throws (naming `what`) when the shapes differ or the difference exceeds `tolerance` times
/// the largest logit (at least 1).
double difference_from_folded(const nn::Predictor& folded, const torch::Tensor& images, const torch::Tensor& logits,
                              const torch::Tensor& head_logits, const std::string& what, double tolerance = 1e-3);

/// The checkpoint in evaluation mode; throws when `out` is empty or is the checkpoint itself.
LoadedCheckpoint load_for_export(const std::string& checkpoint, const std::string& out, const std::string& what);

}  // namespace splitshare::train::detail
