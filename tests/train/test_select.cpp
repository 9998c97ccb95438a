// The head-selection gate (issue #21, first part): on a synthetic model whose right head is a
// known function of the input, a trained gate finds it and closes the mean-to-oracle gap; an
// untrained gate is the plain mean; the outputs it trains on keep exactly the chosen samples.
#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/nn/gate.h>
#include <splitshare/train/select.h>

#include <nlohmann/json.hpp>

#include "image_writers.h"
#include "support.h"
#include "tiny_models.h"

#include <set>
#include <sstream>

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace sd = splitshare::data;
using splitshare::testing::expect_error;

namespace {

constexpr int64_t kHeads = 3, kClasses = 4;

// Each sample lies in one of 3 regions (its features: the region's one-hot plus noise). Head
// s is right (a confident peak on the label) in region s and confidently wrong elsewhere, so
// the mean is mostly wrong, the oracle always right, and the right head follows the features.
tr::HeadOutputs synthetic(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const auto region = torch::randint(0, kHeads, {n}, torch::kLong);
  const auto labels = torch::randint(0, kClasses, {n}, torch::kLong);
  tr::HeadOutputs out;
  out.features = torch::one_hot(region, kHeads).to(torch::kFloat) + 0.1 * torch::randn({n, kHeads});
  out.head_logits = torch::randn({kHeads, n, kClasses}) * 0.1;
  for (int64_t s = 0; s < kHeads; ++s) {
    const auto wrong = (labels + torch::randint(1, kClasses, {n}, torch::kLong)).remainder(kClasses);
    const auto peak = torch::where(region.eq(s), labels, wrong);
    out.head_logits[s] += 3.0 * torch::one_hot(peak, kClasses).to(torch::kFloat);
  }
  out.logits = out.head_logits.mean(0);
  out.labels = labels;
  out.indices = torch::arange(n);
  return out;
}

}  // namespace

TEST(Gate, LearnsTheRightHeadWhenItIsAFunctionOfTheInput) {
  const auto train = synthetic(3000, 1), test = synthetic(1000, 2);
  for (const int64_t hidden : {0, 16}) {
    for (const bool hard : {false, true}) {
      SCOPED_TRACE("hidden " + std::to_string(hidden) + (hard ? " hard" : " soft"));
      torch::manual_seed(3);
      sn::Gate gate(sn::GateOptions(kHeads, kHeads, kClasses).input(sn::GateInput::kFeatures).hidden(hidden).hard(hard));
      const auto losses = tr::fit_gate(*gate, train, tr::GateTrainOptions().epochs(40).lr(0.05).seed(4));
      EXPECT_LT(losses.back(), losses.front());
      const auto r = tr::selection_report(*gate, test);
      EXPECT_LT(r.combined, 0.6);   // the mean is misled by two confident wrong heads
      EXPECT_GT(r.oracle, 0.99);
      EXPECT_GT(r.gate, 0.95);
      EXPECT_GT(r.gap_closed(), 0.9);
      EXPECT_EQ(r.samples, 1000);
    }
  }
}

TEST(Gate, UntrainedGateIsTheMeanAndHardGatesPickOneHead) {
  const auto data = synthetic(50, 5);
  sn::Gate gate(sn::GateOptions(kHeads, kHeads, kClasses).hidden(8));
  gate->eval();
  splitshare::testing::expect_close(gate->forward(data.features, data.head_logits), data.head_logits.mean(0), 1e-6);
  sn::Gate hard(sn::GateOptions(kHeads, kHeads, kClasses).hard(true));
  hard->eval();
  torch::NoGradGuard no_grad;
  hard->fc1->bias[1] = 1.0;  // prefers head 1 everywhere
  splitshare::testing::expect_close(hard->forward(data.features, data.head_logits), data.head_logits[1], 0);
  EXPECT_EQ(hard->weights(data.features, data.head_logits).sum(1).eq(1).all().item<bool>(), true);
}

