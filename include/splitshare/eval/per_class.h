#pragma once

#include <splitshare/eval/metrics.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace splitshare::eval {

/// Precision, recall, F1 and support of one class, or an average over classes.
/// Definitions as scikit-learn's classification_report: precision = TP / (TP + FP) and
/// is 0 for a class that is never predicted; recall = TP / support and is 0 for a class
/// with no samples; F1 = 2PR / (P + R), 0 when both are 0.
struct ClassScores {
  /// The class name ("macro" or "weighted" for an average).
  std::string name;
  /// Row of the confusion matrix; -1 for an average.
  int64_t index = -1;
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  /// Samples whose true class this is (for an average: the samples counted).
  int64_t support = 0;
  /// Samples predicted as this class (the confusion matrix's column sum; 0 for an average).
  int64_t predicted = 0;
};

/// One off-diagonal cell of a confusion matrix: `count` samples of `truth` predicted as `predicted`.
struct ConfusedPair {
  int64_t truth = 0;
  int64_t predicted = 0;
  std::string truth_name;
  std::string predicted_name;
  int64_t count = 0;
  /// count / support of `truth`.
  double rate = 0;
};

/// Per-class view of one evaluation.
struct PerClassReport {
  /// Class names in index order (the index as text where the checkpoint names none).
  std::vector<std::string> classes;
  /// int64 [K, K] on the CPU: rows = true class, columns = predicted class (combined output).
  torch::Tensor confusion;
  /// One entry per class, in index order.
  std::vector<ClassScores> per_class;
  /// Unweighted mean over the classes that occur (in the labels or the predictions), as
  /// scikit-learn averages when given no label list; its support is all samples.
  ClassScores macro;
  /// Mean weighted by each class's support.
  ClassScores weighted;
  /// The largest off-diagonal counts, largest first (ties: lower true, then predicted index).
  std::vector<ConfusedPair> confused_pairs;
  /// Per-class recall (accuracy on the samples of that class) of each head: [head][class].
  std::vector<std::vector<double>> head_recall;
};

/// Counts of (label, prediction) pairs, int64 [K, K] (rows = label) on the inputs' device.
/// Throws naming a value outside [0, K).
torch::Tensor confusion_matrix(const torch::Tensor& labels, const torch::Tensor& predictions, int64_t num_classes);

/// Precision, recall, F1 and support of every class of a confusion matrix [K, K].
std::vector<ClassScores> class_scores(const torch::Tensor& confusion, const std::vector<std::string>& classes = {});

/// Macro ("macro") and support-weighted ("weighted") averages of class_scores.
ClassScores macro_average(const std::vector<ClassScores>& scores);
ClassScores weighted_average(const std::vector<ClassScores>& scores);

/// The `top` largest nonzero off-diagonal cells of `confusion`.
std::vector<ConfusedPair> most_confused(const torch::Tensor& confusion, const std::vector<std::string>& classes = {},
                                        int64_t top = 10);

/// The per-class report of an evaluation (needs result.confusion, which evaluate fills);
/// `classes` may be empty or must have one name per class.
PerClassReport per_class_report(const EvalResult& result, const std::vector<std::string>& classes,
                                int64_t top_pairs = 10);

/// {"per_class": [{"class", "index", "precision", "recall", "f1", "support"}...],
///  "macro": {"precision", "recall", "f1", "support"}, "weighted": {...},
///  "confusion": {"classes": [...], "matrix": [[...]]},
///  "confused_pairs": [{"true", "predicted", "true_index", "predicted_index", "count", "rate"}...],
///  "heads": [{"per_class": [recall per class]}...]}.
nlohmann::json to_json(const PerClassReport& report);
/// The inverse of to_json (also reads an `eval --json` object, which holds the same keys);
/// throws naming a missing key.
PerClassReport per_class_from_json(const nlohmann::json& json);

/// to_json(result) with the report's keys added (heads[i] gains "per_class"): the
/// `eval --json` object. from_json and per_class_from_json each read their part of it.
nlohmann::json to_json(const EvalResult& result, const PerClassReport& report);

}  // namespace splitshare::eval
