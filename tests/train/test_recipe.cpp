// Training recipes beyond the paper (issue #17): optimizers, soft-target losses, mixup and
// CutMix, weight EMA, clipping and accumulation, with exact resume for each.
#include <gtest/gtest.h>

#include <splitshare/data/datasets.h>
#include <splitshare/nn/heads.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/ema.h>
#include <splitshare/train/mix.h>
#include <splitshare/train/optimizer.h>
#include <splitshare/train/fit.h>

#include <csignal>
#include <filesystem>

#include "support.h"

namespace sd = splitshare::data;
namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::expect_error;
using splitshare::testing::TempDir;

namespace {

bool have_fashion_mnist() { return std::filesystem::exists(sd::default_fashion_mnist_dir()); }

sd::DataBundle tiny_data(int64_t batch = 16, int64_t limit = 160) {
  return sd::open_data(sd::parse_data_spec("fashion-mnist"),
                       sd::DataOptions().batch_size(batch).limit_train(limit).limit_val(32).seed(4));
}

sn::ClassifierOptions tiny_model(sn::HeadKind head = sn::HeadKind::kSSM) {
  return sn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(sn::Stem::kSmall).num_classes(10)
      .head(sn::HeadOptions().kind(head).splits(2));
}

tr::RunContext quiet(const std::string& out) { return tr::RunContext().observer({}).out_dir(out); }

tr::TrainResult run(const tr::TrainOptions& options, const tr::RunContext& context, int seed = 1,
                    const sn::ClassifierOptions& model_options = tiny_model(), int64_t limit = 160) {
  auto data = tiny_data(options.batch_size(), limit);
  torch::manual_seed(seed);
  auto model = sn::make_classifier(model_options);
  tr::CheckpointMetadata meta;
  meta.model = model_options;
  return tr::fit(model, data, options, context, meta);
}

std::function<int()> stop_after(int64_t at) {
  auto calls = std::make_shared<int64_t>(0);
  return [calls, at] { return ++*calls == at ? SIGTERM : 0; };
}

void expect_same_maps(const std::map<std::string, torch::Tensor>& x, const std::map<std::string, torch::Tensor>& y,
                      const std::string& what) {
  ASSERT_EQ(x.size(), y.size()) << what;
  for (const auto& [name, tensor] : x) {
    ASSERT_TRUE(y.count(name)) << what << ": " << name;
    EXPECT_TRUE(torch::equal(tensor, y.at(name))) << what << ": " << name << " differs";
  }
}

// Every recipe option at once, on top of each optimizer.
tr::TrainOptions full_recipe(tr::OptimizerKind kind) {
  return tr::TrainOptions().epochs(3).batch_size(16).lr(kind == tr::OptimizerKind::kSgd ? 0.05 : 0.002)
      .schedule(tr::ScheduleKind::kCosine).optimizer(kind).no_decay_bn_bias(kind != tr::OptimizerKind::kSgd)
      .label_smoothing(0.1).mixup(0.4).cutmix(1.0).ema_decay(0.9).clip_grad_norm(2.0).accum_steps(2)
      .class_weights({1, 2, 1, 1, 1, 1, 1, 1, 1, 0.5});
}

class RecipeResume : public ::testing::TestWithParam<tr::OptimizerKind> {};

}  // namespace

