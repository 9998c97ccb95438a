#pragma once

#include <splitshare/data/loader.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/inference.h>
#include <splitshare/nn/predictor.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace splitshare::eval {

/// Sums tensors in place across processes (distributed evaluation); empty = one process.
using Reducer = std::function<void(std::vector<torch::Tensor>&)>;

/// Accuracy figures of one model (or ensemble) on one dataset.
struct EvalResult {
  double top1 = 0;
  double top5 = 0;
  /// Mean cross-entropy of the combined logits.
  double loss = 0;
  int64_t samples = 0;
  /// Top-1 of each sub-classifier alone.
  std::vector<double> head_top1;
  /// Fraction of samples at least one sub-classifier gets right (paper Section 6).
  double oracle = 0;
  /// Top-1 when each sample takes the most confident head's prediction (no labels needed).
  double most_confident = 0;
  /// Top-1 of the heads' softmax averaged with weights = each head's max probability.
  double confidence_weighted = 0;
  /// Whether the model has a head-selection gate: `top1` is then the gate's and
  /// `ungated_top1` the heads' own mean (or sum).
  bool gated = false;
  double ungated_top1 = 0;
  /// The heads' own combination's top-1: ungated_top1 with a gate, else top1.
  double mean_top1() const { return gated ? ungated_top1 : top1; }
  /// Softmax of the combined logits, float [samples, K] (only with keep_probabilities).
  torch::Tensor probabilities;
  /// int64 [samples] (only with keep_probabilities).
  torch::Tensor labels;
  /// Confusion matrix of the combined output, int64 [K, K] on the CPU: rows = true class,
  /// columns = predicted (filled by Accumulator/evaluate; not part of to_json, see per_class.h).
  torch::Tensor confusion;
  /// The same for each sub-classifier alone, one per head_top1 entry.
  std::vector<torch::Tensor> head_confusion;
};

/// The share of the gap from `mean` to `oracle` (top-1s) that `chosen` closes: 1 = the
/// oracle, 0 = no better than the mean, negative when worse; 0 when the oracle is no better.
double gap_closed(double mean, double chosen, double oracle);

/// Adds up predictions batch by batch.
class Accumulator {
 public:
  /// Adds one batch: the model's output and labels int64 [B].
  void add(const nn::HeadOutput& output, const torch::Tensor& labels);
  /// Keeps the softmax of each batch (for ensembles).
  void keep_probabilities(bool keep) { keep_ = keep; }
  EvalResult result() const;
  /// Replaces every count with its sum over all processes (each process having
  /// accumulated its own disjoint shard), so result() describes the whole dataset.
  void reduce(const Reducer& sum);

 private:
  bool keep_ = false;
  int64_t samples_ = 0;
  double loss_sum_ = 0;
  int64_t top1_ = 0, top5_ = 0, oracle_ = 0, most_confident_ = 0, weighted_ = 0, ungated_ = 0;
  bool gated_ = false;
  std::vector<int64_t> head_correct_;
  // Flattened confusion counts [K * K] (label * K + prediction), on the device of the outputs.
  torch::Tensor confusion_;
  std::vector<torch::Tensor> head_confusion_;
  std::vector<torch::Tensor> probabilities_, labels_;
};

/// Runs `model` in evaluation mode over one epoch of `stream`, through an nn::InferenceModel
/// folded from its current weights (BatchNorm folded into the convolutions, oneDNN on CPU).
/// With `reduce`, the counts of all ranks' shards are summed (shards must not overlap).
/// `dtype`: the backbone's arithmetic, torch::kFloat or torch::kBFloat16 (InferenceOptions).
/// `flip_tta`: test-time augmentation, flip_mean_forward instead of one forward.
EvalResult evaluate(nn::ClassifierImpl& model, data::BatchStream& stream, bool keep_probabilities = false,
                    torch::Device device = torch::kCPU, const Reducer& reduce = nullptr,
                    torch::Dtype dtype = torch::kFloat, bool flip_tta = false);

/// The same through a model already frozen for inference (a checkpoint's make_predictor: the
/// float InferenceModel or the int8 QuantizedModel).
EvalResult evaluate(const nn::Predictor& model, data::BatchStream& stream, bool keep_probabilities = false,
                    torch::Device device = torch::kCPU, const Reducer& reduce = nullptr, bool flip_tta = false);

/// The mean of the outputs (combined and per-head logits) for `images` [N, C, H, W] and their
/// left-right mirror: flip test-time augmentation (eval and predict --tta flip).
nn::HeadOutput flip_mean_forward(const nn::Predictor& model, const torch::Tensor& images);

/// Top-1 of the mean of the members' probabilities; members must come from the same
/// ordered dataset (same labels).
double ensemble_top1(const std::vector<EvalResult>& members);

/// {"top1", "top5", "loss", "samples", "heads": [{"top1"}...], "oracle", "selection": {"mean",
/// "most_confident", "confidence_weighted", "oracle", and with a gate "gate", "gap_closed"}}; the
/// confusion matrices are left out (per_class.h adds the per-class keys for `eval --json`).
nlohmann::json to_json(const EvalResult& result);
/// The inverse of to_json (probabilities and labels stay empty); throws naming a missing key.
EvalResult from_json(const nlohmann::json& json);

}  // namespace splitshare::eval
