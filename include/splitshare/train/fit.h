#pragma once

#include <splitshare/data/datasets.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/run/records.h>
#include <splitshare/train/amp.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/distributed/distributed.h>
#include <splitshare/train/optimizer.h>
#include <splitshare/train/schedule.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace splitshare::train {

/// Weight decay of the paper's ImageNet recipe (Section 4), the default for photo folders.
inline constexpr double kPaperWeightDecay = 1e-4;
/// Weight decay of the usual 28/32-px recipe (CIFAR ResNets, e.g. Zagoruyko & Komodakis 2016).
inline constexpr double kSmallImageWeightDecay = 5e-4;
/// The weight decay for data of small images (28/32 px) or photos.
inline double default_weight_decay(bool small_images) {
  return small_images ? kSmallImageWeightDecay : kPaperWeightDecay;
}

/// How to train: everything that determines the trained weights (the run's context, what
/// does not, is RunContext). Defaults follow the paper (SGD, momentum 0.9, lr 0.1 per 256
/// images, step decay at 1/3 and 2/3 of the run).
struct TrainOptions {
  TORCH_ARG(int64_t, epochs) = 8;
  /// Samples per step on each rank; the data's training stream must deliver batches of it.
  TORCH_ARG(int64_t, batch_size) = data::kDefaultBatchSize;
  /// Base learning rate; 0 = default_base_lr(optimizer, batch_size * accum_steps * world size),
  /// the global batch of a step (SGD: the paper's 0.1 * batch / 256).
  TORCH_ARG(double, lr) = 0.0;
  TORCH_ARG(double, momentum) = 0.9;
  /// The paper's ImageNet value; default_weight_decay gives the per-data default the CLI uses.
  TORCH_ARG(double, weight_decay) = kPaperWeightDecay;
  TORCH_ARG(bool, nesterov) = false;
  /// The update rule; momentum serves SGD and RMSprop, betas and eps AdamW (eps also RMSprop).
  TORCH_ARG(OptimizerKind, optimizer) = OptimizerKind::kSgd;
  TORCH_ARG(std::vector<double>, betas) = {0.9, 0.999};
  TORCH_ARG(double, eps) = 1e-8;
  /// No weight decay on BatchNorm and bias parameters (1-d tensors); the CLI turns it on for
  /// AdamW (default_no_decay_bn_bias).
  TORCH_ARG(bool, no_decay_bn_bias) = false;
  /// Label smoothing of the cross-entropy (every loss term of every head).
  TORCH_ARG(double, label_smoothing) = 0.0;
  /// Per-class loss weights ([K]; empty = none), e.g. class_weights_from_counts for imbalanced data.
  TORCH_ARG(std::vector<double>, class_weights) = {};
  /// Mixup / CutMix Beta(alpha, alpha) parameters (0 = off). With both, each step picks one of
  /// them with probability 1/2 (timm's switch). Targets become soft; every head's loss takes them.
  TORCH_ARG(double, mixup) = 0.0;
  TORCH_ARG(double, cutmix) = 0.0;
  /// Exponential moving average of the weights and BatchNorm statistics after every optimizer
  /// step (0 = off): ema = decay * ema + (1 - decay) * weights. Evaluated every epoch.
  TORCH_ARG(double, ema_decay) = 0.0;
  /// With ema_decay: best.pt holds the EMA weights, chosen by the EMA's top-1 (else the raw ones).
  TORCH_ARG(bool, ema_best) = true;
  /// Rescale the gradients to this global L2 norm when larger (0 = off), before the step.
  TORCH_ARG(double, clip_grad_norm) = 0.0;
  /// Micro-batches per optimizer step: the global batch is batch_size * accum_steps * world
  /// size; the schedule counts optimizer steps; BatchNorm sees micro-batches.
  TORCH_ARG(int64_t, accum_steps) = 1;
  TORCH_ARG(nn::LossKind, loss) = nn::LossKind::kJoint;
  /// How the individual loss combines the heads' losses (the paper does not say).
  TORCH_ARG(nn::IndividualReduction, individual_reduction) = nn::IndividualReduction::kSum;
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
  /// Convolution weights and batches in channels-last layout (faster with oneDNN on CPU).
  TORCH_ARG(bool, channels_last) = true;
  /// Forward-pass arithmetic: bf16 autocast, or fp16 autocast with dynamic loss scaling
  /// (CUDA). Evaluation stays in float32.
  TORCH_ARG(Precision, precision) = Precision::kFloat32;
  /// With a distributed group: every nn::BatchNorm of the model (backbone and SSM head)
  /// normalises with the statistics of the global batch (nn::convert_sync_batch_norm).
  TORCH_ARG(bool, sync_batch_norm) = false;
  /// With a distributed group: all-reduce gradient buckets while backward runs
  /// (GradientAverager) instead of after it.
  TORCH_ARG(bool, overlap_gradients) = true;
};


