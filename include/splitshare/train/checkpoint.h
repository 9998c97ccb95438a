#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/nn/classifier.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::train {

/// Everything besides the tensors that a checkpoint records: enough to rebuild the
/// model, name its classes and preprocess new images.
struct CheckpointMetadata {
  nn::ClassifierOptions model;
  std::vector<std::string> classes;
  data::Preprocess preprocess;
  /// Epochs completed when the checkpoint was written.
  int64_t epoch = 0;
  /// Free-form: the training configuration and the latest metrics.
  nlohmann::json extra = nlohmann::json::object();
};

/// The JSON form (`splitshare info --checkpoint` prints it).
nlohmann::json to_json(const CheckpointMetadata& metadata);
/// Parses the JSON form; `source` names the file in error messages. Refuses missing
/// fields, wrong types and out-of-range values (class count, channels, width, splits,
/// preprocessing) with a message naming the field.
CheckpointMetadata metadata_from_json(const nlohmann::json& json, const std::string& source);
/// Parses the text of a checkpoint's splitshare.json (what read_checkpoint_metadata
/// does after opening the archive); throws naming `source` when it is not valid JSON
/// or not valid metadata.
CheckpointMetadata parse_checkpoint_metadata(const std::string& text, const std::string& source);

/// Writes `model` and `metadata` to `path` as a TorchScript archive: Python's
/// `torch.jit.load(path).state_dict()` returns the tensors under their checkpoint
/// names (conv1.weight, …, fc.0.weight, bn.0.running_mean, …); the metadata is the
/// archive's extra file `splitshare.json`. The file is replaced atomically (written
/// beside it, flushed to disk, then renamed), so a crash never leaves a torn file.
void save_checkpoint(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const std::string& path);

/// A model rebuilt from a checkpoint.
struct LoadedCheckpoint {
  nn::Classifier model{nullptr};
  CheckpointMetadata metadata;
};

/// How the model `found` differs from `expected`, one entry per field ("width: expected
/// 16, found 8"); empty when they describe the same architecture, head and class count.
std::vector<std::string> model_differences(const nn::ClassifierOptions& expected, const nn::ClassifierOptions& found);

/// Reads only the metadata of a checkpoint.
CheckpointMetadata read_checkpoint_metadata(const std::string& path);

/// Rebuilds the model a checkpoint describes and loads its tensors. Throws naming the
/// file when it is missing, not a checkpoint, truncated, or its tensors do not match
/// the architecture in its metadata (listing every mismatch).
LoadedCheckpoint load_checkpoint(const std::string& path, torch::Device device = torch::kCPU);

/// The tensors stored in a TorchScript archive, by their state_dict names.
std::map<std::string, torch::Tensor> read_archive_tensors(const std::string& path);

}  // namespace splitshare::train