TEST_P(RecipeResume, StoppedAndResumedRunEndsBitwiseEqual) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const auto options = full_recipe(GetParam());
  TempDir whole, parts;
  auto uninterrupted = run(options, quiet(whole.file("run")));
  ASSERT_EQ(uninterrupted.history.size(), 3u);
  ASSERT_TRUE(uninterrupted.history[0].ema_val);
  // 10 micro-batches per epoch, 5 optimizer steps: stop after the 7th step (epoch 2, micro-batch 4).
  auto first = run(options, quiet(parts.file("run")).stop_requested(stop_after(7)));
  EXPECT_EQ(first.stopped_by, SIGTERM);
  EXPECT_EQ(first.stopped_epoch, 2);
  EXPECT_EQ(first.stopped_step, 4);
  const auto checkpoint = parts.file("run/checkpoint.pt");
  auto state = tr::read_training_state(checkpoint);
  ASSERT_TRUE(state);
  EXPECT_FALSE(state->optimizer_state.empty());
  EXPECT_FALSE(state->ema.empty());
  auto last = run(options, quiet(parts.file("run")).resume_from(checkpoint), 5);
  ASSERT_EQ(last.history.size(), 3u);
  expect_same_maps(tr::read_archive_tensors(whole.file("run/checkpoint.pt")), tr::read_archive_tensors(checkpoint),
                   "weights");
  const auto a = tr::read_training_state(whole.file("run/checkpoint.pt")), b = tr::read_training_state(checkpoint);
  expect_same_maps(a->optimizer_state, b->optimizer_state, "optimizer state");
  expect_same_maps(a->ema, b->ema, "EMA");
  expect_same_maps(tr::read_archive_tensors(whole.file("run/best.pt")), tr::read_archive_tensors(parts.file("run/best.pt")),
                   "best.pt");
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(last.history[e].train_loss, uninterrupted.history[e].train_loss) << "epoch " << e + 1;
    EXPECT_EQ(last.history[e].ema_val->top1, uninterrupted.history[e].ema_val->top1) << "epoch " << e + 1;
  }
  // The state holds the optimizer's own fields.
  const std::string field = GetParam() == tr::OptimizerKind::kSgd       ? ""
                            : GetParam() == tr::OptimizerKind::kAdamW ? "#exp_avg_sq"
                                                                        : "#square_avg";
  bool found = false;
  for (const auto& [name, t] : a->optimizer_state) found |= field.empty() ? name.find('#') == std::string::npos
                                                                          : name.size() > field.size() &&
                                                                                name.compare(name.size() - field.size(), field.size(), field) == 0;
  EXPECT_TRUE(found) << "no optimizer state named *" << field;
}

INSTANTIATE_TEST_SUITE_P(EveryOptimizer, RecipeResume,
                         ::testing::Values(tr::OptimizerKind::kSgd, tr::OptimizerKind::kAdamW,
                                           tr::OptimizerKind::kRmsprop),
                         [](const auto& info) { return tr::to_string(info.param); });

TEST(Optimizer, StateByNameRestoresTheSameNextStep) {
  torch::manual_seed(0);
  auto make = [] {
    torch::manual_seed(3);
    return std::vector<std::pair<std::string, torch::Tensor>>{
        {"w", torch::randn({3, 4}).requires_grad_()}, {"b", torch::randn({3}).requires_grad_()}};
  };
  for (auto kind : {tr::OptimizerKind::kSgd, tr::OptimizerKind::kAdamW, tr::OptimizerKind::kRmsprop}) {
    auto p = make(), q = make();
    std::vector<tr::ParameterGroup> gp{{{p[0].second, p[1].second}, 1.0, true}};
    std::vector<tr::ParameterGroup> gq{{{q[0].second, q[1].second}, 1.0, true}};
    const auto options = tr::OptimizerOptions().kind(kind).weight_decay(0.01);
    auto op = tr::make_optimizer(gp, options, 0.01), oq = tr::make_optimizer(gq, options, 0.01);
    auto step = [](torch::optim::Optimizer& o, std::vector<std::pair<std::string, torch::Tensor>>& v, int i) {
      o.zero_grad();
      ((v[0].second * (i + 1)).pow(2).sum() + v[1].second.sum()).backward();
      o.step();
    };
    step(*op, p, 0);
    step(*op, p, 1);
    const auto saved = tr::optimizer_state_by_name(p, *op, kind);
    EXPECT_FALSE(saved.empty()) << tr::to_string(kind);
    {
      torch::NoGradGuard g;
      for (size_t i = 0; i < 2; ++i) q[i].second.copy_(p[i].second);
    }
    tr::restore_optimizer_state(q, *oq, kind, saved, "test");
    step(*op, p, 2);
    step(*oq, q, 2);
    for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal(p[i].second, q[i].second)) << tr::to_string(kind);
  }
  // AdamW's state is not SGD's.
  auto p = make();
  std::vector<tr::ParameterGroup> g{{{p[0].second, p[1].second}, 1.0, true}};
  auto adam = tr::make_optimizer(g, tr::OptimizerOptions().kind(tr::OptimizerKind::kAdamW), 0.01);
  adam->zero_grad();
  p[0].second.sum().backward();
  adam->step();
  auto saved = tr::optimizer_state_by_name(p, *adam, tr::OptimizerKind::kAdamW);
  auto sgd = tr::make_optimizer(g, tr::OptimizerOptions(), 0.01);
  auto message = expect_error([&] { tr::restore_optimizer_state(p, *sgd, tr::OptimizerKind::kSgd, saved, "ck.pt"); });
  EXPECT_NE(message.find("ck.pt"), std::string::npos) << message;
  EXPECT_NE(message.find("sgd"), std::string::npos) << message;
  EXPECT_NE(expect_error([] { tr::parse_optimizer_kind("adam"); }).find("sgd, adamw or rmsprop"), std::string::npos);
  EXPECT_NE(expect_error([&] { tr::make_optimizer(g, tr::OptimizerOptions().kind(tr::OptimizerKind::kAdamW)
                                                         .betas({0.9, 1.5}), 0.01); }).find("1.5"),
            std::string::npos);
}