TEST(Gate, InputsOptionsAndErrors) {
  const auto data = synthetic(10, 6);
  EXPECT_EQ(sn::gate_input(sn::GateInput::kFeatures, data.features, data.head_logits).size(1), kHeads);
  EXPECT_EQ(sn::gate_input(sn::GateInput::kLogits, data.features, data.head_logits).size(1), kHeads * kClasses);
  EXPECT_EQ(sn::gate_input(sn::GateInput::kBoth, data.features, data.head_logits).size(1), kHeads + kHeads * kClasses);
  EXPECT_EQ(sn::parse_gate_input("both"), sn::GateInput::kBoth);
  EXPECT_NE(expect_error([] { sn::parse_gate_input("pixels"); }).find("unknown gate input 'pixels'"), std::string::npos);
  EXPECT_NE(expect_error([] { sn::Gate(sn::GateOptions(1, 4, 3)); }).find("needs at least 2 heads"), std::string::npos);
  sn::Gate gate(sn::GateOptions(kHeads, kHeads, kClasses));
  std::vector<std::string> names;
  for (const auto& p : gate->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias"}));
}

TEST(Gate, CollectedOutputsKeepExactlyTheChosenSamples) {
  auto data = splitshare::testing::noise_data();
  auto model = splitshare::testing::tiny_model(splitshare::testing::ssm_head(), 2);
  std::vector<bool> keep(96, false);
  for (size_t i = 0; i < keep.size(); i += 3) keep[i] = true;
  const auto out = tr::collect_head_outputs(*model, *data.val, torch::kCPU, keep);
  EXPECT_EQ(out.labels.size(0), 32);
  EXPECT_TRUE(out.indices.remainder(3).eq(0).all().item<bool>());
  EXPECT_EQ(out.head_logits.sizes(), (std::vector<int64_t>{splitshare::testing::kSplits, 32, 3}));
  EXPECT_EQ(out.features.size(1), model->feature_dim());
  // The cached combination is the model's own (the mean of the splits).
  splitshare::testing::expect_close(out.logits, out.head_logits.mean(0), 1e-5);
}

TEST(Gate, SelectCommandTrainsOnAHoldOutAndReportsBothSplits) {
  if (!std::filesystem::exists(splitshare::data::default_fashion_mnist_dir())) GTEST_SKIP() << "no Fashion-MNIST";
  splitshare::testing::TempDir dir;
  const std::string cli = SPLITSHARE_CLI;
  const std::string tiny = " --limit-train 640 --limit-val 200 --batch-size 32 --width 4 --threads 1 --no-progress";
  std::string log;
  ASSERT_EQ(splitshare::testing::run_command(cli + " train --epochs 1 --splits 4" + tiny + " --out " + dir.file("ssm"), &log), 0)
      << log;
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " select --checkpoint " + dir.file("ssm/best.pt") +
                                                 " --limit-train 640 --limit-val 200 --holdout 0.25 --gate-epochs 3 --out " +
                                                 dir.file("gate"),
                                             &log),
            0)
      << log;
  EXPECT_NE(log.find("validation"), std::string::npos) << log;
  const auto report = nlohmann::json::parse(splitshare::testing::read_file(dir.file("gate/select.json")));
  EXPECT_EQ(report["validation"]["samples"], 200);
  EXPECT_NEAR(report["holdout"]["samples"].get<double>(), 0.25 * 640, 10);  // stratified: rounded per class
  EXPECT_EQ(report["losses"].size(), 3u);
  EXPECT_GE(report["validation"]["oracle"].get<double>(), report["validation"]["combined"].get<double>());
  // The hold-out: one training-split index per line, as many as reported, inside the 640.
  std::istringstream holdout(splitshare::testing::read_file(dir.file("gate/holdout.txt")));
  std::set<int64_t> listed;
  for (int64_t index; holdout >> index;) listed.insert(index);
  EXPECT_EQ(static_cast<int64_t>(listed.size()), report["holdout"]["samples"].get<int64_t>());
  EXPECT_LT(*listed.rbegin(), 640);
  // eval on the gated checkpoint reports what select measured on the validation split: the
  // gate as the model's top-1, next to the mean, the label-free rules and the oracle.
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " eval --checkpoint " + dir.file("gate/gated.pt") +
                                                 " --limit-val 200 --threads 1 --json 2>/dev/null",
                                             &log),
            0)
      << log;
  const auto evaluated = nlohmann::json::parse(log);
  const auto& selection = evaluated["selection"];
  const auto& validation = report["validation"];
  const double one_sample = 1.5 / 200;  // select runs the model, eval its folded copy: a tie may flip
  EXPECT_NEAR(selection["gate"].get<double>(), validation["gate"].get<double>(), one_sample);
  EXPECT_NEAR(evaluated["top1"].get<double>(), validation["gate"].get<double>(), one_sample);
  EXPECT_NEAR(selection["mean"].get<double>(), validation["combined"].get<double>(), one_sample);
  EXPECT_NEAR(selection["oracle"].get<double>(), validation["oracle"].get<double>(), one_sample);
  EXPECT_NEAR(selection["most_confident"].get<double>(), validation["most_confident"].get<double>(), one_sample);
  EXPECT_NEAR(selection["gap_closed"].get<double>(),
              splitshare::eval::gap_closed(selection["mean"], selection["gate"], selection["oracle"]), 1e-9);
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " eval --checkpoint " + dir.file("gate/gated.pt") +
                                                 " --limit-val 200 --threads 1",
                                             &log),
            0)
      << log;
  EXPECT_NE(log.find("of the mean-to-oracle gap"), std::string::npos) << log;
  // Both exports take the gate (their own tests compare the logits).
  for (const auto* file : {"gated.onnx", "gated.ts"}) {
    log.clear();
    EXPECT_EQ(splitshare::testing::run_command(cli + " export --checkpoint " + dir.file("gate/gated.pt") + " --out " +
                                                   dir.file(std::string("gate/") + file),
                                               &log),
              0)
        << log;
  }
  // A model with one head has nothing to select from.
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " train --epochs 1 --head linear" + tiny + " --out " + dir.file("lin"), &log), 0)
      << log;
  log.clear();
  EXPECT_NE(splitshare::testing::run_command(cli + " select --checkpoint " + dir.file("lin/best.pt") +
                                                 " --limit-train 640 --limit-val 200 --out " + dir.file("x"),
                                             &log),
            0);
  EXPECT_NE(log.find("the model has a single head"), std::string::npos) << log;
}

