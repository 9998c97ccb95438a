#include <splitshare/data/datasets.h>

#include <splitshare/data/cifar.h>

#include <filesystem>

#include "data_files.h"
#include "support.h"

namespace splitshare::testing {
namespace {

using splitshare::data::DataOptions;
using splitshare::data::parse_data_spec;

TEST(DataSpec, ParsesEveryForm) {
  auto fashion = parse_data_spec("fashion-mnist");
  EXPECT_EQ(fashion.kind, "fashion-mnist");
  EXPECT_EQ(fashion.train_path, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(fashion.val_path, data::default_fashion_mnist_dir());

  for (const std::string kind : {"fashion-mnist", "mnist", "cifar10", "cifar100"}) {
    auto spec = parse_data_spec(kind + ":/data/x");
    EXPECT_EQ(spec.kind, kind);
    EXPECT_EQ(spec.train_path, "/data/x");
    EXPECT_EQ(spec.val_path, "/data/x");
  }
  auto folder = parse_data_spec("imagefolder:/data/imagenette");
  EXPECT_EQ(folder.train_path, "/data/imagenette/train");
  EXPECT_EQ(folder.val_path, "/data/imagenette/val");
  auto pair = parse_data_spec("imagefolder:/a/tr,/b/va");
  EXPECT_EQ(pair.train_path, "/a/tr");
  EXPECT_EQ(pair.val_path, "/b/va");
}

TEST(DataSpec, UnknownKindListsTheAcceptedForms) {
  const std::string message = expect_error([] { parse_data_spec("svhn:/data/svhn"); });
  EXPECT_TRUE(contains(message, "Unknown data kind 'svhn'")) << message;
  EXPECT_TRUE(contains(message, "fashion-mnist:DIR, mnist:DIR, cifar10:DIR, cifar100:DIR")) << message;
  EXPECT_TRUE(contains(expect_error([] { parse_data_spec(""); }), "accepted forms"));
}

TEST(DataSpec, MissingPathIsAnError) {
  EXPECT_TRUE(contains(expect_error([] { parse_data_spec("cifar10"); }), "'cifar10' names no directory"));
  EXPECT_TRUE(contains(expect_error([] { parse_data_spec("mnist:"); }), "write mnist:DIR"));
  EXPECT_TRUE(contains(expect_error([] { parse_data_spec("imagefolder:/a,"); }), "two non-empty directories"));
}

// 5 train batches of 4 records (labels 0..9 twice) and a test batch of 6 records.
void write_cifar10(const std::string& dir) {
  for (int b = 0; b < 5; ++b) {
    std::vector<uint8_t> labels;
    for (int i = 0; i < 4; ++i) labels.push_back(static_cast<uint8_t>((b * 4 + i) % 10));
    write_file(dir + "/data_batch_" + std::to_string(b + 1) + ".bin", cifar_bytes(labels, 1));
  }
  write_file(dir + "/test_batch.bin", cifar_bytes({0, 1, 2, 3, 4, 5}, 1));
}

TEST(OpenData, Cifar10BuildsTrainAndValStreams) {
  TempDir dir;
  write_cifar10(dir.path().string());
  auto bundle = data::open_data(parse_data_spec("cifar10:" + dir.path().string()),
                                DataOptions().batch_size(8).eval_batch_size(4).seed(1));
  EXPECT_TRUE(bundle.small_images);
  EXPECT_EQ(bundle.classes.size(), 10u);
  EXPECT_EQ(bundle.classes[3], "cat");
  EXPECT_EQ(bundle.preprocess.channels, 3);
  EXPECT_FALSE(bundle.preprocess.resize.has_value());
  EXPECT_FALSE(bundle.preprocess.crop.has_value());

  // Mean/std from the training images, per channel, [0, 1] scale.
  auto train = data::read_cifar10(dir.path().string(), data::Split::kTrain);
  auto pixels = train.images.to(torch::kFloat64).div(255.0).transpose(0, 1).reshape({3, -1});
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(bundle.preprocess.mean[c], pixels[c].mean().item<double>(), 1e-9);
    EXPECT_NEAR(bundle.preprocess.std[c], pixels[c].std(/*unbiased=*/false).item<double>(), 1e-9);
  }

  EXPECT_EQ(bundle.train->size(), 20);
  EXPECT_EQ(bundle.train->batches_per_epoch(), 2);  // drop_last
  bundle.train->reset(0);
  auto batch = bundle.train->next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->images.sizes(), (std::vector<int64_t>{8, 3, 32, 32}));

