// The command-line tool end to end: pinned JSON outputs, files written, clear errors.
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include <cstdlib>

#include <splitshare/data/datasets.h>
#include <splitshare/nn/heads.h>
#include <splitshare/train/fit.h>
#include <splitshare/util/cpu.h>

#include "image_writers.h"
#include "support.h"

using splitshare::testing::run_command;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;
const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

nlohmann::json run_json(const std::string& args) {
  std::string out;
  // In a subshell: run_command's own 2>&1 would otherwise send the log into the JSON.
  const int rc = run_command("(" + kCli + " " + args + " 2>/dev/null)", &out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON from '" << args << "': " << out;
    return {};
  }
}

void expect_failure(const std::string& args, const std::string& message) {
  std::string out;
  EXPECT_NE(run_command(kCli + " " + args, &out), 0) << args;
  EXPECT_NE(out.find(message), std::string::npos) << args << " printed:\n" << out;
}

}  // namespace

TEST(Cli, InfoParameterCountsArePinned) {
  struct Case {
    const char* args;
    int64_t params;
  };
  for (auto c : {Case{"--arch resnet50 --head linear", 25557032}, Case{"--arch resnet50 --head ssm", 28638176},
                 Case{"--arch resnet50 --head ssm --ssm-norm all", 28642272},
                 Case{"--arch resnet50 --head ssm --ssm-norm first", 28638176},
                 Case{"--arch resnet50 --head kfc --k 2", 27606032}, Case{"--arch resnet50 --head kfc --k 3", 29655032},
                 Case{"--arch resnet18 --head linear", 11689512}, Case{"--arch resnet101 --head linear", 44549160},
                 Case{"--arch resnext50_32x4d --head linear", 25028904}}) {
    auto j = run_json(std::string("info ") + c.args + " --json");
    EXPECT_EQ(j["params"], c.params) << c.args;
    EXPECT_EQ(j["feature_dim"], std::string(c.args).find("resnet18") != std::string::npos ? 512 : 2048) << c.args;
  }
  auto j = run_json("info --arch resnet50 --head ssm --json");
  EXPECT_EQ(j["head_params"], 28638176 - 23508032);
  expect_failure("info --arch resnet50 --ssm-norm some --json", "--ssm-norm: expected first or all, got 'some'");
  expect_failure("info --last-plain --ssm-norm all --json", "contradict each other");
}

TEST(Cli, RefusesBadValuesWithAClearMessage) {
  expect_failure("train --epochs -1", "--epochs must be at least 1");
  expect_failure("info --arch resnet51 --json", "unknown architecture 'resnet51'");
  expect_failure("info --arch resnet50 --splits 3 --json", "must be divisible by splits (3)");
  expect_failure("train --head mlp", "unknown head 'mlp'");
  expect_failure("eval --checkpoint x.pt --amp fp16", "inference takes --amp auto, fp32 or bf16");
  expect_failure("eval --checkpoint x.pt --amp=fast", "unknown precision 'fast': expected auto, bf16, fp16 or fp32");
  expect_failure("eval --checkpoint x.pt --amp auto", "checkpoint not found: x.pt");  // read as --amp=auto
  expect_failure("train --data nowhere:/x", "nowhere");
  expect_failure("eval --checkpoint /nonexistent/ck.pt", "not found");
  expect_failure("frobnicate", "unknown command");
  expect_failure("predict --checkpoint /nonexistent/ck.pt x.png", "not found");
  expect_failure("import --weights /nonexistent/w.pt --out /tmp/never.pt", "weights file not found");
}

