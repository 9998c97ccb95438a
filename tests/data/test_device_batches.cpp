// The loader feeding a GPU: uint8 batches normalised on the device (data::images_on) give the
// float path's input, exactly for in-memory data and for photos through automatic augmentation,
// within half a grey level for resampled photos (rounded to uint8 as torchvision's uint8
// pipeline); page-locked batches are asked for only where CUDA runs.
#include <splitshare/data/image_folder.h>
#include <splitshare/data/loader.h>
#include <splitshare/train/fit.h>

#include "image_writers.h"
#include "support.h"
#include "tiny_models.h"

#include <torch/cuda.h>

namespace sd = splitshare::data;
using splitshare::testing::TempDir;

namespace {

sd::TensorDataset random_dataset() {
  torch::manual_seed(3);
  sd::TensorDataset d;
  d.images = torch::randint(0, 256, {40, 3, 12, 12}, torch::kLong).to(torch::kUInt8);
  d.labels = torch::randint(0, 3, {40}, torch::kLong);
  d.classes = {"a", "b", "c"};
  return d;
}

// A photo folder of 12 JPEGs of several sizes in 2 classes.
sd::ImageFolderIndex photo_folder(const TempDir& dir) {
  for (int i = 0; i < 12; ++i) {
    const auto cls = dir.file(i % 2 ? "cat" : "dog");
    std::filesystem::create_directories(cls);
    const auto picture = splitshare::testing::test_picture(3, 60 + 7 * i, 90 - 3 * i, i);
    splitshare::testing::write_file(cls + "/" + std::to_string(i) + ".jpg", splitshare::testing::encode_jpeg(picture));
  }
  return sd::list_image_folder(dir.path().string());
}

// Every batch of both streams: the uint8 one normalised by images_on against the float one.
double largest_difference(sd::BatchStream& floats, sd::BatchStream& bytes, int64_t epoch) {
  floats.reset(epoch);
  bytes.reset(epoch);
  double largest = 0;
  int64_t batches = 0;
  while (auto f = floats.next()) {
    auto b = bytes.next();
    EXPECT_TRUE(b.has_value());
    if (!b) break;
    EXPECT_EQ(b->images.scalar_type(), torch::kUInt8);
    EXPECT_TRUE(torch::equal(b->labels, f->labels));
    const auto input = sd::images_on(*b, torch::kCPU);
    EXPECT_EQ(input.scalar_type(), torch::kFloat32);
    EXPECT_EQ(input.sizes(), f->images.sizes());
    EXPECT_EQ(input.is_contiguous(torch::MemoryFormat::ChannelsLast), f->images.is_contiguous(torch::MemoryFormat::ChannelsLast));
    largest = std::max(largest, (input - f->images).abs().max().item<double>());
    ++batches;
  }
  EXPECT_GT(batches, 0);
  EXPECT_FALSE(bytes.next().has_value());
  return largest;
}

}  // namespace

TEST(DeviceBatches, Uint8TensorBatchesNormaliseToTheFloatBatchesExactly) {
  for (const bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels last" : "contiguous");
    const auto options = sd::LoaderOptions().batch_size(16).shuffle(true).augment(true).pad(4).seed(7).channels_last(channels_last);
    auto floats = sd::make_tensor_loader(random_dataset(), {0.4, 0.5, 0.6}, {0.2, 0.25, 0.3}, options);
    auto bytes = sd::make_tensor_loader(random_dataset(), {0.4, 0.5, 0.6}, {0.2, 0.25, 0.3},
                                        sd::LoaderOptions(options).uint8_images(true));
    EXPECT_EQ(largest_difference(*floats, *bytes, 0), 0.0);  // padding and flips included
    EXPECT_EQ(largest_difference(*floats, *bytes, 1), 0.0);
  }
}

TEST(DeviceBatches, Uint8PhotoBatchesAreWithinHalfAGreyLevel) {
  TempDir dir;
  const auto index = photo_folder(dir);
  const auto folder = sd::ImageFolderOptions().image_size(32).resize(40);
  const double half_level = 0.5 / (255.0 * 0.224);  // ImageNet's smallest std
  for (const bool augment : {true, false}) {
    SCOPED_TRACE(augment ? "training" : "evaluation");
    const auto options = sd::LoaderOptions().batch_size(5).shuffle(augment).augment(augment).workers(2).seed(3);
    auto floats = sd::make_image_folder_loader(index, folder, options);
    auto bytes = sd::make_image_folder_loader(index, folder, sd::LoaderOptions(options).uint8_images(true));
    const double diff = largest_difference(*floats, *bytes, 0);
    EXPECT_LE(diff, half_level + 1e-5);
    EXPECT_GT(diff, 0.0);  // the rounding is real: the test would see a wrong scale or shift
  }
  // Automatic augmentation rounds to uint8 on both paths: identical.
  const auto policy = sd::ImageFolderOptions(folder).auto_augment(sd::AutoAugmentKind::kTrivialAugment);
  const auto options = sd::LoaderOptions().batch_size(4).shuffle(true).augment(true).seed(5);
  auto floats = sd::make_image_folder_loader(index, policy, options);
  auto bytes = sd::make_image_folder_loader(index, policy, sd::LoaderOptions(options).uint8_images(true));
  EXPECT_EQ(largest_difference(*floats, *bytes, 2), 0.0);
}

