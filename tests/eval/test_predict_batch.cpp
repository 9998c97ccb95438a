// Batch predict (issue #18 item 2 and 4): folders and @LIST files, the loader's workers,
// CSV/JSONL output, skipped files, and flip test-time augmentation.
#include <splitshare/data/loader.h>
#include <splitshare/eval/metrics.h>
#include <splitshare/eval/predict.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "image_writers.h"
#include "support.h"

namespace sn = splitshare::nn;
namespace tr = splitshare::train;
namespace sd = splitshare::data;
namespace se = splitshare::eval;
namespace st = splitshare::testing;
using st::run_command;
using st::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;

tr::LoadedCheckpoint photo_model(const std::string& path) {
  tr::CheckpointMetadata meta;
  meta.model = sn::ClassifierOptions().arch("resnet10").width(8).in_channels(3).stem(sn::Stem::kImageNet)
                   .num_classes(4).head(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(2));
  meta.classes = {"a", "b,c", "d", "e"};
  meta.preprocess.channels = 3;
  meta.preprocess.resize = 40;
  meta.preprocess.crop = 32;
  meta.preprocess.mean = {0.485, 0.456, 0.406};
  meta.preprocess.std = {0.229, 0.224, 0.225};
  torch::manual_seed(5);
  auto model = sn::make_classifier(meta.model);
  model->train();
  for (int i = 0; i < 3; ++i) model->forward(torch::randn({8, 3, 32, 32}) * 0.5 + 0.2);
  tr::save_checkpoint(*model, meta, path);
  return tr::load_checkpoint(path);
}

// photos/x/<i>.jpg and photos/y/z/<i>.png, odd sizes.
std::vector<std::string> write_photos(const TempDir& dir, int n) {
  std::vector<std::string> paths;
  std::filesystem::create_directories(dir.file("photos/y/z"));
  std::filesystem::create_directories(dir.file("photos/x"));
  for (int i = 0; i < n; ++i) {
    const bool jpeg = i % 2 == 0;
    const auto path = dir.file(jpeg ? "photos/x/" + std::to_string(i) + ".jpg" : "photos/y/z/" + std::to_string(i) + ".png");
    const auto picture = st::test_picture(3, 40 + i, 50 + 2 * i, static_cast<uint64_t>(i + 1));
    st::write_file(path, jpeg ? st::encode_jpeg(picture) : st::encode_png(picture));
    paths.push_back(path);
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace

TEST(PredictInputs, FoldersListsAndMissingPaths) {
  TempDir dir;
  const auto photos = write_photos(dir, 5);
  st::write_file(dir.file("photos/x/readme.txt"), "not an image");
  EXPECT_EQ(se::expand_image_arguments({dir.file("photos")}), photos);
  st::write_file(dir.file("list.txt"), "# chosen\n" + photos[3] + "\n\n" + dir.file("photos/y") + "\n");
  auto listed = se::expand_image_arguments({"@" + dir.file("list.txt"), photos[0]});
  std::vector<std::string> expected = {photos[3]};
  for (const auto& p : photos) {
    if (p.find("/y/") != std::string::npos) expected.push_back(p);
  }
  expected.push_back(photos[0]);
  EXPECT_EQ(listed, expected);
  EXPECT_NE(st::expect_error([&] { se::expand_image_arguments({dir.file("nope.jpg")}); }).find("nope.jpg"),
            std::string::npos);
  std::filesystem::create_directories(dir.file("empty"));
  EXPECT_NE(st::expect_error([&] { se::expand_image_arguments({dir.file("empty")}); }).find("no image files"),
            std::string::npos);
  EXPECT_NE(st::expect_error([&] { se::expand_image_arguments({"@" + dir.file("nolist")}); }).find("nolist"),
            std::string::npos);
}

TEST(PredictPaths, LoaderGivesLoadImagesLogitsForAnyWorkersAndSkipsBadFiles) {
  TempDir dir;
  auto loaded = photo_model(dir.file("ck.pt"));
  auto paths = write_photos(dir, 7);
  st::write_file(dir.file("photos/broken.jpg"), "garbage");
  paths.insert(paths.begin() + 2, dir.file("photos/broken.jpg"));
  std::vector<std::string> good;
  for (const auto& p : paths) {
    if (p.find("broken") == std::string::npos) good.push_back(p);
  }
  const auto reference = se::predict_files(*loaded.model, loaded.metadata.preprocess, loaded.metadata.classes, good,
                                           se::PredictOptions().batch_size(3));
  for (int64_t workers : {0, 2}) {
    std::vector<se::Prediction> got;
    int64_t progress_calls = 0;
    auto run = se::predict_paths(*loaded.model, loaded.metadata.preprocess, loaded.metadata.classes, paths,
                                 se::PredictOptions().batch_size(3).workers(workers),
                                 [&](std::vector<se::Prediction>& b) { got.insert(got.end(), b.begin(), b.end()); },
                                 [&](int64_t, int64_t total) { progress_calls += total == 8; });
    EXPECT_EQ(run.predicted, 7);
    EXPECT_EQ(run.skipped, 1);
    ASSERT_EQ(run.skipped_reports.size(), 1u);
    EXPECT_NE(run.skipped_reports[0].find("broken.jpg"), std::string::npos);
    EXPECT_GT(progress_calls, 0);
    ASSERT_EQ(got.size(), reference.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].path, reference[i].path);
      st::expect_close(got[i].logits, reference[i].logits, 1e-5);
    }
  }
  EXPECT_NE(st::expect_error([&] {
              se::predict_paths(*loaded.model, loaded.metadata.preprocess, loaded.metadata.classes, paths,
                                se::PredictOptions().strict(true), [](std::vector<se::Prediction>&) {});
            }).find("broken.jpg"),
            std::string::npos);
}

