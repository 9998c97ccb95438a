// Mixed precision (autocast guard, loss scaler) and device selection. The CUDA variants
// skip without a GPU; scripts/gpu-smoke runs them on a CUDA machine.
#include <splitshare/data/datasets.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/train/amp.h>
#include <splitshare/train/fit.h>
#include <splitshare/util/device.h>

#include "support.h"

namespace tr = splitshare::train;
namespace sn = splitshare::nn;
using splitshare::testing::expect_error;

namespace {

sn::Classifier tiny_model(int64_t classes = 3) {
  torch::manual_seed(21);
  return sn::make_classifier(sn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(sn::Stem::kSmall)
                                 .num_classes(classes));
}

}  // namespace

TEST(Amp, ParsesPrecisionNames) {
  EXPECT_EQ(tr::parse_precision("bf16"), tr::Precision::kBFloat16);
  EXPECT_EQ(tr::parse_precision("fp16"), tr::Precision::kFloat16);
  EXPECT_EQ(tr::parse_precision("fp32"), tr::Precision::kFloat32);
  EXPECT_EQ(tr::parse_precision("off"), tr::Precision::kFloat32);
  EXPECT_EQ(tr::to_string(tr::Precision::kBFloat16), "bf16");
  EXPECT_NE(expect_error([] { tr::parse_precision("half"); }).find("unknown precision 'half'"), std::string::npos);
}

TEST(Amp, Bf16AutocastOnCpuIsScopedAndRestored) {
  auto a = torch::randn({4, 4});
  {
    tr::AutocastGuard outer(torch::kCPU, tr::Precision::kBFloat16);
    EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kBFloat16);
    {
      tr::AutocastGuard off(torch::kCPU, tr::Precision::kFloat32);  // fp32 leaves the outer state alone
      EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kBFloat16);
    }
  }
  EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kFloat);
  EXPECT_NE(expect_error([] { tr::AutocastGuard g(torch::kCPU, tr::Precision::kFloat16); }).find("fp16 needs a CUDA"),
            std::string::npos);
}

TEST(Amp, Bf16TrainingStepOnCpuGivesFloatGradients) {
  auto model = tiny_model();
  model->train();
  auto x = torch::randn({6, 1, 8, 8});
  auto y = torch::randint(0, 3, {6});
  torch::Tensor loss;
  {
    tr::AutocastGuard autocast(torch::kCPU, tr::Precision::kBFloat16);
    auto out = model->forward(x);
    EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
    loss = sn::head_loss(out, y, sn::LossKind::kJoint);
  }
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);  // cross-entropy autocasts to float32
  loss.backward();
  for (auto& p : model->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat);
    EXPECT_TRUE(p.grad().isfinite().all().item<bool>());
  }
}

TEST(Amp, FitTrainsWithBf16Autocast) {
  namespace sd = splitshare::data;
  if (!std::filesystem::exists(sd::default_fashion_mnist_dir())) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto data = sd::open_data(sd::parse_data_spec("fashion-mnist"),
                            sd::DataOptions().batch_size(32).limit_train(128).limit_val(64).seed(1));
  auto model = tiny_model(10);
  tr::CheckpointMetadata meta;
  meta.model = model->options;
  auto result = tr::fit(model, data, tr::TrainOptions().epochs(1).batch_size(32).precision(tr::Precision::kBFloat16),
                        tr::RunContext().observer({}), meta);
  ASSERT_EQ(result.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(result.history[0].train_loss));
  EXPECT_EQ(result.history[0].val.samples, 64);
  for (auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);  // master weights stay float32
}

TEST(Amp, GradScalerScalesUnscalesAndSteps) {
  auto w = torch::tensor({1.0, 2.0}, torch::kFloat).requires_grad_(true);
  auto reference = w.detach().clone().requires_grad_(true);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(0.5));
  torch::optim::SGD ref_opt({reference}, torch::optim::SGDOptions(0.5));
  tr::GradScaler scaler(tr::GradScalerOptions().init_scale(1024).growth_interval(2));
  auto loss = (w * w).sum();
  auto scaled = scaler.scale(loss);
  EXPECT_FLOAT_EQ(scaled.item<float>(), 1024 * 5);
  scaled.backward();
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({2048.0f, 4096.0f})));
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();
  (reference * reference).sum().backward();
  ref_opt.step();
  EXPECT_TRUE(torch::allclose(w, reference));
  EXPECT_DOUBLE_EQ(scaler.current_scale(), 1024);
  // A second good step reaches growth_interval: the scale doubles.
  opt.zero_grad();
  scaler.scale((w * w).sum()).backward();
  EXPECT_TRUE(scaler.step(opt));
  scaler.update();
  EXPECT_DOUBLE_EQ(scaler.current_scale(), 2048);
}

