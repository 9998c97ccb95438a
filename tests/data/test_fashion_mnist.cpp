#include <splitshare/data/fashion_mnist.h>

#include <filesystem>

#include "data_files.h"
#include "support.h"

namespace splitshare::testing {
namespace {

using splitshare::data::Split;

TEST(FashionMnist, ReadsPlainTrainAndGzipTest) {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte"), idx_images_bytes(4, 28, 28));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_labels_bytes({9, 0, 0, 3}));
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), idx_images_bytes(2, 28, 28));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), idx_labels_bytes({1, 8}));

  auto train = data::read_fashion_mnist(dir.path().string(), Split::kTrain);
  EXPECT_EQ(train.size(), 4);
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{4, 1, 28, 28}));
  EXPECT_TRUE(train.labels.equal(torch::tensor({9, 0, 0, 3}, torch::kInt64)));
  EXPECT_EQ(train.images[1][0][0][0].item<int>(), (784 * 7 + 3) % 256);
  ASSERT_EQ(train.classes.size(), 10u);
  EXPECT_EQ(train.classes[0], "T-shirt/top");
  EXPECT_EQ(train.classes[9], "Ankle boot");

  auto test = data::read_fashion_mnist(dir.path().string(), Split::kTest);
  EXPECT_EQ(test.size(), 2);
  EXPECT_TRUE(test.labels.equal(torch::tensor({1, 8}, torch::kInt64)));
}

TEST(FashionMnist, CountMismatchNamesBothFilesAndCounts) {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte"), idx_images_bytes(3, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels_bytes({1, 2}));
  const std::string message = expect_error([&] { data::read_fashion_mnist(dir.path().string(), Split::kTrain); });
  EXPECT_TRUE(contains(message, dir.file("train-images-idx3-ubyte") + " holds 3 images")) << message;
  EXPECT_TRUE(contains(message, dir.file("train-labels-idx1-ubyte.gz") + " holds 2 labels")) << message;
}

TEST(FashionMnist, LabelOutOfRangeNamesFileAndValue) {
  TempDir dir;
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_images_bytes(2, 28, 28));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_labels_bytes({4, 10}));
  const std::string message = expect_error([&] { data::read_fashion_mnist(dir.path().string(), Split::kTest); });
  EXPECT_TRUE(contains(message, dir.file("t10k-labels-idx1-ubyte"))) << message;
  EXPECT_TRUE(contains(message, "label 10 of sample 1 is out of range (10 classes)")) << message;
}

TEST(FashionMnist, MissingFileNamesStemAndDirectory) {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte"), idx_images_bytes(1, 28, 28));
  const std::string message = expect_error([&] { data::read_fashion_mnist(dir.path().string(), Split::kTrain); });
  EXPECT_TRUE(contains(message, "train-labels-idx1-ubyte.gz in " + dir.path().string())) << message;
}

TEST(FashionMnist, GenericReaderTakesTheClassList) {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte"), idx_images_bytes(2, 5, 7));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_labels_bytes({7, 2}));
  auto digits = data::read_mnist_idx(dir.path().string(), Split::kTrain, data::mnist_classes());
  EXPECT_EQ(digits.images.sizes(), (std::vector<int64_t>{2, 1, 5, 7}));
  EXPECT_EQ(digits.classes, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  const std::string message =
      expect_error([&] { data::read_mnist_idx(dir.path().string(), Split::kTrain, {"a", "b", "c"}); });
  EXPECT_TRUE(contains(message, "label 7 of sample 0 is out of range (3 classes)")) << message;
}

TEST(FashionMnist, ReadsTheInstalledDataset) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " is not installed";
  for (auto [split, count] : {std::pair{Split::kTrain, 60000}, std::pair{Split::kTest, 10000}}) {
    auto dataset = data::read_fashion_mnist(dir, split);
    EXPECT_EQ(dataset.images.sizes(), (std::vector<int64_t>{count, 1, 28, 28}));
    EXPECT_EQ(dataset.labels.size(0), count);
    EXPECT_EQ(dataset.labels.min().item<int64_t>(), 0);
    EXPECT_EQ(dataset.labels.max().item<int64_t>(), 9);
    // Fashion-MNIST is balanced: 6000 / 1000 of each class.
    EXPECT_TRUE(torch::bincount(dataset.labels).eq(count / 10).all().item<bool>());
    EXPECT_GT(dataset.images.max().item<int>(), 200);
  }
}

}  // namespace
}  // namespace splitshare::testing
