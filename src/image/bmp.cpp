// Windows and OS/2 bitmaps, read the way PIL's BmpImagePlugin reads them: 1/4/8-bit palettes
// (also RLE8/RLE4), 16-bit 5-5-5 and bit fields, 24-bit BGR, 32-bit BGRX and bit fields,
// bottom-up and top-down rows.
#include <algorithm>
#include <array>

#include "formats.h"
#include "pixel_rows.h"

namespace splitshare::data::detail {
namespace {

constexpr uint32_t kBiRgb = 0, kBiRle8 = 1, kBiRle4 = 2, kBiBitfields = 3, kBiAlphaBitfields = 6;
constexpr size_t kFileHeader = 14;

uint32_t u16le(const uint8_t* p) {
  return p[0] | (p[1] << 8);
}
uint32_t u32le(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// One colour of a 16/32-bit pixel: (pixel & mask) >> shift, scaled from [0, max] to [0, 255]
// with truncation (PIL's unpackers: v * 255 / 31 for 5-bit fields).
struct BitField {
  uint32_t mask = 0;
  int shift = 0;
  uint32_t max = 0;

  uint8_t operator()(uint32_t pixel) const {
    const uint64_t v = (pixel & mask) >> shift;
    return static_cast<uint8_t>(max == 255 ? v : v * 255 / max);
  }
};

struct BmpHeader {
  int64_t width = 0;
  int64_t height = 0;
  bool top_down = false;
  uint32_t header_size = 0;
  uint32_t bits = 0;
  uint32_t compression = kBiRgb;
  uint64_t pixel_offset = 0;
  uint32_t colors = 0;               // palette entries the header declares (0: 2^bits)
  std::array<BitField, 3> fields{};  // R, G, B of 16/32-bit pixels
  bool alpha = false;
};

const char* compression_name(uint32_t compression) {
  switch (compression) {
    case kBiRgb: return "BI_RGB";
    case kBiRle8: return "BI_RLE8";
    case kBiRle4: return "BI_RLE4";
    case kBiBitfields: return "BI_BITFIELDS";
    case 4: return "BI_JPEG";
    case 5: return "BI_PNG";
    case kBiAlphaBitfields: return "BI_ALPHABITFIELDS";
    default: return "unknown";
  }
}

BitField bit_field(uint32_t mask, const std::string& name) {
  BitField field;
  field.mask = mask;
  TORCH_CHECK(mask != 0, "cannot read BMP ", name, ": a colour bit-field mask is 0");
  while (((mask >> field.shift) & 1) == 0) ++field.shift;
  field.max = mask >> field.shift;
  TORCH_CHECK((field.max & (field.max + 1)) == 0, "cannot read BMP ", name, ": bit-field mask ", mask,
              " is not one run of bits");
  return field;
}

void read_bit_fields(const uint8_t* data, size_t size, const std::string& name, BmpHeader& h) {
  std::array<uint32_t, 3> masks{};
  if (h.compression == kBiRgb) {
    masks =
        h.bits == 16 ? std::array<uint32_t, 3>{0x7C00, 0x3E0, 0x1F} : std::array<uint32_t, 3>{0xFF0000, 0xFF00, 0xFF};
  } else {
    // Right after a 40-byte header, or its fields 40..51 in the longer ones: the same bytes.
    TORCH_CHECK(h.header_size >= 40 && size >= kFileHeader + 52, "cannot read BMP ", name,
                ": the file ends before its bit-field masks (truncated)");
    for (size_t c = 0; c < 3; ++c) masks[c] = u32le(data + kFileHeader + 40 + 4 * c);
    if (masks[0] == 0 && masks[1] == 0 && masks[2] == 0) masks = {0xFF0000, 0xFF00, 0xFF};
    if (h.header_size >= 56 && h.bits == 32) h.alpha = u32le(data + kFileHeader + 52) != 0;
  }
  for (size_t c = 0; c < 3; ++c) h.fields[c] = bit_field(masks[c], name);
}

void check_compression(const BmpHeader& h, const std::string& name) {
  const uint32_t c = h.compression;
  const bool ok = c == kBiRgb || (c == kBiRle8 && h.bits == 8) || (c == kBiRle4 && h.bits == 4) ||
                  ((c == kBiBitfields || c == kBiAlphaBitfields) && (h.bits == 16 || h.bits == 32));
  TORCH_CHECK(ok, "cannot read BMP ", name, ": compression ", c, " (", compression_name(c), ") with ", h.bits,
              " bits per pixel is not supported (uncompressed 1/4/8/16/24/32-bit, RLE8, RLE4 and bit fields are)");
}

BmpHeader parse_bmp(const uint8_t* data, size_t size, const std::string& name) {
  TORCH_CHECK(size >= kFileHeader + 4, "cannot read BMP ", name, ": ", size,
              " bytes end inside the file header (truncated)");
  BmpHeader h;
  h.pixel_offset = u32le(data + 10);
  h.header_size = u32le(data + kFileHeader);
  const uint32_t hs = h.header_size;
  TORCH_CHECK(hs == 12 || hs == 40 || hs == 52 || hs == 56 || hs == 64 || hs == 108 || hs == 124, "cannot read BMP ",
              name, ": info header of ", hs, " bytes (expected 12, 40, 52, 56, 64, 108 or 124)");
  TORCH_CHECK(size >= kFileHeader + hs, "cannot read BMP ", name, ": ", size, " bytes end inside the ", hs,
              "-byte info header (truncated)");
  const uint8_t* info = data + kFileHeader;
  int64_t height = 0;
  if (hs == 12) {  // OS/2 BITMAPCOREHEADER
    h.width = u16le(info + 4);
    height = u16le(info + 6);
    h.bits = u16le(info + 10);
  } else {
    h.width = static_cast<int32_t>(u32le(info + 4));
    height = static_cast<int32_t>(u32le(info + 8));
    h.bits = u16le(info + 14);
    h.compression = u32le(info + 16);
    h.colors = u32le(info + 32);
  }
  h.top_down = height < 0;
  h.height = height < 0 ? -height : height;
  TORCH_CHECK(h.width > 0 && h.height > 0, "cannot read BMP ", name, ": size ", h.width, "x", height,
              " (width and height must not be 0 or a negative width)");
  TORCH_CHECK(h.bits == 1 || h.bits == 4 || h.bits == 8 || h.bits == 16 || h.bits == 24 || h.bits == 32,
              "cannot read BMP ", name, ": ", h.bits, " bits per pixel (expected 1, 4, 8, 16, 24 or 32)");
  check_compression(h, name);
  if (h.bits == 16 || h.bits == 32) read_bit_fields(data, size, name, h);
  return h;
}

// The palette as RGB triples, 256 entries; entries the file does not define are black.
std::vector<uint8_t> read_palette(const uint8_t* data, size_t size, const std::string& name, const BmpHeader& h) {
  const size_t entry = h.header_size == 12 ? 3 : 4;
  const uint64_t declared = h.colors != 0 ? h.colors : (uint64_t{1} << h.bits);
  const size_t used = static_cast<size_t>(std::min<uint64_t>({declared, uint64_t{1} << h.bits, 256}));
  const size_t start = kFileHeader + h.header_size;
  TORCH_CHECK(size >= start && (size - start) / entry >= used, "cannot read BMP ", name, ": the file ends inside its ",
              used, "-colour palette (truncated)");
  std::vector<uint8_t> rgb(256 * 3, 0);
  for (size_t i = 0; i < used; ++i) {
    const uint8_t* bgr = data + start + i * entry;
    rgb[3 * i] = bgr[2];
    rgb[3 * i + 1] = bgr[1];
    rgb[3 * i + 2] = bgr[0];
  }
  return rgb;
}

// One stored row of an uncompressed bitmap into RGB.
void row_to_rgb(const BmpHeader& h, const uint8_t* src, const std::vector<uint8_t>& palette, uint8_t* rgb) {
  const int64_t w = h.width;
  if (h.bits <= 8) {
    const uint32_t bits = h.bits;
    const uint32_t low = (1u << bits) - 1;
    for (int64_t x = 0; x < w; ++x) {
      const uint64_t bit = static_cast<uint64_t>(x) * bits;
      const uint32_t index = (src[bit / 8] >> (8 - bits - bit % 8)) & low;
      std::copy_n(palette.data() + 3 * index, 3, rgb + 3 * x);
    }
  } else if (h.bits == 24) {
    for (int64_t x = 0; x < w; ++x, src += 3) {
      rgb[3 * x] = src[2];
      rgb[3 * x + 1] = src[1];
      rgb[3 * x + 2] = src[0];
    }
  } else {
    const size_t step = h.bits / 8;
    for (int64_t x = 0; x < w; ++x, src += step) {
      const uint32_t pixel = step == 2 ? u16le(src) : u32le(src);
      for (size_t c = 0; c < 3; ++c) rgb[3 * x + c] = h.fields[c](pixel);
    }
  }
}

// RLE8 / RLE4 into one palette index per pixel, stored row order. Pixels the stream skips
// (delta codes, an early end of line or of bitmap) keep index 0, as in PIL.
std::vector<uint8_t> decode_rle(const uint8_t* data, size_t size, const std::string& name, const BmpHeader& h) {
  const int64_t w = h.width, rows = h.height;
  const bool rle4 = h.compression == kBiRle4;
  std::vector<uint8_t> indices(static_cast<size_t>(w * rows), 0);
  int64_t x = 0, y = 0;
  auto put = [&](uint8_t v) {
    if (x < w && y < rows) indices[static_cast<size_t>(y * w + x)] = v;
    ++x;
  };
  size_t p = static_cast<size_t>(std::min<uint64_t>(h.pixel_offset, size));
  while (y < rows) {
    TORCH_CHECK(size - p >= 2, "cannot decode BMP ", name, ": the ", compression_name(h.compression),
                " data ends at row ", y, " of ", rows, " without an end-of-bitmap code (truncated)");
    const uint32_t count = data[p], value = data[p + 1];
    p += 2;
    if (count > 0) {  // a run of `count` pixels
      for (uint32_t i = 0; i < count && x < w; ++i) put(rle4 ? (i % 2 ? value & 15 : value >> 4) : value);
    } else if (value == 0) {  // end of line
      x = 0;
      ++y;
    } else if (value == 1) {  // end of bitmap
      break;
    } else if (value == 2) {  // delta
      TORCH_CHECK(size - p >= 2, "cannot decode BMP ", name, ": RLE delta code cut off (truncated)");
      x += data[p];
      y += data[p + 1];
      p += 2;
    } else {  // `value` literal pixels, padded to a 16-bit boundary
      const size_t bytes = rle4 ? (value + 1) / 2 : value;
      TORCH_CHECK(size - p >= bytes, "cannot decode BMP ", name, ": RLE literal run of ", value,
                  " pixels cut off (truncated)");
      for (uint32_t i = 0; i < value; ++i)
        put(rle4 ? (i % 2 ? data[p + i / 2] & 15 : data[p + i / 2] >> 4) : data[p + i]);
      p += std::min(bytes + (bytes & 1), size - p);
    }
  }
  return indices;
}

}  // namespace

ImageInfo read_bmp_info(const uint8_t* data, size_t size, const std::string& name) {
  const BmpHeader h = parse_bmp(data, size, name);
  ImageInfo info;
  info.format = ImageFormat::kBmp;
  info.width = h.width;
  info.height = h.height;
  info.stored_channels = h.alpha ? 4 : 3;
  return info;
}

void decode_bmp(const uint8_t* data, size_t size, const std::string& name, int channels, std::vector<uint8_t>& pixels) {
  const BmpHeader h = parse_bmp(data, size, name);
  const bool rle = h.compression == kBiRle8 || h.compression == kBiRle4;
  const std::vector<uint8_t> palette = h.bits <= 8 ? read_palette(data, size, name, h) : std::vector<uint8_t>{};
  const uint64_t stride = (static_cast<uint64_t>(h.width) * h.bits + 31) / 32 * 4;
  if (!rle) {
    TORCH_CHECK(h.pixel_offset <= size && (size - h.pixel_offset) / stride >= static_cast<uint64_t>(h.height),
                "cannot decode BMP ", name, ": ", h.width, "x", h.height, " pixels at ", h.bits, " bits need ",
                stride * h.height, " bytes from offset ", h.pixel_offset, " but the file has ", size,
                " bytes (truncated)");
  }
  const std::vector<uint8_t> indices = rle ? decode_rle(data, size, name, h) : std::vector<uint8_t>{};
  pixels.resize(static_cast<size_t>(h.width * h.height * channels));
  std::vector<uint8_t> rgb(static_cast<size_t>(h.width * 3));
  for (int64_t r = 0; r < h.height; ++r) {
    if (rle) {
      const uint8_t* row = indices.data() + r * h.width;
      for (int64_t x = 0; x < h.width; ++x) std::copy_n(palette.data() + 3 * row[x], 3, rgb.data() + 3 * x);
    } else {
      row_to_rgb(h, data + h.pixel_offset + r * stride, palette, rgb.data());
    }
    const int64_t y = h.top_down ? r : h.height - 1 - r;
    convert_row(rgb.data(), 3, false, pixels.data() + y * h.width * channels, channels, h.width);
  }
}

}  // namespace splitshare::data::detail