TEST(Amp, GradScalerSkipsStepsWithInfOrNanAndBacksOff) {
  for (const double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    auto w = torch::tensor({1.0, 2.0}, torch::kFloat).requires_grad_(true);
    auto before = w.detach().clone();
    torch::optim::SGD opt({w}, torch::optim::SGDOptions(0.5).momentum(0.9));
    tr::GradScaler scaler(tr::GradScalerOptions().init_scale(256));
    scaler.scale((w * w).sum()).backward();
    w.mutable_grad()[1] = bad;  // as an fp16 overflow would leave it
    EXPECT_TRUE(scaler.unscale(opt));
    EXPECT_FALSE(scaler.step(opt));
    scaler.update();
    EXPECT_TRUE(torch::equal(w.detach(), before));
    EXPECT_EQ(scaler.skipped_steps(), 1);
    EXPECT_DOUBLE_EQ(scaler.current_scale(), 128);
    // The next, finite step goes through with the reduced scale.
    opt.zero_grad();
    scaler.scale((w * w).sum()).backward();
    EXPECT_TRUE(scaler.step(opt));
    scaler.update();
    EXPECT_FALSE(torch::equal(w.detach(), before));
  }
}

TEST(Amp, DisabledGradScalerPassesThrough) {
  auto w = torch::tensor({3.0f}).requires_grad_(true);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(0.1));
  tr::GradScaler scaler(tr::GradScalerOptions().enabled(false));
  auto loss = (w * w).sum();
  EXPECT_TRUE(scaler.scale(loss).is_same(loss));
  loss.backward();
  EXPECT_TRUE(scaler.step(opt));
  EXPECT_FLOAT_EQ(w.item<float>(), 3.0f - 0.1f * 6.0f);
}

TEST(Device, ParsesAndRejectsClearly) {
  EXPECT_EQ(splitshare::util::parse_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_NE(expect_error([] { splitshare::util::parse_device("gpu"); }).find("unknown device 'gpu'"),
            std::string::npos);
  EXPECT_NE(expect_error([] { splitshare::util::parse_device("cuda:x"); }).find("must be a number"),
            std::string::npos);
  auto cpu = torch::ones({2});
  EXPECT_TRUE(splitshare::util::to_device(cpu, torch::kCPU).is_same(cpu));
  if (torch::cuda::is_available()) {
    EXPECT_TRUE(splitshare::util::parse_device("cuda:0").is_cuda());
  } else {
    EXPECT_NE(expect_error([] { splitshare::util::parse_device("cuda"); }).find("cuda requested but this libtorch"),
              std::string::npos);
    std::string log;
    EXPECT_NE(splitshare::testing::run_command(std::string(SPLITSHARE_CLI) + " train --device cuda --epochs 1", &log),
              0);
    EXPECT_NE(log.find("cuda requested but this libtorch has no CUDA"), std::string::npos) << log;
  }
}

TEST(AmpCuda, Fp16TrainingStepsWithLossScalingOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto model = tiny_model();
  model->to(torch::kCUDA);
  model->train();
  auto x = splitshare::util::to_device(torch::randn({16, 1, 8, 8}), torch::kCUDA);
  auto y = splitshare::util::to_device(torch::randint(0, 3, {16}), torch::kCUDA);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  tr::GradScaler scaler;
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    torch::Tensor loss;
    {
      tr::AutocastGuard autocast(torch::kCUDA, tr::Precision::kFloat16);
      auto out = model->forward(x);
      EXPECT_EQ(out.logits.scalar_type(), torch::kHalf);
      loss = sn::head_loss(out, y, sn::LossKind::kJoint);
    }
    opt.zero_grad();
    scaler.scale(loss).backward();
    scaler.step(opt);
    scaler.update();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first);  // it learns the 16 samples
  EXPECT_LT(scaler.skipped_steps(), 20);
}

TEST(AmpCuda, Bf16AutocastOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto a = torch::randn({8, 8}, torch::kCUDA);
  {
    tr::AutocastGuard autocast(torch::kCUDA, tr::Precision::kBFloat16);
    EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kFloat);
}
