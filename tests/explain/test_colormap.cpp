// The jet colormap against OpenCV's and the overlay blend.
#include <splitshare/explain/colormap.h>
#include "explain/bitmap_text.h"

#include "support.h"

namespace sx = splitshare::explain;

TEST(Colormap, JetMatchesOpenCvAtKnownPoints) {
  EXPECT_EQ(sx::jet(0.0), (sx::Rgb{0, 0, 128}));
  EXPECT_EQ(sx::jet(0.5), (sx::Rgb{128, 255, 128}));
  EXPECT_EQ(sx::jet(1.0), (sx::Rgb{128, 0, 0}));
  EXPECT_EQ(sx::jet(-3.0), sx::jet(0.0));
  EXPECT_EQ(sx::jet(7.0), sx::jet(1.0));
  const auto ramp = torch::linspace(0, 1, 11, torch::kFloat64).view({1, 11});
  const auto rgb = sx::apply_jet(ramp);
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 1, 11}));
  for (int64_t i = 0; i < 11; ++i) {
    const auto expected = sx::jet(ramp[0][i].item<double>());
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(rgb[c][0][i].item<int64_t>(), expected[c]) << i << " " << c;
  }
}

TEST(Colormap, OverlayBlendsHalfAndHalf) {
  const auto grey = torch::full({1, 2, 2}, 200, torch::kUInt8);
  const auto map = torch::tensor({{0.0f, 1.0f}, {0.5f, 0.0f}});
  const auto out = sx::overlay_heatmap(grey, map);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, 2}));
  // 0.5 * 200 + 0.5 * jet(0) = (100, 100, 164); jet(1) = (128, 0, 0) -> (164, 100, 100).
  EXPECT_EQ(out[0][0][0].item<int64_t>(), 100);
  EXPECT_EQ(out[2][0][0].item<int64_t>(), 164);
  EXPECT_EQ(out[0][0][1].item<int64_t>(), 164);
  EXPECT_EQ(out[1][0][1].item<int64_t>(), 100);
  EXPECT_EQ(out[1][1][0].item<int64_t>(), 228);  // green 255 at 0.5
  EXPECT_THROW(sx::overlay_heatmap(grey, torch::zeros({3, 3})), c10::Error);
}
