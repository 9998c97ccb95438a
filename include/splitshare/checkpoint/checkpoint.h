#pragma once

#include <splitshare/checkpoint/quantization.h>
#include <splitshare/data/dataset.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/inference.h>
#include <splitshare/nn/predictor.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
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
/// beside it, flushed to disk, then renamed), so a crash never leaves a torn file; a failed
/// write (disk full) throws naming the file and keeps the previous checkpoint.
/// `extra_files` (name -> bytes) are stored as further extra files of the archive (the
/// training state, see TrainingState); they do not change what state_dict() returns.
void save_checkpoint(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const std::string& path,
                     const std::map<std::string, std::string>& extra_files = {});

/// The extra file `name` of the archive at `path`, or nullopt when it has none.
std::optional<std::string> read_checkpoint_file(const std::string& path, const std::string& name);

/// A model rebuilt from a checkpoint.
struct LoadedCheckpoint {
  nn::Classifier model{nullptr};
  CheckpointMetadata metadata;
  /// The int8 record `splitshare quantize` added; nullopt for a float checkpoint.
  std::optional<QuantizationRecord> quantization;
  /// The file it was read from (for messages).
  std::string path;
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

/// What `eval` and `predict` run for a loaded checkpoint: its int8 form (nn::QuantizedModel
/// with the recorded ranges) when it has a quantization record, else the float model folded
/// with `options` (nn::InferenceModel). Throws naming the file when the record does not fit
/// the model (a record edited or copied from another checkpoint).
std::unique_ptr<nn::Predictor> make_predictor(const LoadedCheckpoint& checkpoint,
                                              const nn::InferenceOptions& options = {});

/// What a checkpoint.pt written during training holds besides the model, so that
/// `fit` can continue the run exactly where it stopped (see TrainOptions::resume_from).
/// Stored as two more extra files of the archive: training_state.json (everything but
/// tensors) and training_state.pt (tensors, torch::pickle_save of a list).
struct TrainingState {
  /// The epoch in progress, 0-based (= epochs completed).
  int64_t epoch = 0;
  /// Positions of that epoch's shared data order already trained on, by all ranks
  /// together (steps * batch_size * world_size); see BatchStream::reset_at.
  int64_t consumed = 0;
  /// Steps taken in the epoch in progress and in the whole run.
  int64_t step = 0;
  int64_t global_step = 0;
  /// The data-parallel world size and per-rank batch size of the run that wrote it.
  int64_t world_size = 1;
  int64_t batch_size = 0;
  /// The training configuration (to_json(TrainOptions) plus the caller's "config").
  nlohmann::json config = nlohmann::json::object();
  /// One metrics.jsonl record per finished epoch.
  nlohmann::json history = nlohmann::json::array();
  double best_top1 = 0;
  int64_t best_epoch = 0;
  /// Training seconds so far.
  double seconds = 0;
  /// Running sums of the epoch in progress (loss, correct, seen, timings).
  nlohmann::json epoch_progress = nlohmann::json::object();
  /// The fp16 loss scaler's state (GradScaler::state(); empty without fp16).
  nlohmann::json amp = nlohmann::json::object();
  /// torch's default CPU generator state (uint8 [N]).
  torch::Tensor cpu_rng;
  /// The optimizer's state by checkpoint parameter name (optimizer_state_by_name: SGD's
  /// momentum under the name itself, other tensors as "<name>#<field>"); parameters without
  /// state (no step yet, frozen) are absent.
  std::map<std::string, torch::Tensor> optimizer_state;
  /// The weight EMA by checkpoint tensor name (parameters and buffers); empty without one.
  std::map<std::string, torch::Tensor> ema;
};

/// The extra files save_checkpoint stores for `state`.
std::map<std::string, std::string> training_state_files(const TrainingState& state);

/// The training state of the checkpoint at `path`; nullopt for a checkpoint without one
/// (best.pt, imports, checkpoints of older versions). Throws naming the file when the
/// state is present but unreadable.
std::optional<TrainingState> read_training_state(const std::string& path);

/// The tensors stored in a TorchScript archive, by their state_dict names.
std::map<std::string, torch::Tensor> read_archive_tensors(const std::string& path);

}  // namespace splitshare::train
