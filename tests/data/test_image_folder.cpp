#include <splitshare/data/image_folder.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "image_writers.h"
#include "support.h"

using splitshare::testing::expect_error;

namespace fs = std::filesystem;
namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {


void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  st::write_file(path.string(), bytes);
}

// ROOT/ant: 3 JPEG/PNG files in mixed-case extensions, one in a sub-folder, a text
// file; ROOT/bee: a grey JPEG and a CMYK JPEG; ROOT/empty; ROOT/.hidden.
void make_mixed_folder(const fs::path& root) {
  write(root / "ant" / "a1.JPG", st::encode_jpeg(st::test_picture(3, 90, 120, 1)));
  write(root / "ant" / "a2.jpeg", st::encode_jpeg(st::test_picture(3, 120, 90, 2), {90, true}));
  write(root / "ant" / "a3.Png", st::encode_png(st::test_picture(3, 70, 100, 3)));
  write(root / "ant" / "notes.txt", "not an image, ignored for its extension");
  write(root / "ant" / "sub" / "a4.jpg", st::encode_jpeg(st::test_picture(3, 200, 300, 4)));
  write(root / "bee" / "b1.jpg", st::encode_jpeg(st::test_picture(1, 100, 100, 5)));
  write(root / "bee" / "b2.jpg",
        st::encode_jpeg(st::rgb_to_inverted_cmyk(st::test_picture(3, 80, 96, 6)), {90, false, 1, 1, true}));
  fs::create_directories(root / "empty");
  write(root / ".hidden" / "h.jpg", st::encode_jpeg(st::test_picture(3, 20, 20)));
}

// `classes` classes of `per_class` small PNGs each.
void make_balanced_folder(const fs::path& root, int classes, int per_class, int64_t size = 40) {
  for (int c = 0; c < classes; ++c) {
    for (int i = 0; i < per_class; ++i) {
      write(root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + ".png"),
            st::encode_png(st::test_picture(3, size, size + 8 * i, static_cast<uint64_t>(c * 100 + i))));
    }
  }
}

std::vector<sd::Batch> epoch_batches(sd::BatchStream& stream, int64_t epoch) {
  stream.reset(epoch);
  std::vector<sd::Batch> batches;
  while (auto batch = stream.next()) batches.push_back(*batch);
  return batches;
}

std::vector<int64_t> all_indices(const std::vector<sd::Batch>& batches) {
  std::vector<int64_t> indices;
  for (const auto& batch : batches) {
    for (int64_t i = 0; i < batch.indices.size(0); ++i) indices.push_back(batch.indices[i].item<int64_t>());
  }
  return indices;
}

sd::LoaderOptions eval_loader(int64_t batch_size, int64_t workers) {
  return sd::LoaderOptions().batch_size(batch_size).workers(workers);
}

sd::LoaderOptions train_loader(int64_t batch_size, int64_t workers, uint64_t seed) {
  return sd::LoaderOptions().batch_size(batch_size).workers(workers).seed(seed).shuffle(true).drop_last(true).augment(
      true);
}

}  // namespace

