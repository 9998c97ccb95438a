#include <splitshare/data/transforms.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>
#include <set>

#include "image_writers.h"
#include "support.h"
#include "data/resample.h"

namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {

const std::vector<double> kMean(sd::kImageNetMean.begin(), sd::kImageNetMean.end());
const std::vector<double> kStd(sd::kImageNetStd.begin(), sd::kImageNetStd.end());

// A direct, unoptimised evaluation of the antialiased bilinear resample (double precision).
torch::Tensor reference_resample(const torch::Tensor& image, const sd::ResampleSpec& spec) {
  auto weights = [](const sd::ResampleAxis& axis, int64_t size) {
    const double step = axis.length / static_cast<double>(axis.resized);
    const double support = std::max(step, 1.0);
    std::vector<double> w(static_cast<size_t>(axis.count * size), 0.0);
    for (int64_t i = 0; i < axis.count; ++i) {
      const double center = axis.start + (static_cast<double>(i + axis.offset) + 0.5) * step;
      double total = 0;
      for (int64_t x = static_cast<int64_t>(axis.start); x < static_cast<int64_t>(axis.start + axis.length); ++x) {
        double t = std::fabs((static_cast<double>(x) + 0.5 - center) / support);
        w[i * size + x] = t < 1 ? 1 - t : 0;
        total += w[i * size + x];
      }
      for (int64_t x = 0; x < size; ++x) w[i * size + x] /= total;
    }
    return torch::tensor(w, torch::kFloat64).view({axis.count, size});
  };
  auto wy = weights(spec.y, image.size(1));
  auto wx = weights(spec.x, image.size(2));
  auto out = torch::einsum("ih,chw,jw->cij", {wy, image.to(torch::kFloat64), wx});
  return (spec.flip ? out.flip({2}) : out).to(torch::kFloat32);
}

sd::DecodedRegion region_of(const torch::Tensor& hwc, int64_t x, int64_t y, int64_t width, int64_t height) {
  sd::DecodedRegion region;
  region.channels = hwc.size(2);
  region.row_stride = hwc.size(1) * region.channels;
  region.pixels = hwc.data_ptr<uint8_t>() + y * region.row_stride + x * region.channels;
  region.x = x;
  region.y = y;
  region.width = width;
  region.height = height;
  region.image_width = hwc.size(1);
  region.image_height = hwc.size(0);
  return region;
}

}  // namespace

TEST(Transforms, ShorterSideResizeFollowsTorchvision) {
  using pair = std::pair<int64_t, int64_t>;
  EXPECT_EQ(sd::resized_shorter_side(375, 500, 256), pair(256, 341));
  EXPECT_EQ(sd::resized_shorter_side(500, 375, 256), pair(341, 256));
  EXPECT_EQ(sd::resized_shorter_side(333, 500, 256), pair(256, 384));
  EXPECT_EQ(sd::resized_shorter_side(300, 300, 256), pair(256, 256));
  auto spec = sd::resize_center_crop(500, 375, 256, 224);
  EXPECT_EQ(spec.x.resized, 341);
  EXPECT_EQ(spec.x.offset, 58) << "round(117 / 2) = 58: Python rounds half to even";
  EXPECT_EQ(spec.y.offset, 16);
  EXPECT_EQ(spec.x.count, 224);
  EXPECT_THROW(sd::resize_center_crop(500, 375, 200, 224), c10::Error);
}

