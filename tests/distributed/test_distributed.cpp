// Data-parallel training on c10d Gloo: ranks run as threads in this process on a
// FileStore (the pattern of PyTorch's own ProcessGroupGlooTest).
#include <splitshare/data/loader.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/distributed/distributed.h>

#include <nlohmann/json.hpp>

#include "ranks.h"
#include "support.h"

#include <cstdlib>
#include <unistd.h>

namespace tr = splitshare::train;
using splitshare::testing::run_command;
using splitshare::testing::run_ranks;
using splitshare::testing::TempDir;

namespace {

// No BatchNorm: per-rank batch statistics would make the two-rank run differ from the
// single-process one, so the equivalence is tested on a model without it.
torch::nn::Sequential make_model() {
  torch::manual_seed(7);
  return torch::nn::Sequential(torch::nn::Linear(6, 8), torch::nn::ReLU(), torch::nn::Linear(8, 3));
}

void train_steps(torch::nn::Sequential& model, const torch::Tensor& x, const torch::Tensor& y, int steps,
                 tr::Distributed* dist) {
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  for (int s = 0; s < steps; ++s) {
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    opt.zero_grad();
    loss.backward();
    if (dist) dist->average_gradients(*model, /*bucket_bytes=*/64);  // tiny buckets: several all-reduces
    opt.step();
  }
}

}  // namespace

TEST(Distributed, TwoRanksMatchOneProcessOnTheGlobalBatch) {
  TempDir dir;
  torch::manual_seed(1);
  auto x = torch::randn({16, 6});
  auto y = torch::randint(0, 3, {16});

  auto reference = make_model();
  train_steps(reference, x, y, 4, nullptr);

  // Built here, not in the rank threads: initialisation draws from the global generator,
  // which threads running at once would interleave.
  std::vector<torch::nn::Sequential> models{make_model(), make_model()};
  {
    // Different start on rank 1: the broadcast must overwrite it with rank 0's.
    torch::NoGradGuard g;
    for (auto& p : models[1]->parameters()) p.add_(1.0);
  }
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    auto model = models[rank];
    dist->broadcast_module(*model);
    auto shard = torch::arange(rank, 16, 2);
    train_steps(model, x.index_select(0, shard), y.index_select(0, shard), 4, dist.get());
  });
  ASSERT_FALSE(HasFailure());
  auto ref = reference->parameters();
  for (int rank = 0; rank < 2; ++rank) {
    auto got = models[rank]->parameters();
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) splitshare::testing::expect_close(got[i], ref[i], 1e-6, 1e-5);
  }
  // Rank 0 and rank 1 end bitwise equal: same averaged gradients, same updates.
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(torch::equal(models[0]->parameters()[i], models[1]->parameters()[i]));
}

TEST(Distributed, AllReduceSumsAcrossRanks) {
  TempDir dir;
  std::vector<torch::Tensor> results(3);
  run_ranks(dir, 3, [&](int rank, const auto& dist) {
    std::vector<torch::Tensor> t{torch::full({4}, static_cast<double>(rank + 1), torch::kDouble)};
    dist->all_reduce_sum(t);
    results[rank] = t[0];
  });
  ASSERT_FALSE(HasFailure());
  for (auto& r : results) EXPECT_TRUE(torch::equal(r, torch::full({4}, 6.0, torch::kDouble)));
}

