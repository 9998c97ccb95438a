#pragma once

#include <splitshare/data/datasets.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/run/records.h>
#include <splitshare/train/fit.h>

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


/// Trains every variant for every seed (skipping runs whose summary.json already exists, and
/// continuing a run stopped part-way from its checkpoint.pt, so a stopped compare resumes),
/// then evaluates and tabulates them. Each run's
/// context is `context` with its own out_dir (under options.out_dir) and observer.
std::vector<run::VariantResult> run_compare(const CompareOptions& options, const nn::ClassifierOptions& model,
                                       const data::DataSpec& data_spec, const data::DataOptions& data_options,
                                       const TrainOptions& train, const RunContext& context,
                                       const data::Preprocess* preprocess_override = nullptr);

/// The comparison table (params, top-1, per-head top-1, oracle, ensemble and its gain) as text.
std::string format_compare_table(const std::vector<run::VariantResult>& results);


}  // namespace splitshare::train
