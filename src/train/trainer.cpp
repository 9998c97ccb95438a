#include <splitshare/nn/sync_batch_norm.h>
#include <splitshare/train/build_info.h>
#include <splitshare/train/trainer.h>
#include <splitshare/util/files.h>
#include <splitshare/util/device.h>
#include <splitshare/util/progress.h>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <type_traits>

namespace splitshare::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Checkpoints need room for the model, its momentum, best.pt and a temporary copy.
int64_t needed_free_bytes(torch::nn::Module& module) {
  int64_t bytes = 0;
  for (const auto& t : module.parameters()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  for (const auto& t : module.buffers()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  return 4 * 2 * bytes + (16 << 20);
}

void prepare_out_dir(const std::string& dir, torch::nn::Module& model) {
  util::check_output_folder(dir, needed_free_bytes(model));
  // Left by a run killed while writing; the files they would have replaced are intact.
  for (const char* name : {"checkpoint.pt.tmp", "best.pt.tmp", "summary.json.tmp", "metrics.jsonl.tmp"}) {
    std::filesystem::remove(dir + "/" + name);
  }
}

// The SGD parameter groups (backbone, head; without options of their own, so they take the
// optimizer's momentum and weight decay) and each group's rate relative to the schedule's.
// A frozen backbone gets no group and no gradients.
struct ParameterGroups {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<double> lr_factors;
};

ParameterGroups parameter_groups(nn::ClassifierImpl& model, double base_lr, const TrainOptions& options) {
  TORCH_CHECK(options.head_lr() >= 0, "head_lr must be >= 0, got ", options.head_lr());
  const double head_lr = options.head_lr() > 0 ? options.head_lr() : base_lr;
  ParameterGroups out;
  auto backbone = model.backbone->parameters();
  if (options.freeze_backbone()) {
    for (auto& p : backbone) p.set_requires_grad(false);
  } else {
    out.groups.emplace_back(backbone);
    out.lr_factors.push_back(1.0);
  }
  out.groups.emplace_back(model.head.ptr()->parameters());
  out.lr_factors.push_back(head_lr / base_lr);
  return out;
}

// The key of a parameter in the optimizer's state map.
void* state_key(const torch::Tensor& parameter) { return parameter.unsafeGetTensorImpl(); }

std::map<std::string, torch::Tensor> momentum_by_name(nn::ClassifierImpl& model, torch::optim::SGD& optimizer) {
  std::map<std::string, torch::Tensor> out;
  auto& state = optimizer.state();
  for (const auto& item : model.named_parameters()) {
    auto it = state.find(state_key(item.value()));
    if (it == state.end()) continue;
    const auto& buffer = static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer();
    if (buffer.defined()) out[nn::export_name(item.key())] = buffer;
  }
  return out;
}

void restore_momentum(nn::ClassifierImpl& model, torch::optim::SGD& optimizer,
                      const std::map<std::string, torch::Tensor>& momentum, const std::string& source) {
  size_t restored = 0;
  for (const auto& item : model.named_parameters()) {
    auto it = momentum.find(nn::export_name(item.key()));
    if (it == momentum.end()) continue;
    const auto& parameter = item.value();
    TORCH_CHECK(it->second.sizes() == parameter.sizes(), source, ": momentum of ", it->first, " has shape ",
                it->second.sizes(), ", the parameter ", parameter.sizes());
    auto buffer = torch::empty_like(parameter).copy_(it->second);  // the parameter's device and layout
    auto param_state = std::make_unique<torch::optim::SGDParamState>();
    param_state->momentum_buffer(buffer);
    optimizer.state()[state_key(parameter)] = std::move(param_state);
    ++restored;
  }
  TORCH_CHECK(restored == momentum.size(), source, ": ", momentum.size() - restored,
              " momentum buffers name no parameter of the model");
}

EpochRecord record_from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch").get<int64_t>();
  r.lr = j.at("lr").get<double>();
  r.train_loss = j.at("train_loss").get<double>();
  r.train_top1 = j.at("train_top1").get<double>();
  r.images_per_second = j.at("images_per_second").get<double>();
  r.data_seconds = j.at("data_seconds").get<double>();
  r.compute_seconds = j.at("compute_seconds").get<double>();
  r.val = eval::from_json(j.at("val"));
  return r;
}

// Refuses to continue a run under different settings (except a longer one).
void check_resumable(const TrainingState& state, const TrainOptions& options, int64_t batch_size,
                     const std::string& path) {
  TORCH_CHECK(state.batch_size == batch_size, path, ": the run used batch size ", state.batch_size, ", not ",
              batch_size, "; resume with the same batch size");
  const auto saved = state.config.value("train", nlohmann::json::object());
  const auto given = to_json(options);
  std::string differences;
  for (const auto& [key, value] : given.items()) {
    if (key == "epochs" || !saved.contains(key) || saved.at(key) == value) continue;
    differences += "\n  " + key + ": " + saved.at(key).dump() + " in the checkpoint, " + value.dump() + " given";
  }
  TORCH_CHECK(differences.empty(), path, ": cannot resume with different training options (only epochs may change):",
              differences);
  TORCH_CHECK(options.epochs() >= state.epoch, path, ": the run has finished ", state.epoch,
              " epochs; --epochs ", options.epochs(), " would go back");
}

// All ranks stop at the same step: the first non-zero request wins everywhere.
int agree_on_stop(int request, const std::shared_ptr<Distributed>& dist) {
  if (!dist) return request;
  std::vector<torch::Tensor> flags{torch::tensor({request != 0 ? 1.0 : 0.0, static_cast<double>(request)},
                                                 torch::kFloat64)};
  dist->all_reduce_sum(flags);
  const double count = flags[0][0].item<double>();
  if (count == 0) return 0;
  return request != 0 ? request : static_cast<int>(flags[0][1].item<double>() / count);
}

}  // namespace

