#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>

namespace splitshare::explain {

/// An 8-bit RGB colour.
using Rgb = std::array<uint8_t, 3>;

/// The built-in bitmap font: 5x7 glyphs on a 6x9 cell (one column and two rows of
/// spacing), printable ASCII; other bytes draw as a hollow box.
inline constexpr int64_t kGlyphAdvance = 6;
inline constexpr int64_t kLineHeight = 9;

/// Width in pixels of `text` drawn at `scale` (the trailing spacing column excluded).
int64_t text_width(const std::string& text, int64_t scale = 1);

/// Shortens `text` with a trailing "..." so that it fits `max_width` pixels at `scale`.
std::string fit_text(const std::string& text, int64_t max_width, int64_t scale = 1);

/// Draws `text` into uint8 RGB `image` [3, H, W] (modified in place) with the top-left
/// corner of its first glyph at column x, row y; each font pixel becomes a
/// scale x scale square. Pixels outside the image are clipped.
void draw_text(torch::Tensor& image, const std::string& text, int64_t x, int64_t y, Rgb color, int64_t scale = 1);

}  // namespace splitshare::explain