TEST(ImageFolder, ListsClassesAndFilesInTorchvisionOrder) {
  st::TempDir dir;
  make_mixed_folder(dir.path());
  auto index = sd::list_image_folder(dir.path().string());
  EXPECT_EQ(index.classes, (std::vector<std::string>{"ant", "bee", "empty"}));
  std::vector<std::string> expected = {"ant/a1.JPG", "ant/a2.jpeg", "ant/a3.Png", "ant/sub/a4.jpg", "bee/b1.jpg",
                                       "bee/b2.jpg"};
  ASSERT_EQ(index.size(), 6);
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(index.paths[i], (dir.path() / expected[i]).string());
  EXPECT_EQ(index.labels, (std::vector<int64_t>{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(index.ignored_files, 1);
  EXPECT_EQ(index.root, dir.path().string());
}

TEST(ImageFolder, ListingErrorsNameTheFolder) {
  st::TempDir dir;
  auto message = expect_error([&] { sd::list_image_folder(dir.file("missing")); });
  EXPECT_NE(message.find(dir.file("missing")), std::string::npos) << message;
  EXPECT_NE(message.find("not a directory"), std::string::npos) << message;

  fs::create_directories(dir.path() / "empty_root" / "a");
  write(dir.path() / "empty_root" / "b" / "readme.txt", "no images here");
  message = expect_error([&] { sd::list_image_folder(dir.file("empty_root")); });
  EXPECT_NE(message.find(dir.file("empty_root")), std::string::npos) << message;
  EXPECT_NE(message.find("no images (.jpg/.png/.bmp/.ppm/.pgm/.webp)"), std::string::npos) << message;

  make_balanced_folder(dir.path() / "train", 3, 1);
  make_balanced_folder(dir.path() / "val", 2, 1);
  message = expect_error(
      [&] { sd::open_image_folder_data(dir.file("train"), dir.file("val"), sd::DataOptions().image_size(32)); });
  EXPECT_NE(message.find(dir.file("train")), std::string::npos) << message;
  EXPECT_NE(message.find(dir.file("val")), std::string::npos) << message;
  EXPECT_NE(message.find("class2"), std::string::npos) << message;
}

TEST(ImageFolder, SubsampleKeepsEveryClass) {
  st::TempDir dir;
  make_balanced_folder(dir.path(), 3, 4);
  auto index = sd::list_image_folder(dir.path().string());
  auto three = sd::subsample(index, 3);
  EXPECT_EQ(three.labels, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(three.classes, index.classes);
  EXPECT_EQ(sd::subsample(index, 0).size(), 12);
  EXPECT_EQ(sd::subsample(index, 50).size(), 12);
}

// Every sample once, with its label, and pixels equal to decoding the whole file and
// applying the evaluation transform: the cropped decode changes nothing (1e-4).
TEST(ImageFolder, EvalLoaderMatchesDecodeThenTransform) {
  st::TempDir dir;
  make_mixed_folder(dir.path());
  auto index = sd::list_image_folder(dir.path().string());
  for (const auto recipe : {sd::PhotoRecipe::kTorchvision, sd::PhotoRecipe::kPaper}) {
    auto options = sd::ImageFolderOptions().image_size(64).dct_reducing_gap(0).recipe(recipe);
    const auto mode = recipe == sd::PhotoRecipe::kPaper ? sd::ResizeMode::kSquare : sd::ResizeMode::kShorterSide;
    ASSERT_EQ(sd::eval_resize(options), 73);
    for (int64_t workers : {0, 2}) {
      sd::ImageFolderLoader loader(index, options, eval_loader(4, workers));
      EXPECT_EQ(loader.size(), 6);
      EXPECT_EQ(loader.batches_per_epoch(), 2);
      auto batches = epoch_batches(loader, 0);
      ASSERT_EQ(batches.size(), 2u);
      EXPECT_EQ(batches[0].images.sizes(), (std::vector<int64_t>{4, 3, 64, 64}));
      EXPECT_EQ(batches[1].images.sizes(), (std::vector<int64_t>{2, 3, 64, 64}));
      EXPECT_EQ(all_indices(batches), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
      for (const auto& batch : batches) {
        for (int64_t i = 0; i < batch.indices.size(0); ++i) {
          const int64_t sample = batch.indices[i].item<int64_t>();
          EXPECT_EQ(batch.labels[i].item<int64_t>(), index.labels[sample]);
          auto expected =
              sd::eval_transform(sd::decode_image(index.paths[sample]), 73, 64, options.mean(), options.std(), mode);
          st::expect_close(batch.images[i], expected, 1e-4);
        }
      }
      EXPECT_EQ(loader.skipped(), 0);
    }
  }
}

// With DCT scaling (a 1024x768 JPEG decoded at 1/4 for a 73-pixel resize) the
// result stays close to a full-resolution decode: mean <= 0.5, max <= 4 levels.
TEST(ImageFolder, DctScalingStaysCloseToFullDecode) {
  st::TempDir dir;
  write(dir.path() / "c" / "big.jpg", st::encode_jpeg(st::test_picture(3, 768, 1024, 8), {90}));
  auto index = sd::list_image_folder(dir.path().string());
  auto options = sd::ImageFolderOptions().image_size(64).mean({0, 0, 0}).std({1, 1, 1});
  sd::ImageFolderLoader scaled(index, options, eval_loader(1, 0));
  sd::ImageFolderLoader full(index, sd::ImageFolderOptions(options).dct_reducing_gap(0), eval_loader(1, 0));
  auto a = epoch_batches(scaled, 0)[0].images * 255;
  auto b = epoch_batches(full, 0)[0].images * 255;
  auto expected = sd::eval_transform(sd::decode_image(index.paths[0]), 73, 64, {0, 0, 0}, {1.0 / 255, 1.0 / 255, 1.0 / 255},
                                     sd::ResizeMode::kSquare);  // the default, paper recipe
  st::expect_close(b[0], expected, 1e-3);
  EXPECT_FALSE(torch::equal(a, b)) << "DCT scaling was used";
  EXPECT_LE((a - b).abs().mean().item<float>(), 0.5);
  EXPECT_LE((a - b).abs().max().item<float>(), 4.0);
}

TEST(ImageFolder, TrainBatchesAreDeterministicForAnyWorkerCount) {
  st::TempDir dir;
  make_balanced_folder(dir.path(), 2, 7, 48);
  auto index = sd::list_image_folder(dir.path().string());
  auto options = sd::ImageFolderOptions().image_size(32);
  sd::ImageFolderLoader reference(index, options, train_loader(4, 0, 11));
  EXPECT_EQ(reference.batches_per_epoch(), 3);  // 14 samples, drop_last
  auto epoch0 = epoch_batches(reference, 0);
  auto epoch1 = epoch_batches(reference, 1);
  ASSERT_EQ(epoch0.size(), 3u);
  EXPECT_NE(all_indices(epoch0), all_indices(epoch1)) << "reshuffled every epoch";
  auto seen = all_indices(epoch0);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 12u);

  for (int64_t workers : {1, 3}) {
    sd::ImageFolderLoader loader(index, options.prefetch_batches(workers), train_loader(4, workers, 11));
    for (int64_t epoch : {0, 1}) {
      auto batches = epoch_batches(loader, epoch);
      const auto& expected = epoch == 0 ? epoch0 : epoch1;
      ASSERT_EQ(batches.size(), expected.size());
      for (size_t b = 0; b < batches.size(); ++b) {
        EXPECT_TRUE(torch::equal(batches[b].indices, expected[b].indices)) << "workers " << workers;
        EXPECT_TRUE(torch::equal(batches[b].images, expected[b].images)) << "workers " << workers;
        EXPECT_TRUE(torch::equal(batches[b].labels, expected[b].labels));
      }
    }
  }
  sd::ImageFolderLoader other_seed(index, options, train_loader(4, 0, 12));
  EXPECT_NE(all_indices(epoch_batches(other_seed, 0)), all_indices(epoch0));
  // Augmentation really varies: the same sample in two epochs is cropped differently.
  auto first = epoch0[0].indices[0].item<int64_t>();
  for (const auto& batch : epoch1) {
    for (int64_t i = 0; i < batch.indices.size(0); ++i) {
      if (batch.indices[i].item<int64_t>() == first) EXPECT_FALSE(torch::equal(batch.images[i], epoch0[0].images[0]));
    }
  }
}

TEST(ImageFolder, ShardsPartitionTheShuffledEpoch) {
  st::TempDir dir;
  make_balanced_folder(dir.path(), 2, 5, 24);
  auto index = sd::list_image_folder(dir.path().string());
  auto options = sd::ImageFolderOptions().image_size(16);
  std::vector<int64_t> together;
  for (int64_t rank = 0; rank < 3; ++rank) {
    auto loader_options = eval_loader(2, 1).shuffle(true).seed(3).rank(rank).world_size(3);
    sd::ImageFolderLoader loader(index, options, loader_options);
    EXPECT_EQ(loader.size(), rank == 0 ? 4 : 3);
    auto mine = all_indices(epoch_batches(loader, 2));
    EXPECT_EQ(static_cast<int64_t>(mine.size()), loader.size());
    together.insert(together.end(), mine.begin(), mine.end());
  }
  std::sort(together.begin(), together.end());
  std::vector<int64_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(together, all);
  // drop_last: every rank gets floor(10 / 3) = 3 samples.
  sd::ImageFolderLoader last(index, options, eval_loader(2, 0).shuffle(true).drop_last(true).rank(2).world_size(3));
  EXPECT_EQ(last.size(), 3);
  EXPECT_EQ(last.batches_per_epoch(), 1);
  EXPECT_THROW(sd::ImageFolderLoader(index, options, eval_loader(2, 0).rank(3).world_size(3)), c10::Error);
}

TEST(ImageFolder, UnreadableFilesAreSkippedCountedAndReported) {
  st::TempDir dir;
  auto picture = st::test_picture(3, 60, 80);
  std::string jpeg = st::encode_jpeg(picture);
  write(dir.path() / "a" / "good.jpg", jpeg);
  write(dir.path() / "a" / "good.png", st::encode_png(picture));
  write(dir.path() / "a" / "png_named.jpg", st::encode_png(picture));  // wrong extension, still an image
  write(dir.path() / "b" / "truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  write(dir.path() / "b" / "zero.jpg", "");
  write(dir.path() / "b" / "text.png", "this is a text file with a .png name");
  auto index = sd::list_image_folder(dir.path().string());
  ASSERT_EQ(index.size(), 6);
  auto options = sd::ImageFolderOptions().image_size(32);

  for (int64_t workers : {0, 2}) {
    sd::ImageFolderLoader loader(index, options, eval_loader(4, workers));
    ::testing::internal::CaptureStderr();
    auto batches = epoch_batches(loader, 0);
    epoch_batches(loader, 1);
    std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(all_indices(batches), (std::vector<int64_t>{0, 1, 2})) << "the three readable files";
    EXPECT_EQ(batches[0].images.size(0), 3);
    EXPECT_EQ(loader.skipped(), 3) << "distinct files, not one per epoch";
    auto reports = loader.skipped_reports();
    ASSERT_EQ(reports.size(), 3u);
    EXPECT_NE(reports[0].find("text.png"), std::string::npos) << reports[0];
    EXPECT_NE(reports[0].find("neither a JPEG nor a PNG"), std::string::npos) << reports[0];
    EXPECT_NE(reports[1].find("truncated.jpg"), std::string::npos) << reports[1];
    EXPECT_NE(reports[2].find("zero.jpg"), std::string::npos) << reports[2];
    EXPECT_NE(log.find("skipping unreadable image"), std::string::npos) << log;
    EXPECT_NE(log.find("3 unreadable image(s) skipped in epoch 1"), std::string::npos) << log;
  }

  sd::ImageFolderLoader strict(index, options, eval_loader(4, 1).strict(true));
  strict.reset(0);
  auto message = expect_error([&] { strict.next(); });
  EXPECT_NE(message.find("strict"), std::string::npos) << message;
  EXPECT_NE(message.find((dir.path() / "b" / "text.png").string()), std::string::npos) << message;

  // Over the pixel limit (80x60 = 4800 > 4000): refused like a bad file.
  ::testing::internal::CaptureStderr();
  sd::ImageFolderLoader bombs(index, sd::ImageFolderOptions().image_size(32).max_pixels(4000), eval_loader(4, 0));
  EXPECT_TRUE(epoch_batches(bombs, 0).empty());
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(bombs.skipped(), 6);
  EXPECT_NE(bombs.skipped_reports()[0].find("pixels, more than the limit of 4000"), std::string::npos);
}

TEST(ImageFolder, ChannelsLastAndGreyOutputs) {
  st::TempDir dir;
  make_mixed_folder(dir.path());
  auto index = sd::list_image_folder(dir.path().string());
  auto options = sd::ImageFolderOptions().image_size(48);
  sd::ImageFolderLoader planar(index, options, eval_loader(3, 1));
  sd::ImageFolderLoader last(index, options, eval_loader(3, 1).channels_last(true));
  auto a = epoch_batches(planar, 0);
  auto b = epoch_batches(last, 0);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(b[i].images.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images));
  }

  sd::ImageFolderLoader grey(index, sd::ImageFolderOptions().image_size(48).channels(1).mean({0.5}).std({0.25}),
                             eval_loader(6, 0));
  auto batches = epoch_batches(grey, 0);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].images.sizes(), (std::vector<int64_t>{6, 1, 48, 48}));
  auto b1 = sd::decode_image(index.paths[4], sd::DecodeOptions().channels(1));
  st::expect_close(batches[0].images[4], sd::eval_transform(b1, 54, 48, {0.5}, {0.25}), 1e-4);
  EXPECT_THROW(sd::ImageFolderLoader(index, sd::ImageFolderOptions().channels(1), eval_loader(2, 0)), c10::Error)
      << "three mean values for one channel";
}

TEST(ImageFolder, OpenImageFolderDataBuildsBothStreams) {
  st::TempDir dir;
  make_balanced_folder(dir.path() / "train", 3, 4);
  make_balanced_folder(dir.path() / "val", 3, 2);
  auto options = sd::DataOptions().small_image_side(0).image_size(32).batch_size(5).eval_batch_size(4).workers(1).seed(9);
  auto bundle = sd::open_image_folder_data(dir.file("train"), dir.file("val"), options);
  EXPECT_EQ(bundle.classes, (std::vector<std::string>{"class0", "class1", "class2"}));
  EXPECT_FALSE(bundle.small_images);
  EXPECT_EQ(bundle.preprocess.channels, 3);
  EXPECT_EQ(bundle.preprocess.resize, 36);  // int(32 / 0.875)
  EXPECT_EQ(bundle.preprocess.resize_mode, sd::ResizeMode::kSquare);  // the paper's recipe by default
  EXPECT_EQ(sd::open_image_folder_data(dir.file("train"), dir.file("val"),
                                       sd::DataOptions(options).photo_recipe(sd::PhotoRecipe::kTorchvision))
                .preprocess.resize_mode,
            sd::ResizeMode::kShorterSide);
  EXPECT_EQ(bundle.preprocess.crop, 32);
  EXPECT_EQ(bundle.preprocess.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(bundle.preprocess.std, (std::vector<double>{0.229, 0.224, 0.225}));
  EXPECT_EQ(bundle.train->size(), 12);
  EXPECT_EQ(bundle.train->batches_per_epoch(), 2);  // drop_last
  EXPECT_EQ(bundle.val->batches_per_epoch(), 2);
  auto train = epoch_batches(*bundle.train, 0);
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[0].images.sizes(), (std::vector<int64_t>{5, 3, 32, 32}));
  auto val = epoch_batches(*bundle.val, 0);
  EXPECT_EQ(all_indices(val), (std::vector<int64_t>{0, 1, 2, 3, 4, 5})) << "validation is not shuffled";

  auto limited = sd::open_image_folder_data(dir.file("train"), dir.file("val"), options.limit_train(3).limit_val(3));
  EXPECT_EQ(limited.train->size(), 3);
  limited.val->reset(0);
  auto labels = limited.val->next()->labels;
  EXPECT_TRUE(torch::equal(labels, torch::tensor({0, 1, 2}, torch::kInt64))) << "a limit keeps every class";
}

// The whole evaluation pipeline on real JPEG files against torchvision: files decoded
// by PIL (same libjpeg-turbo), then
//   tensor backend (Resize(256, antialias=True) + CenterCrop(224) + Normalize): <= 0.5 + 5e-3 levels;
//   PIL backend (the usual ImageFolder pipeline, Resize on PIL images):           <= 1.5 levels.
TEST(ImageFolder, EvalPipelineMatchesTorchvisionOnFiles) {
  if (!st::have_python_torch() || !st::have_python_pil()) GTEST_SKIP() << "no Python with torchvision + PIL (scripts/setup)";
  st::TempDir dir;
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{375, 500}, {500, 375}, {333, 500}, {600, 800}};
  // (1200x1600 would be decoded at 1/2 scale; see DctScalingStaysCloseToFullDecode.)
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto picture = st::test_picture(3, sizes[i].first, sizes[i].second, 40 + i);
    write(dir.path() / "data" / "c" / ("p" + std::to_string(i) + ".jpg"), st::encode_jpeg(picture, {90}));
  }
  std::string script =
      "import sys, numpy as np, torch, torchvision\n"
      "from torchvision import transforms as T\n"
      "root, out = sys.argv[1], sys.argv[2]\n"
      "norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])\n"
      "tensor = T.Compose([T.PILToTensor(), T.Resize(256, antialias=True), T.CenterCrop(224),\n"
      "                    T.ConvertImageDtype(torch.float32), norm])\n"
      "pil = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])\n"
      "paper = T.Compose([T.PILToTensor(), T.Resize((256, 256), antialias=True), T.CenterCrop(224),\n"
      "                   T.ConvertImageDtype(torch.float32), norm])\n"
      "for name, t in (('tensor', tensor), ('pil', pil), ('paper', paper)):\n"
      "    ds = torchvision.datasets.ImageFolder(root, transform=t)\n"
      "    torch.stack([ds[i][0] for i in range(len(ds))]).numpy().tofile(out + '/' + name + '.f32')\n";
  st::write_file(dir.file("tv.py"), script);
  std::string output;
  ASSERT_EQ(st::run_command(std::string(st::python()) + " " + dir.file("tv.py") + " " + dir.file("data") + " " +
                                dir.path().string(),
                            &output),
            0)
      << output;
  auto index = sd::list_image_folder(dir.file("data"));
  sd::ImageFolderLoader loader(index, sd::ImageFolderOptions().recipe(sd::PhotoRecipe::kTorchvision), eval_loader(4, 2));
  auto batches = epoch_batches(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  // The paper's evaluation: Resize((256, 256)) + CenterCrop(224).
  sd::ImageFolderLoader paper_loader(index, sd::ImageFolderOptions(), eval_loader(4, 2));
  auto paper_batches = epoch_batches(paper_loader, 0);
  ASSERT_EQ(paper_batches.size(), 1u);
  auto mean = torch::tensor({0.485, 0.456, 0.406}, torch::kFloat32).view({1, 3, 1, 1});
  auto std = torch::tensor({0.229, 0.224, 0.225}, torch::kFloat32).view({1, 3, 1, 1});
  auto levels = [&](const torch::Tensor& x) { return (x * std + mean) * 255; };
  auto tensor_backend = st::read_raw(dir.file("tensor.f32"), torch::kFloat32, {4, 3, 224, 224});
  auto pil_backend = st::read_raw(dir.file("pil.f32"), torch::kFloat32, {4, 3, 224, 224});
  st::expect_close(levels(batches[0].images), levels(tensor_backend), 0.5 + 5e-3);
  st::expect_close(levels(batches[0].images), levels(pil_backend), 1.5);
  auto paper_backend = st::read_raw(dir.file("paper.f32"), torch::kFloat32, {4, 3, 224, 224});
  st::expect_close(levels(paper_batches[0].images), levels(paper_backend), 0.5 + 5e-3);
}

