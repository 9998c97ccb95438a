#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/data/image_folder.h>
#include <splitshare/explain/run_figures.h>
#include <splitshare/report/html.h>
#include <splitshare/util/build_info.h>
#include <splitshare/train/fit.h>
#include <splitshare/util/device.h>

#include <splitshare/util/signals.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace splitshare::cli {
namespace {

// What `train --resume DIR` accepts besides --resume; the rest comes from DIR/checkpoint.pt.
const std::set<std::string>& resume_overrides() {
  static const std::set<std::string> names = {"epochs", "threads", "no-progress", "checkpoint-every", "dist-timeout"};
  return names;
}

// The arguments of a run as `--name=value`, stored in its checkpoints for --resume.
std::vector<std::string> stored_arguments(const cxxopts::ParseResult& args) {
  std::vector<std::string> out;
  for (const auto& kv : args.arguments()) {
    const auto& key = kv.key();
    if (key != "resume" && key != "out" && key != "help" && key != "overwrite") out.push_back("--" + key + "=" + kv.value());
  }
  return out;
}

// The arguments of the run in `dir` with the overrides given now.
cxxopts::ParseResult resume_arguments(cxxopts::Options& options, const cxxopts::ParseResult& given,
                                      const std::string& dir) {
  const std::string path = dir + "/checkpoint.pt";
  const auto metadata = train::read_checkpoint_metadata(path);
  const auto& config = metadata.extra.value("config", nlohmann::json::object());
  TORCH_CHECK(config.contains("args"), path, ": records no `splitshare train` arguments (written by another command "
              "or an older version); it cannot be resumed");
  for (const auto& kv : given.arguments()) {
    std::error_code ec;
    const bool same_out = kv.key() == "out" && std::filesystem::equivalent(kv.value(), dir, ec);
    TORCH_CHECK(kv.key() == "resume" || same_out || resume_overrides().count(kv.key()), "--", kv.key(),
                " cannot be combined with --resume: the run's configuration comes from ", path,
                " (only --epochs, --threads, --no-progress, --checkpoint-every and --dist-timeout may be given)");
  }
  std::vector<std::string> storage = {"splitshare train"};
  for (const auto& arg : config.at("args").get<std::vector<std::string>>()) {
    const auto name = arg.substr(2, arg.find('=') - 2);
    if (!given.count(name) || !resume_overrides().count(name)) storage.push_back(arg);
  }
  for (const auto& kv : given.arguments()) {
    if (resume_overrides().count(kv.key())) storage.push_back("--" + kv.key() + "=" + kv.value());
  }
  storage.push_back("--out=" + dir);
  std::vector<char*> argv;
  for (auto& arg : storage) argv.push_back(arg.data());
  return options.parse(static_cast<int>(argv.size()), argv.data());
}

// Joins the process group of a torchrun/SLURM/launch job: this rank's device, the collectives'
// backend, and its shard of the data.
void join_job(train::DistributedOptions& job, train::Backend backend, int64_t timeout, train::RunContext& context,
              data::DataOptions& data_opts) {
  TORCH_CHECK(timeout > 0, "--dist-timeout must be a positive number of seconds, got ", timeout);
  context.device(util::device_for_rank(context.device(), job.local_rank()));
  context.distributed(
      train::Distributed::connect(job.backend(backend).device(context.device()).timeout_seconds(timeout)));
  data_opts.rank(job.rank()).world_size(job.world_size());
  if (job.rank() == 0) {
    std::fprintf(stderr, "splitshare train: rank 0 of %lld (%s, rendezvous %s:%lld)\n",
                 static_cast<long long>(job.world_size()), train::to_string(backend).c_str(),
                 job.master_addr().c_str(), static_cast<long long>(job.master_port()));
  }
}

// The model to train: the resumed run's architecture (fit loads its tensors), --init's
// weights, or a fresh one from the model options and the data.
nn::Classifier build_model(const cxxopts::ParseResult& args, const train::RunContext& context,
                           const data::DataBundle& bundle, nn::ClassifierOptions& model_opts) {
  const auto classes = static_cast<int64_t>(bundle.classes.size());
  if (!context.resume_from().empty()) {
    model_opts = train::read_checkpoint_metadata(context.resume_from()).model;
    return nn::make_classifier(model_opts);
  }
  if (args.count("init")) return init_model(args, classes, bundle.preprocess.channels, model_opts);
  model_opts = model_options(args, classes, bundle.preprocess.channels, bundle.small_images);
  return nn::make_classifier(model_opts);
}

// What checkpoints record of how the run was started (resume replays "args").
nlohmann::json run_config(const cxxopts::ParseResult& args, const train::TrainOptions& train,
                          const data::DataOptions& data_opts, int threads) {
  nlohmann::json config = {{"data", args["data"].as<std::string>()},
                           {"epochs", train.epochs()},
                           {"batch_size", data_opts.batch_size()},
                           {"loss", nn::to_string(train.loss())},
                           {"schedule", train::to_string(train.schedule())},
                           {"seed", data_opts.seed()},
                           {"precision", train::to_string(train.precision())},
                           {"threads", threads},
                           {"args", stored_arguments(args)}};
  if (args.count("init")) config["init"] = args["init"].as<std::string>();
  if (train.freeze_backbone()) config["freeze_backbone"] = true;
  if (train.head_lr() > 0) config["head_lr"] = train.head_lr();
  return config;
}

void print_start(const nn::ClassifierOptions& model_opts, nn::ClassifierImpl& model, const data::DataBundle& bundle,
                 const train::TrainOptions& train, const train::RunContext& context, int threads) {
  std::fprintf(stderr, "splitshare train: %s\n", train::to_string(train::build_info()).c_str());
  std::fprintf(stderr, "splitshare train: %s + %s head, %lld classes, %lld params, %lld training samples, %d threads\n",
               model_opts.arch().c_str(), nn::to_string(model_opts.head().kind()).c_str(),
               static_cast<long long>(model_opts.num_classes()), static_cast<long long>(nn::count_parameters(model)),
               static_cast<long long>(bundle.train->size()), threads);
  const int64_t world = context.distributed() ? context.distributed()->world_size() : 1;
  const int64_t step_batch = train.batch_size() * train.accum_steps() * world;
  std::fprintf(stderr, "splitshare train: %s lr %g, momentum %g, weight decay %g%s, %s schedule, %lld epochs of batch "
               "%lld%s\n", train::to_string(train.optimizer()).c_str(),
               train.lr() > 0 ? train.lr() : train::default_base_lr(train.optimizer(), step_batch), train.momentum(),
               train.weight_decay(), train.no_decay_bn_bias() ? " (not on BatchNorm and biases)" : "",
               train::to_string(train.schedule()).c_str(), static_cast<long long>(train.epochs()),
               static_cast<long long>(train.batch_size()),
               ((train.accum_steps() > 1 ? " x " + std::to_string(train.accum_steps()) + " accumulated" : std::string()) +
                (world > 1 ? " x " + std::to_string(world) + " ranks" : std::string()))
                   .c_str());
  if (!bundle.val_files.empty()) {
    std::fprintf(stderr, "splitshare train: validation split: %zu files held out (listed in val_files.txt)\n",
                 bundle.val_files.size());
  }
  if (bundle.holdout.defined()) {
    std::fprintf(stderr, "splitshare train: gate hold-out: %lld training samples left out (splitshare select trains "
                 "a gate on them)\n", static_cast<long long>(bundle.holdout.numel()));
  }
  if (!context.device().is_cpu() || train.precision() != train::Precision::kFloat32 || train.sync_batch_norm()) {
    std::fprintf(stderr, "splitshare train: device %s, %s%s\n", context.device().str().c_str(),
                 train::to_string(train.precision()).c_str(), train.sync_batch_norm() ? ", SyncBatchNorm" : "");
  }
}

// A single-root image folder's split, recorded for --resume and eval.
void write_val_files(const data::DataBundle& bundle, const std::string& out_dir) {
  if (out_dir.empty() || bundle.val_files.empty()) return;
  std::filesystem::create_directories(out_dir);
  data::write_val_files(bundle.val_files, out_dir + "/" + data::kValFilesName);
}

// Rank 0 after fit: how to resume an interrupted run, or the final figures and the report.
// Returns the exit status.
int finish(const train::TrainResult& result, nn::ClassifierImpl& model, data::DataBundle& bundle,
           const std::string& out_dir, bool best_is_ema) {
  if (result.stopped_by) {
    if (out_dir.empty()) {
      std::fprintf(stderr, "splitshare train: interrupted at epoch %lld step %lld (no --out, so no checkpoint)\n",
                   static_cast<long long>(result.stopped_epoch), static_cast<long long>(result.stopped_step));
    } else {
      std::fprintf(stderr, "splitshare train: interrupted at epoch %lld step %lld; checkpoint %s/checkpoint.pt; "
                   "resume with: splitshare train --resume %s\n",
                   static_cast<long long>(result.stopped_epoch), static_cast<long long>(result.stopped_step),
                   out_dir.c_str(), out_dir.c_str());
    }
    return 128 + result.stopped_by;
  }
  const auto& last = result.history.back();
  char ema[32] = "";
  if (last.ema_val) std::snprintf(ema, sizeof ema, " (EMA %.2f%%)", 100 * last.ema_val->top1);
  std::printf("final top-1 %.2f%%%s  top-5 %.2f%%  best%s %.2f%% (epoch %lld)  %.0fs  -> %s\n", 100 * last.val.top1,
              ema, 100 * last.val.top5, best_is_ema ? " (EMA)" : "", 100 * result.best_top1,
              static_cast<long long>(result.best_epoch), result.seconds, out_dir.c_str());
  if (out_dir.empty()) return 0;
  model.to(torch::kCPU);  // the report runs on the CPU
  try {
    explain::write_gradcam_figure(model, bundle, out_dir);
    std::fprintf(stderr, "report: %s\n", report::write_report(out_dir).c_str());
  } catch (const c10::Error& e) {  // the run itself succeeded; the report is a by-product
    std::fprintf(stderr, "splitshare train: warning: report not written: %s\n", e.what_without_backtrace());
  }
  return 0;
}

}  // namespace