  EXPECT_EQ(bundle.val->size(), 6);
  bundle.val->reset(0);
  auto first = bundle.val->next();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->indices.equal(torch::arange(4, torch::kInt64)));  // no shuffle
  // No augmentation: exactly the normalised test image.
  auto test = data::read_cifar10(dir.path().string(), data::Split::kTest);
  auto mean = torch::tensor(bundle.preprocess.mean, torch::kFloat64).view({3, 1, 1});
  auto std = torch::tensor(bundle.preprocess.std, torch::kFloat64).view({3, 1, 1});
  expect_close(first->images[2].to(torch::kFloat64), (test.images[2].to(torch::kFloat64) / 255.0 - mean) / std, 1e-5);
}

TEST(OpenData, HonoursLimitsRanksAndChannelsLast) {
  TempDir dir;
  write_cifar10(dir.path().string());
  auto bundle = data::open_data(parse_data_spec("cifar10:" + dir.path().string()), DataOptions()
                                                                                     .batch_size(4)
                                                                                     .limit_train(9)
                                                                                     .limit_val(5)
                                                                                     .rank(1)
                                                                                     .world_size(2)
                                                                                     .channels_last(true));
  EXPECT_EQ(bundle.train->size(), 5);  // ceil(9 / 2), padded
  EXPECT_EQ(bundle.val->size(), 2);    // samples 1 and 3 of the first 5
  bundle.val->reset(0);
  auto batch = bundle.val->next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_TRUE(batch->indices.equal(torch::tensor({1, 3}, torch::kInt64)));
  EXPECT_TRUE(batch->images.is_contiguous(torch::MemoryFormat::ChannelsLast));
}

TEST(OpenData, SmallTrainingSetStillYieldsABatch) {
  TempDir dir;
  write_cifar10(dir.path().string());
  auto bundle = data::open_data(parse_data_spec("cifar10:" + dir.path().string()),
                                DataOptions().batch_size(128).limit_train(10));
  EXPECT_EQ(bundle.train->batches_per_epoch(), 1);
}

TEST(OpenData, MnistFromIdxFiles) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images_bytes(6, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels_bytes({0, 1, 2, 3, 4, 5}));
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_images_bytes(2, 28, 28));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_labels_bytes({7, 8}));
  auto bundle = data::open_data(parse_data_spec("mnist:" + dir.path().string()), DataOptions().batch_size(4));
  EXPECT_EQ(bundle.classes[7], "7");
  EXPECT_EQ(bundle.preprocess.channels, 1);
  EXPECT_EQ(bundle.preprocess.mean.size(), 1u);
  bundle.train->reset(0);
  EXPECT_EQ(bundle.train->next()->images.sizes(), (std::vector<int64_t>{4, 1, 28, 28}));
}

TEST(OpenData, InstalledFashionMnist) {
  if (!std::filesystem::is_directory(data::default_fashion_mnist_dir())) GTEST_SKIP() << "not installed";
  auto bundle = data::open_data(parse_data_spec("fashion-mnist"), DataOptions().batch_size(128).world_size(3));
  // The usual Fashion-MNIST normalisation constants.
  EXPECT_NEAR(bundle.preprocess.mean[0], 0.2860, 1e-4);
  EXPECT_NEAR(bundle.preprocess.std[0], 0.3530, 1e-4);
  EXPECT_EQ(bundle.classes[9], "Ankle boot");
  EXPECT_EQ(bundle.train->size(), 20000);
  EXPECT_EQ(bundle.train->batches_per_epoch(), 156);
  EXPECT_EQ(bundle.val->size(), 3334);
}

TEST(OpenData, MissingDirectoryIsNamed) {
  TempDir dir;
  const std::string missing = dir.file("absent");
  const std::string message =
      expect_error([&] { data::open_data(parse_data_spec("cifar100:" + missing), DataOptions()); });
  EXPECT_TRUE(contains(message, "Data directory " + missing)) << message;
  EXPECT_TRUE(contains(message, "does not exist")) << message;
}

}  // namespace
}  // namespace splitshare::testing