TEST(Gate, HoldOutOfASplitPhotoFolderNeverOverlapsItsValidationFiles) {
  splitshare::testing::TempDir dir;
  const std::string cli = SPLITSHARE_CLI;
  splitshare::testing::make_photo_folder(dir.file("photos"), {{"a", 12}, {"b", 12}, {"c", 12}});
  const auto data = " --data imagefolder:" + dir.file("photos");
  std::string log;
  // A seed other than the default: a select that split the folder afresh would draw another
  // validation split, and its hold-out would overlap this one.
  ASSERT_EQ(splitshare::testing::run_command(cli + " train" + data +
                                                 " --val-split 0.25 --seed 5 --epochs 1 --batch-size 4 --image-size 16"
                                                 " --arch resnet10 --width 4 --splits 2 --workers 0 --no-progress --out " +
                                                 dir.file("run"),
                                             &log),
            0)
      << log;
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " select --checkpoint " + dir.file("run/best.pt") + data +
                                                 " --holdout 0.5 --gate-epochs 2 --workers 0 --out " + dir.file("gate"),
                                             &log),
            0)
      << log;
  auto lines = [](const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.insert(line);
    }
    return out;
  };
  const auto val = lines(splitshare::testing::read_file(dir.file("run/val_files.txt")));
  ASSERT_EQ(val.size(), 9u);  // 3 of each class's 12
  std::set<std::string> holdout;
  for (const auto& path : lines(splitshare::testing::read_file(dir.file("gate/holdout.txt")))) {
    holdout.insert(std::filesystem::path(path).lexically_relative(dir.file("photos")).generic_string());
  }
  EXPECT_EQ(holdout.size(), 15u);  // 0.5 of each class's 9 training files, rounded: 5 x 3
  for (const auto& file : holdout) EXPECT_FALSE(val.count(file)) << file << " is a validation file";
  // The gated checkpoint's folder records the run's split, so eval there sees the same one.
  EXPECT_EQ(lines(splitshare::testing::read_file(dir.file("gate/val_files.txt"))), val);
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " eval --checkpoint " + dir.file("gate/gated.pt") + data +
                                                 " --workers 0 --json 2>/dev/null",
                                             &log),
            0)
      << log;
  EXPECT_EQ(nlohmann::json::parse(log)["samples"], 9) << log;
}

