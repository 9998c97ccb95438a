// Image folders of small images (DataOptions::small_image_side): decoded once into memory and
// read like CIFAR, with the photo pipeline still there when asked for.
#include <splitshare/data/datasets.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/image/decode.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "image_writers.h"
#include "support.h"

namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {

// ROOT/train/<c>/<i>.png and ROOT/val/<c>/<i>.png: 3 classes of `side` x `side` pictures.
std::string make_small_folder(const st::TempDir& dir, int64_t side) {
  const std::string root = dir.file("small");
  uint64_t seed = 1;
  for (const std::string split : {"train", "val"}) {
    for (const std::string c : {"a", "b", "c"}) {
      std::filesystem::create_directories(root + "/" + split + "/" + c);
      for (int i = 0; i < (split == "train" ? 4 : 2); ++i) {
        st::write_file(root + "/" + split + "/" + c + "/" + std::to_string(i) + ".png",
                       st::encode_png(st::test_picture(3, side, side, seed++)));
      }
    }
  }
  return root;
}

}  // namespace

TEST(SmallImageFolder, IsReadIntoMemoryLikeCifar) {
  st::TempDir dir;
  const auto root = make_small_folder(dir, 20);
  auto bundle = sd::open_data(sd::parse_data_spec("imagefolder:" + root),
                              sd::DataOptions().batch_size(4).augment(false));
  EXPECT_TRUE(bundle.small_images);
  ASSERT_TRUE(bundle.preprocess.size.has_value());
  EXPECT_EQ(*bundle.preprocess.size, 20);
  EXPECT_FALSE(bundle.preprocess.resize.has_value());
  EXPECT_FALSE(bundle.preprocess.crop.has_value());
  EXPECT_EQ(bundle.train_files.size(), 12u);
  // The validation stream is the files themselves, normalised with the recorded statistics.
  const auto index = sd::list_image_folder(root + "/val");
  const auto mean = torch::tensor(bundle.preprocess.mean).view({1, 3, 1, 1});
  const auto std = torch::tensor(bundle.preprocess.std).view({1, 3, 1, 1});
  bundle.val->reset(0);
  int64_t seen = 0;
  while (auto batch = bundle.val->next()) {
    for (int64_t i = 0; i < batch->images.size(0); ++i, ++seen) {
      const auto file = sd::decode_image(index.paths[static_cast<size_t>(seen)]).to(torch::kFloat32) / 255.0;
      const auto expected = (file.unsqueeze(0) - mean) / std;
      EXPECT_TRUE(torch::allclose(batch->images[i].unsqueeze(0), expected, 1e-5, 1e-5)) << "image " << seen;
      EXPECT_EQ(batch->labels[i].item<int64_t>(), index.labels[static_cast<size_t>(seen)]);
    }
  }
  EXPECT_EQ(seen, 6);
}

TEST(SmallImageFolder, LargerImagesOrAZeroLimitKeepThePhotoPipeline) {
  st::TempDir dir;
  const auto spec = sd::parse_data_spec("imagefolder:" + make_small_folder(dir, 20));
  auto photo = sd::open_data(spec, sd::DataOptions().small_image_side(0).image_size(16));
  EXPECT_FALSE(photo.small_images);
  ASSERT_TRUE(photo.preprocess.crop.has_value());
  EXPECT_EQ(*photo.preprocess.crop, 16);
  auto limited = sd::open_data(spec, sd::DataOptions().small_image_side(19));
  EXPECT_FALSE(limited.small_images);
  // A checkpoint trained through the photo pipeline is evaluated through it again.
  const auto again = sd::evaluation_options(sd::DataOptions(), photo.preprocess);
  EXPECT_EQ(again.small_image_side(), 0);
}

TEST(SmallImageFolder, ImagesOfAnotherSizeAreRefusedByName) {
  st::TempDir dir;
  const auto root = make_small_folder(dir, 20);
  st::write_file(root + "/train/b/9.png", st::encode_png(st::test_picture(3, 20, 24, 99)));
  const auto message = st::expect_error([&] { sd::open_data(sd::parse_data_spec("imagefolder:" + root), {}); });
  EXPECT_NE(message.find("9.png is 24x20"), std::string::npos) << message;
  EXPECT_NE(message.find("--image-size"), std::string::npos) << message;
}
