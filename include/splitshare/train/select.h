#pragma once

#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/gate.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <nlohmann/json.hpp>

#include <torch/torch.h>

#include <vector>

namespace splitshare::train {

/// A frozen model's outputs on a set of samples: what a gate trains and is judged on.
struct HeadOutputs {
  torch::Tensor features;     ///< float [N, F], the pooled features the head reads
  torch::Tensor head_logits;  ///< float [S, N, K]
  torch::Tensor logits;       ///< float [N, K], the model's own combination (mean or sum)
  torch::Tensor labels;       ///< int64 [N]
  torch::Tensor indices;      ///< int64 [N], dataset indices
};

/// Runs `model` in evaluation mode (no gradients) over one epoch of `stream` on `device`;
/// with `keep` non-empty, only the samples whose dataset index i has keep[i] stay.
HeadOutputs collect_head_outputs(nn::ClassifierImpl& model, data::BatchStream& stream, const torch::Device& device,
                                 const std::vector<bool>& keep = {});

/// How fit_gate trains: Adam on the cross-entropy of the gated logits, mini-batches drawn
/// from `seed`.
struct GateTrainOptions {
  TORCH_ARG(int64_t, epochs) = 30;
  TORCH_ARG(double, lr) = 0.01;
  TORCH_ARG(double, weight_decay) = 1e-4;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Trains `gate` on `data` (the model stays frozen: only its cached outputs are used);
/// returns the mean loss of each epoch. Leaves the gate in evaluation mode.
std::vector<double> fit_gate(nn::GateImpl& gate, const HeadOutputs& data, const GateTrainOptions& options = {});

/// Top-1 accuracies of the ways to combine the heads on `data`, without the label (the
/// model's own combination, the most confident head, the confidence-weighted mean, the gate)
/// and with it (the oracle: right when any head is right).
struct SelectionReport {
  double combined = 0, most_confident = 0, confidence_weighted = 0, gate = 0, oracle = 0;
  int64_t samples = 0;
  /// The share of the combined-to-oracle gap the gate closes (negative when it is worse).
  double gap_closed() const { return eval::gap_closed(combined, gate, oracle); }
};
SelectionReport selection_report(nn::GateImpl& gate, const HeadOutputs& data);

/// What `splitshare select` does.
struct SelectOptions {
  /// Share of the training split the gate trains on (stratified; never the validation split).
  TORCH_ARG(double, holdout) = 0.1;
  TORCH_ARG(uint64_t, holdout_seed) = 0;
  TORCH_ARG(nn::GateInput, input) = nn::GateInput::kBoth;
  TORCH_ARG(int64_t, hidden) = 0;
  TORCH_ARG(bool, hard) = false;
  /// Whether the model trained on the hold-out (false for a run of `train --holdout`, which
  /// left this very hold-out out); recorded in select_record.
  TORCH_ARG(bool, model_saw_holdout) = true;
  /// Seed of the gate's initialisation (and, through train, of its mini-batches).
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(GateTrainOptions, train) = {};
  TORCH_ARG(torch::Device, device) = torch::kCPU;
};

/// A gate trained on a frozen model, with how it does on the hold-out and the validation split.
struct SelectResult {
  nn::Gate gate{nullptr};
  SelectionReport holdout, validation;
  std::vector<double> losses;
  /// The hold-out's dataset indices in `data.train`, int64, ascending.
  torch::Tensor holdout_indices;
};

/// Trains a gate for `model` (frozen; needs 2+ heads) on a stratified hold-out of `data.train`
/// (data::stratified_holdout of the labels in dataset order; read once: give a bundle opened
/// with DataOptions::train_in_order, so that no sample is dropped, repeated or augmented) and
/// reports it
/// on `data.val`. The model has seen the hold-out in its own training unless it was trained
/// without it: its heads are then more often right there than on new data.
SelectResult select_gate(nn::ClassifierImpl& model, data::DataBundle& data, const SelectOptions& options);

/// {"samples", "combined", "most_confident", "confidence_weighted", "gate", "oracle", "gap_closed"}.
nlohmann::json to_json(const SelectionReport& report);

/// What a select run did (select.json, and the gated checkpoint's metadata extra "select"):
/// the source checkpoint, the gate's design and training, the hold-out, the losses and
/// both reports.
nlohmann::json select_record(const std::string& checkpoint, const SelectOptions& options, const SelectResult& result);

/// The hold-out as text, one sample per line: the file (data.train_files) for image folders,
/// else the index in the training split.
std::string holdout_listing(const data::DataBundle& data, const torch::Tensor& holdout_indices);

/// Puts `gate` on `model` and writes it as a checkpoint to `path`: `metadata` with the
/// model's options (now naming the gate) and extra["select"] = `record`; the gate's tensors
/// are `gate.*`. `eval`, `predict` and `export` then use the gated logits.
void save_gated_checkpoint(nn::ClassifierImpl& model, CheckpointMetadata metadata, const nn::Gate& gate,
                           const nlohmann::json& record, const std::string& path);

}  // namespace splitshare::train
