#include <splitshare/data/idx.h>

#include "data_files.h"
#include "support.h"

namespace splitshare::testing {
namespace {

using splitshare::data::read_idx_images;
using splitshare::data::read_idx_labels;

TEST(Idx, ReadsPlainImages) {
  TempDir dir;
  write_file(dir.file("images"), idx_images_bytes(3, 2, 4));
  auto images = read_idx_images(dir.file("images"));
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{3, 1, 2, 4}));
  EXPECT_EQ(images.scalar_type(), torch::kUInt8);
  auto expected = (torch::arange(24, torch::kInt64) * 7 + 3).remainder(256).to(torch::kUInt8).view({3, 1, 2, 4});
  EXPECT_TRUE(images.equal(expected));
}

TEST(Idx, ReadsGzipImagesLikePlain) {
  TempDir dir;
  const std::string bytes = idx_images_bytes(5, 28, 28);
  write_file(dir.file("plain"), bytes);
  write_gzip(dir.file("packed"), bytes);  // no .gz suffix: detection is by magic bytes
  EXPECT_NE(read_file(dir.file("packed")), bytes);
  EXPECT_TRUE(read_idx_images(dir.file("packed")).equal(read_idx_images(dir.file("plain"))));
}

TEST(Idx, ReadsPlainAndGzipLabels) {
  TempDir dir;
  const std::vector<uint8_t> values{9, 0, 3, 255};
  write_file(dir.file("labels"), idx_labels_bytes(values));
  write_gzip(dir.file("labels.gz"), idx_labels_bytes(values));
  for (const auto& name : {"labels", "labels.gz"}) {
    auto labels = read_idx_labels(dir.file(name));
    EXPECT_EQ(labels.scalar_type(), torch::kInt64);
    EXPECT_TRUE(labels.equal(torch::tensor({9, 0, 3, 255}, torch::kInt64))) << name;
  }
}

TEST(Idx, MissingFileNamesIt) {
  TempDir dir;
  const std::string message = expect_error([&] { read_idx_images(dir.file("nope")); });
  EXPECT_TRUE(contains(message, "Cannot open")) << message;
  EXPECT_TRUE(contains(message, dir.file("nope"))) << message;
}

TEST(Idx, WrongMagicSaysExpectedAndFound) {
  TempDir dir;
  write_file(dir.file("labels"), idx_labels_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  const std::string message = expect_error([&] { read_idx_images(dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("labels"))) << message;
  EXPECT_TRUE(contains(message, "wrong magic")) << message;
  EXPECT_TRUE(contains(message, "expected 0x00000803")) << message;
  EXPECT_TRUE(contains(message, "found 0x00000801")) << message;

  write_file(dir.file("images"), idx_images_bytes(1, 2, 2, 0x12345678));
  const std::string labels_message = expect_error([&] { read_idx_labels(dir.file("images")); });
  EXPECT_TRUE(contains(labels_message, "expected 0x00000801")) << labels_message;
  EXPECT_TRUE(contains(labels_message, "found 0x12345678")) << labels_message;
}

TEST(Idx, TruncatedFileSaysBytesExpectedAndFound) {
  TempDir dir;
  std::string bytes = idx_images_bytes(3, 2, 4);  // 16 + 24 bytes
  bytes.resize(bytes.size() - 5);
  write_file(dir.file("images"), bytes);
  const std::string message = expect_error([&] { read_idx_images(dir.file("images")); });
  EXPECT_TRUE(contains(message, dir.file("images"))) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;
  EXPECT_TRUE(contains(message, "expected 40 bytes, found 35")) << message;

  write_file(dir.file("header"), std::string("\0\0\x08", 3));
  EXPECT_TRUE(contains(expect_error([&] { read_idx_labels(dir.file("header")); }), "header needs 8 bytes, found 3"));
}

TEST(Idx, TruncatedGzipIsReported) {
  TempDir dir;
  write_gzip(dir.file("full.gz"), idx_images_bytes(20, 28, 28));
  std::string packed = read_file(dir.file("full.gz"));
  write_file(dir.file("cut.gz"), packed.substr(0, packed.size() / 2));
  const std::string message = expect_error([&] { read_idx_images(dir.file("cut.gz")); });
  EXPECT_TRUE(contains(message, dir.file("cut.gz"))) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;
}

TEST(Idx, TrailingBytesAreReported) {
  TempDir dir;
  write_file(dir.file("labels"), idx_labels_bytes({1, 2}) + "xyz");
  const std::string message = expect_error([&] { read_idx_labels(dir.file("labels")); });
  EXPECT_TRUE(contains(message, "3 unexpected trailing bytes: expected 10 bytes, found 13")) << message;
}

TEST(Idx, ZeroOrAbsurdDimensionsAreReported) {
  TempDir dir;
  write_file(dir.file("zero"), idx_images_bytes(4, 0, 28));
  const std::string zero = expect_error([&] { read_idx_images(dir.file("zero")); });
  EXPECT_TRUE(contains(zero, dir.file("zero"))) << zero;
  EXPECT_TRUE(contains(zero, "row count is 0")) << zero;

  write_file(dir.file("huge"), be32(0x803) + be32(1) + be32(28) + be32(3000000000u));
  const std::string huge = expect_error([&] { read_idx_images(dir.file("huge")); });
  EXPECT_TRUE(contains(huge, "column count is 3000000000")) << huge;

  write_file(dir.file("empty"), idx_labels_bytes({}));
  EXPECT_TRUE(contains(expect_error([&] { read_idx_labels(dir.file("empty")); }), "label count is 0"));
}

}  // namespace
}  // namespace splitshare::testing