/// Where fit is in the current epoch (what a progress bar shows).
struct StepReport {
  /// 1-based epoch, of `epochs`.
  int64_t epoch = 0, epochs = 0;
  /// Steps done in this epoch, of `steps`.
  int64_t step = 0, steps = 0;
  /// The epoch's running training loss and top-1 accuracy (0..1) so far.
  double loss = 0, top1 = 0;
  double images_per_second = 0;
  /// Share of the epoch's time spent waiting for batches.
  double data_fraction = 0;
  /// The last report of the epoch's training steps (or of a stopped run).
  bool last = false;
};

/// What fit reports while it runs (on rank 0 only). Empty members are skipped.
struct FitObserver {
  /// After every step.
  std::function<void(const StepReport&)> on_step;
  /// After every epoch's evaluation.
  std::function<void(const run::EpochRecord&)> on_epoch;
  /// Anything else worth a line (resuming, stopping).
  std::function<void(const std::string&)> on_note;
};

/// The observer `train` uses: a progress bar per epoch on stderr, a line with the
/// validation figures per epoch (per-head and oracle accuracy for multi-head models),
/// notes as lines; every line starts with `label`.
FitObserver progress_printer(const std::string& label);

/// Where and how a run executes: nothing here changes the trained weights (TrainOptions does).
struct RunContext {
  /// Where metrics.jsonl, summary.json, checkpoint.pt and best.pt go; empty = nowhere.
  TORCH_ARG(std::string, out_dir) = "";
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Data-parallel group: parameters are broadcast from rank 0 at the start, gradients
  /// averaged after every backward, evaluation counts summed over ranks; only rank 0
  /// writes files and reports progress. The data streams must already be sharded by rank.
  TORCH_ARG(std::shared_ptr<Distributed>, distributed) = nullptr;
  /// Continue the run saved in this checkpoint.pt (written by fit into out_dir): its model
  /// tensors, SGD momentum, schedule position, epoch and step, RNG state, data position and
  /// history replace the fresh ones, so that (same world size, threads and data) the run
  /// ends bitwise as if it had never stopped. The TrainOptions must equal the checkpoint's
  /// except `epochs` (which may extend the run); the context may change (any world size:
  /// the rest of the epoch is re-sharded). Empty = a new run.
  TORCH_ARG(std::string, resume_from) = "";
  /// Also write checkpoint.pt every this many steps within an epoch (0 = only at the end
  /// of each epoch and when stopped).
  TORCH_ARG(int64_t, checkpoint_every) = 0;
  /// Polled after every step; a non-zero value (e.g. the number of a caught signal) stops
  /// the run after that step: checkpoint.pt is written and fit returns with
  /// TrainResult::stopped_by set. With a Distributed group the ranks agree (all-reduce) on
  /// the step they stop at. Null = never stop early.
  TORCH_ARG(std::function<int()>, stop_requested) = nullptr;
  /// Progress reports; default progress_printer("train"). An empty FitObserver is silent.
  TORCH_ARG(FitObserver, observer) = progress_printer("train");
};

/// The options that determine a run's result, as stored in checkpoints.
nlohmann::json to_json(const TrainOptions& options);

/// What a finished training run reports.
struct TrainResult {
  std::vector<run::EpochRecord> history;
  double best_top1 = 0;
  int64_t best_epoch = 0;
  double seconds = 0;
  /// Non-zero when RunContext::stop_requested stopped the run: its value (the signal).
  int stopped_by = 0;
  /// Where it stopped: 1-based epoch and step within it (the checkpoint holds this point).
  int64_t stopped_epoch = 0;
  int64_t stopped_step = 0;
};


/// Trains `model` on `data.train`, evaluating on `data.val` after every epoch.
/// `metadata` describes the model (it is stored in each checkpoint; epoch and
/// metrics are filled in here; its extra["config"] is kept in the training state).
/// Into out_dir (rank 0 only): metrics.jsonl (a line per epoch), checkpoint.pt (model +
/// TrainingState, after every epoch, every checkpoint_every steps and when stopped),
/// best.pt (model only) and summary.json. A non-finite loss throws naming the epoch and
/// step; the last checkpoint written stays as it was.
TrainResult fit(nn::Classifier model, data::DataBundle& data, const TrainOptions& options, const RunContext& context,
                CheckpointMetadata metadata);

/// Moves 4-d parameters and buffers (convolution weights) to channels-last layout.
void to_channels_last(torch::nn::Module& module);

/// Drops every gradient of `optimizer`'s parameters (set to none rather than zeroed):
/// backward then writes fresh gradients instead of adding into zero-filled ones.
void clear_gradients(torch::optim::Optimizer& optimizer);

}  // namespace splitshare::train
