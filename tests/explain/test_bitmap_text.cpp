// The built-in bitmap font of the figures.
#include "explain/bitmap_text.h"

#include "support.h"

namespace sx = splitshare::explain;

TEST(BitmapText, UsesTheBuiltInFont) {
  EXPECT_EQ(sx::text_width("", 1), 0);
  EXPECT_EQ(sx::text_width("ab", 1), 11);
  EXPECT_EQ(sx::text_width("ab", 2), 22);
  EXPECT_EQ(sx::fit_text("short", 100), "short");
  const auto fitted = sx::fit_text("a rather long class name", 60);
  EXPECT_LE(sx::text_width(fitted), 60);
  EXPECT_EQ(fitted.substr(fitted.size() - 3), "...");

  auto canvas = torch::zeros({3, 9, 8}, torch::kUInt8);
  sx::draw_text(canvas, "T", 1, 1, {255, 10, 20});
  // 'T': a full top bar, then the middle column.
  for (int64_t x = 1; x <= 5; ++x) EXPECT_EQ(canvas[0][1][x].item<int64_t>(), 255) << x;
  for (int64_t y = 2; y <= 7; ++y) {
    EXPECT_EQ(canvas[0][y][3].item<int64_t>(), 255) << y;
    EXPECT_EQ(canvas[0][y][2].item<int64_t>(), 0) << y;
  }
  EXPECT_EQ(canvas[1][1][1].item<int64_t>(), 10);
  EXPECT_EQ(canvas.sum().item<int64_t>(), (5 + 6) * (255 + 10 + 20));
  // Clipped at the border, not an error; unknown bytes draw a box.
  sx::draw_text(canvas, "\x01", 5, 5, {1, 1, 1});
  EXPECT_EQ(canvas[0][5][5].item<int64_t>(), 1);
}
