#include <splitshare/eval/per_class.h>
#include <splitshare/nn/batch_norm.h>
#include <splitshare/util/build_info.h>
#include <splitshare/train/ema.h>
#include <splitshare/train/mix.h>
#include <splitshare/train/fit.h>
#include <splitshare/util/device.h>
#include <splitshare/util/files.h>

#include "fit_detail.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>

namespace splitshare::train {
namespace {

using detail::Clock;
using detail::seconds_since;

// The running sums of one epoch; a mid-epoch checkpoint records them as epoch_progress.
struct EpochTotals {
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
};

// epoch_progress: the sums and the record's timings so far, and back.
nlohmann::json progress_to_json(const run::EpochRecord& record, const EpochTotals& totals) {
  return {{"loss_sum", totals.loss_sum},
          {"correct", totals.correct},
          {"seen", totals.seen},
          {"lr", record.lr},
          {"data_seconds", record.data_seconds},
          {"compute_seconds", record.compute_seconds}};
}

void progress_from_json(const nlohmann::json& p, run::EpochRecord& record, EpochTotals& totals) {
  totals.loss_sum = p.at("loss_sum").get<double>();
  totals.correct = p.at("correct").get<int64_t>();
  totals.seen = p.at("seen").get<int64_t>();
  record.lr = p.at("lr").get<double>();
  record.data_seconds = p.at("data_seconds").get<double>();
  record.compute_seconds = p.at("compute_seconds").get<double>();
}

torch::Tensor cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// One call of fit: the parts of a run, each with a name, and what they share.
class FitRun {
 public:
  FitRun(nn::Classifier model, data::DataBundle& data, const TrainOptions& options, const RunContext& context,
         CheckpointMetadata metadata)
      : model_(std::move(model)), data_(data), batch_size_(options.batch_size()), options_(options),
        context_(context), metadata_(std::move(metadata)), dist_(context.distributed()),
        world_(dist_ ? dist_->world_size() : 1), main_(!dist_ || dist_->is_main()),
        out_(main_ ? context.out_dir() : std::string()),
        observer_(main_ ? context.observer() : FitObserver()),
        scaler_(GradScalerOptions().enabled(options.precision() == Precision::kFloat16)) {}

  TrainResult run() {
    steps_per_epoch_ = data_.train->batches_per_epoch();
    TORCH_CHECK(steps_per_epoch_ >= 1, "the training set yields no full batch of ", batch_size_,
                " samples; lower --batch-size");
    read_resume_source();
    set_up();
    if (resumed_) restore();
    seconds_before_ = state_.seconds;
    run_start_ = Clock::now();
    for (int64_t epoch = state_.epoch; epoch < options_.epochs(); ++epoch) {
      run::EpochRecord record;
      record.epoch = epoch + 1;
      EpochTotals totals;
      if (!train_one_epoch(epoch, record, totals)) return result_;
      finish_epoch(epoch, record);
    }
    result_.seconds = elapsed();
    write_summary();
    return result_;
  }

 private:
  double elapsed() const { return seconds_before_ + seconds_since(run_start_); }

  // Every rank reads the checkpoint itself (before the first collective, so rank 0 cannot
  // be overwriting it yet).
  void read_resume_source() {
    if (!context_.resume_from().empty()) {
      const auto& path = context_.resume_from();
      resumed_ = read_training_state(path);
      TORCH_CHECK(resumed_, path, ": holds no training state (best.pt, an import, or a checkpoint of an older "
                  "version); start a new run from its weights with --init instead");
      detail::check_resumable(*resumed_, options_, path);
      auto mismatch = nn::load_state(*model_, read_archive_tensors(path));
      TORCH_CHECK(mismatch.ok(), path, ": tensors do not match the model being resumed:\n", mismatch.describe());
    }
    if (!out_.empty()) {
      detail::prepare_out_dir(out_, *model_);
      if (!resumed_) std::filesystem::remove(out_ + "/metrics.jsonl");
    }
  }