TEST(PredictTta, FlipIsTheMeanOfTheImageAndItsMirror) {
  TempDir dir;
  auto loaded = photo_model(dir.file("ck.pt"));
  torch::manual_seed(2);
  const auto images = torch::randn({3, 3, 32, 32});
  const auto plain = se::predict(*loaded.model, images, loaded.metadata.classes);
  const auto mirrored = se::predict(*loaded.model, images.flip(3), loaded.metadata.classes);
  const auto tta = se::predict(*loaded.model, images, loaded.metadata.classes, se::PredictOptions().flip_tta(true));
  for (size_t i = 0; i < 3; ++i) {
    st::expect_close(tta[i].logits, (plain[i].logits + mirrored[i].logits) / 2, 1e-5);
    for (size_t h = 0; h < 2; ++h) {
      st::expect_close(tta[i].head_logits[h], (plain[i].head_logits[h] + mirrored[i].head_logits[h]) / 2, 1e-5);
    }
    EXPECT_GT((tta[i].logits - plain[i].logits).abs().max().item<double>(), 1e-6);  // the mirror matters
  }
}

TEST(PredictCli, CsvAndJsonlOutputsMatchTheJsonRecords) {
  TempDir dir;
  photo_model(dir.file("ck.pt"));
  const auto photos = write_photos(dir, 6);
  st::write_file(dir.file("photos/x/bad.jpg"), "garbage");
  const std::string base = kCli + " predict --checkpoint " + dir.file("ck.pt") + " " + dir.file("photos") +
                           " --topk 2 --workers 2 --batch-size 4";
  std::string out;
  // (run_command adds 2>&1 after the command: stderr goes to a file to keep stdout pure JSON.)
  ASSERT_EQ(run_command("(" + base + " --json 2>" + dir.file("err.txt") + ")", &out), 0) << out;
  const auto json = nlohmann::json::parse(out);
  ASSERT_EQ(json["predictions"].size(), 6u);
  ASSERT_EQ(json["skipped"].size(), 1u);
  out.clear();
  ASSERT_EQ(run_command(base + " --output " + dir.file("p.jsonl") + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("skipped 1 unreadable"), std::string::npos) << out;
  EXPECT_NE(out.find("bad.jpg"), std::string::npos) << out;
  std::istringstream lines(st::read_file(dir.file("p.jsonl")));
  std::string line;
  size_t i = 0;
  for (; std::getline(lines, line); ++i) {
    ASSERT_LT(i, 6u);
    EXPECT_EQ(nlohmann::json::parse(line), json["predictions"][i]);
  }
  EXPECT_EQ(i, 6u);
  ASSERT_EQ(run_command(base + " --output " + dir.file("p.csv") + " 2>/dev/null", nullptr), 0);
  std::istringstream csv(st::read_file(dir.file("p.csv")));
  std::getline(csv, line);
  EXPECT_EQ(line, "path,label_1,prob_1,label_2,prob_2,head_1,head_2");
  std::getline(csv, line);
  const auto& first = json["predictions"][0];
  EXPECT_EQ(line.rfind(first["path"].get<std::string>() + ",", 0), 0u) << line;
  const auto label = first["topk"][0]["label"].get<std::string>();
  EXPECT_NE(line.find(label == "b,c" ? "\"b,c\"" : label), std::string::npos) << line;
  out.clear();
  EXPECT_NE(run_command(base + " --output " + dir.file("p.txt") + " 2>&1", &out), 0);
  EXPECT_NE(out.find(".csv or .jsonl"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(base + " --strict --json 2>&1", &out), 0);
  EXPECT_NE(out.find("bad.jpg"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(base + " --tta mirror 2>&1", &out), 0);
  EXPECT_NE(out.find("--tta"), std::string::npos) << out;
}

TEST(EvalTta, FlipMakesEvaluationMirrorInvariant) {
  TempDir dir;
  auto loaded = photo_model(dir.file("ck.pt"));
  torch::manual_seed(4);
  const auto images = torch::randint(0, 256, {10, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  const auto labels = torch::arange(10) % 4;
  const std::vector<std::string> classes = {"a", "b", "c", "d"};
  auto evaluate = [&](const torch::Tensor& x, bool flip) {
    auto stream = sd::make_tensor_loader({x, labels, classes}, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25},
                                         sd::LoaderOptions().batch_size(4));
    return se::evaluate(*loaded.model, *stream, false, torch::kCPU, nullptr, torch::kFloat, flip);
  };
  const auto mirrored = images.flip(3).contiguous();
  // With flip TTA an image and its mirror give the same logits, so the same loss; without, not.
  EXPECT_NEAR(evaluate(images, true).loss, evaluate(mirrored, true).loss, 1e-5);
  EXPECT_GT(std::abs(evaluate(images, false).loss - evaluate(mirrored, false).loss), 1e-6);
  EXPECT_EQ(evaluate(images, true).samples, 10);
}
