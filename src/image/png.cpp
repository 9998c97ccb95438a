#include <splitshare/image/png.h>
#include <splitshare/util/files.h>

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace splitshare::data {
namespace {

// ---- libpng: errors longjmp back to encode_rows, which holds nothing with a destructor ----
struct PngSink {
  std::string* bytes = nullptr;
  char message[256] = "";
};

void png_error_fn(png_structp png, png_const_charp message) {
  auto* sink = static_cast<PngSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof sink->message, "%s", message);
  png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {}

void png_write_fn(png_structp png, png_bytep data, png_size_t length) {
  auto* sink = static_cast<PngSink*>(png_get_io_ptr(png));
  sink->bytes->append(reinterpret_cast<const char*>(data), length);
}

void png_flush_fn(png_structp) {}

bool encode_rows(png_structp png, png_infop info, PngSink* sink, png_bytep* rows, png_uint_32 width,
                 png_uint_32 height, int color_type) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, sink, png_write_fn, png_flush_fn);
  png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

std::string encode_png(const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.scalar_type() == torch::kUInt8,
              "encode_png: expected a uint8 image [1 or 3, H, W], got ", image.sizes(), " ", image.scalar_type());
  TORCH_CHECK(image.size(1) >= 1 && image.size(2) >= 1, "encode_png: empty image ", image.sizes());
  const auto hwc = image.to(torch::kCPU).permute({1, 2, 0}).contiguous();
  const int64_t height = hwc.size(0), width = hwc.size(1), channels = hwc.size(2);
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) rows[y] = hwc.data_ptr<uint8_t>() + y * width * channels;

  std::string bytes;
  PngSink sink;
  sink.bytes = &bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_fn, png_warning_fn);
  TORCH_CHECK(png != nullptr, "encode_png: png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  const bool ok = info != nullptr && encode_rows(png, info, &sink, rows.data(), static_cast<png_uint_32>(width),
                                                 static_cast<png_uint_32>(height),
                                                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB);
  png_destroy_write_struct(&png, info != nullptr ? &info : nullptr);
  TORCH_CHECK(ok, "encode_png: libpng failed on a ", width, "x", height, " image: ", sink.message);
  return bytes;
}

void write_png(const std::string& path, const torch::Tensor& image) {
  util::write_file_atomic(path, encode_png(image));
}

}  // namespace splitshare::data
