// The PNM (netpbm) reader: P1/P4 bitmaps, P2/P5 grey maps, P3/P6 pixel maps, plain (ASCII)
// and raw, maxval 1..65535.
#include "formats.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "pixel_rows.h"

namespace splitshare::data::detail {
namespace {

bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_digit(uint8_t c) {
  return c >= '0' && c <= '9';
}

struct PnmHeader {
  int kind = 0;  // the digit of "P1" ... "P6"
  int64_t width = 0;
  int64_t height = 0;
  uint32_t maxval = 1;
  int bands = 1;
  size_t raster = 0;  // offset of the first pixel
  bool plain() const { return kind <= 3; }
  bool bitmap() const { return kind == 1 || kind == 4; }
};

// Skips whitespace and '#' comments (to the end of the line), in the header and plain rasters.
void skip_space(const uint8_t* data, size_t size, size_t& pos) {
  while (pos < size && (is_space(data[pos]) || data[pos] == '#')) {
    if (data[pos] == '#') {
      while (pos < size && data[pos] != '\n' && data[pos] != '\r') ++pos;
    } else {
      ++pos;
    }
  }
}

// A decimal number of at most 10 digits (PIL's token limit); `what` names it in errors.
uint64_t read_number(const uint8_t* data, size_t size, size_t& pos, const char* what, const std::string& name) {
  skip_space(data, size, pos);
  TORCH_CHECK(pos < size, "cannot read PNM ", name, ": the file ends before the ", what, " (truncated)");
  uint64_t value = 0;
  const size_t start = pos;
  while (pos < size && is_digit(data[pos])) {
    TORCH_CHECK(pos - start < 10, "cannot read PNM ", name, ": the ", what, " has more than 10 digits");
    value = value * 10 + (data[pos++] - '0');
  }
  TORCH_CHECK(pos > start, "cannot read PNM ", name, ": the ", what, " at offset ", start,
              " is not a decimal number (byte ", static_cast<int>(data[start]), ")");
  return value;
}

PnmHeader parse_pnm(const uint8_t* data, size_t size, const std::string& name) {
  TORCH_CHECK(size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6', "cannot read PNM ", name,
              ": no P1 ... P6 magic number");
  PnmHeader h;
  h.kind = data[1] - '0';
  h.bands = h.kind == 3 || h.kind == 6 ? 3 : 1;
  size_t pos = 2;
  const uint64_t width = read_number(data, size, pos, "width", name);
  const uint64_t height = read_number(data, size, pos, "height", name);
  TORCH_CHECK(width >= 1 && height >= 1 && width <= INT32_MAX && height <= INT32_MAX, "cannot read PNM ", name,
              ": size ", width, "x", height, " (each side must be 1 ... 2^31 - 1)");
  h.width = static_cast<int64_t>(width);
  h.height = static_cast<int64_t>(height);
  if (!h.bitmap()) {
    const uint64_t maxval = read_number(data, size, pos, "maxval", name);
    TORCH_CHECK(maxval >= 1 && maxval <= 65535, "cannot read PNM ", name, ": maxval ", maxval,
                " (must be 1 ... 65535)");
    h.maxval = static_cast<uint32_t>(maxval);
  }
  // Exactly one whitespace byte separates the header from a raw raster.
  TORCH_CHECK(pos < size && is_space(data[pos]), "cannot read PNM ", name,
              ": no whitespace after the header (truncated or malformed)");
  h.raster = pos + 1;
  return h;
}

// Sample value -> 8 bits: round(v / maxval * 255) as PIL computes it (in double, round half
// to even); values above maxval saturate.
std::vector<uint8_t> scale_table(uint32_t maxval) {
  std::vector<uint8_t> table(maxval < 256 ? 256 : 65536, 255);
  for (uint32_t v = 0; v <= maxval; ++v) {
    table[v] = static_cast<uint8_t>(std::min(255.0, std::nearbyint(static_cast<double>(v) / maxval * 255.0)));
  }
  return table;
}

// One row of a raw raster into 8-bit samples.
void raw_row(const PnmHeader& h, const uint8_t* src, const std::vector<uint8_t>& table, uint8_t* out) {
  const int64_t n = h.width * h.bands;
  if (h.bitmap()) {
    for (int64_t x = 0; x < h.width; ++x) out[x] = (src[x / 8] >> (7 - x % 8)) & 1 ? 0 : 255;  // 1 = black
  } else if (h.maxval < 256) {
    for (int64_t i = 0; i < n; ++i) out[i] = table[src[i]];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = table[(src[2 * i] << 8) | src[2 * i + 1]];
  }
}

// One row of a plain raster; `pos` walks the text.
void plain_row(const PnmHeader& h, const uint8_t* data, size_t size, size_t& pos, const std::vector<uint8_t>& table,
               const std::string& name, uint8_t* out) {
  const int64_t n = h.width * h.bands;
  for (int64_t i = 0; i < n; ++i) {
    if (h.bitmap()) {  // one character per pixel, separators optional
      skip_space(data, size, pos);
      TORCH_CHECK(pos < size, "cannot decode PNM ", name, ": the pixels end early (truncated)");
      TORCH_CHECK(data[pos] == '0' || data[pos] == '1', "cannot decode PNM ", name, ": byte ",
                  static_cast<int>(data[pos]), " at offset ", pos, " is not a 0 or 1 pixel");
      out[i] = data[pos++] == '1' ? 0 : 255;
      continue;
    }
    const uint64_t v = read_number(data, size, pos, "sample", name);
    TORCH_CHECK(v <= h.maxval, "cannot decode PNM ", name, ": sample ", v, " before offset ", pos, " exceeds maxval ",
                h.maxval);
    out[i] = table[v];
  }
}

}  // namespace

ImageInfo read_pnm_info(const uint8_t* data, size_t size, const std::string& name) {
  const PnmHeader h = parse_pnm(data, size, name);
  ImageInfo info;
  info.format = ImageFormat::kPnm;
  info.width = h.width;
  info.height = h.height;
  info.stored_channels = h.bands;
  return info;
}

void decode_pnm(const uint8_t* data, size_t size, const std::string& name, int channels, std::vector<uint8_t>& pixels) {
  const PnmHeader h = parse_pnm(data, size, name);
  const uint64_t sample_bytes = h.maxval < 256 ? 1 : 2;
  const uint64_t row_bytes = h.bitmap() ? (h.width + 7) / 8 : h.width * h.bands * sample_bytes;
  // A plain raster needs at least a byte per sample: checked before allocating the pixels.
  const uint64_t need = h.plain() ? static_cast<uint64_t>(h.width * h.bands) : row_bytes;
  TORCH_CHECK((size - h.raster) / need >= static_cast<uint64_t>(h.height), "cannot decode PNM ", name, ": ", h.width,
              "x", h.height, " pixels need ", need * h.height, (h.plain() ? " or more" : ""),
              " bytes after the header but the file has ", size - h.raster, " (truncated)");
  const std::vector<uint8_t> table = scale_table(h.maxval);
  pixels.resize(static_cast<size_t>(h.width * h.height * channels));
  std::vector<uint8_t> samples(static_cast<size_t>(h.width * h.bands));
  size_t pos = h.raster;
  for (int64_t y = 0; y < h.height; ++y) {
    if (h.plain()) {
      plain_row(h, data, size, pos, table, name, samples.data());
    } else {
      raw_row(h, data + h.raster + y * row_bytes, table, samples.data());
    }
    convert_row(samples.data(), h.bands, false, pixels.data() + y * h.width * channels, channels, h.width);
  }
}

}  // namespace splitshare::data::detail
