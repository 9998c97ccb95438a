#include <splitshare/train/trainer.h>
#include <splitshare/util/progress.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace splitshare::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << '\n';
  out.flush();
  TORCH_CHECK(out.good(), "could not append to ", path, " (disk full or not writable?)");
}

void write_json(const std::string& path, const nlohmann::json& json) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << json.dump(2) << '\n';
    out.flush();
    TORCH_CHECK(out.good(), "could not write ", temporary, " (disk full or not writable?)");
  }
  std::filesystem::rename(temporary, path);
}

void prepare_out_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TORCH_CHECK(!ec && std::filesystem::is_directory(dir), "output folder ", dir, " cannot be created: ", ec.message());
  const std::string probe = dir + "/.write-test";
  {
    std::ofstream out(probe);
    out << "ok";
    TORCH_CHECK(out.good(), "output folder ", dir, " is not writable");
  }
  std::filesystem::remove(probe);
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

}  // namespace

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
  const auto steps_per_epoch = data.train->batches_per_epoch();
  TORCH_CHECK(steps_per_epoch >= 1, "the training set yields no full batch of ", batch_size,
              " samples; lower --batch-size");
  const auto& dist = options.distributed();
  const bool main_rank = !dist || dist->is_main();
  const std::string out = main_rank ? options.out_dir() : std::string();
  const bool progress = options.progress() && main_rank;
  if (!out.empty()) {
    prepare_out_dir(out);
    std::filesystem::remove(out + "/metrics.jsonl");
  }

  model->to(options.device());
  if (options.channels_last()) to_channels_last(*model);
  if (dist) dist->broadcast_module(*model);
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
  // Every group follows the schedule, scaled by its own base rate.
  auto set_lr = [&](double lr) {
    auto& param_groups = optimizer.param_groups();
    for (size_t i = 0; i < param_groups.size(); ++i) {
      static_cast<torch::optim::SGDOptions&>(param_groups[i].options()).lr(lr * groups.lr_factors[i]);
    }
  };

  TrainResult result;
  const auto run_start = Clock::now();
  for (int64_t epoch = 0; epoch < options.epochs(); ++epoch) {
    model->train();
    if (options.freeze_backbone()) model->backbone->eval();
    data.train->reset(epoch);
    EpochRecord record;
    record.epoch = epoch + 1;
    util::ProgressBar bar(options.label() + " epoch " + std::to_string(epoch + 1) + "/" +
                              std::to_string(options.epochs()),
                          steps_per_epoch, progress);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    const auto epoch_start = Clock::now();
    auto wait_start = Clock::now();
    char status[160] = "";
    while (auto batch = data.train->next()) {
      record.data_seconds += seconds_since(wait_start);
      const auto compute_start = Clock::now();
      const double lr = learning_rate(schedule, epoch + static_cast<double>(step) / steps_per_epoch);
      set_lr(lr);
      record.lr = lr;
      auto images = batch->images.to(options.device(), /*non_blocking=*/true);
      auto labels = batch->labels.to(options.device(), /*non_blocking=*/true);
      if (options.channels_last()) images = images.contiguous(torch::MemoryFormat::ChannelsLast);
      auto output = model->forward(images);
      auto loss = nn::head_loss(output, labels, options.loss());
      clear_gradients(optimizer);
      loss.backward();
      if (dist) dist->average_gradients(*model);
      optimizer.step();
      const double loss_value = loss.item<double>();
      TORCH_CHECK(std::isfinite(loss_value), "training diverged: loss is ", loss_value, " at epoch ", epoch + 1,
                  ", step ", step + 1, " (lr ", lr, "); lower --lr or check the data");
      const int64_t n = labels.size(0);
      loss_sum += loss_value * n;
      correct += output.logits.argmax(1).eq(labels).sum().item<int64_t>();
      seen += n;
      ++step;
      record.compute_seconds += seconds_since(compute_start);
      const double elapsed = seconds_since(epoch_start);
      std::snprintf(status, sizeof status, "loss %.4f acc %.2f%% %.0f img/s (data %.0f%%)", loss_sum / seen,
                    100.0 * correct / seen, seen / elapsed,
                    100.0 * record.data_seconds / std::max(1e-9, record.data_seconds + record.compute_seconds));
      bar.update(step, status);
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
    if (!out.empty()) {
      append_line(out + "/metrics.jsonl", to_json(record).dump());
      metadata.epoch = epoch + 1;
      metadata.extra["metrics"] = eval::to_json(record.val);
      save_checkpoint(*model, metadata, out + "/checkpoint.pt");
      if (best) save_checkpoint(*model, metadata, out + "/best.pt");
    }
  }
  result.seconds = seconds_since(run_start);
  if (!out.empty()) {
    nlohmann::json summary = {{"best_top1", result.best_top1},
                              {"best_epoch", result.best_epoch},
                              {"seconds", result.seconds},
                              {"params", nn::count_parameters(*model)},
                              {"head_params", nn::count_parameters(*model->head.ptr())},
                              {"final", to_json(result.history.back())},
                              {"model", to_json(metadata)}};
    write_json(out + "/summary.json", summary);
  }
  return result;
}

}  // namespace splitshare::train
