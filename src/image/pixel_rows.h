#pragma once

// Pixel conversions of the image decoders (image_io.cpp), written to match PIL's, so that our
// decoded images equal torchvision + PIL's. Internal to src/data/.

#include <cstdint>

namespace splitshare::data::detail {

/// A decoded row of `n` pixels of `in_channels` samples each (Adobe's inverted CMYK when
/// `cmyk`) into `out_channels` (1 or 3) per pixel: grey replicated, alpha dropped, RGB to luma
/// and CMYK to RGB as PIL converts them.
void convert_row(const uint8_t* in, int in_channels, bool cmyk, uint8_t* out, int out_channels, int64_t n);

}  // namespace splitshare::data::detail