// The paper's recipe (Section 4): the whole image to 256 x 256 (aspect not kept), a random
// 224 x 224 window anywhere inside it plus a flip for training, the centre window for testing.
TEST(Transforms, PaperRecipeResizesToASquareAndCropsInsideIt) {
  auto eval = sd::resize_center_crop(500, 375, 256, 224, sd::ResizeMode::kSquare);
  for (const auto* axis : {&eval.x, &eval.y}) {
    EXPECT_EQ(axis->start, 0.0);
    EXPECT_EQ(axis->resized, 256);
    EXPECT_EQ(axis->offset, 16);  // round((256 - 224) / 2)
    EXPECT_EQ(axis->count, 224);
  }
  EXPECT_EQ(eval.x.length, 500.0);
  EXPECT_EQ(eval.y.length, 375.0);
  EXPECT_FALSE(eval.flip);

  std::mt19937_64 rng(7);
  std::set<int64_t> lefts, tops;
  int flips = 0;
  const int draws = 4000;
  for (int i = 0; i < draws; ++i) {
    auto spec = sd::sample_square_resize_crop(640, 480, 256, 224, 0.5, rng);
    ASSERT_EQ(spec.x.resized, 256);
    ASSERT_EQ(spec.y.resized, 256);
    ASSERT_EQ(spec.x.count, 224);
    ASSERT_EQ(spec.y.length, 480.0);
    lefts.insert(spec.x.offset);
    tops.insert(spec.y.offset);
    flips += spec.flip;
  }
  // Every position 0..32 on both axes is drawn (33 each), none outside.
  EXPECT_EQ(lefts.size(), 33u);
  EXPECT_EQ(*lefts.begin(), 0);
  EXPECT_EQ(*lefts.rbegin(), 32);
  EXPECT_EQ(tops.size(), 33u);
  EXPECT_EQ(*tops.rbegin(), 32);
  EXPECT_NEAR(flips / static_cast<double>(draws), 0.5, 0.05);
  EXPECT_THROW(sd::square_resize_crop(640, 480, 256, 224, 33, 0, false), c10::Error);
  EXPECT_THROW(sd::sample_square_resize_crop(640, 480, 200, 224, 0.5, rng), c10::Error);

  // The transform resamples exactly that window of the square.
  auto image = st::test_picture(3, 90, 120, 3);
  auto out = sd::eval_transform(image, 64, 56, {0.0, 0.0, 0.0}, {1 / 255.0, 1 / 255.0, 1 / 255.0},
                                sd::ResizeMode::kSquare);
  auto expected = reference_resample(image, sd::square_resize_crop(120, 90, 64, 56, 4, 4, false));
  st::expect_close(out, expected, 1e-3);
  EXPECT_EQ(sd::parse_resize_mode(sd::to_string(sd::ResizeMode::kSquare)), sd::ResizeMode::kSquare);
  EXPECT_EQ(sd::parse_photo_recipe("torchvision"), sd::PhotoRecipe::kTorchvision);
  EXPECT_THROW(sd::parse_photo_recipe("autoaugment"), c10::Error);
}

TEST(Transforms, RandomResizedCropFollowsTorchvisionsRules) {
  std::mt19937_64 rng(42);
  sd::RandomResizedCropOptions options;
  double area_sum = 0;
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    auto crop = sd::sample_random_resized_crop(500, 375, options, rng);
    ASSERT_GE(crop.x, 0);
    ASSERT_GE(crop.y, 0);
    ASSERT_LE(crop.x + crop.width, 500);
    ASSERT_LE(crop.y + crop.height, 375);
    const double area = static_cast<double>(crop.width * crop.height) / (500.0 * 375.0);
    const double ratio = static_cast<double>(crop.width) / static_cast<double>(crop.height);
    // Rounding w and h to integers moves area and ratio slightly.
    EXPECT_GE(area, 0.08 * 0.97);
    EXPECT_LE(area, 1.0);
    EXPECT_GE(ratio, 0.75 * 0.98);
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.02);
    area_sum += area;
  }
  EXPECT_GT(area_sum / trials, 0.35);
  EXPECT_LT(area_sum / trials, 0.6);

  // The same seed gives the same crops.
  std::mt19937_64 a(7), b(7);
  for (int t = 0; t < 20; ++t) {
    auto x = sd::sample_random_resized_crop(640, 480, options, a);
    auto y = sd::sample_random_resized_crop(640, 480, options, b);
    EXPECT_EQ(std::make_tuple(x.x, x.y, x.width, x.height), std::make_tuple(y.x, y.y, y.width, y.height));
  }

  // No crop of the allowed shapes fits a 1000x10 strip: centre crop at ratio 4/3.
  auto strip = sd::sample_random_resized_crop(1000, 10, options, rng);
  EXPECT_EQ(strip.width, 13);
  EXPECT_EQ(strip.height, 10);
  EXPECT_EQ(strip.x, 493);
  EXPECT_EQ(strip.y, 0);
  auto tall = sd::sample_random_resized_crop(10, 1000, options, rng);
  EXPECT_EQ(tall.width, 10);
  EXPECT_EQ(tall.height, 13);
  EXPECT_EQ(tall.y, 493);
}