TEST(Optimizer, NoDecayGroupsSkipBatchNormAndBiases) {
  auto w = torch::ones({2, 2}).requires_grad_(), b = torch::ones({2}).requires_grad_();
  auto groups = tr::split_no_decay({{{w, b}, 0.5, true}});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[0].decay);
  EXPECT_FALSE(groups[1].decay);
  EXPECT_EQ(groups[1].params.size(), 1u);
  EXPECT_EQ(groups[1].params[0].dim(), 1);
  EXPECT_EQ(groups[1].lr_factor, 0.5);
  auto opt = tr::make_optimizer(groups, tr::OptimizerOptions().kind(tr::OptimizerKind::kAdamW).weight_decay(0.1), 1.0);
  // Zero gradients: AdamW moves only by its decoupled decay, so only the decayed weight shrinks.
  w.mutable_grad() = torch::zeros_like(w);
  b.mutable_grad() = torch::zeros_like(b);
  opt->step();
  EXPECT_TRUE(torch::allclose(w, torch::full({2, 2}, 1.0 - 0.5 * 0.1)));
  EXPECT_TRUE(torch::equal(b, torch::ones({2})));
  EXPECT_TRUE(tr::default_no_decay_bn_bias(tr::OptimizerKind::kAdamW));
  EXPECT_FALSE(tr::default_no_decay_bn_bias(tr::OptimizerKind::kSgd));
}

