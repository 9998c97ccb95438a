#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/nn/classifier.h>
#include <nlohmann/json.hpp>

#include "support.h"

using splitshare::testing::expect_error;

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::TempDir;

namespace {

tr::CheckpointMetadata small_metadata(sn::HeadOptions head) {
  tr::CheckpointMetadata m;
  m.model = sn::ClassifierOptions().arch("resnet10").width(8).in_channels(1).stem(sn::Stem::kSmall).num_classes(3)
                .head(head);
  m.classes = {"cat", "dog", "<b>&bird"};
  m.preprocess.channels = 1;
  m.preprocess.mean = {0.25};
  m.preprocess.std = {0.5};
  m.epoch = 7;
  return m;
}


}  // namespace

TEST(Checkpoint, RoundTripGivesTheSameOutputsAndMetadata) {
  TempDir dir;
  auto meta = small_metadata(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4));
  auto model = sn::make_classifier(meta.model);
  // Move the BN statistics away from their defaults so buffers are checked too.
  model->train();
  model->forward(torch::randn({8, 1, 28, 28}));
  model->eval();
  const auto path = dir.file("ck.pt");
  tr::save_checkpoint(*model, meta, path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  auto loaded = tr::load_checkpoint(path);
  loaded.model->eval();
  auto x = torch::randn({4, 1, 28, 28});
  torch::NoGradGuard g;
  auto a = model->forward(x), b = loaded.model->forward(x);
  EXPECT_TRUE(torch::equal(a.logits, b.logits));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(a.head_logits[i], b.head_logits[i]));
  EXPECT_EQ(loaded.metadata.classes, meta.classes);
  EXPECT_EQ(loaded.metadata.epoch, 7);
  EXPECT_EQ(loaded.metadata.model.arch(), "resnet10");
  EXPECT_EQ(loaded.metadata.preprocess.mean, std::vector<double>{0.25});
  EXPECT_FALSE(loaded.metadata.preprocess.resize.has_value());
  EXPECT_EQ(tr::to_json(loaded.metadata)["preprocess"]["crop"], nullptr);

  // The paper's photo recipe is recorded, so `predict` resizes new images to a square too;
  // metadata without the field (older files) means the shorter side.
  meta.preprocess.resize = 256;
  meta.preprocess.crop = 224;
  meta.preprocess.resize_mode = splitshare::data::ResizeMode::kSquare;
  auto json = tr::to_json(meta);
  EXPECT_EQ(json["preprocess"]["resize_mode"], "square");
  EXPECT_EQ(tr::metadata_from_json(json, "test").preprocess.resize_mode, splitshare::data::ResizeMode::kSquare);
  json["preprocess"].erase("resize_mode");
  EXPECT_EQ(tr::metadata_from_json(json, "test").preprocess.resize_mode, splitshare::data::ResizeMode::kShorterSide);
  json["preprocess"]["resize_mode"] = "stretch";
  EXPECT_THROW(tr::metadata_from_json(json, "test"), c10::Error);
}

TEST(Checkpoint, PythonTorchJitLoadSeesThePinnedNames) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch (scripts/setup)";
  TempDir dir;
  for (auto head : {sn::HeadOptions().kind(sn::HeadKind::kSSM), sn::HeadOptions().kind(sn::HeadKind::kLinear),
                    sn::HeadOptions().kind(sn::HeadKind::kKFC).k(3)}) {
    auto meta = small_metadata(head);
    auto model = sn::make_classifier(meta.model);
    const auto path = dir.file("ck.pt");
    tr::save_checkpoint(*model, meta, path);
    std::string out;
    const std::string script =
        "import torch, json, sys\n"
        "files = {'splitshare.json': ''}\n"
        "m = torch.jit.load(sys.argv[1], _extra_files=files)\n"
        "sd = m.state_dict()\n"
        "print(json.dumps({'keys': sorted(sd.keys()), 'meta': json.loads(files['splitshare.json']),"
        " 'sum': float(sum(v.double().sum() for v in sd.values()))}))\n";
    splitshare::testing::write_file(dir.file("check.py"), script);
    ASSERT_EQ(splitshare::testing::run_command(std::string(splitshare::testing::python()) + " " +
                                                   dir.file("check.py") + " " + path, &out), 0) << out;
    auto json = nlohmann::json::parse(out.substr(out.find('{')));
    std::vector<std::string> expected;
    double sum = 0;
    for (auto& [name, t] : sn::named_state(*model)) {
      expected.push_back(name);
      sum += t.to(torch::kDouble).sum().item<double>();
    }
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(json["keys"].get<std::vector<std::string>>(), expected);
    EXPECT_NEAR(json["sum"].get<double>(), sum, 1e-6 * std::max(1.0, std::abs(sum)));
    EXPECT_EQ(json["meta"]["arch"], "resnet10");
    EXPECT_EQ(json["meta"]["head"], sn::to_string(head.kind()));
    EXPECT_EQ(json["meta"]["classes"][2], "<b>&bird");
  }
}