TEST(Gate, HoldOutIsStratifiedSeededAndInsideTheTrainingSplit) {
  auto labels = torch::cat({torch::zeros({100}, torch::kLong), torch::ones({50}, torch::kLong)});
  const auto a = sd::stratified_holdout(labels, 0.2, 1), b = sd::stratified_holdout(labels, 0.2, 1);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, sd::stratified_holdout(labels, 0.2, 2)));
  EXPECT_EQ(labels.index_select(0, a).eq(0).sum().item<int64_t>(), 20);
  EXPECT_EQ(labels.index_select(0, a).eq(1).sum().item<int64_t>(), 10);
  EXPECT_NE(expect_error([&] { sd::stratified_holdout(labels, 1.5, 0); }).find("--holdout must be a fraction"),
            std::string::npos);
}

TEST(Gate, TrainHoldOutIsLeftOutOfTrainingAndSelectTrainsOnThatOne) {
  splitshare::testing::TempDir dir;
  splitshare::testing::make_photo_folder(dir.file("photos"), {{"a", 12}, {"b", 12}, {"c", 12}});
  const auto spec = sd::parse_data_spec("imagefolder:" + dir.file("photos"));
  const auto options = sd::DataOptions().val_split(0.25).image_size(16).workers(0).batch_size(64).train_in_order(true);
  auto whole = sd::open_data(spec, options);
  auto trained = sd::open_data(spec, sd::DataOptions(options).train_holdout(0.5).train_holdout_seed(3));
  ASSERT_EQ(whole.train_files.size(), 27u);
  EXPECT_FALSE(whole.holdout.defined());
  ASSERT_TRUE(trained.holdout.defined());
  EXPECT_TRUE(torch::equal(trained.holdout, sd::stratified_holdout(torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
                                                                                  1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                                                                  2}),
                                                                   0.5, 3)));
  std::set<std::string> left_out;
  for (int64_t i = 0; i < trained.holdout.numel(); ++i) {
    left_out.insert(whole.train_files[static_cast<size_t>(trained.holdout[i].item<int64_t>())]);
  }
  EXPECT_EQ(left_out.size(), 15u);
  // What the training stream delivers: the other 12 files, each once.
  int64_t seen = 0;
  trained.train->reset(0);
  while (auto batch = trained.train->next()) seen += batch->labels.size(0);
  EXPECT_EQ(seen, 12);
  ASSERT_EQ(trained.train_files.size(), 12u);
  for (const auto& file : trained.train_files) EXPECT_FALSE(left_out.count(file)) << file << " was left out";
  EXPECT_EQ(trained.class_counts, (std::vector<int64_t>{4, 4, 4}));

  // Through the CLI: select finds the run's hold-out by itself and trains on exactly those files.
  const std::string cli = SPLITSHARE_CLI;
  const auto data = " --data imagefolder:" + dir.file("photos");
  std::string log;
  ASSERT_EQ(splitshare::testing::run_command(cli + " train" + data +
                                                 " --val-split 0.25 --holdout 0.5 --holdout-seed 3 --epochs 1"
                                                 " --batch-size 4 --image-size 16 --arch resnet10 --width 4 --splits 2"
                                                 " --workers 0 --no-progress --out " + dir.file("run"),
                                             &log),
            0)
      << log;
  EXPECT_NE(log.find("gate hold-out: 15 training samples left out"), std::string::npos) << log;
  log.clear();
  ASSERT_EQ(splitshare::testing::run_command(cli + " select --checkpoint " + dir.file("run/best.pt") + data +
                                                 " --gate-epochs 2 --workers 0 --out " + dir.file("gate"),
                                             &log),
            0)
      << log;
  EXPECT_NE(log.find("trained without this hold-out (train --holdout 0.5)"), std::string::npos) << log;
  const auto report = nlohmann::json::parse(splitshare::testing::read_file(dir.file("gate/select.json")));
  EXPECT_EQ(report["model_saw_holdout"], false);
  EXPECT_EQ(report["holdout_fraction"], 0.5);
  EXPECT_EQ(report["holdout_seed"], 3);
  std::set<std::string> listed;
  std::istringstream in(splitshare::testing::read_file(dir.file("gate/holdout.txt")));
  for (std::string line; std::getline(in, line);) listed.insert(line);
  EXPECT_EQ(listed, left_out);
  // Another hold-out than the run's is refused by name.
  log.clear();
  EXPECT_NE(splitshare::testing::run_command(cli + " select --checkpoint " + dir.file("run/best.pt") + data +
                                                 " --holdout 0.3 --workers 0 --out " + dir.file("gate2"),
                                             &log),
            0);
  EXPECT_NE(log.find("was trained without a hold-out of 0.5"), std::string::npos) << log;
}