TEST(Transforms, ResampleIsIdentityAtScaleOneAndKeepsConstants) {
  auto image = st::test_picture(3, 31, 47);
  sd::ResampleSpec same;
  same.x = sd::ResampleAxis{0, 47, 47, 0, 47};
  same.y = sd::ResampleAxis{0, 31, 31, 0, 31};
  EXPECT_TRUE(torch::equal(sd::resample(image, same), image.to(torch::kFloat32)));
  same.flip = true;
  EXPECT_TRUE(torch::equal(sd::resample(image, same), image.to(torch::kFloat32).flip({2})));

  auto flat = torch::full({3, 50, 70}, 77, torch::kUInt8);
  for (auto spec : {sd::crop_resample({3, 5, 61, 40}, 224, false), sd::crop_resample({10, 10, 9, 13}, 32, true),
                    sd::resize_center_crop(70, 50, 40, 32)}) {
    auto out = sd::resample(flat, spec);
    EXPECT_LT((out - 77).abs().max().item<float>(), 1e-4);
  }
}

// The fused implementation against a direct evaluation of the same filter: crops,
// offsets, up- and downscaling, flips. Tolerance 1e-3 levels (float vs double).
TEST(Transforms, ResampleMatchesDirectEvaluation) {
  auto image = st::test_picture(3, 60, 90);
  std::vector<sd::ResampleSpec> specs = {
      sd::crop_resample({0, 0, 90, 60}, 40, false), sd::crop_resample({13, 7, 50, 31}, 64, true),
      sd::crop_resample({20, 20, 11, 9}, 33, false), sd::resize_center_crop(90, 60, 48, 40),
      sd::resize_center_crop(90, 60, 100, 80)};
  for (const auto& spec : specs) {
    st::expect_close(sd::resample(image, spec), reference_resample(image, spec), 1e-3);
  }
  auto grey = st::test_picture(1, 60, 90);
  st::expect_close(sd::resample(grey, specs[1]), reference_resample(grey, specs[1]), 1e-3);
}

// The pixels source_rect() names are all the resample reads: resampling only that
// region (as the loader does after a cropped decode) gives identical output.
TEST(Transforms, SourceRectHoldsEverythingTheResampleReads) {
  auto image = st::test_picture(3, 375, 500);
  auto hwc = image.permute({1, 2, 0}).contiguous();
  sd::DecodedRegion whole = region_of(hwc, 0, 0, 500, 375);
  std::mt19937_64 rng(3);
  std::vector<sd::ResampleSpec> specs = {sd::resize_center_crop(500, 375, 256, 224),
                                         sd::resize_center_crop(500, 375, 400, 300)};
  for (int t = 0; t < 20; ++t) {
    specs.push_back(sd::crop_resample(sd::sample_random_resized_crop(500, 375, {}, rng), 224, t % 2 == 0));
  }
  sd::Resampler resampler;
  sd::ChannelMap map = sd::normalization(kMean, kStd);
  for (const auto& spec : specs) {
    auto expected = torch::empty({3, spec.y.count, spec.x.count});
    auto actual = torch::empty({3, spec.y.count, spec.x.count});
    resampler.run(whole, spec, map, {expected.data_ptr<float>(), expected.stride(0), expected.stride(1), 1});
    sd::PixelRect rect = sd::source_rect(spec, 500, 375);
    ASSERT_GE(rect.x, 0);
    ASSERT_LE(rect.x + rect.width, 500);
    resampler.run(region_of(hwc, rect.x, rect.y, rect.width, rect.height), spec, map,
                  {actual.data_ptr<float>(), actual.stride(0), actual.stride(1), 1});
    EXPECT_TRUE(torch::equal(actual, expected)) << "crop " << rect.x << "," << rect.y << " " << rect.width << "x"
                                                << rect.height;
  }
  // The evaluation resample of a 500x375 image reads only about 70% of it.
  sd::PixelRect eval = sd::source_rect(specs[0], 500, 375);
  EXPECT_LT(eval.width * eval.height, 500 * 375 * 3 / 4);
}

