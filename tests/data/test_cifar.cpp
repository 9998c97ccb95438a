#include <splitshare/data/cifar.h>

#include <filesystem>

#include "data_files.h"
#include "support.h"

namespace splitshare::testing {
namespace {

using splitshare::data::Split;

// data_batch_b.bin holds labels {b, b + 4}; test_batch.bin holds {9, 1, 2}.
void write_cifar10(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (uint8_t b = 1; b <= 5; ++b) {
    write_file(dir + "/data_batch_" + std::to_string(b) + ".bin", cifar_bytes({b, static_cast<uint8_t>(b + 4)}, 1));
  }
  write_file(dir + "/test_batch.bin", cifar_bytes({9, 1, 2}, 1));
}

TEST(Cifar10, ReadsTrainBatchesInOrder) {
  TempDir dir;
  write_cifar10(dir.path().string());
  auto train = data::read_cifar10(dir.path().string(), Split::kTrain);
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{10, 3, 32, 32}));
  EXPECT_EQ(train.images.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(train.labels.equal(torch::tensor({1, 5, 2, 6, 3, 7, 4, 8, 5, 9}, torch::kInt64)));
  // Second record of a batch: pixel k = (1 + k) % 256, planes R, G, B.
  auto expected = (torch::arange(3072, torch::kInt64) + 1).remainder(256).to(torch::kUInt8).view({3, 32, 32});
  EXPECT_TRUE(train.images[3].equal(expected));
  ASSERT_EQ(train.classes.size(), 10u);
  EXPECT_EQ(train.classes[0], "airplane");
  EXPECT_EQ(train.classes[9], "truck");

  auto test = data::read_cifar10(dir.path().string(), Split::kTest);
  EXPECT_TRUE(test.labels.equal(torch::tensor({9, 1, 2}, torch::kInt64)));
}

TEST(Cifar10, AcceptsTheParentFolderAndReadsClassNames) {
  TempDir dir;
  const std::string data_dir = dir.file("cifar-10-batches-bin");
  write_cifar10(data_dir);
  write_file(data_dir + "/batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n\n");
  auto test = data::read_cifar10(dir.path().string(), Split::kTest);
  EXPECT_EQ(test.size(), 3);
  EXPECT_EQ(test.classes, (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}));
}

TEST(Cifar10, MissingFileIsNamed) {
  TempDir dir;
  write_cifar10(dir.path().string());
  std::filesystem::remove(dir.file("data_batch_4.bin"));
  const std::string message = expect_error([&] { data::read_cifar10(dir.path().string(), Split::kTrain); });
  EXPECT_TRUE(contains(message, "Cannot find CIFAR-10 file " + dir.file("data_batch_4.bin"))) << message;
}

TEST(Cifar10, SizeNotAMultipleOfTheRecordIsReported) {
  TempDir dir;
  write_cifar10(dir.path().string());
  write_file(dir.file("test_batch.bin"), cifar_bytes({1, 2}, 1) + "x");
  const std::string message = expect_error([&] { data::read_cifar10(dir.path().string(), Split::kTest); });
  EXPECT_TRUE(contains(message, dir.file("test_batch.bin") + " has 6147 bytes")) << message;
  EXPECT_TRUE(contains(message, "3073-byte record")) << message;
}

TEST(Cifar10, LabelOutOfRangeIsReported) {
  TempDir dir;
  write_cifar10(dir.path().string());
  write_file(dir.file("test_batch.bin"), cifar_bytes({1, 10}, 1));
  const std::string message = expect_error([&] { data::read_cifar10(dir.path().string(), Split::kTest); });
  EXPECT_TRUE(contains(message, dir.file("test_batch.bin"))) << message;
  EXPECT_TRUE(contains(message, "label 10 of record 1 is out of range (10 classes)")) << message;
}

TEST(Cifar100, ReadsFineLabelsAndDefaultNames) {
  TempDir dir;
  const std::string data_dir = dir.file("cifar-100-binary");
  std::filesystem::create_directories(data_dir);
  write_file(data_dir + "/train.bin", cifar_bytes({99, 0, 42}, 2));
  write_file(data_dir + "/test.bin", cifar_bytes({7}, 2));
  auto train = data::read_cifar100(dir.path().string(), Split::kTrain);
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_TRUE(train.labels.equal(torch::tensor({99, 0, 42}, torch::kInt64)));  // fine, not coarse
  auto expected = (torch::arange(3072, torch::kInt64) + 2).remainder(256).to(torch::kUInt8).view({3, 32, 32});
  EXPECT_TRUE(train.images[2].equal(expected));
  ASSERT_EQ(train.classes.size(), 100u);
  EXPECT_EQ(train.classes[42], "42");
  EXPECT_EQ(data::read_cifar100(data_dir, Split::kTest).labels.item<int64_t>(), 7);
}

TEST(Cifar100, ReadsFineLabelNames) {
  TempDir dir;
  write_file(dir.file("test.bin"), cifar_bytes({3}, 2));
  std::string names;
  for (int i = 0; i < 100; ++i) names += "class_" + std::to_string(i) + "\r\n";
  write_file(dir.file("fine_label_names.txt"), names);
  auto test = data::read_cifar100(dir.path().string(), Split::kTest);
  EXPECT_EQ(test.classes[3], "class_3");
  EXPECT_EQ(test.classes[99], "class_99");

  write_file(dir.file("fine_label_names.txt"), "apple\npear\n");
  const std::string message = expect_error([&] { data::read_cifar100(dir.path().string(), Split::kTest); });
  EXPECT_TRUE(contains(message, "lists 2 names, expected 100")) << message;
}

TEST(Cifar100, ErrorsNameTheFile) {
  TempDir dir;
  write_file(dir.file("train.bin"), cifar_bytes({5, 100}, 2));
  const std::string label = expect_error([&] { data::read_cifar100(dir.path().string(), Split::kTrain); });
  EXPECT_TRUE(contains(label, dir.file("train.bin"))) << label;
  EXPECT_TRUE(contains(label, "label 100 of record 1 is out of range (100 classes)")) << label;

  write_file(dir.file("train.bin"), cifar_bytes({5}, 1));  // CIFAR-10 records are one byte short
  const std::string size = expect_error([&] { data::read_cifar100(dir.path().string(), Split::kTrain); });
  EXPECT_TRUE(contains(size, "has 3073 bytes, not a positive multiple of the 3074-byte record")) << size;

  const std::string missing = expect_error([&] { data::read_cifar100(dir.path().string(), Split::kTest); });
  EXPECT_TRUE(contains(missing, dir.file("test.bin"))) << missing;
}

}  // namespace
}  // namespace splitshare::testing
