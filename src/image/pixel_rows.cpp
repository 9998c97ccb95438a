#include "pixel_rows.h"

#include <cstring>

namespace splitshare::data::detail {
namespace {

// PIL's luma (Convert.c, L24): L = R*299/1000 + G*587/1000 + B*114/1000 in 16-bit fixed point.
inline uint8_t luma(int r, int g, int b) {
  return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

// PIL's MULDIV255: a * b / 255, rounded.
inline int muldiv255(int a, int b) {
  int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

}  // namespace

void convert_row(const uint8_t* in, int in_channels, bool cmyk, uint8_t* out, int out_channels, int64_t n) {
  if (cmyk) {
    // libjpeg hands out Adobe's inverted CMYK (what PIL's "CMYK;I" raw mode assumes for
    // every CMYK JPEG); this is PIL's cmyk2rgb on the re-inverted values.
    for (int64_t i = 0; i < n; ++i, in += 4) {
      int nk = in[3];
      int r = nk - muldiv255(255 - in[0], nk);
      int g = nk - muldiv255(255 - in[1], nk);
      int b = nk - muldiv255(255 - in[2], nk);
      if (out_channels == 3) {
        *out++ = static_cast<uint8_t>(r);
        *out++ = static_cast<uint8_t>(g);
        *out++ = static_cast<uint8_t>(b);
      } else {
        *out++ = luma(r, g, b);
      }
    }
    return;
  }
  if (in_channels == out_channels) {
    std::memcpy(out, in, static_cast<size_t>(n * in_channels));
    return;
  }
  for (int64_t i = 0; i < n; ++i, in += in_channels) {
    if (out_channels == 3) {
      // grey (+ alpha) -> RGB replicates; RGBA -> RGB drops alpha.
      bool grey = in_channels < 3;
      *out++ = in[0];
      *out++ = grey ? in[0] : in[1];
      *out++ = grey ? in[0] : in[2];
    } else {
      *out++ = in_channels < 3 ? in[0] : luma(in[0], in[1], in[2]);
    }
  }
}

}  // namespace splitshare::data::detail