TEST(Cli, TrainEvalInfoOnAFashionMnistSubset) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const auto out = dir.file("run");
  std::string log;
  ASSERT_EQ(run_command(kCli + " train --epochs 1 --limit-train 512 --limit-val 256 --width 8 --batch-size 64 "
                               "--no-progress --out " + out, &log), 0) << log;
  for (auto f : {"metrics.jsonl", "summary.json", "checkpoint.pt", "best.pt"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  }
  // --weight-decay auto on 28-px data: the small-image recipe, stated in the log.
  EXPECT_NE(log.find("weight decay 0.0005"), std::string::npos) << log;
  auto metrics = nlohmann::json::parse(splitshare::testing::read_file(out + "/metrics.jsonl"));
  EXPECT_EQ(metrics["epoch"], 1);
  EXPECT_EQ(metrics["val"]["samples"], 256);
  // The summary records the recipe and the training set's size (results pages read them).
  auto summary = nlohmann::json::parse(splitshare::testing::read_file(out + "/summary.json"));
  EXPECT_EQ(summary["train_images_per_epoch"], 512);  // 8 whole batches of 64
  EXPECT_EQ(summary["train"]["batch_size"], 64);
  EXPECT_EQ(summary["train"]["epochs"], 1);
  EXPECT_DOUBLE_EQ(summary["train"]["weight_decay"].get<double>(), 0.0005);

  auto info = run_json("info --checkpoint " + out + "/checkpoint.pt --json");
  EXPECT_EQ(info["arch"], "resnet10");
  EXPECT_EQ(info["head"], "ssm");
  EXPECT_EQ(info["splits"], 4);
  EXPECT_EQ(info["last_plain"], true);  // BatchNorm+ReLU on the first three splits, the default
  EXPECT_EQ(info["num_classes"], 10);
  EXPECT_EQ(info["classes"][9], "Ankle boot");
  EXPECT_EQ(info["stem"], "small");
  EXPECT_EQ(info["preprocess"]["channels"], 1);
  EXPECT_TRUE(info["preprocess"]["resize"].is_null());
  EXPECT_TRUE(info["preprocess"]["crop"].is_null());
  EXPECT_EQ(info["preprocess"]["size"], 28);  // what `predict` resizes new images to
  EXPECT_EQ(info["preprocess"]["mean"].size(), 1u);
  EXPECT_EQ(info["preprocess"]["std"].size(), 1u);

  auto single = run_json("eval --checkpoint " + out + "/checkpoint.pt --limit-val 256 --json");
  EXPECT_EQ(single["samples"], 256);
  EXPECT_EQ(single["heads"].size(), 4u);
  for (auto key : {"top1", "top5", "loss", "oracle"}) EXPECT_TRUE(single[key].is_number()) << key;
  EXPECT_GE(single["oracle"].get<double>(), single["heads"][0]["top1"].get<double>());
  // eval normalises with the statistics the checkpoint records (those of the 512 training
  // images here, not the whole set's), so it reproduces the run's own figures.
  EXPECT_NEAR(single["top1"].get<double>(), metrics["val"]["top1"].get<double>(), 1e-9);
  EXPECT_NEAR(single["loss"].get<double>(), metrics["val"]["loss"].get<double>(), 1e-6);
  // --amp bf16: the backbone in bfloat16 gives nearly the same answers, not the same bits.
  auto bf16 = run_json("eval --checkpoint " + out + "/checkpoint.pt --limit-val 256 --amp bf16 --json");
  EXPECT_EQ(bf16["samples"], 256);
  EXPECT_NEAR(bf16["top1"].get<double>(), single["top1"].get<double>(), 0.03);
  EXPECT_NEAR(bf16["loss"].get<double>(), single["loss"].get<double>(), 0.05 * single["loss"].get<double>());
  EXPECT_NE(bf16["loss"].get<double>(), single["loss"].get<double>());

  auto pair = run_json("eval --checkpoint " + out + "/checkpoint.pt --checkpoint " + out +
                       "/best.pt --limit-val 256 --json");
  EXPECT_EQ(pair["members"].size(), 2u);
  // An ensemble of a model with itself predicts what the model predicts.
  EXPECT_NEAR(pair["ensemble"]["top1"].get<double>(), single["top1"].get<double>(), 1e-9);
}

