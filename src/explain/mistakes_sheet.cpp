#include "bitmap_text.h"
#include <splitshare/explain/mistakes_sheet.h>

#include <algorithm>
#include <cstdio>

namespace splitshare::explain {
namespace {

constexpr int64_t kMargin = 6;
constexpr int64_t kGap = 6;
constexpr int64_t kCaption = 3 * kLineHeight + 4;
constexpr Rgb kInk = {30, 30, 30};
constexpr Rgb kWrongInk = {190, 30, 30};
constexpr Rgb kDimInk = {110, 110, 110};

std::string name_of(const std::vector<std::string>& classes, int64_t index) {
  return index >= 0 && index < static_cast<int64_t>(classes.size()) ? classes[index] : "class " + std::to_string(index);
}

std::string confidence_text(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "conf %.1f%%", 100.0 * p);
  return buf;
}

}  // namespace

torch::Tensor mistakes_sheet(const std::vector<eval::Mistake>& mistakes, const data::Preprocess& preprocess,
                             const std::vector<std::string>& classes, const SheetOptions& options) {
  TORCH_CHECK(!mistakes.empty(), "mistakes_sheet: no mistakes to draw");
  TORCH_CHECK(options.columns() >= 1, "mistakes_sheet: columns must be at least 1, got ", options.columns());
  std::vector<torch::Tensor> images;
  for (const auto& m : mistakes) images.push_back(m.image);
  const auto display = denormalize(torch::stack(images), preprocess.mean, preprocess.std);
  const int64_t n = display.size(0);
  const int64_t f = display_scale(display.size(2), display.size(3), options.figure());
  const int64_t cell_h = display.size(2) * f, cell_w = display.size(3) * f;
  const int64_t columns = std::min(n, options.columns());
  const int64_t rows = (n + columns - 1) / columns;
  const int64_t width = 2 * kMargin + columns * cell_w + (columns - 1) * kGap;
  const int64_t height = 2 * kMargin + rows * (cell_h + kCaption) + (rows - 1) * kGap;
  auto canvas = torch::full({3, height, width}, 255, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x = kMargin + (i % columns) * (cell_w + kGap);
    const int64_t y = kMargin + (i / columns) * (cell_h + kCaption + kGap);
    const auto image = display[i].repeat_interleave(f, 1).repeat_interleave(f, 2);
    canvas.narrow(1, y, cell_h).narrow(2, x, cell_w).copy_(image.expand({3, cell_h, cell_w}));
    const int64_t text_y = y + cell_h + 3;
    const auto& m = mistakes[i];
    draw_text(canvas, fit_text("true: " + name_of(classes, m.label), cell_w), x, text_y, kInk);
    draw_text(canvas, fit_text("pred: " + name_of(classes, m.predicted), cell_w), x, text_y + kLineHeight, kWrongInk);
    draw_text(canvas, fit_text(confidence_text(m.confidence), cell_w), x, text_y + 2 * kLineHeight, kDimInk);
  }
  return canvas;
}

}  // namespace splitshare::explain