TEST(Distributed, EnvironmentOfTorchrunAndSlurm) {
  auto clear = [] {
    for (auto v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID",
                   "SLURM_LOCALID", "SLURM_LAUNCH_NODE_IPADDR"}) {
      unsetenv(v);
    }
  };
  clear();
  EXPECT_FALSE(tr::distributed_from_env().has_value());
  setenv("WORLD_SIZE", "4", 1);
  setenv("RANK", "2", 1);
  setenv("LOCAL_RANK", "0", 1);
  setenv("MASTER_ADDR", "10.1.2.3", 1);
  setenv("MASTER_PORT", "1234", 1);
  auto o = tr::distributed_from_env();
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->rank(), 2);
  EXPECT_EQ(o->world_size(), 4);
  EXPECT_EQ(o->master_addr(), "10.1.2.3");
  EXPECT_EQ(o->master_port(), 1234);
  setenv("RANK", "two", 1);
  try {
    tr::distributed_from_env();
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("RANK='two'"), std::string::npos) << e.what();
  }
  clear();
  setenv("SLURM_NTASKS", "2", 1);
  setenv("SLURM_PROCID", "1", 1);
  setenv("SLURM_LAUNCH_NODE_IPADDR", "192.0.2.1", 1);
  o = tr::distributed_from_env();
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->rank(), 1);
  EXPECT_EQ(o->master_addr(), "192.0.2.1");
  EXPECT_EQ(o->master_port(), 29500);
  clear();
}

TEST(Distributed, ShardedEvaluationEqualsSingleProcessExactly) {
  TempDir dir;
  torch::manual_seed(2);
  splitshare::data::TensorDataset ds;
  ds.images = torch::randint(0, 256, {37, 1, 12, 12}).to(torch::kUInt8);  // 37: shards of 19 and 18
  ds.labels = torch::randint(0, 5, {37});
  for (int i = 0; i < 5; ++i) ds.classes.push_back(std::to_string(i));
  auto model = splitshare::nn::make_classifier(splitshare::nn::ClassifierOptions().arch("resnet10").width(4)
                                                   .in_channels(1).stem(splitshare::nn::Stem::kSmall).num_classes(5));
  model->eval();
  auto loader = [&](int64_t rank, int64_t world) {
    return splitshare::data::make_tensor_loader(ds, {0.5}, {0.25},
                                                splitshare::data::LoaderOptions().batch_size(8).rank(rank)
                                                    .world_size(world));
  };
  auto single = splitshare::eval::evaluate(*model, *loader(0, 1));
  std::vector<splitshare::eval::EvalResult> results(2);
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    auto stream = loader(rank, 2);
    results[rank] = splitshare::eval::evaluate(*model, *stream, false, torch::kCPU,
                                               [&](std::vector<torch::Tensor>& t) { dist->all_reduce_sum(t); });
  });
  ASSERT_FALSE(HasFailure());
  for (const auto& r : results) {
    EXPECT_EQ(r.samples, 37);  // no padded duplicates counted
    EXPECT_EQ(r.top1, single.top1);
    EXPECT_EQ(r.top5, single.top5);
    EXPECT_EQ(r.oracle, single.oracle);
    EXPECT_EQ(r.head_top1, single.head_top1);
    EXPECT_NEAR(r.loss, single.loss, 1e-6 * std::abs(single.loss));
  }
}

TEST(Distributed, LaunchTrainsWithTwoProcessesAndRankZeroWrites) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  }
  TempDir dir;
  const auto out = dir.file("run");
  std::string log;
  ASSERT_EQ(splitshare::testing::run_command(std::string(SPLITSHARE_CLI) +
                                                 " launch --nproc 2 -- train --epochs 1 --limit-train 512 "
                                                 "--limit-val 300 --width 4 --batch-size 32 --no-progress --sync-bn "
                                                 "--out " + out,
                                             &log), 0) << log;
  auto summary = nlohmann::json::parse(splitshare::testing::read_file(out + "/summary.json"));
  EXPECT_EQ(summary["final"]["val"]["samples"], 300);  // both shards, counted once
  EXPECT_NE(log.find("rank 0 of 2"), std::string::npos) << log;
  EXPECT_NE(log.find("SyncBatchNorm"), std::string::npos) << log;
  // A failing rank fails the launch.
  EXPECT_NE(splitshare::testing::run_command(std::string(SPLITSHARE_CLI) + " launch --nproc 2 -- train --epochs -1",
                                             &log), 0);
}