  // The model on its device and layout, distribution applied, the optimizer and its schedule.
  void set_up() {
    model_->to(context_.device());
    if (options_.channels_last()) to_channels_last(*model_);
    if (dist_) dist_->broadcast_module(*model_);
    if (dist_ && options_.sync_batch_norm() && dist_->world_size() > 1) {
      auto dist = dist_;
      nn::convert_sync_batch_norm(*model_, [dist](std::vector<torch::Tensor>& t) { dist->all_reduce_sum(t); });
    }
    // The linear rule on the global batch of one optimizer step (micro-batches x accumulation
    // x ranks), so a job on W ranks gets the rate of one process on W times the batch.
    const int64_t step_batch = batch_size_ * options_.accum_steps() * world_;
    schedule_.base_lr(options_.lr() > 0 ? options_.lr() : default_base_lr(options_.optimizer(), step_batch))
        .kind(options_.schedule())
        .epochs(options_.epochs())
        .milestones(options_.milestones())
        .warmup_epochs(options_.warmup_epochs());
    groups_ = detail::parameter_groups(*model_, schedule_.base_lr(), options_);
    optimizer_ = make_optimizer(groups_, detail::optimizer_options(options_), schedule_.base_lr());
    set_up_loss();
    // After parameter_groups(): a frozen backbone's parameters no longer require gradients.
    if (dist_ && options_.overlap_gradients() && options_.accum_steps() == 1) {
      averager_ = std::make_unique<GradientAverager>(dist_, model_->parameters());
    }
    state_.world_size = world_;
    state_.batch_size = batch_size_;
    state_.config = {{"train", to_json(options_)}, {"caller", metadata_.extra.value("config", nlohmann::json())}};
  }

  // Where the checkpoint stopped: optimizer, random state, loss scaler, history, metrics.jsonl.
  void restore() {
    const auto& r = *resumed_;
    restore_optimizer_state(detail::checkpoint_named_parameters(*model_), *optimizer_, options_.optimizer(),
                            r.optimizer_state, context_.resume_from());
    if (ema_) ema_->load_state(r.ema, context_.resume_from() + " (EMA)");
    if (r.cpu_rng.numel() > 0) set_cpu_rng_state(r.cpu_rng);
    state_.epoch = r.epoch;
    state_.consumed = r.consumed;
    state_.step = r.step;
    state_.global_step = r.global_step;
    state_.history = r.history;
    state_.epoch_progress = r.epoch_progress;
    state_.seconds = r.seconds;
    scaler_.load_state(r.amp, context_.resume_from());
    for (const auto& line : state_.history) result_.history.push_back(run::epoch_record_from_json(line));
    result_.best_top1 = r.best_top1;
    result_.best_epoch = r.best_epoch;
    if (!out_.empty()) {
      // Epochs finished after the checkpoint was written are trained again: forget their lines.
      std::string lines;
      for (const auto& line : state_.history) lines += line.dump() + "\n";
      util::write_file_atomic(out_ + "/metrics.jsonl", lines);
    }
    note("resuming " + context_.resume_from() + " at epoch " + std::to_string(state_.epoch + 1) + " step " +
         std::to_string(state_.step) + " (" + std::to_string(state_.consumed) + " samples of the epoch done, world size " +
         std::to_string(r.world_size) + " -> " + std::to_string(world_) + ")");
  }

  void save_checkpoint_pt() {
    if (out_.empty()) return;
    state_.best_top1 = result_.best_top1;
    state_.best_epoch = result_.best_epoch;
    state_.cpu_rng = cpu_rng_state();
    state_.optimizer_state = optimizer_state_by_name(detail::checkpoint_named_parameters(*model_), *optimizer_,
                                                     options_.optimizer());
    state_.ema = ema_ ? ema_->state() : std::map<std::string, torch::Tensor>();
    state_.amp = scaler_.enabled() ? scaler_.state() : nlohmann::json::object();
    save_checkpoint(*model_, metadata_, out_ + "/checkpoint.pt", training_state_files(state_));
  }

  // A mid-epoch checkpoint continues the epoch's sums where it stopped.
  void resume_epoch_totals(run::EpochRecord& record, EpochTotals& totals) const {
    if (state_.consumed == 0 || state_.epoch_progress.empty()) return;
    progress_from_json(state_.epoch_progress, record, totals);
  }


  // The loss's options, the number of classes (for soft targets) and the weight EMA.
  void set_up_loss() {
    TORCH_CHECK(options_.accum_steps() >= 1, "accum_steps must be >= 1, got ", options_.accum_steps());
    TORCH_CHECK(options_.clip_grad_norm() >= 0, "clip_grad_norm must be >= 0, got ", options_.clip_grad_norm());
    num_classes_ = metadata_.model.num_classes();
    loss_options_.label_smoothing(options_.label_smoothing());
    if (!options_.class_weights().empty()) {
      TORCH_CHECK(static_cast<int64_t>(options_.class_weights().size()) == num_classes_, "class weights: ",
                  options_.class_weights().size(), " values for ", num_classes_, " classes");
      loss_options_.class_weights(torch::tensor(options_.class_weights(), torch::kFloat32));
    }
    if (options_.ema_decay() > 0) {
      auto named = detail::checkpoint_named_parameters(*model_);
      for (const auto& item : model_->named_buffers()) named.emplace_back(nn::export_name(item.key()), item.value());
      ema_ = std::make_unique<WeightEma>(std::move(named), options_.ema_decay());
    }
  }

