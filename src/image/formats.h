#pragma once

// The decoders for BMP, PNM and WebP behind ImageDecoder (image_io.cpp), which keeps JPEG and
// PNG. These formats are decoded whole; the crop is then a window into the full image. Every
// function throws c10::Error naming `name` on malformed, truncated or unsupported data, and
// checks every offset against `size` before reading. Internal to src/data/.

#include <splitshare/image/decode.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace splitshare::data::detail {

/// BMP ("BM"), PNM ("P1" ... "P6" and a whitespace) or WebP ("RIFF" size "WEBP"), else kUnknown.
ImageFormat detect_other_format(const uint8_t* data, size_t size);

/// The header of a BMP, PNM or WebP image.
ImageInfo read_other_info(ImageFormat format, const uint8_t* data, size_t size, const std::string& name);

/// Decodes a BMP, PNM or WebP image whole into `pixels` (`channels`, 1 or 3, per pixel) and
/// points `region` at `crop` (already clipped to the image) inside it. The caller has checked
/// the pixel count against max_pixels.
void decode_other(ImageFormat format, const uint8_t* data, size_t size, const std::string& name, int channels,
                  const PixelRect& crop, std::vector<uint8_t>& pixels, DecodedRegion& region);

// One pair per format. decode_* fill `pixels` with width * height * channels bytes, top row first.
ImageInfo read_bmp_info(const uint8_t* data, size_t size, const std::string& name);
void decode_bmp(const uint8_t* data, size_t size, const std::string& name, int channels, std::vector<uint8_t>& pixels);
ImageInfo read_pnm_info(const uint8_t* data, size_t size, const std::string& name);
void decode_pnm(const uint8_t* data, size_t size, const std::string& name, int channels, std::vector<uint8_t>& pixels);
/// Without libwebp (SPLITSHARE_WEBP=OFF, or libwebp-dev missing) both refuse by name.
ImageInfo read_webp_info(const uint8_t* data, size_t size, const std::string& name);
void decode_webp(const uint8_t* data, size_t size, const std::string& name, int channels, std::vector<uint8_t>& pixels);
/// True when the library was built with libwebp.
bool webp_built();

}  // namespace splitshare::data::detail