TEST(ImageFolder, TrainRunsEndToEndThroughTheCli) {
  // Two classes told apart by colour: red-dominant vs blue-dominant pictures of odd sizes.
  st::TempDir dir;
  for (const char* split : {"train", "val"}) {
    const int count = std::string(split) == "train" ? 16 : 6;
    for (int i = 0; i < count; ++i) {
      for (int label = 0; label < 2; ++label) {
        auto picture = st::test_picture(3, 40 + i, 50 + 2 * i, 10 * i + label).to(torch::kFloat);
        picture[label == 0 ? 2 : 0].mul_(0.2);
        write(dir.path() / split / (label == 0 ? "red" : "blue") / ("p" + std::to_string(i) + ".jpg"),
              st::encode_jpeg(picture.to(torch::kUInt8)));
      }
    }
  }
  const auto out = dir.file("run");
  std::string log;
  ASSERT_EQ(st::run_command(std::string(SPLITSHARE_CLI) + " train --data imagefolder:" + dir.path().string() +
                                " --arch resnet10 --width 8 --image-size 32 --epochs 3 --batch-size 8 --lr 0.05"
                                " --workers 2 --out " + out, &log), 0) << log;
  // The progress line splits time between waiting for data and computing.
  EXPECT_NE(log.find("img/s (data"), std::string::npos) << log;
  std::ifstream metrics(out + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) last = line;
  auto record = nlohmann::json::parse(last);
  EXPECT_GT(record["data_seconds"].get<double>(), 0.0);
  EXPECT_GT(record["compute_seconds"].get<double>(), 0.0);
  EXPECT_EQ(record["val"]["samples"], 12);
  std::string info;
  ASSERT_EQ(st::run_command(std::string(SPLITSHARE_CLI) + " info --checkpoint " + out + "/checkpoint.pt --json", &info),
            0) << info;
  auto meta = nlohmann::json::parse(info.substr(info.find('{')));
  EXPECT_EQ(meta["classes"], nlohmann::json({"blue", "red"}));  // sorted by name
  EXPECT_EQ(meta["stem"], "imagenet");
  EXPECT_EQ(meta["preprocess"]["crop"], 32);
  EXPECT_EQ(meta["preprocess"]["resize"], 36);  // int(32 / 0.875), the 224 -> 256 ratio
  EXPECT_EQ(meta["preprocess"]["channels"], 3);
}
