// SyncBatchNorm: equal to BatchNorm2d in one process, and two ranks on half batches equal
// to one process with plain BatchNorm on the whole batch (ranks as threads on a FileStore).
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/batch_norm.h>
#include <splitshare/distributed/distributed.h>

#include "ranks.h"
#include "support.h"


namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::expect_close;
using splitshare::testing::run_ranks;
using splitshare::testing::TempDir;

namespace {

// The default model's shape, small: the backbone's and the SSM head's norm layers.
sn::Classifier make_model() {
  torch::manual_seed(11);
  return sn::make_classifier(sn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(sn::Stem::kSmall)
                                 .num_classes(3).head(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4)));
}

void sgd_steps(sn::Classifier& model, const torch::Tensor& x, const torch::Tensor& y, int steps,
               tr::Distributed* dist) {
  model->train();
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  for (int s = 0; s < steps; ++s) {
    auto loss = sn::head_loss(model->forward(x), y, sn::LossKind::kJoint);
    opt.zero_grad();
    loss.backward();
    if (dist) dist->average_gradients(*model);
    opt.step();
  }
}

// Trains one model per rank on its half of (x, y), `sync` choosing SyncBatchNorm.
std::vector<sn::Classifier> train_two_ranks(const torch::Tensor& x, const torch::Tensor& y, int steps, bool sync) {
  TempDir dir;
  // Built here, not in the rank threads: initialisation draws from the global generator.
  std::vector<sn::Classifier> models{make_model(), make_model()};
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    if (sync) {
      const auto n = sn::convert_sync_batch_norm(*models[rank], [&](auto& t) { dist->all_reduce_sum(t); });
      // resnet10: stem + 4 blocks x 2 + 3 downsample norms, and the SSM head's first 3 splits.
      TORCH_CHECK(n == 15, "converted ", n, " norm layers, expected 15");
    }
    const auto half = x.size(0) / 2;
    sgd_steps(models[rank], x.narrow(0, rank * half, half), y.narrow(0, rank * half, half), steps, dist.get());
  });
  return models;
}

double max_difference(sn::Classifier& a, sn::Classifier& b) {
  auto sa = sn::named_state(*a);
  auto sb = sn::named_state(*b);
  double worst = 0;
  for (size_t i = 0; i < sa.size(); ++i) {
    worst = std::max(worst, (sa[i].second.to(torch::kDouble) - sb[i].second.to(torch::kDouble)).abs().max().item<double>());
  }
  return worst;
}

}  // namespace