TEST(Transforms, OutputStridesAllowChannelsLast) {
  auto image = st::test_picture(3, 40, 60);
  auto hwc = image.permute({1, 2, 0}).contiguous();
  auto spec = sd::crop_resample({5, 3, 40, 30}, 24, true);
  sd::Resampler resampler;
  sd::ChannelMap map = sd::normalization(kMean, kStd);
  auto planar = torch::empty({3, 24, 24});
  auto interleaved = torch::empty({24, 24, 3});
  resampler.run(region_of(hwc, 0, 0, 60, 40), spec, map, {planar.data_ptr<float>(), 24 * 24, 24, 1});
  resampler.run(region_of(hwc, 0, 0, 60, 40), spec, map, {interleaved.data_ptr<float>(), 1, 24 * 3, 3});
  EXPECT_TRUE(torch::equal(planar, interleaved.permute({2, 0, 1})));
  // Normalisation: (v / 255 - mean) / std.
  auto raw = sd::resample(image, spec);
  auto mean = torch::tensor(kMean, torch::kFloat32).view({3, 1, 1});
  auto std = torch::tensor(kStd, torch::kFloat32).view({3, 1, 1});
  st::expect_close(planar, (raw / 255 - mean) / std, 1e-5);
}

TEST(Transforms, MinDecodeScaleKeepsTheResampleADownscale) {
  EXPECT_DOUBLE_EQ(sd::min_decode_scale(sd::crop_resample({0, 0, 448, 600}, 224, false), 1.0), 0.5);
  EXPECT_DOUBLE_EQ(sd::min_decode_scale(sd::crop_resample({0, 0, 896, 1200}, 224, false)), 0.5);
  EXPECT_DOUBLE_EQ(sd::min_decode_scale(sd::crop_resample({0, 0, 100, 600}, 224, false), 1.0), 2.24);
  EXPECT_NEAR(sd::min_decode_scale(sd::resize_center_crop(2000, 1500, 256, 224)), 512.0 / 1500.0, 1e-12);
  EXPECT_THROW(sd::min_decode_scale(sd::crop_resample({0, 0, 10, 10}, 5, false), 0.5), c10::Error);
}