TEST(DeviceBatches, RandomErasingKeepsFloatBatchesAndPinningNeedsCuda) {
  TempDir dir;
  const auto index = photo_folder(dir);
  const auto folder = sd::ImageFolderOptions().image_size(32).resize(40).random_erase(0.5);
  auto loader = sd::make_image_folder_loader(
      index, folder, sd::LoaderOptions().batch_size(4).shuffle(true).augment(true).uint8_images(true).pin_memory(true));
  loader->reset(0);
  const auto batch = loader->next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->images.scalar_type(), torch::kFloat32);  // erasing writes normalised values
  EXPECT_FALSE(batch->scale.defined());
  EXPECT_EQ(batch->images.is_pinned(), torch::cuda::is_available());
  EXPECT_TRUE(torch::equal(sd::images_on(*batch, torch::kCPU), batch->images));
}

TEST(DeviceBatches, TrainingOnUint8BatchesEndsWithTheSameWeights) {
  std::vector<std::vector<torch::Tensor>> weights;
  for (const bool bytes : {false, true}) {
    auto data = splitshare::testing::noise_data();
    auto model = splitshare::testing::tiny_model(splitshare::testing::ssm_head(), 4);
    model->train();
    torch::manual_seed(21);
    sd::TensorDataset dataset;
    dataset.images = torch::randint(0, 256, {96, 1, 16, 16}, torch::kLong).to(torch::kUInt8);
    dataset.labels = torch::randint(0, 3, {96}, torch::kLong);
    dataset.classes = data.classes;
    data.train = sd::make_tensor_loader(dataset, {0.5}, {0.25},
                                        sd::LoaderOptions().batch_size(16).shuffle(true).augment(true).seed(1).uint8_images(bytes));
    splitshare::train::CheckpointMetadata meta;
    meta.model = model->options;
    meta.classes = data.classes;
    splitshare::train::fit(model, data, splitshare::train::TrainOptions().epochs(1).batch_size(16).lr(0.1),
                           splitshare::train::RunContext().observer({}), meta);
    std::vector<torch::Tensor> w;
    for (const auto& p : model->parameters()) w.push_back(p.detach().clone());
    weights.push_back(w);
  }
  ASSERT_EQ(weights[0].size(), weights[1].size());
  for (size_t i = 0; i < weights[0].size(); ++i) EXPECT_TRUE(torch::equal(weights[0][i], weights[1][i])) << i;
}

TEST(DeviceBatches, PrefetchingGivesTheSameBatchesInTheSameOrder) {
  const auto options = sd::LoaderOptions().batch_size(8).shuffle(true).augment(true).seed(2);
  auto plain = sd::make_tensor_loader(random_dataset(), {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, options);
  auto ahead = sd::prefetching(sd::make_tensor_loader(random_dataset(), {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, options));
  EXPECT_EQ(ahead->batches_per_epoch(), plain->batches_per_epoch());
  EXPECT_THROW(ahead->next(), c10::Error);  // before reset
  for (const int64_t epoch : {0, 1}) {
    plain->reset(epoch);
    ahead->reset(epoch);
    int64_t batches = 0;
    while (auto want = plain->next()) {
      auto got = ahead->next();
      ASSERT_TRUE(got.has_value());
      EXPECT_TRUE(torch::equal(got->images, want->images));
      EXPECT_TRUE(torch::equal(got->indices, want->indices));
      ++batches;
    }
    EXPECT_FALSE(ahead->next().has_value());
    EXPECT_EQ(batches, plain->batches_per_epoch());
  }
  // Part-way resets and leaving mid-epoch are safe.
  plain->reset_at(1, 16);
  ahead->reset_at(1, 16);
  EXPECT_TRUE(torch::equal(ahead->next()->indices, plain->next()->indices));
  ahead->reset(0);
}