TEST(SyncBatchNorm, OneProcessEqualsBatchNorm2dForwardBackwardAndRunningStats) {
  torch::manual_seed(3);
  for (const bool channels_last : {false, true}) {
    torch::nn::BatchNorm2d reference(torch::nn::BatchNormOptions(3).momentum(0.2));
    sn::BatchNormImpl sync(torch::nn::BatchNormOptions(3).momentum(0.2));
    sync.collective = std::make_shared<const sn::AllReduceSum>([](std::vector<torch::Tensor>&) {});
    sync.train();
    {
      torch::NoGradGuard g;
      reference->weight.uniform_(0.5, 1.5);
      reference->bias.uniform_(-1, 1);
      sync.weight.copy_(reference->weight);
      sync.bias.copy_(reference->bias);
    }
    auto input = (torch::randn({4, 3, 5, 5}) * 2 + 3);
    if (channels_last) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
    auto upstream = torch::randn({4, 3, 5, 5});
    auto x1 = input.clone().requires_grad_(true);
    auto x2 = input.clone().requires_grad_(true);
    for (int step = 0; step < 2; ++step) {
      auto y1 = reference->forward(x1);
      auto y2 = sync.forward(x2);
      expect_close(y2, y1, 1e-5, 1e-5);
      (y1 * upstream).sum().backward();
      (y2 * upstream).sum().backward();
    }
    expect_close(x2.grad(), x1.grad(), 1e-5, 1e-4);
    expect_close(sync.weight.grad(), reference->weight.grad(), 1e-4, 1e-5);
    expect_close(sync.bias.grad(), reference->bias.grad(), 1e-4, 1e-5);
    expect_close(sync.running_mean, reference->running_mean, 1e-6, 1e-6);
    expect_close(sync.running_var, reference->running_var, 1e-6, 1e-5);
    EXPECT_EQ(sync.num_batches_tracked.item<int64_t>(), 2);
    reference->eval();
    sync.eval();
    expect_close(sync.forward(input), reference->forward(input), 1e-5, 1e-5);
  }
  // BatchNorm2d's names, so state moves between the two.
  sn::BatchNorm named(torch::nn::BatchNormOptions(2));
  EXPECT_EQ(named->named_parameters().keys(), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(named->named_buffers().keys(),
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
}

TEST(SyncBatchNorm, ConvertSetsTheCollectiveOnEveryLayerAndEmptyUnsetsIt) {
  // A (single-rank) collective sends the layers through the sync path: the collective is
  // called, and the result still equals the plain layer's.
  torch::manual_seed(8);
  sn::BatchNorm a(3), b(3);
  auto calls = std::make_shared<int>(0);
  torch::nn::Sequential wrapped(b);
  EXPECT_EQ(sn::convert_sync_batch_norm(*wrapped, [calls](std::vector<torch::Tensor>&) { ++*calls; }), 1);
  EXPECT_TRUE(b->synchronised());
  auto input = torch::randn({5, 3, 4, 4}) * 3 - 1;
  auto xa = input.clone().requires_grad_(true);
  auto xb = input.clone().requires_grad_(true);
  a->forward(xa).square().sum().backward();
  b->forward(xb).square().sum().backward();
  EXPECT_EQ(*calls, 2);  // statistics forward, gradient sums backward
  expect_close(xb.grad(), xa.grad(), 1e-4, 1e-4);
  expect_close(b->running_var, a->running_var, 1e-6, 1e-5);
  EXPECT_EQ(b->num_batches_tracked.item<int64_t>(), 1);
  EXPECT_EQ(sn::convert_sync_batch_norm(*wrapped, sn::AllReduceSum()), 1);
  EXPECT_FALSE(b->synchronised());
  b->forward(input);
  EXPECT_EQ(*calls, 2);
}

TEST(SyncBatchNorm, PlainLayerIsBatchNorm1dAnd2dStepForStep) {
  // Without a collective the layer is torch's BatchNorm, bit for bit, in both shapes and
  // with momentum None (cumulative average).
  torch::manual_seed(9);
  torch::nn::BatchNorm2d ref2(torch::nn::BatchNormOptions(3).momentum(std::nullopt));
  sn::BatchNorm own2(torch::nn::BatchNormOptions(3).momentum(std::nullopt));
  torch::nn::BatchNorm1d ref1(6);
  sn::BatchNorm own1(6);
  for (int step = 0; step < 3; ++step) {
    auto x2 = torch::randn({4, 3, 5, 5}) + step;
    auto x1 = torch::randn({7, 6}) * (step + 1);
    EXPECT_TRUE(torch::equal(own2->forward(x2), ref2->forward(x2)));
    EXPECT_TRUE(torch::equal(own1->forward(x1), ref1->forward(x1)));
  }
  EXPECT_TRUE(torch::equal(own2->running_var, ref2->running_var));
  EXPECT_TRUE(torch::equal(own1->running_mean, ref1->running_mean));
  own2->eval();
  ref2->eval();
  auto x = torch::randn({2, 3, 5, 5});
  EXPECT_TRUE(torch::equal(own2->forward(x), ref2->forward(x)));
  EXPECT_THROW(own2->forward(torch::randn({2, 4, 5, 5})), c10::Error);
}

TEST(SyncBatchNorm, UnequalBatchesUseTheGlobalCount) {
  // Rank 0 holds 5 samples, rank 1 holds 3: statistics, outputs and input gradients equal
  // those of BatchNorm2d on all 8 (the loss is a sum, so no averaging weights the ranks).
  TempDir dir;
  torch::manual_seed(4);
  auto input = torch::randn({8, 2, 3, 3}) + 1;
  auto upstream = torch::randn({8, 2, 3, 3});
  torch::nn::BatchNorm2d reference(2);
  auto x = input.clone().requires_grad_(true);
  auto y = reference->forward(x);
  (y * upstream).sum().backward();
  const std::vector<int64_t> start{0, 5}, size{5, 3};
  std::vector<torch::Tensor> outputs(2), grads(2), running_var(2), weight_grad(2);
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    sn::BatchNormImpl sync(torch::nn::BatchNormOptions(2));
    sync.collective = std::make_shared<const sn::AllReduceSum>([&](auto& t) { dist->all_reduce_sum(t); });
    auto xr = input.narrow(0, start[rank], size[rank]).clone().requires_grad_(true);
    outputs[rank] = sync.forward(xr);
    (outputs[rank] * upstream.narrow(0, start[rank], size[rank])).sum().backward();
    grads[rank] = xr.grad();
    running_var[rank] = sync.running_var.clone();
    weight_grad[rank] = sync.weight.grad();
  });
  ASSERT_FALSE(HasFailure());
  for (int rank = 0; rank < 2; ++rank) {
    expect_close(outputs[rank], y.narrow(0, start[rank], size[rank]), 1e-5, 1e-5);
    expect_close(grads[rank], x.grad().narrow(0, start[rank], size[rank]), 1e-5, 1e-4);
    expect_close(running_var[rank], reference->running_var, 1e-6, 1e-5);
  }
  expect_close(weight_grad[0] + weight_grad[1], reference->weight.grad(), 1e-4, 1e-5);
}