TEST(Gate, TrainHoldOutOfInMemoryDataIsStratifiedAndLeftOut) {
  if (!std::filesystem::exists(splitshare::data::default_fashion_mnist_dir())) GTEST_SKIP() << "no Fashion-MNIST";
  const auto spec = sd::parse_data_spec("fashion-mnist");
  const auto options = sd::DataOptions().limit_train(300).limit_val(10).batch_size(64).train_in_order(true);
  auto whole = sd::open_data(spec, options);
  auto trained = sd::open_data(spec, sd::DataOptions(options).train_holdout(0.2).train_holdout_seed(1));
  ASSERT_TRUE(trained.holdout.defined());
  // The first 300 labels, read in order from the whole split.
  std::vector<torch::Tensor> labels, images;
  whole.train->reset(0);
  while (auto batch = whole.train->next()) {
    labels.push_back(batch->labels);
    images.push_back(batch->images);
  }
  const auto all_labels = torch::cat(labels), all_images = torch::cat(images);
  ASSERT_EQ(all_labels.size(0), 300);
  EXPECT_TRUE(torch::equal(trained.holdout, sd::stratified_holdout(all_labels, 0.2, 1)));
  const auto kept = sd::other_rows(300, trained.holdout);
  EXPECT_EQ(kept.size(0) + trained.holdout.size(0), 300);
  std::vector<torch::Tensor> got;
  trained.train->reset(0);
  while (auto batch = trained.train->next()) got.push_back(batch->images);
  // Exactly the kept images, in order (the hold-out normalised as the whole: the stats differ).
  const auto trained_images = torch::cat(got);
  ASSERT_EQ(trained_images.size(0), kept.size(0));
  const auto expected = all_images.index_select(0, kept);
  const auto standardise = [](const torch::Tensor& t) { return (t - t.mean()) / t.std(); };
  EXPECT_LT((standardise(trained_images) - standardise(expected)).abs().max().item<double>(), 1e-3);
}
