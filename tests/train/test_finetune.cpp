// Fine-tuning: a frozen backbone stays bit for bit as loaded, the head has its own learning
// rate, and `train --init` starts from a checkpoint.
#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/fit.h>

#include <nlohmann/json.hpp>

#include "image_writers.h"
#include "support.h"
#include "tiny_models.h"

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace sd = splitshare::data;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;

sn::Classifier small_model() {
  torch::manual_seed(4);
  return sn::make_classifier(sn::ClassifierOptions().arch("resnet10").width(8).in_channels(1).stem(sn::Stem::kSmall)
                                 .num_classes(3).head(sn::HeadOptions().kind(sn::HeadKind::kSSM)));
}

std::map<std::string, torch::Tensor> snapshot(sn::ClassifierImpl& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, tensor] : sn::named_state(model)) out[name] = tensor.detach().clone();
  return out;
}

bool is_head(const std::string& name) { return name.rfind("fc.", 0) == 0 || name.rfind("bn.", 0) == 0; }

// The largest change of a trained parameter (not BatchNorm statistics) of the head or the backbone.
double max_change(sn::ClassifierImpl& model, const std::map<std::string, torch::Tensor>& a,
                  const std::map<std::string, torch::Tensor>& b, bool head) {
  double worst = 0;
  for (const auto& item : model.named_parameters()) {
    const auto name = sn::export_name(item.key());
    if (is_head(name) != head) continue;
    worst = std::max(worst, (a.at(name) - b.at(name)).abs().max().item<double>());
  }
  return worst;
}

}  // namespace

TEST(FineTune, FrozenBackboneStaysBitwiseWhileTheHeadLearns) {
  auto data = splitshare::testing::noise_data();
  auto model = small_model();
  const auto before = snapshot(*model);
  tr::CheckpointMetadata meta;
  meta.model = model->options;
  tr::fit(model, data, tr::TrainOptions().epochs(2).batch_size(16).lr(0.1).head_lr(0.05).freeze_backbone(true),
          tr::RunContext().observer({}), meta);
  const auto after = snapshot(*model);
  for (const auto& [name, tensor] : before) {
    if (is_head(name)) continue;
    // Weights, BatchNorm statistics and num_batches_tracked alike.
    EXPECT_TRUE(torch::equal(tensor, after.at(name))) << name << " changed";
  }
  EXPECT_GT(max_change(*model, before, after, /*head=*/true), 1e-3);
  EXPECT_FALSE(torch::equal(before.at("bn.0.running_mean"), after.at("bn.0.running_mean")));
}

TEST(FineTune, HeadLearningRateIsItsOwn) {
  // Backbone rate ~0, head rate 0.1: only the head moves.
  auto data = splitshare::testing::noise_data();
  auto model = small_model();
  const auto before = snapshot(*model);
  tr::CheckpointMetadata meta;
  meta.model = model->options;
  tr::fit(model, data, tr::TrainOptions().epochs(1).batch_size(16).lr(1e-9).head_lr(0.1), tr::RunContext().observer({}),
          meta);
  const auto after = snapshot(*model);
  EXPECT_LT(max_change(*model, before, after, /*head=*/false), 1e-6);
  EXPECT_GT(max_change(*model, before, after, /*head=*/true), 1e-3);
}

TEST(FineTune, TrainInitFreezeBackboneOnFashionMnist) {
  if (!std::filesystem::exists(sd::default_fashion_mnist_dir())) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const std::string common = " --epochs 1 --limit-train 256 --limit-val 128 --batch-size 64 --no-progress --threads 2";
  std::string log;
  ASSERT_EQ(run_command(kCli + " train --width 8 --head linear" + common + " --out " + dir.file("base"), &log), 0)
      << log;
  const auto base = dir.file("base/checkpoint.pt");

  // The recipe: pretrained backbone, new SSM head with its own rate.
  log.clear();
  ASSERT_EQ(run_command(kCli + " train --init " + base + " --head ssm --freeze-backbone --head-lr 0.05" + common +
                            " --out " + dir.file("tuned"), &log), 0) << log;
  EXPECT_NE(log.find("does not fit the ssm head"), std::string::npos) << log;
  auto original = tr::read_archive_tensors(base);
  auto tuned = tr::read_archive_tensors(dir.file("tuned/checkpoint.pt"));
  int64_t compared = 0;
  for (const auto& [name, tensor] : original) {
    if (is_head(name)) continue;
    EXPECT_TRUE(torch::equal(tensor, tuned.at(name))) << name << " changed";
    ++compared;
  }
  EXPECT_GT(compared, 30);
  EXPECT_EQ(tuned.count("fc.weight"), 0u);
  EXPECT_EQ(tuned.count("fc.3.weight"), 1u);
  auto meta = tr::read_checkpoint_metadata(dir.file("tuned/checkpoint.pt"));
  EXPECT_EQ(meta.model.width(), 8);
  EXPECT_EQ(meta.extra["config"]["init"], base);
  EXPECT_EQ(meta.extra["config"]["freeze_backbone"], true);
  EXPECT_EQ(meta.preprocess.size.value_or(0), 28);

  // Continuing with the same head loads it too; a model flag that contradicts --init is refused.
  log.clear();
  ASSERT_EQ(run_command(kCli + " train --init " + dir.file("tuned/checkpoint.pt") + " --head-lr 0.01" + common +
                            " --out " + dir.file("again"), &log), 0) << log;
  EXPECT_NE(log.find("head loaded"), std::string::npos) << log;
  log.clear();
  EXPECT_NE(run_command(kCli + " train --init " + base + " --arch resnet18" + common + " --out " + dir.file("x"), &log),
            0);
  EXPECT_NE(log.find("--arch resnet18 disagrees with --init"), std::string::npos) << log;

  // The fine-tuned Fashion-MNIST model classifies an image file of any size.
  splitshare::testing::write_file(dir.file("item.png"),
                                  splitshare::testing::encode_png(splitshare::testing::test_picture(1, 57, 41)));
  log.clear();
  ASSERT_EQ(run_command(kCli + " predict --json --checkpoint " + dir.file("tuned/checkpoint.pt") + " " +
                            dir.file("item.png") + " 2>/dev/null", &log), 0) << log;
  auto json = nlohmann::json::parse(log);
  EXPECT_EQ(json["predictions"][0]["topk"].size(), 5u);
  EXPECT_EQ(json["predictions"][0]["head_logits"].size(), 4u);
}