TEST(SoftTargets, HeadLossMatchesTheDefinitions) {
  torch::manual_seed(2);
  sn::HeadOutput out;
  out.head_logits = {torch::randn({6, 5}), torch::randn({6, 5})};
  out.logits = (out.head_logits[0] + out.head_logits[1]) / 2;
  const auto labels = torch::tensor({0, 1, 4, 2, 2, 3}, torch::kInt64);
  const auto soft = torch::softmax(torch::randn({6, 5}), 1);
  auto ce = [](const torch::Tensor& logits, const torch::Tensor& t) {
    return -(t * torch::log_softmax(logits, 1)).sum(1).mean();
  };
  auto joint = sn::head_loss(out, soft, sn::LossKind::kJoint);
  EXPECT_NEAR(joint.item<double>(), ce(out.logits, soft).item<double>(), 1e-6);
  auto individual = sn::head_loss(out, soft, sn::LossKind::kIndividual);
  EXPECT_NEAR(individual.item<double>(),
              (ce(out.head_logits[0], soft) + ce(out.head_logits[1], soft)).item<double>(), 1e-6);
  // Label smoothing s: the target (1 - s) one-hot + s / K.
  const double s = 0.2;
  const auto smoothed = torch::nn::functional::one_hot(labels, 5).to(torch::kFloat32) * (1 - s) + s / 5;
  auto with_smoothing = sn::head_loss(out, labels, sn::LossKind::kIndividual, sn::IndividualReduction::kMean,
                                      sn::LossOptions().label_smoothing(s));
  EXPECT_NEAR(with_smoothing.item<double>(),
              ((ce(out.head_logits[0], smoothed) + ce(out.head_logits[1], smoothed)) / 2).item<double>(), 1e-6);
  // Class weights with labels: the weighted mean.
  const auto weights = torch::tensor({1.0, 2.0, 0.5, 1.0, 3.0}, torch::kFloat32);
  auto weighted = sn::head_loss(out, labels, sn::LossKind::kJoint, sn::IndividualReduction::kSum,
                                sn::LossOptions().class_weights(weights));
  const auto w = weights.index_select(0, labels);
  const auto nll = -torch::log_softmax(out.logits, 1).gather(1, labels.unsqueeze(1)).squeeze(1);
  EXPECT_NEAR(weighted.item<double>(), ((w * nll).sum() / w.sum()).item<double>(), 1e-6);
  EXPECT_NE(expect_error([&] { sn::head_loss(out, torch::ones({6, 4}), sn::LossKind::kJoint); }).find("[N, K]"),
            std::string::npos);
}

TEST(Mix, MixupAndCutmixKeepTargetsAndPixelsConsistent) {
  torch::manual_seed(5);
  const auto images = torch::randn({6, 3, 16, 12});
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 5}, torch::kInt64);
  auto plain = tr::mix_batch(images, labels, 7, 0, 0);
  EXPECT_TRUE(torch::equal(plain.images, images));
  EXPECT_TRUE(torch::equal(plain.targets.argmax(1), labels));
  for (int i = 0; i < 5; ++i) {
    auto m = tr::mix_batch(images, labels, 7, 0.4, 0);
    EXPECT_FALSE(m.cutmix);
    EXPECT_TRUE(torch::allclose(m.targets.sum(1), torch::ones({6})));
    EXPECT_TRUE(torch::allclose(m.images, images * m.lambda + images.flip(0) * (1 - m.lambda), 1e-5, 1e-6));
    EXPECT_NEAR(m.targets[0][0].item<double>(), m.lambda, 1e-6);
    auto c = tr::mix_batch(images, labels, 7, 0, 1.0);
    EXPECT_TRUE(c.cutmix);
    // Every pixel is its own or its partner's, and the partner's share is 1 - lambda.
    const auto own = c.images.eq(images).all(1), other = c.images.eq(images.flip(0)).all(1);
    EXPECT_TRUE(own.logical_or(other).all().item<bool>());
    const double partner_share = other.logical_and(own.logical_not()).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(partner_share, 1 - c.lambda, 1e-9);
    EXPECT_NEAR(c.targets[0][0].item<double>(), c.lambda, 1e-6);
    EXPECT_NEAR(c.targets[0][5].item<double>(), 1 - c.lambda, 1e-6);
  }
  // With both, each batch is one of the two, and both occur.
  int cutmix = 0;
  for (int i = 0; i < 40; ++i) cutmix += tr::mix_batch(images, labels, 7, 0.4, 1.0).cutmix;
  EXPECT_GT(cutmix, 5);
  EXPECT_LT(cutmix, 35);
}

