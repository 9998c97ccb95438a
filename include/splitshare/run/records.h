#pragma once

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/eval/metrics.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

/// The records a run folder holds, written by train/ and read by report/ and explain/: one
/// line of metrics.jsonl per epoch, summary.json, and compare.json's variants.
namespace splitshare::run {

/// One line of metrics.jsonl.
struct EpochRecord {
  int64_t epoch = 0;
  double lr = 0;
  double train_loss = 0;
  double train_top1 = 0;
  double images_per_second = 0;
  /// Seconds spent waiting for batches vs. in forward/backward/step.
  double data_seconds = 0;
  double compute_seconds = 0;
  eval::EvalResult val;
  /// The weight EMA's evaluation (TrainOptions::ema_decay > 0).
  std::optional<eval::EvalResult> ema_val;
};

nlohmann::json to_json(const EpochRecord& record);
/// The inverse of to_json(EpochRecord); throws naming a missing key.
EpochRecord epoch_record_from_json(const nlohmann::json& json);

/// summary.json: how a finished run ended.
struct RunSummary {
  double best_top1 = 0;
  int64_t best_epoch = 0;
  double seconds = 0;
  int64_t params = 0, head_params = 0;
  /// The last epoch's record.
  EpochRecord last;
  /// The model trained, as its checkpoints describe it.
  train::CheckpointMetadata model;
  /// to_json(BuildInfo) of the build that trained it.
  nlohmann::json build;
  /// train::to_json(TrainOptions) of the run (the recipe: optimizer, lr, schedule, epochs, ...).
  nlohmann::json train = nlohmann::json::object();
  /// Training images per epoch, all ranks together (steps x batch size x world size: whole
  /// batches only); 0 when not recorded.
  int64_t train_images_per_epoch = 0;
};

/// {"best_top1", "best_epoch", "seconds", "params", "head_params", "final", "model", "build",
/// "train", "train_images_per_epoch"}; summaries written before the last two read as empty / 0.
nlohmann::json to_json(const RunSummary& summary);
/// The inverse of to_json; throws naming `source` and the missing or mistyped key.
RunSummary summary_from_json(const nlohmann::json& json, const std::string& source);

/// Results of one variant over its seeds.
struct VariantResult {
  std::string name;
  int64_t params = 0;
  int64_t head_params = 0;
  /// The seeds trained, in order; runs[i] is seed seeds[i] (folder OUT/<name>/seed-<seed>).
  std::vector<uint64_t> seeds;
  /// Final-epoch evaluation of each seed.
  std::vector<eval::EvalResult> runs;
  double top1_mean = 0, top1_std = 0, top5_mean = 0, top5_std = 0;
  /// Means over seeds of each head's top-1 and of the oracle (paper Table 2, Section 6).
  std::vector<double> head_top1_mean;
  double oracle_mean = 0;
  /// Ensemble (mean softmax) of the first two seeds; NaN with fewer seeds.
  double ensemble_top1 = 0;
  /// ensemble_top1 minus the better of those two seeds' top-1 (how Table 3's gains are
  /// computed: 77.25 - 75.65, 78.04 - 76.68); NaN with fewer seeds.
  double ensemble_gain_over_best = 0;
  /// ensemble_top1 minus the mean top-1 of those two seeds; NaN with fewer seeds.
  double ensemble_gain_over_mean = 0;
};

/// The comparison as JSON (written to OUT/compare.json).
nlohmann::json to_json(const std::vector<VariantResult>& results);
/// The inverse of to_json (the runs' probabilities stay empty); throws naming `source` and the key.
std::vector<VariantResult> variants_from_json(const nlohmann::json& json, const std::string& source);

}  // namespace splitshare::run
