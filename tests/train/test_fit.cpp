#include <splitshare/data/datasets.h>
#include <splitshare/train/schedule.h>
#include <splitshare/train/fit.h>

#include "support.h"

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace sd = splitshare::data;

TEST(Schedule, StepCosineAndWarmup) {
  auto step = tr::ScheduleOptions().base_lr(0.1).epochs(90);
  EXPECT_EQ(tr::effective_milestones(step), (std::vector<int64_t>{30, 60}));
  EXPECT_DOUBLE_EQ(tr::learning_rate(step, 29.9), 0.1);
  EXPECT_NEAR(tr::learning_rate(step, 30.0), 0.01, 1e-12);
  EXPECT_NEAR(tr::learning_rate(step, 89.0), 0.001, 1e-12);
  auto cosine = tr::ScheduleOptions().base_lr(0.2).epochs(10).kind(tr::ScheduleKind::kCosine).warmup_epochs(2);
  EXPECT_NEAR(tr::learning_rate(cosine, 1.0), 0.1, 1e-12);
  EXPECT_NEAR(tr::learning_rate(cosine, 2.0), 0.2, 1e-12);
  EXPECT_NEAR(tr::learning_rate(cosine, 6.0), 0.1, 1e-12);
  EXPECT_NEAR(tr::learning_rate(cosine, 10.0), 0.0, 1e-12);
}

TEST(Trainer, ShortRunOnASubsetLearns) {
  if (!std::filesystem::exists(sd::default_fashion_mnist_dir())) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto data = sd::open_data(sd::parse_data_spec("fashion-mnist"),
                            sd::DataOptions().batch_size(64).limit_train(3000).limit_val(1000).seed(3));
  torch::manual_seed(3);
  auto options = sn::ClassifierOptions().arch("resnet10").width(8).in_channels(1).stem(sn::Stem::kSmall)
                     .num_classes(10);
  auto model = sn::make_classifier(options);
  tr::CheckpointMetadata meta;
  meta.model = options;
  // The observer sees every step (3000 / 64 = 46 full batches per epoch), the last one
  // flagged, and every epoch's record.
  std::vector<tr::StepReport> steps;
  std::vector<int64_t> epochs;
  tr::FitObserver observer;
  observer.on_step = [&](const tr::StepReport& r) { steps.push_back(r); };
  observer.on_epoch = [&](const splitshare::run::EpochRecord& r) { epochs.push_back(r.epoch); };
  auto result = tr::fit(model, data, tr::TrainOptions().epochs(2).batch_size(64).lr(0.05).schedule(tr::ScheduleKind::kCosine)
                                      .weight_decay(tr::kSmallImageWeightDecay),
                        tr::RunContext().observer(observer), meta);
  ASSERT_EQ(result.history.size(), 2u);
  ASSERT_EQ(steps.size(), 92u);
  EXPECT_EQ(epochs, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(steps[45].epoch, 1);
  EXPECT_EQ(steps[45].step, 46);
  EXPECT_EQ(steps[45].steps, 46);
  EXPECT_TRUE(steps[45].last);
  EXPECT_FALSE(steps[44].last);
  EXPECT_EQ(steps[91].epochs, 2);
  EXPECT_NEAR(steps[91].loss, result.history[1].train_loss, 1e-9);
  EXPECT_NEAR(steps[91].top1, result.history[1].train_top1, 1e-9);
  const auto& last = result.history.back();
  // Chance is 10%; a working pipeline is far above it after 2 short epochs (about 56% with the
  // default SSM, 60% with Algorithm 1's BatchNorm on every split).
  EXPECT_GT(last.val.top1, 0.5);
  EXPECT_EQ(last.val.samples, 1000);
  EXPECT_EQ(last.val.head_top1.size(), 4u);
  EXPECT_LT(last.train_loss, result.history.front().train_loss);
}

TEST(Trainer, RefusesABatchSizeTheDataDoesNotDeliver) {
  if (!std::filesystem::exists(sd::default_fashion_mnist_dir())) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto data = sd::open_data(sd::parse_data_spec("fashion-mnist"),
                            sd::DataOptions().batch_size(32).limit_train(64).limit_val(32).seed(3));
  auto options = sn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(sn::Stem::kSmall).num_classes(10);
  auto model = sn::make_classifier(options);
  tr::CheckpointMetadata meta;
  meta.model = options;
  auto message = splitshare::testing::expect_error(
      [&] { tr::fit(model, data, tr::TrainOptions().epochs(1).batch_size(16), tr::RunContext().observer({}), meta); });
  EXPECT_NE(message.find("batches of 32 but TrainOptions::batch_size is 16"), std::string::npos) << message;
}

TEST(Trainer, IndividualLossIsTheSumOfHeadLosses) {
  torch::manual_seed(0);
  sn::HeadOutput out;
  out.head_logits = {torch::randn({5, 3}), torch::randn({5, 3})};
  out.logits = (out.head_logits[0] + out.head_logits[1]) / 2;
  auto target = torch::tensor({0, 1, 2, 1, 0});
  auto joint = sn::head_loss(out, target, sn::LossKind::kJoint);
  auto individual = sn::head_loss(out, target, sn::LossKind::kIndividual);
  namespace F = torch::nn::functional;
  EXPECT_NEAR(joint.item<double>(), F::cross_entropy(out.logits, target).item<double>(), 1e-6);
  EXPECT_NEAR(individual.item<double>(),
              (F::cross_entropy(out.head_logits[0], target) + F::cross_entropy(out.head_logits[1], target))
                  .item<double>(), 1e-6);
  auto mean = sn::head_loss(out, target, sn::LossKind::kIndividual, sn::IndividualReduction::kMean);
  EXPECT_NEAR(mean.item<double>(), individual.item<double>() / 2, 1e-6);
  EXPECT_EQ(sn::parse_individual_reduction("mean"), sn::IndividualReduction::kMean);
  EXPECT_THROW(sn::parse_individual_reduction("max"), c10::Error);
}