TEST(Checkpoint, RefusesMissingTruncatedForeignAndMismatchedFiles) {
  TempDir dir;
  auto meta = small_metadata(sn::HeadOptions().kind(sn::HeadKind::kSSM));
  auto model = sn::make_classifier(meta.model);
  const auto path = dir.file("ck.pt");
  tr::save_checkpoint(*model, meta, path);

  EXPECT_NE(expect_error([&] { tr::load_checkpoint(dir.file("nope.pt")); }).find("not found"), std::string::npos);

  auto bytes = splitshare::testing::read_file(path);
  splitshare::testing::write_file(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  auto msg = expect_error([&] { tr::load_checkpoint(dir.file("cut.pt")); });
  EXPECT_NE(msg.find("cut.pt"), std::string::npos) << msg;

  splitshare::testing::write_file(dir.file("text.pt"), "hello, not a checkpoint");
  msg = expect_error([&] { tr::load_checkpoint(dir.file("text.pt")); });
  EXPECT_NE(msg.find("text.pt"), std::string::npos) << msg;

  // Metadata that claims another head than the tensors hold: every mismatch is listed.
  auto wrong = meta;
  wrong.model.head(sn::HeadOptions().kind(sn::HeadKind::kLinear));
  tr::save_checkpoint(*model, wrong, dir.file("lying.pt"));
  msg = expect_error([&] { tr::load_checkpoint(dir.file("lying.pt")); });
  EXPECT_NE(msg.find("missing keys"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fc.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected keys"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bn.0.weight"), std::string::npos) << msg;
}

// A run written by the last build on libtorch 1.13 (tests/fixtures/libtorch-1.13/README.md):
// this build loads it, evaluates it to the same figures and resumes its training.
TEST(Checkpoint, FilesOfTheLibtorch113BuildStillLoadEvaluateAndResume) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  }
  const std::string fixture = std::string(SPLITSHARE_SOURCE_DIR) + "/tests/fixtures/libtorch-1.13";
  const std::string cli = SPLITSHARE_CLI;
  auto loaded = tr::load_checkpoint(fixture + "/checkpoint.pt");
  std::ifstream info_file(fixture + "/info.json");
  const auto info = nlohmann::json::parse(info_file);
  EXPECT_EQ(sn::count_parameters(*loaded.model), info["params"].get<int64_t>());
  EXPECT_EQ(tr::to_json(loaded.metadata)["classes"], info["classes"]);

  std::string out;
  ASSERT_EQ(splitshare::testing::run_command(
                cli + " eval --checkpoint " + fixture + "/checkpoint.pt --limit-val 200 --json 2>/dev/null", &out),
            0)
      << out;
  const auto now = nlohmann::json::parse(out);
  // What the libtorch 1.13 run measured at the end of its epoch (the checkpoint records it).
  // Not eval.json: the 1.13 build's `eval` normalised with the whole training set's statistics
  // instead of the 512 images' the model was trained with (fixed since).
  const auto then = info["extra"]["metrics"];
  EXPECT_EQ(now["samples"], then["samples"]);
  EXPECT_NEAR(now["loss"].get<double>(), then["loss"].get<double>(), 1e-5);
  for (const char* key : {"top1", "top5", "oracle"}) EXPECT_EQ(now[key], then[key]) << key;
  ASSERT_EQ(now["heads"].size(), then["heads"].size());
  for (size_t i = 0; i < now["heads"].size(); ++i) EXPECT_EQ(now["heads"][i]["top1"], then["heads"][i]["top1"]);

  TempDir run;
  std::filesystem::copy_file(fixture + "/checkpoint.pt", run.file("checkpoint.pt"));
  ASSERT_EQ(splitshare::testing::run_command(cli + " train --resume " + run.path().string() + " --epochs 2 2>&1", &out),
            0)
      << out;
  std::ifstream metrics(run.file("metrics.jsonl"));
  int epochs = 0;
  for (std::string line; std::getline(metrics, line);) epochs += !line.empty();
  EXPECT_EQ(epochs, 2);
  EXPECT_EQ(tr::read_checkpoint_metadata(run.file("checkpoint.pt")).epoch, 2);
}
