#pragma once

#include <splitshare/data/source.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/train/trainer.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace splitshare::train {

/// One model variant of an ablation (paper Tables 1, 2 and 4).
struct Variant {
  /// "linear", "ssm" (the default SSM: BatchNorm+ReLU on the first S-1 splits), "ssm-allnorm"
  /// (Algorithm 1: on all S), "ssm-individual", "ssm-lastplain" (= ssm, the older name),
  /// "kfc2", "kfc3", … ("kfcK" for any K).
  std::string name;
  nn::HeadOptions head;
  nn::LossKind loss = nn::LossKind::kJoint;
};

/// The variant a name stands for; throws listing the accepted names.
Variant parse_variant(const std::string& name, int64_t splits = 4);

/// A side-by-side training of several variants with identical data, seed and schedule.
struct CompareOptions {
  TORCH_ARG(std::vector<std::string>, variants) = std::vector<std::string>{"linear", "ssm"};
  TORCH_ARG(int64_t, seeds) = 1;
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(int64_t, splits) = 4;
  /// Output folder: one sub-folder per variant and seed, plus compare.json.
  TORCH_ARG(std::string, out_dir) = "runs/compare";
  /// Progress of each run (progress_printer labelled variant/seed).
  TORCH_ARG(bool, progress) = true;
};

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

/// Trains every variant for every seed (skipping runs whose summary.json already
/// exists, so a stopped compare resumes), then evaluates and tabulates them. Each run's
/// context is `context` with its own out_dir (under options.out_dir) and observer.
std::vector<VariantResult> run_compare(const CompareOptions& options, const nn::ClassifierOptions& model,
                                       const data::DataSpec& data_spec, const data::DataOptions& data_options,
                                       const TrainOptions& train, const RunContext& context,
                                       const data::Preprocess* preprocess_override = nullptr);

/// The comparison table (params, top-1, per-head top-1, oracle, ensemble and its gain) as text.
std::string format_compare_table(const std::vector<VariantResult>& results);

/// The comparison as JSON (written to OUT/compare.json).
nlohmann::json to_json(const std::vector<VariantResult>& results);
/// The inverse of to_json (the runs' probabilities stay empty); throws naming `source` and the key.
std::vector<VariantResult> variants_from_json(const nlohmann::json& json, const std::string& source);

}  // namespace splitshare::train