// A GPU gets uint8 batches in page-locked memory and normalises them itself (--uint8-transfer).
void apply_transfer(const cxxopts::ParseResult& args, const torch::Device& device, data::DataOptions& data_opts) {
  const auto mode = args["uint8-transfer"].as<std::string>();
  TORCH_CHECK(mode == "auto" || mode == "on" || mode == "off", "--uint8-transfer: expected auto, on or off, got '", mode,
              "'");
  data_opts.uint8_train_images(mode == "on" || (mode == "auto" && device.is_cuda())).pin_memory(device.is_cuda());
}

// A rank or the network failed mid-run: say where the last checkpoint is and how to go on.
train::TrainResult fit_or_explain(nn::Classifier& model, data::DataBundle& bundle, const train::TrainOptions& train,
                                  const train::RunContext& context, const train::CheckpointMetadata& metadata) {
  try {
    return train::fit(model, bundle, train, context, metadata);
  } catch (const train::DistributedError& e) {
    const auto out = context.out_dir();
    const bool main_rank = !context.distributed() || context.distributed()->is_main();
    const auto resume = "; continue on the hosts left (any world size) with: splitshare train --resume " + out;
    std::string hint;
    if (!main_rank) {
      hint = "checkpoints are written by rank 0 (" + out + "/checkpoint.pt on its host)" + resume;
    } else if (std::filesystem::exists(out + "/checkpoint.pt")) {
      hint = "the last checkpoint is " + out + "/checkpoint.pt" + resume;
    } else {
      hint = "no checkpoint was written before the failure (--checkpoint-every N writes one every N steps)";
    }
    throw train::DistributedError(std::string(e.what()) + "\n" + hint);
  }
}