TEST(SyncBatchNorm, TwoRanksOnHalfBatchesMatchOneProcessOnTheWholeBatch) {
  torch::manual_seed(5);
  auto x = torch::randn({16, 1, 8, 8});
  auto y = torch::randint(0, 3, {16});
  auto reference = make_model();
  sgd_steps(reference, x, y, 3, nullptr);

  auto synced = train_two_ranks(x, y, 3, /*sync=*/true);
  // Weights, BatchNorm running statistics and counters, under checkpoint names.
  EXPECT_LT(max_difference(synced[0], reference), 1e-5);
  EXPECT_LT(max_difference(synced[1], reference), 1e-5);
  // The same names as before conversion: checkpoints are unchanged.
  auto converted = sn::named_state(*synced[0]);
  auto plain = sn::named_state(*reference);
  ASSERT_EQ(converted.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(converted[i].first, plain[i].first);

  // Without SyncBatchNorm, per-rank statistics make the runs differ: the comparison can fail.
  auto local = train_two_ranks(x, y, 3, /*sync=*/false);
  EXPECT_GT(max_difference(local[0], reference), 1e-3);
}

TEST(SyncBatchNormCuda, OneProcessEqualsBatchNorm2dOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(6);
  torch::nn::BatchNorm2d reference(4);
  reference->to(torch::kCUDA);
  auto sync = std::make_shared<sn::BatchNormImpl>(torch::nn::BatchNormOptions(4));
  sync->collective = std::make_shared<const sn::AllReduceSum>([](std::vector<torch::Tensor>&) {});
  sync->to(torch::kCUDA);
  auto input = torch::randn({8, 4, 6, 6}, torch::kCUDA);
  auto x1 = input.clone().requires_grad_(true);
  auto x2 = input.clone().requires_grad_(true);
  auto y1 = reference->forward(x1);
  auto y2 = sync->forward(x2);
  expect_close(y2.cpu(), y1.cpu(), 1e-5, 1e-5);
  y1.square().sum().backward();
  y2.square().sum().backward();
  expect_close(x2.grad().cpu(), x1.grad().cpu(), 1e-4, 1e-4);
  expect_close(sync->running_var.cpu(), reference->running_var.cpu(), 1e-6, 1e-5);
}
