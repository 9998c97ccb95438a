#include <splitshare/train/fit.h>

#include "fit_detail.h"

#include <splitshare/util/files.h>
#include <splitshare/util/progress.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

namespace splitshare::train {
namespace detail {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

namespace {

// Checkpoints need room for the model, its momentum, best.pt and a temporary copy.
int64_t needed_free_bytes(torch::nn::Module& module) {
  int64_t bytes = 0;
  for (const auto& t : module.parameters()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  for (const auto& t : module.buffers()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  return 4 * 2 * bytes + (16 << 20);
}

}  // namespace

void prepare_out_dir(const std::string& dir, torch::nn::Module& model) {
  util::check_output_folder(dir, needed_free_bytes(model));
  // Left by a run killed while writing; the files they would have replaced are intact.
  for (const char* name : {"checkpoint.pt.tmp", "best.pt.tmp", "summary.json.tmp", "metrics.jsonl.tmp"}) {
    std::filesystem::remove(dir + "/" + name);
  }
}

std::vector<ParameterGroup> parameter_groups(nn::ClassifierImpl& model, double base_lr, const TrainOptions& options) {
  TORCH_CHECK(options.head_lr() >= 0, "head_lr must be >= 0, got ", options.head_lr());
  const double head_lr = options.head_lr() > 0 ? options.head_lr() : base_lr;
  std::vector<ParameterGroup> groups;
  auto backbone = model.backbone->parameters();
  if (options.freeze_backbone()) {
    for (auto& p : backbone) p.set_requires_grad(false);
  } else {
    groups.push_back({backbone, 1.0, true});
  }
  groups.push_back({model.head.ptr()->parameters(), head_lr / base_lr, true});
  return options.no_decay_bn_bias() ? split_no_decay(groups) : groups;
}

OptimizerOptions optimizer_options(const TrainOptions& o) {
  return OptimizerOptions()
      .kind(o.optimizer())
      .momentum(o.momentum())
      .nesterov(o.nesterov())
      .weight_decay(o.weight_decay())
      .betas(o.betas())
      .eps(o.eps());
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_named_parameters(nn::ClassifierImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model.named_parameters()) out.emplace_back(nn::export_name(item.key()), item.value());
  return out;
}

// Refuses to continue a run under different settings (except a longer one).
void check_resumable(const TrainingState& state, const TrainOptions& options, const std::string& path) {
  TORCH_CHECK(state.batch_size == options.batch_size(), path, ": the run used batch size ", state.batch_size, ", not ",
              options.batch_size(), "; resume with the same batch size");
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

}  // namespace detail

nlohmann::json to_json(const TrainOptions& o) {
  return {{"epochs", o.epochs()},
          {"lr", o.lr()},
          {"momentum", o.momentum()},
          {"weight_decay", o.weight_decay()},
          {"nesterov", o.nesterov()},
          {"loss", nn::to_string(o.loss())},
          {"individual_reduction", nn::to_string(o.individual_reduction())},
          {"schedule", to_string(o.schedule())},
          {"milestones", o.milestones()},
          {"warmup_epochs", o.warmup_epochs()},
          {"head_lr", o.head_lr()},
          {"freeze_backbone", o.freeze_backbone()},
          {"channels_last", o.channels_last()},
          {"precision", to_string(o.precision())},
          {"sync_batch_norm", o.sync_batch_norm()},
          {"optimizer", to_string(o.optimizer())},
          {"betas", o.betas()},
          {"eps", o.eps()},
          {"no_decay_bn_bias", o.no_decay_bn_bias()},
          {"label_smoothing", o.label_smoothing()},
          {"class_weights", o.class_weights()},
          {"mixup", o.mixup()},
          {"cutmix", o.cutmix()},
          {"ema_decay", o.ema_decay()},
          {"ema_best", o.ema_best()},
          {"clip_grad_norm", o.clip_grad_norm()},
          {"accum_steps", o.accum_steps()},
          {"batch_size", o.batch_size()}};
}


FitObserver progress_printer(const std::string& label) {
  // One bar per epoch, opened by the epoch's first report and closed by its last.
  auto bar = std::make_shared<std::unique_ptr<util::ProgressBar>>();
  FitObserver observer;
  observer.on_step = [label, bar](const StepReport& r) {
    if (!*bar) {
      *bar = std::make_unique<util::ProgressBar>(
          label + " epoch " + std::to_string(r.epoch) + "/" + std::to_string(r.epochs), r.steps);
    }
    char status[160];
    std::snprintf(status, sizeof status, "loss %.4f acc %.2f%% %.0f img/s (data %.0f%%)", r.loss, 100.0 * r.top1,
                  r.images_per_second, 100.0 * r.data_fraction);
    if (r.last) {
      (*bar)->finish(status);
      bar->reset();
    } else {
      (*bar)->update(r.step, status);
    }
  };
  observer.on_epoch = [label](const run::EpochRecord& r) {
    std::fprintf(stderr, "%s epoch %lld: val top1 %.2f%% top5 %.2f%% loss %.4f", label.c_str(),
                 static_cast<long long>(r.epoch), 100 * r.val.top1, 100 * r.val.top5, r.val.loss);
    if (r.val.head_top1.size() > 1) {
      std::fprintf(stderr, " heads");
      for (auto h : r.val.head_top1) std::fprintf(stderr, " %.2f", 100 * h);
      std::fprintf(stderr, " oracle %.2f%%", 100 * r.val.oracle);
    }
    if (r.ema_val) std::fprintf(stderr, "; EMA top1 %.2f%%", 100 * r.ema_val->top1);
    std::fprintf(stderr, "\n");
  };
  observer.on_note = [label](const std::string& text) { std::fprintf(stderr, "%s: %s\n", label.c_str(), text.c_str()); };
  return observer;
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

}  // namespace splitshare::train
