#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace splitshare::data {

/// PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): larger images are refused.
constexpr int64_t kDefaultMaxPixels = 178956970;

/// The pixel limit in effect: kDefaultMaxPixels, unless the environment variable
/// SPLITSHARE_MAX_PIXELS gives another (a whole number >= 1; anything else is refused by name).
int64_t default_max_pixels();

/// The encodings the decoders understand. The format is detected from the
/// file's first bytes, never from its extension. kPnm covers the netpbm family
/// (PBM, PGM, PPM; plain and raw); kWebp needs a build with libwebp (can_decode).
enum class ImageFormat { kUnknown, kJpeg, kPng, kBmp, kPnm, kWebp };

/// What a file's header says, read without decoding any pixels.
struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int64_t width = 0;
  int64_t height = 0;
  /// Components stored in the file: 1 (grey, also PBM/PGM), 2 (grey + alpha), 3 (RGB /
  /// YCbCr, or a palette), 4 (RGBA, CMYK or YCCK; BMP bit fields or WebP with alpha).
  int64_t stored_channels = 0;
};

/// A pixel rectangle in full-resolution image coordinates.
struct PixelRect {
  int64_t x = 0;
  int64_t y = 0;
  int64_t width = 0;
  int64_t height = 0;
};

/// How to decode one image.
///
///   auto image = decode_image("cat.jpg", DecodeOptions().channels(1).crop(PixelRect{10, 10, 64, 64}));
struct DecodeOptions {
  /// Output channels: 3 (RGB) or 1 (luma). Grey, grey + alpha, palette, RGBA,
  /// CMYK/YCCK and 16-bit images are all converted (alpha is dropped like
  /// PIL's convert("RGB"); 16-bit PNG samples keep their high byte, PNM samples
  /// are scaled as round(v / maxval * 255), BMP bit fields as v * 255 / max).
  /// PIL differs on one of these: it clips 16-bit PGMs (mode "I") to 255.
  TORCH_ARG(int64_t, channels) = 3;
  /// Decode only this rectangle (clipped to the image). JPEGs use libjpeg-turbo's
  /// jpeg_crop_scanline / jpeg_skip_scanlines, so the IDCT, upsampling and colour
  /// conversion run only on the iMCU columns and rows that hold the rectangle.
  /// BMP, PNM and WebP images are decoded whole and the crop cut out of them.
  TORCH_ARG(std::optional<PixelRect>, crop) = std::nullopt;
  /// DCT-domain downscaling: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size,
  /// the smallest of these factors that is still >= min_scale (1 = full size,
  /// the default). The other factors libjpeg offers (3/8 ... 7/8) have no SIMD
  /// IDCT and decode slower than full size, so they are never used. PNGs are
  /// always decoded at full size.
  TORCH_ARG(double, min_scale) = 1.0;
  /// Images with more pixels than this are refused (decompression-bomb guard).
  TORCH_ARG(int64_t, max_pixels) = default_max_pixels();
};

/// Pixels produced by an ImageDecoder: an interleaved (HWC) uint8 region of the
/// image scaled by `scale`, valid until the decoder's next call.
struct DecodedRegion {
  /// Row-major, `channels` interleaved samples per pixel, `row_stride` bytes per row (more
  /// than width * channels for BMP, PNM and WebP crops: a window into the whole image).
  const uint8_t* pixels = nullptr;
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 0;
  int64_t row_stride = 0;
  /// The DCT scale factor used: 1, 1/2, 1/4 or 1/8.
  double scale = 1.0;
  /// Position of pixels[0] in the scaled image. The region may be wider than the
  /// requested crop (JPEG crops are widened to iMCU boundaries, plus a margin); the
  /// pixels of the crop itself equal a full decode's, but the region's outermost
  /// column outside the crop may differ by a few levels (chroma upsampling at its edge).
  int64_t x = 0;
  int64_t y = 0;
  /// Full-resolution size of the image.
  int64_t image_width = 0;
  int64_t image_height = 0;
};

/// Detects JPEG (FF D8 FF), PNG (the 8-byte signature), BMP ("BM"), PNM ("P1" ... "P6"
/// and a whitespace) and WebP ("RIFF", size, "WEBP") from the first bytes.
ImageFormat detect_image_format(const uint8_t* data, size_t size);

/// True when this build decodes `format`: all but kUnknown, and kWebp only with libwebp
/// (CMake's SPLITSHARE_WEBP); without it WebP files are refused by name like corrupt ones.
bool can_decode(ImageFormat format);

/// True when `path` ends in an image extension the image folders list, in any case:
/// .jpg .jpeg .png .bmp .ppm .pgm .pbm .pnm .webp. The decoders ignore extensions.
bool has_image_extension(const std::string& path);

/// A reusable decoder for JPEG (libjpeg-turbo), PNG (libpng), BMP, PNM and WebP
/// (libwebp); one per thread.
/// Decoding is two calls so that a caller can choose the crop after seeing the
/// image size:
///
///   ImageDecoder decoder;
///   ImageInfo info = decoder.open(bytes.data(), bytes.size(), path);
///   const DecodedRegion& region = decoder.decode(DecodeOptions().crop(rect_for(info)));
///
/// Errors (unknown format, corrupt or truncated data, oversized image) throw
/// c10::Error naming `name` and the problem. The encoded bytes must stay alive
/// until decode() returns.
class ImageDecoder {
 public:
  ImageDecoder();
  ~ImageDecoder();
  ImageDecoder(const ImageDecoder&) = delete;
  ImageDecoder& operator=(const ImageDecoder&) = delete;

  /// Reads the header of an encoded image held in memory; `name` is used in error messages.
  ImageInfo open(const uint8_t* data, size_t size, const std::string& name);
  /// Decodes the image opened last (once). The region covers options.crop (or the
  /// whole image) and may be slightly larger; see DecodedRegion.
  const DecodedRegion& decode(const DecodeOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Reads a whole file; throws naming the path when it cannot be opened or read.
/// `buffer` is reused (the loader keeps one per thread).
void read_file_bytes(const std::string& path, std::vector<uint8_t>& buffer);

/// The header of an image file (format, size, stored channels), without decoding pixels.
ImageInfo read_image_info(const std::string& path);

/// Decodes an image file into uint8 [C, H, W] (C = options.channels). With a crop,
/// the result is exactly the crop (clipped to the image); with DCT scaling, it is
/// the crop's footprint in the scaled image, [floor(x*s), ceil((x+w)*s)) per axis.
torch::Tensor decode_image(const std::string& path, const DecodeOptions& options = {});

/// decode_image for bytes in memory; `name` is used in error messages.
torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& name,
                           const DecodeOptions& options = {});

}  // namespace splitshare::data