int run_train(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Train a classifier; writes OUT/metrics.jsonl, summary.json, checkpoint.pt, best.pt");
  add_model_options(options);
  add_data_options(options);
  const TrainDefaults defaults;
  add_train_options(options, defaults);
  add_recipe_options(options);
  add_finetune_options(options);
  add_thread_option(options);
  options.add_options("Device")
      ("uint8-transfer", "training batches cross to the device as uint8 and are normalised there (a quarter of the "
                         "bytes; photos rounded to whole grey levels): auto (on for CUDA) | on | off",
       cxxopts::value<std::string>()->default_value("auto"));
  options.add_options("Distributed")
      ("backend", "collectives under launch/torchrun/SLURM: auto | gloo | nccl (auto: NCCL with --device cuda, "
                  "Gloo on the CPU)", cxxopts::value<std::string>()->default_value("auto"))
      ("dist-timeout", "seconds a rank waits for the others (rendezvous, each collective) before it stops with an "
                       "error naming the failure",
       number<int64_t>()->default_value(text(train::DistributedOptions().timeout_seconds())));
  add_overwrite_option(options);
  options.add_options("Checkpoints")
      ("resume", "continue the run in DIR where it stopped (configuration from DIR/checkpoint.pt; only --epochs, "
                 "--threads, --no-progress, --checkpoint-every and --dist-timeout may be given)", cxxopts::value<std::string>())
      ("checkpoint-every", "also write checkpoint.pt every N steps (0 = after each epoch only)",
       number<int64_t>()->default_value("0"));
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  const std::string resume_dir = args->count("resume") ? (*args)["resume"].as<std::string>() : std::string();
  if (!resume_dir.empty()) args = resume_arguments(options, *args, resume_dir);
  // Writes past `ulimit -f` then fail with EFBIG, reported like a full disk, instead of
  // killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  const util::StopSignals signals;
  // Under torchrun, SLURM or `splitshare launch`: join the process group, shard the data,
  // and split the cores between the processes of this machine unless --threads is given.
  auto job = train::distributed_from_env();
  const int threads = configure_threads(*args, job ? job->local_world_size() : 1);
  std::string precision_note;
  auto train = train_options(*args, &precision_note);
  apply_finetune_options(*args, train);
  apply_recipe_options(*args, train);
  auto context = run_context(*args, defaults);
  TORCH_CHECK((*args)["checkpoint-every"].as<int64_t>() >= 0, "--checkpoint-every must be >= 0");
  context.checkpoint_every((*args)["checkpoint-every"].as<int64_t>())
      .stop_requested([&signals] { return signals.pending(); });
  if (!resume_dir.empty()) context.resume_from(resume_dir + "/checkpoint.pt");
  auto data_opts = data_options(*args);
  apply_data_recipe(*args, data_opts);
  apply_transfer(*args, context.device(), data_opts);
  // A resumed (or re-run) split run keeps the validation files it recorded.
  const auto recorded = context.out_dir() + "/" + data::kValFilesName;
  if (!resume_dir.empty() && std::filesystem::exists(recorded)) data_opts.val_files(data::read_val_files(recorded));
  // Checked before any data is read, with or without a job: nccl on the CPU is refused here.
  const auto backend = train::resolve_backend(train::parse_backend((*args)["backend"].as<std::string>()), context.device());
  // Rank 0 writes the run folder, so it alone claims it, before any data is read.
  const bool main_rank = !job || job->rank() == 0;
  TORCH_CHECK(resume_dir.empty() || !args->count("overwrite"), "--overwrite and --resume contradict each other");
  const auto claim = main_rank ? claim_output(*args, context.out_dir(), "train", !resume_dir.empty(),
                                              "continue it with `splitshare train --resume " + context.out_dir() + "`")
                               : nullptr;
  if (job) join_job(*job, backend, (*args)["dist-timeout"].as<int64_t>(), context, data_opts);
  auto bundle = data::open_data(data_spec(*args), data_opts);
  apply_weight_decay(*args, bundle.small_images, train);
  apply_class_weights(*args, bundle, train);
  torch::manual_seed(data_opts.seed());
  nn::ClassifierOptions model_opts;
  auto model = build_model(*args, context, bundle, model_opts);
  auto metadata = fresh_metadata(model_opts, bundle);
  metadata.extra["config"] = run_config(*args, train, data_opts, threads);
  if (main_rank) std::fprintf(stderr, "splitshare train: %s\n", precision_note.c_str());
  if (main_rank) print_start(model_opts, *model, bundle, train, context, threads);
  if (main_rank) note_small_image_folder(bundle, data_opts, "train");
  if (main_rank) write_val_files(bundle, context.out_dir());
  const auto result = fit_or_explain(model, bundle, train, context, metadata);
  if (!main_rank) return result.stopped_by ? 128 + result.stopped_by : 0;
  return finish(result, *model, bundle, context.out_dir(), train.ema_decay() > 0 && train.ema_best());
}

}  // namespace splitshare::cli