TEST(Ema, FollowsTheFormulaAndSwaps) {
  auto bn = torch::nn::BatchNorm1d(3);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : bn->named_parameters()) named.emplace_back(p.key(), p.value());
  for (const auto& b : bn->named_buffers()) named.emplace_back(b.key(), b.value());
  tr::WeightEma ema(named, 0.75);
  const auto start = bn->weight.detach().clone();
  {
    torch::NoGradGuard g;
    bn->weight.fill_(5);
  }
  bn->train();
  bn->forward(torch::randn({8, 3}));  // moves running_mean and num_batches_tracked
  ema.update();
  auto state = ema.state();
  EXPECT_TRUE(torch::allclose(state.at("weight"), 0.75 * start + 0.25 * 5));
  EXPECT_TRUE(torch::allclose(state.at("running_mean"), 0.25 * bn->running_mean));
  EXPECT_EQ(state.at("num_batches_tracked").item<int64_t>(), 1);
  const auto raw = bn->weight.detach().clone();
  ema.swap();
  EXPECT_TRUE(torch::allclose(bn->weight, 0.75 * start + 0.25 * 5));
  ema.swap();
  EXPECT_TRUE(torch::equal(bn->weight, raw));
  auto bad = state;
  bad.erase("weight");
  bad["other"] = torch::zeros({3});
  EXPECT_NE(expect_error([&] { ema.load_state(bad, "ck.pt"); }).find("weight"), std::string::npos);
  EXPECT_NE(expect_error([] { tr::WeightEma({}, 1.0); }).find("[0, 1)"), std::string::npos);
}

TEST(Accumulation, TwoMicroBatchesEqualOneBatchWithoutBatchNormUpdates) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // A frozen backbone (BatchNorm in evaluation mode) and a linear head: nothing depends on how
  // the batch is cut, so 2 x 8 accumulated must equal 16 at once.
  auto options = tr::TrainOptions().epochs(2).lr(0.05).freeze_backbone(true).channels_last(false);
  TempDir a, b;
  run(tr::TrainOptions(options).batch_size(16), quiet(a.file("run")), 1, tiny_model(sn::HeadKind::kLinear));
  run(tr::TrainOptions(options).batch_size(8).accum_steps(2), quiet(b.file("run")), 1,
      tiny_model(sn::HeadKind::kLinear));
  auto x = tr::read_archive_tensors(a.file("run/checkpoint.pt")), y = tr::read_archive_tensors(b.file("run/checkpoint.pt"));
  double moved = 0;
  for (const auto& [name, t] : x) {
    EXPECT_TRUE(torch::allclose(t.to(torch::kFloat64), y.at(name).to(torch::kFloat64), 1e-5, 1e-6)) << name;
  }
  // Against a run without accumulation at batch 8, which must differ (the test can fail).
  TempDir c;
  run(tr::TrainOptions(options).batch_size(8), quiet(c.file("run")), 1, tiny_model(sn::HeadKind::kLinear));
  auto z = tr::read_archive_tensors(c.file("run/checkpoint.pt"));
  for (const auto& [name, t] : z) moved += (t.to(torch::kFloat64) - y.at(name).to(torch::kFloat64)).abs().sum().item<double>();
  EXPECT_GT(moved, 1e-3);
}

TEST(Clipping, OneStepMovesByAtMostLrTimesTheNorm) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // One SGD step (16 samples, batch 16), no momentum or decay: the update is lr x the clipped gradient.
  const double lr = 10.0, clip = 0.01;
  auto options = tr::TrainOptions().epochs(1).batch_size(16).lr(lr).momentum(0).weight_decay(0).clip_grad_norm(clip)
      .schedule(tr::ScheduleKind::kCosine);  // the base rate at step 0 (a 1-epoch step schedule decays at once)
  TempDir dir;
  run(options, quiet(dir.file("run")), 1, tiny_model(), 16);
  auto after = tr::read_archive_tensors(dir.file("run/checkpoint.pt"));
  double squared = 0;
  torch::manual_seed(1);  // the initial weights of run(..., seed 1)
  auto model = sn::make_classifier(tiny_model());
  for (const auto& item : model->named_parameters()) {
    const auto name = sn::export_name(item.key());
    squared += (after.at(name) - item.value().detach()).pow(2).sum().item<double>();
  }
  EXPECT_NEAR(std::sqrt(squared), lr * clip, 1e-4 * lr);
}