namespace {

// A small conv net with BatchNorm (per-rank statistics are fine here: both variants see
// the same ones) and, optionally, a layer the forward pass never uses.
struct OverlapNet : torch::nn::Module {
  OverlapNet() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(4));
    fc = register_module("fc", torch::nn::Linear(4 * 6 * 6, 3));
    unused = register_module("unused", torch::nn::Linear(5, 5));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc->forward(bn->forward(conv->forward(x)).relu().flatten(1)); }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::Linear fc{nullptr}, unused{nullptr};
};

// Per rank: 3 SGD steps on its shard, averaging after backward or overlapped with it.
// Returns the parameters of both ranks and the buckets started during backward.
struct OverlapRun {
  std::vector<std::vector<torch::Tensor>> params;
  std::vector<int64_t> buckets, started;
};

OverlapRun run_overlap(bool overlap, bool freeze_conv) {
  TempDir dir;
  torch::manual_seed(3);
  auto x = torch::randn({8, 1, 6, 6});
  auto y = torch::randint(0, 3, {8});
  std::vector<std::shared_ptr<OverlapNet>> models;
  for (int rank = 0; rank < 2; ++rank) {
    torch::manual_seed(9);
    models.push_back(std::make_shared<OverlapNet>());
    if (freeze_conv) models.back()->conv->weight.set_requires_grad(false);
  }
  OverlapRun run;
  run.params.resize(2);
  run.buckets.resize(2);
  run.started.resize(2);
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    auto& model = *models[rank];
    std::unique_ptr<tr::GradientAverager> averager;
    // Tiny buckets: several of them, started in order.
    if (overlap) averager = std::make_unique<tr::GradientAverager>(dist, model.parameters(), 64);
    torch::optim::SGD opt(model.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    auto shard = torch::arange(rank, 8, 2);
    for (int s = 0; s < 3; ++s) {
      auto loss = torch::nn::functional::cross_entropy(model.forward(x.index_select(0, shard)), y.index_select(0, shard));
      opt.zero_grad();
      if (averager) averager->prepare();
      loss.backward();
      if (averager) {
        averager->finish();
      } else {
        dist->average_gradients(model, 64);
      }
      opt.step();
    }
    if (averager) {
      run.buckets[rank] = averager->buckets();
      run.started[rank] = averager->started_during_backward();
    }
    for (auto& p : model.parameters()) run.params[rank].push_back(p.detach().clone());
  });
  return run;
}

}  // namespace

TEST(Distributed, OverlappedAveragingEqualsAveragingAfterBackward) {
  for (const bool freeze : {false, true}) {
    auto after = run_overlap(false, freeze);
    auto overlapped = run_overlap(true, freeze);
    for (int rank = 0; rank < 2; ++rank) {
      ASSERT_EQ(overlapped.params[rank].size(), after.params[rank].size());
      for (size_t i = 0; i < after.params[rank].size(); ++i) {
        EXPECT_TRUE(torch::allclose(overlapped.params[rank][i], after.params[rank][i], 1e-6, 1e-7))
            << "parameter " << i << " rank " << rank << " frozen conv " << freeze;
      }
      // Every bucket holds one or two small tensors; the one holding `unused` (registered
      // last, so in the first bucket) never completes during backward, and holds up the rest.
      EXPECT_GT(overlapped.buckets[rank], 3);
    }
    EXPECT_EQ(overlapped.started[0], 0);
    // The unused layer keeps its initial weights (its gradient stays undefined, as without overlap).
    torch::manual_seed(9);
    OverlapNet fresh;
    EXPECT_TRUE(torch::equal(overlapped.params[0][6], fresh.unused->weight));
  }
}

TEST(Distributed, OverlappedBucketsStartDuringBackward) {
  TempDir dir;
  torch::manual_seed(4);
  auto x = torch::randn({8, 6});
  auto y = torch::randint(0, 3, {8});
  std::vector<torch::nn::Sequential> models{make_model(), make_model()};
  std::vector<int64_t> buckets(2), started(2);
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    tr::GradientAverager averager(dist, models[rank]->parameters(), 64);
    averager.prepare();
    torch::nn::functional::cross_entropy(models[rank]->forward(x), y).backward();
    averager.finish();
    buckets[rank] = averager.buckets();
    started[rank] = averager.started_during_backward();
  });
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(buckets[0], 4);  // 64-byte buckets: no two of the 4 tensors (192, 32, 96, 12 bytes) share one
  EXPECT_EQ(started[0], buckets[0]);  // all used: every bucket starts from a hook
  EXPECT_EQ(started[1], buckets[1]);
}

