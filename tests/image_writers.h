#pragma once

// Writers for small JPEG and PNG files (libjpeg-turbo, libpng) in the variants the
// image decoders must handle: grey, RGB, CMYK, progressive, palette, alpha, 16-bit,
// interlaced.

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "support.h"

namespace splitshare::testing {

/// A deterministic uint8 [C, H, W] test picture: smooth gradients, a few sharp
/// edges and mild noise (so JPEG has something to do at every frequency).
inline torch::Tensor test_picture(int64_t channels, int64_t height, int64_t width, uint64_t seed = 1) {
  auto y = torch::arange(height, torch::kFloat32).view({1, height, 1});
  auto x = torch::arange(width, torch::kFloat32).view({1, 1, width});
  auto c = torch::arange(channels, torch::kFloat32).view({channels, 1, 1});
  auto smooth = 128 + 70 * torch::sin(x * (0.05 + 0.01 * c) + y * 0.03) + 40 * torch::cos(y * (0.07 - 0.01 * c));
  auto edges = ((x.floor_divide(17) + y.floor_divide(23)).remainder(2) * 30 - 15).expand({channels, height, width});
  auto noise = (x * 73 + y * 151 + c * 31 + static_cast<double>(seed % 1000) * 17).remainder(13) - 6;
  return (smooth + edges + noise).round().clamp(0, 255).to(torch::kUInt8);
}

struct JpegWriteOptions {
  int quality = 90;
  bool progressive = false;
  /// Chroma sampling factor of the first (luma) component: 2x2 = 4:2:0, 2x1 = 4:2:2, 1x1 = 4:4:4.
  int h_sampling = 2;
  int v_sampling = 2;
  /// 4-channel input: write Adobe CMYK (values stored inverted, as Photoshop and PIL do).
  bool cmyk = false;
};

/// Encodes uint8 [C, H, W] (C = 1, 3, or 4 with cmyk) as JPEG bytes.
inline std::string encode_jpeg(const torch::Tensor& image, const JpegWriteOptions& options = {}) {
  auto hwc = image.permute({1, 2, 0}).contiguous();
  const int channels = static_cast<int>(image.size(0));
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.size(2));
  cinfo.image_height = static_cast<JDIMENSION>(image.size(1));
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, options.quality, TRUE);
  if (channels == 3) {
    cinfo.comp_info[0].h_samp_factor = options.h_sampling;
    cinfo.comp_info[0].v_samp_factor = options.v_sampling;
  }
  if (options.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  const int64_t stride = image.size(2) * channels;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = hwc.data_ptr<uint8_t>() + cinfo.next_scanline * stride;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string bytes(reinterpret_cast<char*>(buffer), size);
  std::free(buffer);
  return bytes;
}

/// RGB uint8 [3, H, W] -> Adobe-inverted CMYK [4, H, W] (K = the darkest channel), the
/// bytes a CMYK JPEG stores; decoders turn it back into (about) the same RGB.
inline torch::Tensor rgb_to_inverted_cmyk(const torch::Tensor& rgb) {
  auto cmy = 255 - rgb.to(torch::kInt32);
  auto k = std::get<0>(cmy.min(0, true));
  auto scale = (255 - k).clamp_min(1);
  auto cmy_k = torch::where(k == 255, torch::zeros_like(cmy), (cmy - k) * 255 / scale);
  return (255 - torch::cat({cmy_k, k}, 0)).to(torch::kUInt8);
}

struct PngWriteOptions {
  /// 8 or 16 (16-bit samples are v * 257, so their high byte is v).
  int bit_depth = 8;
  bool interlaced = false;
};