  // The images and targets the loss sees: mixed with soft targets, or as they come.
  std::pair<torch::Tensor, torch::Tensor> prepare_batch(const data::Batch& batch) {
    auto images = data::images_on(batch, context_.device());
    auto targets = util::to_device(batch.labels, context_.device());
    if (options_.mixup() > 0 || options_.cutmix() > 0) {
      auto mixed = mix_batch(images, targets, num_classes_, options_.mixup(), options_.cutmix());
      images = mixed.images;
      targets = mixed.targets;
    }
    if (options_.channels_last()) images = images.contiguous(torch::MemoryFormat::ChannelsLast);
    return {images, targets};
  }

  // After the last micro-batch of a step: gradients averaged over ranks, clipped, applied, averaged into the EMA.
  void optimizer_step() {
    if (averager_) {
      averager_->finish();
    } else if (dist_) {
      dist_->average_gradients(*model_);
    }
    if (options_.clip_grad_norm() > 0) {
      scaler_.unscale(*optimizer_);
      torch::nn::utils::clip_grad_norm_(model_->parameters(), options_.clip_grad_norm());
    }
    scaler_.step(*optimizer_);
    scaler_.update();
    if (ema_) ema_->update();
  }

  // One micro-batch (forward, backward); the optimizer steps after the last of each group of
  // accum_steps (or of the epoch). Returns the loss.
  double train_step(const data::Batch& batch, int64_t epoch, int64_t step, run::EpochRecord& record, EpochTotals& totals) {
    const int64_t positions_per_epoch = steps_per_epoch_ * batch_size_ * world_;
    // (consumed / positions_per_epoch is step / steps_per_epoch at the run's own world size.)
    const double lr = learning_rate(
        schedule_, epoch + static_cast<double>(state_.consumed) / static_cast<double>(positions_per_epoch));
    set_learning_rates(*optimizer_, groups_, lr);
    record.lr = lr;
    const int64_t accum = options_.accum_steps();
    const int64_t group_start = step - step % accum;
    // A short group at the epoch's end is averaged over its own micro-batches (as timm does).
    const int64_t group_size = std::min(accum, steps_per_epoch_ - group_start);
    auto [images, targets] = prepare_batch(batch);
    nn::HeadOutput output;
    torch::Tensor loss;
    {
      AutocastGuard autocast(context_.device(), options_.precision());
      output = model_->forward(images);
      loss = nn::head_loss(output, targets, options_.loss(), options_.individual_reduction(), loss_options_);
    }
    if (step == group_start) clear_gradients(*optimizer_);
    if (averager_) averager_->prepare();
    scaler_.scale(group_size > 1 ? loss / static_cast<double>(group_size) : loss).backward();
    if (step + 1 == group_start + group_size) optimizer_step();
    const double loss_value = loss.item<double>();
    TORCH_CHECK(std::isfinite(loss_value), "training diverged: loss is ", loss_value, " at epoch ", epoch + 1,
                ", step ", step + 1, " (lr ", lr, "); lower --lr or check the data",
                out_.empty() ? std::string()
                             : "; the last good checkpoint (" + out_ + "/checkpoint.pt) is kept as it was");
    const auto labels = util::to_device(batch.labels, context_.device());
    const int64_t n = labels.size(0);
    totals.loss_sum += loss_value * n;
    totals.correct += output.logits.argmax(1).eq(labels).sum().item<int64_t>();
    totals.seen += n;
    return loss_value;
  }

  // A stop request (agreed by every rank) or --checkpoint-every: checkpoint mid-epoch.
  // Returns the stop signal, or 0.
  int maybe_checkpoint(int64_t epoch, int64_t step, const run::EpochRecord& record, const EpochTotals& totals) {
    // Only between optimizer steps: gradients accumulated so far are not checkpointed.
    if (step % options_.accum_steps() != 0 && step != steps_per_epoch_) return 0;
    const int stop = context_.stop_requested() ? detail::agree_on_stop(context_.stop_requested()(), dist_) : 0;
    const bool periodic = context_.checkpoint_every() > 0 && state_.global_step % context_.checkpoint_every() == 0;
    if (stop || periodic) {
      state_.epoch = epoch;
      state_.seconds = elapsed();
      state_.epoch_progress = progress_to_json(record, totals);
      save_checkpoint_pt();
    }
    return stop;
  }