// `version` says what the binary was built with, and agrees with the project's Python torch
// (the same wheel the build takes its libtorch from).
TEST(Cli, VersionAgreesWithThePythonTorchOfTheBuild) {
  auto j = run_json("version --json");
  for (const char* key :
       {"splitshare", "libtorch", "cuda", "cudnn", "nccl", "gloo", "blas", "malloc", "threads", "cpu"}) {
    EXPECT_TRUE(j.contains(key)) << key << " missing from " << j.dump();
  }
  EXPECT_EQ(j["cpu"]["model"], splitshare::util::cpu_info().model);
  EXPECT_EQ(j["cpu"]["isa"].size(), splitshare::util::cpu_info().isa.size());
  // The tool links tcmalloc when the build found it and SPLITSHARE_TCMALLOC is not OFF; ctest says
  // which (CMakeLists.txt; the sanitizer builds link none).
  if (const char* linked = std::getenv("SPLITSHARE_TEST_CLI_MALLOC")) EXPECT_EQ(j["malloc"], linked);
  EXPECT_EQ(j["libtorch"], TORCH_VERSION);
  EXPECT_GE(j["threads"].get<int>(), 1);
  EXPECT_TRUE(j["gloo"].get<bool>());
  EXPECT_FALSE(j["blas"].get<std::string>().empty());
  auto threads = run_json("version --json --threads 1");
  EXPECT_EQ(threads["threads"], 1);
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch (scripts/setup)";
  std::string out;
  ASSERT_EQ(run_command(std::string(splitshare::testing::python()) +
                            " -c 'import torch, json; print(json.dumps([torch.__version__.split(\"+\")[0], "
                            "torch.version.cuda, torch.distributed.is_nccl_available()]))'",
                        &out),
            0)
      << out;
  const auto python = nlohmann::json::parse(out);
  EXPECT_EQ(j["libtorch"], python[0]);
  EXPECT_EQ(j["cuda"], python[1]);
  // NCCL is ours to compile in whenever libtorch has CUDA (scripts/build insists on it).
  if (!python[1].is_null()) EXPECT_TRUE(j["nccl"].get<bool>());
  std::string text;
  ASSERT_EQ(run_command(kCli + " version", &text), 0);
  EXPECT_NE(text.find("libtorch " + j["libtorch"].get<std::string>()), std::string::npos) << text;
  EXPECT_NE(text.find(", " + j["malloc"].get<std::string>() + ", "), std::string::npos) << text;
  EXPECT_NE(text.find("threads, CPU " + j["cpu"]["model"].get<std::string>()), std::string::npos) << text;
}

// --help shows the library structs' own defaults: the strings cannot drift from them.
TEST(Cli, HelpDefaultsAreTheOptionStructsDefaults) {
  std::string help;
  ASSERT_EQ(run_command(kCli + " train --help", &help), 0);
  // cxxopts wraps long lines; fold the help into one line of single spaces.
  std::string folded;
  for (char c : help) {
    const char d = c == '\n' ? ' ' : c;
    if (d == ' ' && !folded.empty() && folded.back() == ' ') continue;
    folded += d;
  }
  auto expect_default = [&](const std::string& option, const std::string& value) {
    const auto at = folded.find("--" + option + " ");
    ASSERT_NE(at, std::string::npos) << option;
    const auto def = folded.find("(default: ", at);
    ASSERT_NE(def, std::string::npos) << option;
    EXPECT_EQ(folded.substr(def + 10, value.size() + 1), value + ")") << option;
  };
  const splitshare::data::DataOptions data;
  const splitshare::train::TrainOptions train;
  expect_default("batch-size", std::to_string(data.batch_size()));
  expect_default("eval-batch-size", std::to_string(data.eval_batch_size()));
  expect_default("workers", std::to_string(data.workers()));
  expect_default("epochs", std::to_string(train.epochs()));
  expect_default("splits", std::to_string(splitshare::nn::HeadOptions().splits()));
  expect_default("weight-decay", "auto");
  EXPECT_NE(folded.find("auto: 0.0001, the paper's, for photo folders; 0.0005 for 28/32-px data"), std::string::npos);
  EXPECT_DOUBLE_EQ(splitshare::train::default_weight_decay(false), 1e-4);
  EXPECT_DOUBLE_EQ(splitshare::train::default_weight_decay(true), 5e-4);
  expect_default("ssm-norm", "first");
  expect_default("individual-reduction", "sum");
  expect_default("schedule", splitshare::train::to_string(train.schedule()));
  expect_default("opt", splitshare::train::to_string(train.optimizer()));
  expect_default("accum-steps", std::to_string(train.accum_steps()));
  expect_default("val-split", "0.1");
  EXPECT_DOUBLE_EQ(data.val_split(), 0.1);
}