TEST(Distributed, BackendSelection) {
  using splitshare::train::Backend;
  using splitshare::train::parse_backend;
  using splitshare::train::resolve_backend;
  using splitshare::testing::expect_error;
  EXPECT_EQ(parse_backend("auto"), Backend::kAuto);
  EXPECT_EQ(parse_backend("gloo"), Backend::kGloo);
  EXPECT_EQ(parse_backend("nccl"), Backend::kNccl);
  EXPECT_NE(expect_error([] { parse_backend("mpi"); }).find("unknown backend 'mpi': expected auto, gloo or nccl"),
            std::string::npos);
  const torch::Device cpu(torch::kCPU), cuda(torch::kCUDA, 0);
  EXPECT_EQ(resolve_backend(Backend::kAuto, cpu), Backend::kGloo);
  EXPECT_EQ(resolve_backend(Backend::kGloo, cpu), Backend::kGloo);
  EXPECT_EQ(resolve_backend(Backend::kGloo, cuda), Backend::kGloo);
  EXPECT_NE(expect_error([&] { resolve_backend(Backend::kNccl, cpu); }).find("backend nccl needs a CUDA device"),
            std::string::npos);
  if (splitshare::train::nccl_compiled()) {
    EXPECT_EQ(resolve_backend(Backend::kAuto, cuda), Backend::kNccl);
    EXPECT_EQ(resolve_backend(Backend::kNccl, cuda), Backend::kNccl);
  } else {
    EXPECT_NE(expect_error([&] { resolve_backend(Backend::kAuto, cuda); }).find("without CUDA"), std::string::npos);
  }
}

TEST(Distributed, TrainRefusesNcclOnTheCpuBeforeReadingData) {
  std::string log;
  const std::string cli = SPLITSHARE_CLI;
  EXPECT_EQ(run_command(cli + " train --backend nccl --data fashion-mnist:/nonexistent --epochs 1", &log), 1);
  EXPECT_NE(log.find("backend nccl needs a CUDA device, but this rank trains on cpu"), std::string::npos) << log;
  EXPECT_EQ(run_command(cli + " train --backend smoke-signals --epochs 1", &log), 1);
  EXPECT_NE(log.find("unknown backend 'smoke-signals'"), std::string::npos) << log;
}

// One rank on one GPU: the NCCL group forms over a TCPStore and sums CUDA tensors, and CPU
// tensors (the trainer's metric counts) go through the device and come back.
TEST(DistributedCuda, NcclGroupOfOneSumsCudaAndCpuTensors) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ASSERT_TRUE(splitshare::train::nccl_compiled());
  auto options = splitshare::train::DistributedOptions()
                     .master_port(29000 + static_cast<int64_t>(::getpid() % 1000))
                     .backend(splitshare::train::Backend::kAuto)
                     .device(torch::Device(torch::kCUDA, 0));
  auto dist = splitshare::train::Distributed::connect(options);
  EXPECT_EQ(dist->backend(), splitshare::train::Backend::kNccl);
  std::vector<torch::Tensor> t{torch::arange(5, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat)),
                               torch::full({3}, 2.0, torch::kDouble)};
  dist->all_reduce_sum(t);
  EXPECT_TRUE(t[0].is_cuda());
  EXPECT_TRUE(torch::equal(t[0].cpu(), torch::arange(5, torch::kFloat)));
  EXPECT_TRUE(t[1].is_cpu());
  EXPECT_TRUE(torch::equal(t[1], torch::full({3}, 2.0, torch::kDouble)));
  dist->barrier();
}