  void note(const std::string& text) const {
    if (observer_.on_note) observer_.on_note(text);
  }

  void report_step(int64_t epoch, int64_t step, const run::EpochRecord& record, const EpochTotals& totals, double seconds,
                   bool last) const {
    if (!observer_.on_step) return;
    StepReport report;
    report.epoch = epoch + 1;
    report.epochs = options_.epochs();
    report.step = step;
    report.steps = steps_per_epoch_;
    report.loss = totals.loss_sum / static_cast<double>(std::max<int64_t>(totals.seen, 1));
    report.top1 = static_cast<double>(totals.correct) / static_cast<double>(std::max<int64_t>(totals.seen, 1));
    report.images_per_second = static_cast<double>(totals.seen) / std::max(1e-9, seconds);
    report.data_fraction = record.data_seconds / std::max(1e-9, record.data_seconds + record.compute_seconds);
    report.last = last;
    observer_.on_step(report);
  }

  // The steps of one epoch (from where a resumed run stopped). False when a stop request ended it.
  bool train_one_epoch(int64_t epoch, run::EpochRecord& record, EpochTotals& totals) {
    model_->train();
    if (options_.freeze_backbone()) model_->backbone->eval();
    data_.train->reset_at(epoch, state_.consumed);
    resume_epoch_totals(record, totals);
    const int64_t positions_per_step = batch_size_ * world_;
    int64_t step = state_.consumed / positions_per_step;
    const auto epoch_start = Clock::now();
    auto wait_start = Clock::now();
    while (auto batch = data_.train->next()) {
      record.data_seconds += seconds_since(wait_start);
      const auto compute_start = Clock::now();
      train_step(*batch, epoch, step, record, totals);
      state_.step = ++step;
      ++state_.global_step;
      state_.consumed += positions_per_step;
      record.compute_seconds += seconds_since(compute_start);
      const int stop = maybe_checkpoint(epoch, step, record, totals);
      report_step(epoch, step, record, totals, seconds_since(epoch_start), stop != 0 || step == steps_per_epoch_);
      if (stop) {
        result_.stopped_by = stop;
        result_.stopped_epoch = epoch + 1;
        result_.stopped_step = step;
        result_.seconds = elapsed();
        return false;
      }
      wait_start = Clock::now();
    }
    // A stream that ended early still closes the epoch's progress.
    if (step != steps_per_epoch_) report_step(epoch, step, record, totals, seconds_since(epoch_start), true);
    record.train_loss = totals.seen ? totals.loss_sum / totals.seen : 0.0;
    record.train_top1 = totals.seen ? static_cast<double>(totals.correct) / totals.seen : 0.0;
    record.images_per_second = totals.seen / std::max(1e-9, record.data_seconds + record.compute_seconds);
    return true;
  }

  // Evaluate, keep the best, and write best.pt, checkpoint.pt and a metrics.jsonl line.
  void finish_epoch(int64_t epoch, run::EpochRecord& record) {
    eval::Reducer reduce;
    if (dist_) {
      auto dist = dist_;
      reduce = [dist](std::vector<torch::Tensor>& t) { dist->all_reduce_sum(t); };
    }
    record.val = eval::evaluate(*model_, *data_.val, false, context_.device(), reduce);
    if (ema_) {
      EmaSwapGuard with_ema(ema_.get());
      record.ema_val = eval::evaluate(*model_, *data_.val, false, context_.device(), reduce);
    }
    keep_per_class(record);
    if (observer_.on_epoch) observer_.on_epoch(record);
    const bool from_ema = ema_ && options_.ema_best();
    const double top1 = from_ema ? record.ema_val->top1 : record.val.top1;
    const bool best = top1 > result_.best_top1 || epoch == 0;
    if (best) {
      result_.best_top1 = top1;
      result_.best_epoch = epoch + 1;
    }
    result_.history.push_back(record);
    state_.history.push_back(to_json(record));
    state_.epoch = epoch + 1;
    state_.consumed = 0;
    state_.step = 0;
    state_.epoch_progress = nlohmann::json::object();
    state_.seconds = elapsed();
    if (out_.empty()) return;
    metadata_.epoch = epoch + 1;
    metadata_.extra["metrics"] = eval::to_json(record.val);
    // best.pt before checkpoint.pt: a kill between the two repeats this epoch on resume,
    // which rewrites the same best.pt.
    if (best) save_best(record);
    save_checkpoint_pt();
    util::append_to_file(out_ + "/metrics.jsonl", to_json(record).dump() + "\n");
  }