nlohmann::json to_json(const TrainOptions& o) {
  return {{"epochs", o.epochs()},
          {"lr", o.lr()},
          {"momentum", o.momentum()},
          {"weight_decay", o.weight_decay()},
          {"nesterov", o.nesterov()},
          {"loss", nn::to_string(o.loss())},
          {"schedule", to_string(o.schedule())},
          {"milestones", o.milestones()},
          {"warmup_epochs", o.warmup_epochs()},
          {"head_lr", o.head_lr()},
          {"freeze_backbone", o.freeze_backbone()},
          {"channels_last", o.channels_last()},
          {"precision", to_string(o.precision())},
          {"sync_batch_norm", o.sync_batch_norm()}};
}

nlohmann::json to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},
          {"lr", r.lr},
          {"train_loss", r.train_loss},
          {"train_top1", r.train_top1},
          {"images_per_second", r.images_per_second},
          {"data_seconds", r.data_seconds},
          {"compute_seconds", r.compute_seconds},
          {"val", eval::to_json(r.val)}};
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

void clear_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
  }
}

TrainResult fit(nn::Classifier model, data::DataBundle& data, int64_t batch_size, const TrainOptions& options,
                CheckpointMetadata metadata) {
  TORCH_CHECK(options.epochs() >= 1, "epochs must be at least 1, got ", options.epochs());
  TORCH_CHECK(data.train && data.val, "fit: the data bundle has no training or validation stream");
  TORCH_CHECK(options.checkpoint_every() >= 0, "checkpoint_every must be >= 0, got ", options.checkpoint_every());
  const auto steps_per_epoch = data.train->batches_per_epoch();
  TORCH_CHECK(steps_per_epoch >= 1, "the training set yields no full batch of ", batch_size,
              " samples; lower --batch-size");
  const auto& dist = options.distributed();
  const int64_t world = dist ? dist->world_size() : 1;
  const bool main_rank = !dist || dist->is_main();
  const std::string out = main_rank ? options.out_dir() : std::string();
  const bool progress = options.progress() && main_rank;

  // Every rank reads the checkpoint itself (before the first collective, so rank 0 cannot
  // be overwriting it yet).
  std::optional<TrainingState> resumed;
  if (!options.resume_from().empty()) {
    const auto& path = options.resume_from();
    resumed = read_training_state(path);
    TORCH_CHECK(resumed, path, ": holds no training state (best.pt, an import, or a checkpoint of an older "
                "version); start a new run from its weights with --init instead");
    check_resumable(*resumed, options, batch_size, path);
    auto mismatch = nn::load_state(*model, read_archive_tensors(path));
    TORCH_CHECK(mismatch.ok(), path, ": tensors do not match the model being resumed:\n", mismatch.describe());
  }
  if (!out.empty()) {
    prepare_out_dir(out, *model);
    if (!resumed) std::filesystem::remove(out + "/metrics.jsonl");
  }

  model->to(options.device());
  if (options.channels_last()) to_channels_last(*model);
  if (dist) dist->broadcast_module(*model);
  if (dist && options.sync_batch_norm() && dist->world_size() > 1) {
    nn::convert_sync_batch_norm(*model, [dist](std::vector<torch::Tensor>& t) { dist->all_reduce_sum(t); });
  }
  ScheduleOptions schedule;
  schedule.base_lr(options.lr() > 0 ? options.lr() : 0.1 * static_cast<double>(batch_size) / 256.0)
      .kind(options.schedule())
      .epochs(options.epochs())
      .milestones(options.milestones())
      .warmup_epochs(options.warmup_epochs());
  auto groups = parameter_groups(*model, schedule.base_lr(), options);
  torch::optim::SGD optimizer(groups.groups, torch::optim::SGDOptions(schedule.base_lr())
                                                 .momentum(options.momentum())
                                                 .weight_decay(options.weight_decay())
                                                 .nesterov(options.nesterov()));
  // After parameter_groups(): a frozen backbone's parameters no longer require gradients.
  std::unique_ptr<GradientAverager> averager;
  if (dist && options.overlap_gradients()) averager = std::make_unique<GradientAverager>(dist, model->parameters());
  GradScaler scaler(GradScalerOptions().enabled(options.precision() == Precision::kFloat16));
  // Every group follows the schedule, scaled by its own base rate.
  auto set_lr = [&](double lr) {
    auto& param_groups = optimizer.param_groups();
    for (size_t i = 0; i < param_groups.size(); ++i) {
      static_cast<torch::optim::SGDOptions&>(param_groups[i].options()).lr(lr * groups.lr_factors[i]);
    }
  };

  // Where the run stands; a checkpoint.pt records exactly this.
  TrainingState state;
  state.world_size = world;
  state.batch_size = batch_size;
  state.config = {{"train", to_json(options)}, {"caller", metadata.extra.value("config", nlohmann::json())}};
  TrainResult result;
  if (resumed) {
    restore_momentum(*model, optimizer, resumed->momentum, options.resume_from());
    if (resumed->cpu_rng.numel() > 0) {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(resumed->cpu_rng);
    }
    state.epoch = resumed->epoch;
    state.consumed = resumed->consumed;
    state.step = resumed->step;
    state.global_step = resumed->global_step;
    state.history = resumed->history;
    state.epoch_progress = resumed->epoch_progress;
    state.seconds = resumed->seconds;
    scaler.load_state(resumed->amp, options.resume_from());
    for (const auto& line : state.history) result.history.push_back(record_from_json(line));
    result.best_top1 = resumed->best_top1;
    result.best_epoch = resumed->best_epoch;
    if (!out.empty()) {
      // Epochs finished after the checkpoint was written are trained again: forget their lines.
      std::string lines;
      for (const auto& line : state.history) lines += line.dump() + "\n";
      util::write_file_atomic(out + "/metrics.jsonl", lines);
    }
    if (progress) {
      std::fprintf(stderr, "%s: resuming %s at epoch %lld step %lld (%lld samples of the epoch done, world size %lld -> %lld)\n",
                   options.label().c_str(), options.resume_from().c_str(), static_cast<long long>(state.epoch + 1),
                   static_cast<long long>(state.step), static_cast<long long>(state.consumed),
                   static_cast<long long>(resumed->world_size), static_cast<long long>(world));
    }
  }
  auto save_checkpoint_pt = [&](const CheckpointMetadata& meta) {
    if (out.empty()) return;
    state.best_top1 = result.best_top1;
    state.best_epoch = result.best_epoch;
    {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      state.cpu_rng = generator.get_state();
    }
    state.momentum = momentum_by_name(*model, optimizer);
    state.amp = scaler.enabled() ? scaler.state() : nlohmann::json::object();
    save_checkpoint(*model, meta, out + "/checkpoint.pt", training_state_files(state));
  };
  const double seconds_before = state.seconds;
  const auto run_start = Clock::now();
  const int64_t positions_per_step = batch_size * world;
  const int64_t positions_per_epoch = steps_per_epoch * positions_per_step;
  for (int64_t epoch = state.epoch; epoch < options.epochs(); ++epoch) {
    model->train();
    if (options.freeze_backbone()) model->backbone->eval();
    data.train->reset_at(epoch, state.consumed);
    EpochRecord record;
    record.epoch = epoch + 1;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    if (state.consumed > 0 && !state.epoch_progress.empty()) {
      const auto& p = state.epoch_progress;
      loss_sum = p.at("loss_sum").get<double>();
      correct = p.at("correct").get<int64_t>();
      seen = p.at("seen").get<int64_t>();
      record.lr = p.at("lr").get<double>();
      record.data_seconds = p.at("data_seconds").get<double>();
      record.compute_seconds = p.at("compute_seconds").get<double>();
    }
    int64_t step = state.consumed / positions_per_step;
    util::ProgressBar bar(options.label() + " epoch " + std::to_string(epoch + 1) + "/" +
                              std::to_string(options.epochs()),
                          steps_per_epoch, progress);
    const auto epoch_start = Clock::now();
    auto wait_start = Clock::now();
    char status[160] = "";
    while (auto batch = data.train->next()) {
      record.data_seconds += seconds_since(wait_start);
      const auto compute_start = Clock::now();
      // (consumed / positions_per_epoch is step / steps_per_epoch at the run's own world size.)
      const double lr = learning_rate(
          schedule, epoch + static_cast<double>(state.consumed) / static_cast<double>(positions_per_epoch));
      set_lr(lr);
      record.lr = lr;
      auto images = util::to_device(batch->images, options.device());
      auto labels = util::to_device(batch->labels, options.device());
      if (options.channels_last()) images = images.contiguous(torch::MemoryFormat::ChannelsLast);
      nn::HeadOutput output;
      torch::Tensor loss;
      {
        AutocastGuard autocast(options.device(), options.precision());
        output = model->forward(images);
        loss = nn::head_loss(output, labels, options.loss());
      }
      clear_gradients(optimizer);
      if (averager) averager->prepare();
      scaler.scale(loss).backward();
      if (averager) {
        averager->finish();
      } else if (dist) {
        dist->average_gradients(*model);
      }
      scaler.step(optimizer);
      scaler.update();
      const double loss_value = loss.item<double>();
      TORCH_CHECK(std::isfinite(loss_value), "training diverged: loss is ", loss_value, " at epoch ", epoch + 1,
                  ", step ", step + 1, " (lr ", lr, "); lower --lr or check the data",
                  out.empty() ? std::string()
                              : "; the last good checkpoint (" + out + "/checkpoint.pt) is kept as it was");
      const int64_t n = labels.size(0);
      loss_sum += loss_value * n;
      correct += output.logits.argmax(1).eq(labels).sum().item<int64_t>();
      seen += n;
      ++step;
      state.step = step;
      ++state.global_step;
      state.consumed += positions_per_step;
      record.compute_seconds += seconds_since(compute_start);
      const double elapsed = seconds_since(epoch_start);
      std::snprintf(status, sizeof status, "loss %.4f acc %.2f%% %.0f img/s (data %.0f%%)", loss_sum / seen,
                    100.0 * correct / seen, seen / elapsed,
                    100.0 * record.data_seconds / std::max(1e-9, record.data_seconds + record.compute_seconds));
      bar.update(step, status);

      const int stop = options.stop_requested() ? agree_on_stop(options.stop_requested()(), dist) : 0;
      const bool periodic = options.checkpoint_every() > 0 && state.global_step % options.checkpoint_every() == 0;
      if (stop || periodic) {
        state.epoch = epoch;
        state.seconds = seconds_before + seconds_since(run_start);
        state.epoch_progress = {{"loss_sum", loss_sum},
                                {"correct", correct},
                                {"seen", seen},
                                {"lr", record.lr},
                                {"data_seconds", record.data_seconds},
                                {"compute_seconds", record.compute_seconds}};
        save_checkpoint_pt(metadata);
      }
      if (stop) {
        bar.finish(status);
        result.stopped_by = stop;
        result.stopped_epoch = epoch + 1;
        result.stopped_step = step;
        result.seconds = seconds_before + seconds_since(run_start);
        return result;
      }
      wait_start = Clock::now();
    }
    bar.finish(status);
    record.train_loss = seen ? loss_sum / seen : 0.0;
    record.train_top1 = seen ? static_cast<double>(correct) / seen : 0.0;
    record.images_per_second = seen / std::max(1e-9, record.data_seconds + record.compute_seconds);
    eval::Reducer reduce;
    if (dist) reduce = [&dist](std::vector<torch::Tensor>& t) { dist->all_reduce_sum(t); };
    record.val = eval::evaluate(*model, *data.val, false, options.device(), reduce);
    if (progress) {
      std::fprintf(stderr, "%s epoch %lld: val top1 %.2f%% top5 %.2f%% loss %.4f", options.label().c_str(),
                   static_cast<long long>(epoch + 1), 100 * record.val.top1, 100 * record.val.top5, record.val.loss);
      if (record.val.head_top1.size() > 1) {
        std::fprintf(stderr, " heads");
        for (auto h : record.val.head_top1) std::fprintf(stderr, " %.2f", 100 * h);
        std::fprintf(stderr, " oracle %.2f%%", 100 * record.val.oracle);
      }
      std::fprintf(stderr, "\n");
    }
    const bool best = record.val.top1 > result.best_top1 || epoch == 0;
    if (best) {
      result.best_top1 = record.val.top1;
      result.best_epoch = epoch + 1;
    }
    result.history.push_back(record);
    state.history.push_back(to_json(record));
    state.epoch = epoch + 1;
    state.consumed = 0;
    state.step = 0;
    state.epoch_progress = nlohmann::json::object();
    state.seconds = seconds_before + seconds_since(run_start);
    if (!out.empty()) {
      metadata.epoch = epoch + 1;
      metadata.extra["metrics"] = eval::to_json(record.val);
      // best.pt before checkpoint.pt: a kill between the two repeats this epoch on resume,
      // which rewrites the same best.pt.
      if (best) save_checkpoint(*model, metadata, out + "/best.pt");
      save_checkpoint_pt(metadata);
      util::append_to_file(out + "/metrics.jsonl", to_json(record).dump() + "\n");
    }
  }
  result.seconds = seconds_before + seconds_since(run_start);
  if (!out.empty()) {
    nlohmann::json summary = {{"best_top1", result.best_top1},
                              {"best_epoch", result.best_epoch},
                              {"seconds", result.seconds},
                              {"params", nn::count_parameters(*model)},
                              {"head_params", nn::count_parameters(*model->head.ptr())},
                              {"final", to_json(result.history.back())},
                              {"model", to_json(metadata)},
                              {"build", to_json(build_info())}};
    util::write_file_atomic(out + "/summary.json", summary.dump(2) + "\n");
  }
  return result;
}

}  // namespace splitshare::train
