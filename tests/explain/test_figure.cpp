// The Figure 2 grid: one row per image, a column per map, captions; the validation grid.
#include <splitshare/data/loader.h>
#include <splitshare/explain/figure.h>
#include <splitshare/explain/gradcam.h>
#include "explain/bitmap_text.h"

#include "support.h"
#include "tiny_models.h"

namespace sn = splitshare::nn;
namespace sx = splitshare::explain;
using splitshare::testing::expect_close;
using splitshare::testing::kSplits;
using splitshare::testing::ssm_head;
using splitshare::testing::tiny_images;
using splitshare::testing::tiny_model;

TEST(Figure, GridHasARowPerImageAndAColumnPerMap) {
  auto model = tiny_model(ssm_head());
  torch::manual_seed(11);
  const auto pixels = torch::randint(0, 256, {2, 1, 12, 12}, torch::kUInt8);
  const auto images = (pixels.to(torch::kFloat32) / 255.0 - 0.3) / 0.2;
  const std::vector<std::string> classes = {"cat", "dog", "bird"};
  expect_close(sx::denormalize(images, {0.3}, {0.2}), pixels, 0.0);

  const auto labels = torch::tensor({2, 0}, torch::kLong);
  auto cams = sx::explain_heads(*model, images, labels);
  const sx::FigureOptions options;  // 12 px images are enlarged 11x to reach 128 px
  EXPECT_EQ(sx::display_scale(12, 12, options), 11);
  const auto grid = sx::render_cam_grid(pixels, cams, classes, labels, options);
  const int64_t cell = 132, columns = 2 + kSplits;
  EXPECT_EQ(grid.size(0), 3);
  EXPECT_EQ(grid.size(2), 2 * 6 + columns * cell + (columns - 1) * 6);
  const auto titles = sx::cam_column_titles(cams);
  ASSERT_EQ(static_cast<int64_t>(titles.size()), columns);
  EXPECT_EQ(titles[3], "split 2  ch 8-15");

  // The whole-model cell of the first row is exactly the overlay of its map.
  const int64_t top = 6 + sx::kLineHeight + 4, left = 6 + cell + 6;
  const auto overlay = sx::cam_overlay(pixels[0], cams.whole[0], options);
  EXPECT_TRUE(torch::equal(grid.narrow(1, top, cell).narrow(2, left, cell), overlay));
  // The input cell is the image, enlarged, in grey.
  EXPECT_TRUE(torch::equal(grid[0].narrow(0, top, cell).narrow(1, 6, cell),
                           pixels[0][0].repeat_interleave(11, 0).repeat_interleave(11, 1)));
  // Captions: dark text under the cells.
  const auto caption = grid.narrow(1, top + cell, 2 * sx::kLineHeight).narrow(2, 6, cell);
  EXPECT_GT((caption < 128).sum().item<int64_t>(), 20);
}

TEST(Figure, ValidationGridTakesTheFirstImagesAndTheirLabels) {
  auto model = tiny_model(ssm_head());
  torch::manual_seed(4);
  splitshare::data::TensorDataset dataset;
  dataset.images = torch::randint(0, 256, {5, 1, 12, 12}, torch::kUInt8);
  dataset.labels = torch::tensor({1, 2, 0, 1, 2}, torch::kLong);
  dataset.classes = {"a", "b", "c"};
  auto stream = splitshare::data::make_tensor_loader(dataset, {0.5}, {0.25},
                                                     splitshare::data::LoaderOptions().batch_size(2));
  splitshare::data::Preprocess preprocess;
  preprocess.channels = 1;
  preprocess.mean = {0.5};
  preprocess.std = {0.25};
  const auto grid = sx::validation_grid(*model, *stream, preprocess, dataset.classes, 3);
  const int64_t cell = 132, caption = 2 * sx::kLineHeight + 4;
  EXPECT_EQ(grid.size(1), 2 * 6 + sx::kLineHeight + 4 + 3 * (cell + caption) + 2 * 6);
  // Row 3 shows the third image.
  const int64_t top = 6 + sx::kLineHeight + 4 + 2 * (cell + caption + 6);
  EXPECT_TRUE(torch::equal(grid[1].narrow(0, top, cell).narrow(1, 6, cell),
                           dataset.images[2][0].repeat_interleave(11, 0).repeat_interleave(11, 1)));
}

// ---- the command-line tool ----