namespace detail {

struct PngBuffer {
  std::string bytes;
};

inline void png_write_to_string(png_structp png, png_bytep data, png_size_t length) {
  static_cast<PngBuffer*>(png_get_io_ptr(png))->bytes.append(reinterpret_cast<char*>(data), length);
}

inline void png_no_flush(png_structp) {}

inline std::string write_png(int width, int height, int bit_depth, int color_type, bool interlaced,
                             const std::vector<std::vector<uint8_t>>& rows, const std::vector<png_color>& palette,
                             const std::vector<uint8_t>& transparency) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  PngBuffer buffer;
  if (setjmp(png_jmpbuf(png))) throw std::runtime_error("libpng failed to write a test image");
  png_set_write_fn(png, &buffer, png_write_to_string, png_no_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!transparency.empty()) {
    png_set_tRNS(png, info, transparency.data(), static_cast<int>(transparency.size()), nullptr);
  }
  png_write_info(png, info);
  std::vector<png_bytep> pointers;
  for (auto& row : rows) pointers.push_back(const_cast<png_bytep>(row.data()));
  png_write_image(png, pointers.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return buffer.bytes;
}

}  // namespace detail

/// Encodes uint8 [C, H, W] as PNG: C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
inline std::string encode_png(const torch::Tensor& image, const PngWriteOptions& options = {}) {
  const int channels = static_cast<int>(image.size(0));
  const int height = static_cast<int>(image.size(1));
  const int width = static_cast<int>(image.size(2));
  static const int kColorTypes[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                    PNG_COLOR_TYPE_RGB_ALPHA};
  auto hwc = image.permute({1, 2, 0}).contiguous();
  const uint8_t* pixels = hwc.data_ptr<uint8_t>();
  const int bytes_per_sample = options.bit_depth / 8;
  std::vector<std::vector<uint8_t>> rows(height);
  for (int y = 0; y < height; ++y) {
    for (int i = 0; i < width * channels; ++i) {
      uint8_t v = pixels[y * width * channels + i];
      rows[y].push_back(v);
      if (bytes_per_sample == 2) rows[y].push_back(static_cast<uint8_t>(v ^ 0x5A));  // low byte: anything
    }
  }
  return detail::write_png(width, height, options.bit_depth, kColorTypes[channels], options.interlaced, rows, {}, {});
}

/// An 8-bit palette PNG: `indices` uint8 [H, W] into `palette`, optional tRNS alphas.
inline std::string encode_palette_png(const torch::Tensor& indices, const std::vector<png_color>& palette,
                                      const std::vector<uint8_t>& transparency = {}) {
  const int height = static_cast<int>(indices.size(0));
  const int width = static_cast<int>(indices.size(1));
  auto contiguous = indices.contiguous();
  std::vector<std::vector<uint8_t>> rows(height);
  for (int y = 0; y < height; ++y) {
    rows[y].assign(contiguous.data_ptr<uint8_t>() + y * width, contiguous.data_ptr<uint8_t>() + (y + 1) * width);
  }
  return detail::write_png(width, height, 8, PNG_COLOR_TYPE_PALETTE, false, rows, palette, transparency);
}

/// Runs a Python script (written to `dir`) with the project's Python (.venv): the PIL / torchvision reference checks.
inline int run_python(const TempDir& dir, const std::string& script, std::string* output) {
  const std::string path = dir.file("reference.py");
  write_file(path, script);
  return run_command(std::string(python()) + " " + path, output);
}

/// True when PIL is importable from the project's Python.
inline bool have_python_pil() { return run_command(std::string(python()) + " -c 'import PIL, numpy'", nullptr) == 0; }

/// Reads a raw little-endian float32 / uint8 file written by numpy's tofile().
inline torch::Tensor read_raw(const std::string& path, torch::ScalarType type, at::IntArrayRef shape) {
  std::string bytes = read_file(path);
  auto tensor = torch::empty(shape, type);
  EXPECT_EQ(bytes.size(), static_cast<size_t>(tensor.nbytes())) << path;
  if (bytes.size() == static_cast<size_t>(tensor.nbytes())) std::memcpy(tensor.data_ptr(), bytes.data(), bytes.size());
  return tensor;
}

/// ROOT/<class>/<i>.png with counts[c] test pictures (24 x 20 RGB) in class c.
inline void make_photo_folder(const std::string& root, const std::map<std::string, int>& counts) {
  uint64_t seed = 1;
  for (const auto& [name, n] : counts) {
    std::filesystem::create_directories(root + "/" + name);
    for (int i = 0; i < n; ++i) {
      write_file(root + "/" + name + "/" + std::to_string(i) + ".png", encode_png(test_picture(3, 24, 20, seed++)));
    }
  }
}

}  // namespace splitshare::testing
