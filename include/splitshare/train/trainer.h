#pragma once

#include <splitshare/data/source.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/train/checkpoint.h>
#include <splitshare/train/distributed.h>
#include <splitshare/train/schedule.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::train {

/// How to train. Defaults follow the paper (SGD, momentum 0.9, lr 0.1 per 256
/// images, step decay at 1/3 and 2/3 of the run).
struct TrainOptions {
  TORCH_ARG(int64_t, epochs) = 8;
  /// Base learning rate; 0 = 0.1 * batch_size / 256 (the paper's rate, scaled linearly).
  TORCH_ARG(double, lr) = 0.0;
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 5e-4;
  TORCH_ARG(bool, nesterov) = false;
  TORCH_ARG(nn::LossKind, loss) = nn::LossKind::kJoint;
  TORCH_ARG(ScheduleKind, schedule) = ScheduleKind::kStep;
  /// Empty = the paper's proportions (1/3 and 2/3 of the run).
  TORCH_ARG(std::vector<int64_t>, milestones) = {};
  TORCH_ARG(double, warmup_epochs) = 0.0;
  /// Learning rate of the head's parameters (its own SGD parameter group, following the same
  /// schedule); 0 = the same as the backbone's.
  TORCH_ARG(double, head_lr) = 0.0;
  /// Train only the head: the backbone's parameters get no gradients and no updates, and its
  /// BatchNorm layers stay in evaluation mode so their running statistics do not move either
  /// (the "pretrained backbone, new head" recipe).
  TORCH_ARG(bool, freeze_backbone) = false;
  /// Where metrics.jsonl, summary.json, checkpoint.pt and best.pt go; empty = nowhere.
  TORCH_ARG(std::string, out_dir) = "";
  /// Convolution weights and batches in channels-last layout (faster with oneDNN on CPU).
  TORCH_ARG(bool, channels_last) = true;
  TORCH_ARG(bool, progress) = true;
  /// Prefix of progress lines (e.g. the variant name in `compare`).
  TORCH_ARG(std::string, label) = "train";
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Data-parallel group: parameters are broadcast from rank 0 at the start, gradients
  /// averaged after every backward, evaluation counts summed over ranks; only rank 0
  /// writes files and progress. The data streams must already be sharded by rank.
  TORCH_ARG(std::shared_ptr<Distributed>, distributed) = nullptr;
};

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
};

nlohmann::json to_json(const EpochRecord& record);

/// What a finished training run reports.
struct TrainResult {
  std::vector<EpochRecord> history;
  double best_top1 = 0;
  int64_t best_epoch = 0;
  double seconds = 0;
};

/// Trains `model` on `data.train`, evaluating on `data.val` after every epoch.
/// `metadata` describes the model (it is stored in each checkpoint; epoch and
/// metrics are filled in here).
TrainResult fit(nn::Classifier model, data::DataBundle& data, int64_t batch_size, const TrainOptions& options,
                CheckpointMetadata metadata);

/// Moves 4-d parameters and buffers (convolution weights) to channels-last layout.
void to_channels_last(torch::nn::Module& module);

/// Drops every gradient of `optimizer`'s parameters (set to none rather than zeroed):
/// backward then writes fresh gradients instead of adding into zero-filled ones.
void clear_gradients(torch::optim::Optimizer& optimizer);

}  // namespace splitshare::train
