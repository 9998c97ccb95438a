#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/report/html.h>
#include <splitshare/train/trainer.h>
#include <splitshare/util/device.h>

#include <cstdio>

namespace splitshare::cli {

int run_train(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Train a classifier; writes OUT/metrics.jsonl, summary.json, checkpoint.pt, best.pt");
  add_model_options(options);
  add_data_options(options);
  add_train_options(options, TrainDefaults{});
  add_finetune_options(options);
  add_thread_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  // Under torchrun, SLURM or `splitshare launch`: join the process group, shard the data,
  // and split the cores between the processes of this machine unless --threads is given.
  auto job = train::distributed_from_env();
  const int threads = configure_threads(*args, job ? job->local_world_size() : 1);
  auto train = train_options(*args);
  apply_finetune_options(*args, train);
  auto data_opts = data_options(*args);
  if (job) {
    train.distributed(train::Distributed::connect(*job));
    train.device(util::device_for_rank(train.device(), job->local_rank()));
    data_opts.rank(job->rank()).world_size(job->world_size());
    if (job->rank() == 0) {
      std::fprintf(stderr, "splitshare train: rank 0 of %lld (Gloo, rendezvous %s:%lld)\n",
                   static_cast<long long>(job->world_size()), job->master_addr().c_str(),
                   static_cast<long long>(job->master_port()));
    }
  }
  auto spec = data_spec(*args);
  auto bundle = data::open_data(spec, data_opts);
  const auto classes = static_cast<int64_t>(bundle.classes.size());
  torch::manual_seed(data_opts.seed());
  nn::ClassifierOptions model_opts;
  nn::Classifier model{nullptr};
  if (args->count("init")) {
    model = init_model(*args, classes, bundle.preprocess.channels, model_opts);
  } else {
    model_opts = model_options(*args, classes, bundle.preprocess.channels, bundle.small_images);
    model = nn::make_classifier(model_opts);
  }
  auto metadata = fresh_metadata(model_opts, bundle);
  metadata.extra["config"] = {{"data", args->operator[]("data").as<std::string>()},
                              {"epochs", train.epochs()},
                              {"batch_size", data_opts.batch_size()},
                              {"loss", nn::to_string(train.loss())},
                              {"schedule", train::to_string(train.schedule())},
                              {"seed", data_opts.seed()},
                              {"threads", threads}};
  if (args->count("init")) metadata.extra["config"]["init"] = (*args)["init"].as<std::string>();
  if (train.freeze_backbone()) metadata.extra["config"]["freeze_backbone"] = true;
  if (train.head_lr() > 0) metadata.extra["config"]["head_lr"] = train.head_lr();
  const bool main_rank = !job || job->rank() == 0;
  if (main_rank) {
    std::fprintf(stderr, "splitshare train: %s + %s head, %lld classes, %lld params, %lld training samples, %d threads\n",
               model_opts.arch().c_str(), nn::to_string(model_opts.head().kind()).c_str(),
               static_cast<long long>(model_opts.num_classes()), static_cast<long long>(nn::count_parameters(*model)),
               static_cast<long long>(bundle.train->size()), threads);
    if (!train.device().is_cpu() || train.precision() != train::Precision::kFloat32 || train.sync_batch_norm()) {
      std::fprintf(stderr, "splitshare train: device %s, %s%s\n", train.device().str().c_str(),
                   train::to_string(train.precision()).c_str(), train.sync_batch_norm() ? ", SyncBatchNorm" : "");
    }
  }
  auto result = train::fit(model, bundle, data_opts.batch_size(), train, metadata);
  if (!main_rank) return 0;
  const auto& last = result.history.back();
  std::printf("final top-1 %.2f%%  top-5 %.2f%%  best %.2f%% (epoch %lld)  %.0fs  -> %s\n", 100 * last.val.top1,
              100 * last.val.top5, 100 * result.best_top1, static_cast<long long>(result.best_epoch), result.seconds,
              train.out_dir().c_str());
  if (!train.out_dir().empty()) {
    model->to(torch::kCPU);  // the report runs on the CPU
    try {
      report::write_gradcam_figure(*model, bundle, train.out_dir());
      std::fprintf(stderr, "report: %s\n", report::write_report(train.out_dir()).c_str());
    } catch (const c10::Error& e) {  // the run itself succeeded; the report is a by-product
      std::fprintf(stderr, "splitshare train: warning: report not written: %s\n", e.what_without_backtrace());
    }
  }
  return 0;
}

}  // namespace splitshare::cli
