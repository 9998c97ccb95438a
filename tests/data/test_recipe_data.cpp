// Data side of the training recipes (issue #17): single-root image folders split into
// training and validation, class maps, the balanced sampler and class weights, and the CLI.
#include <gtest/gtest.h>

#include <splitshare/data/image_folder.h>
#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "image_writers.h"
#include "support.h"

namespace sd = splitshare::data;
using splitshare::testing::encode_png;
using splitshare::testing::expect_error;
using splitshare::testing::make_photo_folder;
using splitshare::testing::read_file;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;
using splitshare::testing::test_picture;
using splitshare::testing::write_file;

namespace {

const std::string kCli = SPLITSHARE_CLI;

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST(ImageFolderSplit, StratifiedSeededAndReproducibleFromTheRecordedList) {
  TempDir dir;
  make_photo_folder(dir.file("photos"), {{"a", 10}, {"b", 5}, {"c", 1}});
  const auto index = sd::list_image_folder(dir.file("photos"));
  const auto split = sd::split_image_folder(index, 0.2, 7);
  // round(0.2 x n), at least 1 when n >= 2: a 2, b 1, c (a single image) 0.
  EXPECT_EQ(sd::class_counts(split.val), (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(sd::class_counts(split.train), (std::vector<int64_t>{8, 4, 1}));
  std::set<std::string> train(split.train.paths.begin(), split.train.paths.end());
  for (const auto& p : split.val.paths) EXPECT_FALSE(train.count(p)) << p << " in both";
  EXPECT_EQ(split.train.size() + split.val.size(), index.size());
  ASSERT_EQ(split.val_files.size(), 3u);
  EXPECT_EQ(split.val_files[0].rfind("a/", 0), 0u) << split.val_files[0];
  // Same seed, same split; another seed, another split (for class a, 45 possible pairs).
  EXPECT_EQ(sd::split_image_folder(index, 0.2, 7).val_files, split.val_files);
  bool differs = false;
  for (uint64_t seed = 8; seed < 14; ++seed) differs |= sd::split_image_folder(index, 0.2, seed).val_files != split.val_files;
  EXPECT_TRUE(differs);
  // From the recorded list, even with an image added since.
  write_file(dir.file("photos/a/new.png"), encode_png(test_picture(3, 24, 20, 99)));
  const auto again = sd::split_image_folder(sd::list_image_folder(dir.file("photos")), split.val_files);
  EXPECT_EQ(again.val_files, split.val_files);
  EXPECT_EQ(again.train.size(), split.train.size() + 1);
  auto message = expect_error([&] { sd::split_image_folder(index, std::vector<std::string>{"a/missing.png"}); });
  EXPECT_NE(message.find("a/missing.png"), std::string::npos) << message;
  EXPECT_NE(expect_error([&] { sd::split_image_folder(index, 1.0, 0); }).find("(0, 1)"), std::string::npos);
  // open_data on the single root splits it; with DIR/train it would not.
  auto bundle = sd::open_data(sd::parse_data_spec("imagefolder:" + dir.file("photos")),
                              sd::DataOptions().val_split(0.2).seed(7).batch_size(2).workers(0));
  EXPECT_EQ(bundle.val->size(), 3);
  EXPECT_EQ(bundle.train->size(), 14);
  EXPECT_EQ(bundle.val_files, sd::split_image_folder(sd::list_image_folder(dir.file("photos")), 0.2, 7).val_files);
  EXPECT_EQ(bundle.class_counts, (std::vector<int64_t>{9, 4, 1}));
}

TEST(ClassMap, FixesOrderAndNamesAndRefusesMismatches) {
  TempDir dir;
  make_photo_folder(dir.file("photos"), {{"cat", 2}, {"dog", 3}});
  write_file(dir.file("map.txt"), "# order\ndog\tDogs\n\ncat\n");
  const auto map = sd::read_class_map(dir.file("map.txt"));
  EXPECT_EQ(map.folders, (std::vector<std::string>{"dog", "cat"}));
  EXPECT_EQ(map.names, (std::vector<std::string>{"Dogs", "cat"}));
  const auto index = sd::list_image_folder(dir.file("photos"));
  const auto mapped = sd::apply_class_map(index, map, "map.txt");
  EXPECT_EQ(mapped.classes, (std::vector<std::string>{"Dogs", "cat"}));
  for (size_t i = 0; i < mapped.paths.size(); ++i) {
    const bool is_dog = mapped.paths[i].find("/dog/") != std::string::npos;
    EXPECT_EQ(mapped.labels[i], is_dog ? 0 : 1) << mapped.paths[i];
  }
  write_file(dir.file("short.txt"), "dog\n");
  EXPECT_NE(expect_error([&] { sd::apply_class_map(index, sd::read_class_map(dir.file("short.txt")), "short.txt"); })
                .find("'cat'"),
            std::string::npos);
  write_file(dir.file("extra.txt"), "dog\ncat\nbird\n");
  EXPECT_NE(expect_error([&] { sd::apply_class_map(index, sd::read_class_map(dir.file("extra.txt")), "extra.txt"); })
                .find("'bird'"),
            std::string::npos);
  write_file(dir.file("twice.txt"), "dog\ndog\n");
  EXPECT_NE(expect_error([&] { sd::read_class_map(dir.file("twice.txt")); }).find("twice.txt:2"), std::string::npos);
  // Two folders under one name, and a name with a tab in it, are refused by line.
  write_file(dir.file("same.txt"), "dog\tpet\ncat\tpet\n");
  EXPECT_NE(expect_error([&] { sd::read_class_map(dir.file("same.txt")); }).find("same.txt:2: the class name 'pet' is "
                                                                                  "also the name on line 1"),
            std::string::npos);
  write_file(dir.file("tab.txt"), "dog\tbig\tdog\ncat\n");
  EXPECT_NE(expect_error([&] { sd::read_class_map(dir.file("tab.txt")); }).find("tab.txt:1: the class name 'big\tdog' "
                                                                                 "holds a tab"),
            std::string::npos);
}

TEST(BalancedSampler, DrawsClassesEvenlyDeterministicallyAndSharded) {
  // 90 samples of class 0, 10 of class 1.
  std::vector<double> weights;
  for (int i = 0; i < 100; ++i) weights.push_back(i < 90 ? 1.0 / 90 : 1.0 / 10);
  std::mt19937_64 rng(3);
  const auto draws = sd::weighted_draws(weights, 20000, rng);
  int64_t minority = 0;
  for (auto d : draws) minority += d >= 90;
  EXPECT_NEAR(static_cast<double>(minority) / 20000, 0.5, 0.02);
  EXPECT_NE(expect_error([] { std::mt19937_64 r(0); sd::weighted_draws({0.0, 0.0}, 3, r); }).find("sum to 0"),
            std::string::npos);
  // A loader with the weights: the same epoch for a seed, two ranks split the shared draws.
  const auto images = torch::randint(0, 256, {100, 1, 4, 4}, torch::kInt64).to(torch::kUInt8);
  const auto labels = (torch::arange(100) >= 90).to(torch::kInt64);
  auto epoch_labels = [&](int64_t rank, int64_t world) {
    auto loader = sd::make_tensor_loader({images, labels, {"0", "1"}}, {0.5}, {0.25},
                                         sd::LoaderOptions().batch_size(10).shuffle(true).seed(5).rank(rank)
                                             .world_size(world).sample_weights(weights));
    loader->reset(2);
    std::vector<int64_t> out;
    while (auto b = loader->next()) {
      for (int64_t i = 0; i < b->indices.size(0); ++i) out.push_back(b->indices[i].item<int64_t>());
    }
    return out;
  };
  const auto whole = epoch_labels(0, 1);
  EXPECT_EQ(whole, epoch_labels(0, 1));
  int64_t minority_seen = 0;
  for (auto i : whole) minority_seen += i >= 90;
  EXPECT_GT(minority_seen, 30);  // 10 % without the sampler
  const auto r0 = epoch_labels(0, 2), r1 = epoch_labels(1, 2);
  ASSERT_EQ(r0.size() + r1.size(), whole.size());
  for (size_t i = 0; i < r0.size(); ++i) EXPECT_EQ(r0[i], whole[2 * i]);
  for (size_t i = 0; i < r1.size(); ++i) EXPECT_EQ(r1[i], whole[2 * i + 1]);
}

TEST(ClassWeights, BalancedAndFromAFile) {
  EXPECT_EQ(sd::balanced_class_weights({30, 10, 0}), (std::vector<double>{40.0 / 90, 40.0 / 30, 0.0}));
  TempDir dir;
  write_file(dir.file("w.txt"), "1, 2.5  # heavier\n0\n");
  EXPECT_EQ(sd::read_class_weights(dir.file("w.txt"), 3), (std::vector<double>{1, 2.5, 0}));
  EXPECT_NE(expect_error([&] { sd::read_class_weights(dir.file("w.txt"), 4); }).find("3 class weights for 4"),
            std::string::npos);
  write_file(dir.file("bad.txt"), "1 x 2\n");
  EXPECT_NE(expect_error([&] { sd::read_class_weights(dir.file("bad.txt"), 3); }).find("'x'"), std::string::npos);
}

TEST(RecipeCli, SplitRunRecordsItsValidationFilesAndEvalUsesThem) {
  TempDir dir;
  make_photo_folder(dir.file("photos"), {{"a", 6}, {"b", 6}});
  const std::string common = kCli + " train --data imagefolder:" + dir.file("photos") +
                             " --val-split 0.34 --epochs 1 --batch-size 4 --image-size 16 --arch resnet10 --width 4"
                             " --workers 0 --no-progress --opt adamw --label-smoothing 0.1 --mixup 0.2 --ema 0.9"
                             " --auto-augment trivialaugment --random-erase 0.5 --augment torchvision"
                             " --crop-scale 0.5,1 --class-weights auto --sampler balanced --accum-steps 2";
  std::string output;
  ASSERT_EQ(run_command(common + " --out " + dir.file("run") + " 2>&1", &output), 0) << output;
  EXPECT_NE(output.find("adamw"), std::string::npos) << output;
  EXPECT_NE(output.find("best (EMA)"), std::string::npos) << output;  // best.pt holds the EMA weights
  const auto listed = read_file(dir.file("run/val_files.txt"));
  EXPECT_EQ(std::count(listed.begin(), listed.end(), '\n'), 4) << listed;  // round(0.34 x 6) = 2 per class
  output.clear();
  ASSERT_EQ(run_command(kCli + " eval --checkpoint " + dir.file("run/best.pt") + " --data imagefolder:" +
                            dir.file("photos") + " --json 2>/dev/null", &output), 0) << output;
  EXPECT_EQ(nlohmann::json::parse(output).at("samples").get<int64_t>(), 4) << output;
  const auto metadata = read_file(dir.file("run/metrics.jsonl"));
  EXPECT_NE(metadata.find("ema_val"), std::string::npos);
}

TEST(RecipeCli, RefusesBadRecipeOptionsByName) {
  struct Case {
    std::string args, expected;
  };
  const std::vector<Case> cases = {
      {"--opt adam", "sgd, adamw or rmsprop"},
      {"--crop-scale 0.2,1", "--augment torchvision"},
      {"--ema 1.5", "--ema"},
      {"--label-smoothing 1", "--label-smoothing"},
      {"--accum-steps 0", "--accum-steps"},
      {"--sampler uniform", "--sampler"},
      {"--auto-augment magic", "magic"},
      {"--betas 0.9", "--betas"},
      {"--opt adamw --nesterov", "--nesterov"},
      {"--class-map /nonexistent/map.txt", "image folders"},
  };
  TempDir dir;
  for (const auto& c : cases) {
    std::string output;
    const int status = run_command(kCli + " train --epochs 1 --limit-train 64 --limit-val 32 --no-progress --out " +
                                       dir.file("run") + " " +
                                       c.args + " 2>&1", &output);
    EXPECT_NE(status, 0) << c.args;
    EXPECT_NE(output.find(c.expected), std::string::npos) << c.args << ": " << output;
  }
}