  // The per-class view of this epoch's validation replaces the previous epoch's (write_summary
  // saves the last as per_class.json); the records drop their K x K matrices, so neither the
  // history in memory nor metrics.jsonl and checkpoint.pt grow with the number of classes.
  void keep_per_class(run::EpochRecord& record) {
    const auto k = record.val.confusion.defined() ? record.val.confusion.size(0) : 0;
    const bool named = static_cast<int64_t>(metadata_.classes.size()) == k;
    if (k > 0) per_class_ = eval::per_class_report(record.val, named ? metadata_.classes : std::vector<std::string>{});
    for (auto* val : {&record.val, record.ema_val ? &*record.ema_val : nullptr}) {
      if (val == nullptr) continue;
      val->confusion = torch::Tensor();
      val->head_confusion.clear();
    }
  }

  // best.pt: the raw weights, or the EMA's (metadata "weights" says which, "metrics" are theirs).
  void save_best(const run::EpochRecord& record) {
    auto metadata = metadata_;
    if (!ema_) return save_checkpoint(*model_, metadata, out_ + "/best.pt");
    metadata.extra["weights"] = options_.ema_best() ? "ema" : "raw";
    if (!options_.ema_best()) return save_checkpoint(*model_, metadata, out_ + "/best.pt");
    metadata.extra["metrics"] = eval::to_json(*record.ema_val);
    EmaSwapGuard with_ema(ema_.get());
    save_checkpoint(*model_, metadata, out_ + "/best.pt");
  }

  void write_summary() const {
    if (out_.empty()) return;
    run::RunSummary summary;
    summary.best_top1 = result_.best_top1;
    summary.best_epoch = result_.best_epoch;
    summary.seconds = result_.seconds;
    summary.params = nn::count_parameters(*model_);
    summary.head_params = nn::count_parameters(*model_->head.ptr());
    summary.last = result_.history.back();
    summary.model = metadata_;
    summary.build = to_json(build_info());
    summary.train = to_json(options_);
    summary.train_images_per_epoch = steps_per_epoch_ * batch_size_ * world_;
    util::write_file_atomic(out_ + "/summary.json", to_json(summary).dump(2) + "\n");
    if (per_class_) {
      auto per_class = eval::to_json(*per_class_);
      per_class["epoch"] = summary.last.epoch;
      // Compact: the confusion matrix has K x K entries.
      util::write_file_atomic(out_ + "/per_class.json", per_class.dump() + "\n");
    }
  }

  nn::Classifier model_;
  data::DataBundle& data_;
  const int64_t batch_size_;
  const TrainOptions& options_;
  const RunContext& context_;
  CheckpointMetadata metadata_;
  const std::shared_ptr<Distributed> dist_;
  const int64_t world_;
  const bool main_;
  const std::string out_;  // empty on ranks other than 0: they write nothing
  const FitObserver observer_;  // empty on ranks other than 0: they report nothing
  int64_t steps_per_epoch_ = 0;
  std::optional<TrainingState> resumed_;
  std::optional<eval::PerClassReport> per_class_;  // of the last epoch evaluated in this process
  ScheduleOptions schedule_;
  std::vector<ParameterGroup> groups_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  nn::LossOptions loss_options_;
  int64_t num_classes_ = 0;
  std::unique_ptr<WeightEma> ema_;
  std::unique_ptr<GradientAverager> averager_;
  GradScaler scaler_;
  // Where the run stands; a checkpoint.pt records exactly this.
  TrainingState state_;
  TrainResult result_;
  double seconds_before_ = 0;
  Clock::time_point run_start_;
};

}  // namespace

TrainResult fit(nn::Classifier model, data::DataBundle& data, const TrainOptions& options, const RunContext& context,
                CheckpointMetadata metadata) {
  TORCH_CHECK(options.epochs() >= 1, "epochs must be at least 1, got ", options.epochs());
  TORCH_CHECK(options.batch_size() >= 1, "batch_size must be at least 1, got ", options.batch_size());
  TORCH_CHECK(data.train && data.val, "fit: the data bundle has no training or validation stream");
  const auto stream_batch = data.train->batch_size();
  TORCH_CHECK(stream_batch == 0 || stream_batch == options.batch_size(), "fit: the training stream delivers batches of ",
              stream_batch, " but TrainOptions::batch_size is ", options.batch_size(), "; give both the same value");
  TORCH_CHECK(context.checkpoint_every() >= 0, "checkpoint_every must be >= 0, got ", context.checkpoint_every());
  return FitRun(std::move(model), data, options, context, std::move(metadata)).run();
}

}  // namespace splitshare::train
