#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace splitshare::train {

/// What `splitshare quantize` adds to a checkpoint: the activation ranges of its int8 form
/// (nn::QuantizedModel), stored as the archive's extra file `quantization.json`. The float
/// weights stay as they are, so the file is still an ordinary checkpoint (Python's
/// torch.jit.load reads the same tensors); the int8 weights are derived from them when the
/// checkpoint is loaded (a few milliseconds per layer).
struct QuantizationRecord {
  /// One [lo, hi] per quantization point of nn::QuantizedModel, in forward order: the input,
  /// the stem's output, then per block its shortcut convolution (when it has one), its inner
  /// convolutions and its output.
  std::vector<std::pair<double, double>> ranges;
  /// How the ranges were chosen: "minmax" (the extremes seen) or "percentile" (see
  /// export/quantize.h).
  std::string method = "minmax";
  /// Calibration images seen and the data they came from (a data spec, for the record).
  int64_t images = 0;
  std::string data;
};

/// The extra file of the archive that holds the record.
constexpr const char* kQuantizationFile = "quantization.json";

/// {"format": "splitshare-int8", "version": 1, "activations": "uint8, per tensor, affine",
///  "weights": "int8, per output channel, symmetric", "calibration": {"method", "images",
///  "data"}, "ranges": [[lo, hi], ...]}.
nlohmann::json to_json(const QuantizationRecord& record);
/// The inverse of to_json; throws naming `source` and the field when a field is missing, of
/// the wrong type, or a range is not finite with lo <= hi.
QuantizationRecord quantization_from_json(const nlohmann::json& json, const std::string& source);

/// The record of the checkpoint at `path`, or nullopt for a float checkpoint.
std::optional<QuantizationRecord> read_quantization(const std::string& path);

}  // namespace splitshare::train
