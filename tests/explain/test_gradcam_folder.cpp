// `splitshare gradcam` end to end: the folder it writes (overlays, grid.png, gradcam.json)
// from image files or a dataset, and its refusals.
#include <splitshare/image/decode.h>
#include <splitshare/image/png.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "support.h"
#include "tiny_models.h"

namespace sn = splitshare::nn;
namespace sd = splitshare::data;
using splitshare::testing::kSplits;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;
using splitshare::testing::tiny_model;

namespace {

const std::string kCli = SPLITSHARE_CLI;

splitshare::train::CheckpointMetadata save_tiny_checkpoint(const std::string& path, int64_t classes,
                                                           std::vector<std::string> names, int64_t size) {
  auto model = tiny_model(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(kSplits));
  splitshare::train::CheckpointMetadata meta;
  meta.model = model->options;
  meta.model.num_classes(classes);
  model = sn::make_classifier(meta.model);
  meta.classes = std::move(names);
  meta.preprocess.channels = 1;
  meta.preprocess.size = size;
  meta.preprocess.mean = {0.3};
  meta.preprocess.std = {0.3};
  splitshare::train::save_checkpoint(*model, meta, path);
  return meta;
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(splitshare::testing::read_file(path));
}

}  // namespace

TEST(GradCamCli, ImageFilesGiveOverlaysAGridAndStatistics) {
  TempDir dir;
  save_tiny_checkpoint(dir.file("ck.pt"), 3, {"cat", "dog", "bird"}, 16);
  std::filesystem::create_directories(dir.path() / "dog");
  std::filesystem::create_directories(dir.path() / "bird");
  torch::manual_seed(9);
  sd::write_png(dir.file("dog/rex.png"), torch::randint(0, 256, {1, 20, 20}, torch::kUInt8));
  sd::write_png(dir.file("bird/tweety.png"), torch::randint(0, 256, {3, 16, 24}, torch::kUInt8));
  const std::string images = dir.file("dog/rex.png") + " " + dir.file("bird/tweety.png");
  std::string log;
  ASSERT_EQ(run_command(kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") + " " + images +
                            " --target label --out " + dir.file("out"), &log), 0) << log;
  const auto report = read_json(dir.file("out/gradcam.json"));
  EXPECT_EQ(report["method"], "gradcam");
  EXPECT_EQ(report["feature_channels"], 32);
  EXPECT_EQ(report["input_size"], nlohmann::json({16, 16}));
  ASSERT_EQ(report["images"].size(), 2u);
  const auto& first = report["images"][0];
  EXPECT_EQ(first["label_name"], "dog");
  EXPECT_EQ(first["target"], 1);
  EXPECT_EQ(report["images"][1]["target_name"], "bird");
  ASSERT_EQ(first["maps"].size(), 1u + kSplits);
  EXPECT_EQ(first["maps"][0]["name"], "whole");
  EXPECT_EQ(first["maps"][0]["channels"], nlohmann::json({0, 32}));
  EXPECT_EQ(first["maps"][2]["name"], "split2");
  EXPECT_EQ(first["maps"][2]["channels"], nlohmann::json({8, 16}));
  for (const auto& image : report["images"]) {
    EXPECT_TRUE(std::filesystem::exists(dir.file("out/" + image["input"].get<std::string>())));
    for (const auto& map : image["maps"]) {
      const auto file = dir.file("out/" + map["file"].get<std::string>());
      ASSERT_TRUE(std::filesystem::exists(file)) << file;
      EXPECT_EQ(splitshare::data::read_image_info(file).width, 128);  // 16 px enlarged 8x
      for (auto key : {"peak_pixel", "peak_cell", "top20_energy", "peak", "mean"}) {
        EXPECT_TRUE(map["stats"].contains(key)) << key;
      }
      EXPECT_GE(map["probability"].get<double>(), 0.0);
    }
  }
  const auto grid = splitshare::data::read_image_info(dir.file("out/grid.png"));
  EXPECT_EQ(grid.width, 2 * 6 + 6 * 128 + 5 * 6);

  // A class by name, and Grad-CAM++.
  ASSERT_EQ(run_command(kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") + " " + images +
                            " --target cat --method gradcampp --out " + dir.file("pp"), &log), 0) << log;
  const auto pp = read_json(dir.file("pp/gradcam.json"));
  EXPECT_EQ(pp["method"], "gradcampp");
  EXPECT_EQ(pp["images"][1]["target"], 0);

  // Clear errors.
  const std::string gradcam = kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") + " ";
  EXPECT_NE(run_command(gradcam + images + " --target zebra --out " + dir.file("bad"), &log), 0);
  EXPECT_NE(log.find("--target 'zebra'"), std::string::npos) << log;
  EXPECT_NE(run_command(gradcam + dir.file("dog/rex.png") + " --method scorecam", &log), 0);
  EXPECT_NE(log.find("unknown Grad-CAM method 'scorecam'"), std::string::npos) << log;
  EXPECT_NE(run_command(gradcam, &log), 0);
  EXPECT_NE(log.find("give image files or --data"), std::string::npos) << log;
}

TEST(GradCamCli, DataPicksValidationImagesWithTheirLabels) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  }
  TempDir dir;
  save_tiny_checkpoint(dir.file("ck.pt"), 10, {}, 28);
  std::string log;
  ASSERT_EQ(run_command(kCli + " gradcam --threads 1 --checkpoint " + dir.file("ck.pt") +
                            " --data fashion-mnist --first 1 --count 3 --out " + dir.file("out"), &log), 0) << log;
  const auto report = read_json(dir.file("out/gradcam.json"));
  ASSERT_EQ(report["images"].size(), 3u);
  // t10k labels start 9, 2, 1, 1: images 1..3 are 2, 1, 1, explained w.r.t. those labels.
  EXPECT_EQ(report["images"][0]["label"], 2);
  EXPECT_EQ(report["images"][1]["label"], 1);
  EXPECT_EQ(report["images"][0]["target"], 2);
  EXPECT_EQ(report["images"][2]["source"], "fashion-mnist[3]");
  EXPECT_EQ(report["input_size"], nlohmann::json({28, 28}));
}