TEST(Cli, TrainsAndEvaluatesFromWebDatasetShards) {
  TempDir dir;
  const auto staging = dir.file("staging"), shards = dir.file("shards");
  std::filesystem::create_directories(staging);
  std::filesystem::create_directories(shards);
  std::string members;
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 10; ++i) {
      const std::string key = "c" + std::to_string(c) + "_" + std::to_string(i);
      splitshare::testing::write_file(staging + "/" + key + ".png",
                                      splitshare::testing::encode_png(splitshare::testing::test_picture(3, 24, 20, 7 * i + c)));
      splitshare::testing::write_file(staging + "/" + key + ".cls", std::to_string(c));
      members += " " + key + ".png " + key + ".cls";
    }
  }
  splitshare::testing::write_file(staging + "/nolabel.png", splitshare::testing::encode_png(
                                                               splitshare::testing::test_picture(3, 24, 20, 99)));
  ASSERT_EQ(run_command("tar -C " + staging + " -cf " + shards + "/train-000000.tar" + members + " nolabel.png", nullptr), 0);
  const auto out = dir.file("run");
  const std::string recipe = " --epochs 1 --width 2 --batch-size 4 --val-split 0.2 --no-progress --workers 0";
  std::string log;
  ASSERT_EQ(run_command(kCli + " train --data wds:" + shards + recipe + " --out " + out, &log), 0) << log;
  EXPECT_NE(log.find(shards + "/train-000000.tar: sample nolabel has no .cls member"), std::string::npos) << log;
  const auto val_files = splitshare::testing::read_file(out + "/val_files.txt");
  EXPECT_NE(val_files.find("train-000000.tar/c0_"), std::string::npos) << val_files;
  // eval without --data reads the run's shards and its recorded split: 2 of each class's 10.
  EXPECT_EQ(run_json("eval --checkpoint " + out + "/checkpoint.pt --json")["samples"], 4);
  expect_failure("train --data wds:" + shards + recipe + " --strict --out " + dir.file("strict"),
                 "sample nolabel has no .cls member (its class index) (--strict refuses such shards");
  EXPECT_FALSE(std::filesystem::exists(dir.file("strict") + "/checkpoint.pt"));
}

TEST(Cli, PacksAFolderIntoShardsThatTrainAndRefusesWhatItMustNotWrite) {
  TempDir dir;
  const auto photos = dir.file("photos"), shards = dir.file("shards"), out = dir.file("run");
  splitshare::testing::make_photo_folder(photos, {{"ant", 8}, {"bee", 8}});  // one root: training shards only
  std::string log;
  ASSERT_EQ(run_command(kCli + " pack imagefolder:" + photos + " --out " + shards + " --shard-size 5samples --no-progress",
                        &log), 0) << log;
  EXPECT_NE(log.find("train: 16 samples in 4 shards, 0 skipped"), std::string::npos) << log;
  EXPECT_EQ(run_json("pack imagefolder:" + photos + " --out " + dir.file("again") + " --json --no-progress")["classes"]
                .get<std::vector<std::string>>(),
            (std::vector<std::string>{"ant", "bee"}));
  const std::string recipe = " --epochs 1 --width 2 --batch-size 4 --val-split 0.25 --no-progress --workers 0";
  ASSERT_EQ(run_command(kCli + " train --data wds:" + shards + recipe + " --out " + out, &log), 0) << log;
  EXPECT_EQ(run_json("eval --checkpoint " + out + "/checkpoint.pt --json")["samples"], 4);  // 2 of each class's 8
  // Streaming: the same shards, read shard by shard through a shuffle buffer.
  ASSERT_EQ(run_command(kCli + " train --data wds:" + shards + recipe + " --image-size 16 --shuffle shards --shuffle-buffer 3 --out " +
                            dir.file("streamed"), &log), 0) << log;
  EXPECT_EQ(run_json("eval --checkpoint " + dir.file("streamed") + "/checkpoint.pt --json")["samples"], 4);
  expect_failure("train --data wds:" + shards + recipe + " --shuffle-buffer 3 --out " + dir.file("z"),
                 "--shuffle-buffer sets the buffer of --shuffle shards");
  expect_failure("train --data wds:" + shards + recipe + " --shuffle random --out " + dir.file("z"),
                 "--shuffle: expected index or shards, got 'random'");
  expect_failure("train --data fashion-mnist --limit-train 64 --shuffle shards --out " + dir.file("z"),
                 "fashion-mnist data is read by index");
  expect_failure("pack imagefolder:" + photos + " --out " + shards, "already holds a finished pack");
  expect_failure("pack imagefolder:" + photos + " --out " + out, out + " holds a training run");
  expect_failure("pack imagefolder:" + photos + " --out " + dir.file("x") + " --shard-size 12",
                 "--shard-size: '12' is not a size");
  expect_failure("pack imagefolder:" + dir.file("nothing") + " --out " + dir.file("y"), dir.file("nothing"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("x")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("y")));  // a refused pack leaves nothing behind
}
