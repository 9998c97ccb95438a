// Format detection and file extensions beyond JPEG/PNG, and the decoding entry point for BMP,
// PNM and WebP (their readers: bmp.cpp, pnm.cpp, webp.cpp).
#include "formats.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "pixel_rows.h"

namespace splitshare::data {
namespace detail {
namespace {

// The whitespace netpbm allows after the magic number.
bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

ImageFormat detect_other_format(const uint8_t* data, size_t size) {
  if (size >= 2 && data[0] == 'B' && data[1] == 'M') return ImageFormat::kBmp;
  if (size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' && is_space(data[2])) return ImageFormat::kPnm;
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
    return ImageFormat::kWebp;
  }
  return ImageFormat::kUnknown;
}

ImageInfo read_other_info(ImageFormat format, const uint8_t* data, size_t size, const std::string& name) {
  switch (format) {
    case ImageFormat::kBmp: return read_bmp_info(data, size, name);
    case ImageFormat::kPnm: return read_pnm_info(data, size, name);
    case ImageFormat::kWebp: return read_webp_info(data, size, name);
    default: TORCH_CHECK(false, "image ", name, ": not a BMP, PNM or WebP file");
  }
  return {};
}

void decode_other(ImageFormat format, const uint8_t* data, size_t size, const std::string& name, int channels,
                  const PixelRect& crop, std::vector<uint8_t>& pixels, DecodedRegion& region) {
  const ImageInfo info = read_other_info(format, data, size, name);
  if (format == ImageFormat::kBmp) decode_bmp(data, size, name, channels, pixels);
  if (format == ImageFormat::kPnm) decode_pnm(data, size, name, channels, pixels);
  if (format == ImageFormat::kWebp) decode_webp(data, size, name, channels, pixels);
  region.row_stride = info.width * channels;
  region.pixels = pixels.data() + crop.y * region.row_stride + crop.x * channels;
  region.width = crop.width;
  region.height = crop.height;
  region.channels = channels;
  region.scale = 1.0;
  region.x = crop.x;
  region.y = crop.y;
}

}  // namespace detail

bool has_image_extension(const std::string& path) {
  // std::filesystem's notion of an extension: ".jpg" alone is a hidden file, not an extension.
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pbm", ".pnm", ".webp"}) {
    if (ext == known) return true;
  }
  return false;
}

bool can_decode(ImageFormat format) {
  return format != ImageFormat::kUnknown && (format != ImageFormat::kWebp || detail::webp_built());
}

}  // namespace splitshare::data