// Parity with torchvision 0.14's tensor backend on the same uint8 image:
// Resize(256, antialias=True) + CenterCrop(224) + ConvertImageDtype + Normalize, and
// resized_crop(..., antialias=True). Stated tolerances, on the [0, 255] scale:
//   uint8 input:  <= 0.5 + 5e-3 (torchvision rounds the resized image to uint8, we keep float);
//   float input:  <= 5e-3 (float arithmetic in a different order).
// Against PIL (torchvision on PIL images, the peer pipeline): <= 1.5 (PIL keeps uint8
// between its horizontal and vertical passes).
TEST(Transforms, MatchesTorchvision) {
  if (!st::have_python_torch() || !st::have_python_pil()) GTEST_SKIP() << "no Python with torchvision + PIL (scripts/setup)";
  st::TempDir dir;
  struct Case {
    int64_t height, width;
    sd::PixelRect crop;
  };
  std::vector<Case> cases = {{375, 500, {37, 20, 300, 250}}, {500, 333, {0, 100, 333, 250}},
                             {80, 100, {10, 5, 60, 50}},    {768, 1024, {100, 50, 700, 600}},
                             {257, 301, {1, 2, 150, 255}}};
  std::string script =
      "import sys, numpy as np, torch\n"
      "from PIL import Image\n"
      "from torchvision.transforms import functional as F\n"
      "d = sys.argv[1]\n"
      "mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]\n"
      "for i, case in enumerate(sys.argv[2:]):\n"
      "    h, w, top, left, ch, cw = map(int, case.split(','))\n"
      "    img = torch.from_numpy(np.fromfile(f'{d}/img{i}.u8', dtype=np.uint8).reshape(3, h, w))\n"
      "    x = F.center_crop(F.resize(img, 256, antialias=True), 224)\n"
      "    F.normalize(F.convert_image_dtype(x, torch.float32), mean, std).numpy().tofile(f'{d}/eval_u8{i}.f32')\n"
      "    x = F.center_crop(F.resize(img.float(), 256, antialias=True), 224)\n"
      "    F.normalize(x / 255, mean, std).numpy().tofile(f'{d}/eval_f32{i}.f32')\n"
      "    x = F.resized_crop(img.float(), top, left, ch, cw, [224, 224], antialias=True)\n"
      "    x.numpy().tofile(f'{d}/crop_f32{i}.f32')\n"
      "    pil = Image.fromarray(img.permute(1, 2, 0).numpy())\n"
      "    x = F.resized_crop(pil, top, left, ch, cw, [224, 224], interpolation=F.InterpolationMode.BILINEAR)\n"
      "    np.asarray(x, dtype=np.float32).transpose(2, 0, 1).copy().tofile(f'{d}/crop_pil{i}.f32')\n";
  st::write_file(dir.file("tv.py"), script);
  std::vector<torch::Tensor> images;
  std::string args;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    images.push_back(st::test_picture(3, c.height, c.width, static_cast<uint64_t>(c.width)));
    st::write_file(dir.file("img" + std::to_string(i) + ".u8"),
                   std::string(reinterpret_cast<const char*>(images[i].data_ptr<uint8_t>()), images[i].numel()));
    args += " " + std::to_string(c.height) + "," + std::to_string(c.width) + "," + std::to_string(c.crop.y) + "," +
            std::to_string(c.crop.x) + "," + std::to_string(c.crop.height) + "," + std::to_string(c.crop.width);
  }
  std::string output;
  ASSERT_EQ(st::run_command(std::string(st::python()) + " " + dir.file("tv.py") + " " + dir.path().string() + args,
                            &output),
            0)
      << output;
  auto mean = torch::tensor(kMean, torch::kFloat32).view({3, 1, 1});
  auto std = torch::tensor(kStd, torch::kFloat32).view({3, 1, 1});
  auto to_levels = [&](const torch::Tensor& normalised) { return (normalised * std + mean) * 255; };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    SCOPED_TRACE("image " + std::to_string(c.width) + "x" + std::to_string(c.height));
    auto raw = [&](const std::string& name) {
      return st::read_raw(dir.file(name + std::to_string(i) + ".f32"), torch::kFloat32, {3, 224, 224});
    };
    auto ours = sd::eval_transform(images[i], 256, 224, kMean, kStd);
    st::expect_close(to_levels(ours), to_levels(raw("eval_u8")), 0.5 + 5e-3);
    st::expect_close(to_levels(ours), to_levels(raw("eval_f32")), 5e-3);
    auto crop = sd::resample(images[i], sd::crop_resample(c.crop, 224, false));
    st::expect_close(crop, raw("crop_f32"), 5e-3);
    st::expect_close(crop, raw("crop_pil"), 1.5);
  }
}
