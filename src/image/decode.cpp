#include <splitshare/image/decode.h>
#include <splitshare/util/numbers.h>

#include "formats.h"
#include "pixel_rows.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <type_traits>

// jpeglib.h needs FILE and size_t declared first.
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

namespace splitshare::data {

int64_t default_max_pixels() {
  const char* text = std::getenv("SPLITSHARE_MAX_PIXELS");
  if (!text) return kDefaultMaxPixels;
  const auto value = util::parse_number<int64_t>(text);
  TORCH_CHECK(value && *value >= 1, "environment variable SPLITSHARE_MAX_PIXELS='", text,
              "' is not a whole number >= 1 (the largest pixel count of an image to decode; default ",
              kDefaultMaxPixels, ")");
  return *value;
}
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
// libjpeg's SIMD IDCTs: 8x8 (full size), 4x4, 2x2 and 1x1; numerators of n/8.
constexpr int kDctScales[] = {1, 2, 4};

std::string first_bytes_hex(const uint8_t* data, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string text;
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
    if (i) text += ' ';
    text += digits[data[i] >> 4];
    text += digits[data[i] & 15];
  }
  return text;
}

// ---- libjpeg error handling: errors longjmp back to the decoding function ----

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  cinfo->err->format_message(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

void jpeg_emit_message(j_common_ptr cinfo, int level) {
  // Warnings (level -1) report corrupt entropy-coded data that libjpeg repairs;
  // PIL ignores them as well. Running out of data is different: libjpeg would pad
  // the image with grey, so a truncated file would pass silently.
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(cinfo);
}

// ---- libpng error handling ----

struct PngSource {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t position = 0;
  char message[256] = {0};
};

void png_error_fn(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof source->message, "%s", message);
  png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {
  // Ancillary-chunk problems (bad iCCP profiles, CRC errors in text chunks) are
  // harmless for the pixels; libpng would print them to stderr.
}

void png_read_fn(png_structp png, png_bytep out, png_size_t length) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (source->size - source->position < length) png_error(png, "unexpected end of file (truncated)");
  std::memcpy(out, source->data + source->position, length);
  source->position += length;
}

// What the C++ side decided before libjpeg/libpng run; trivially destructible so
// that a longjmp over it is well defined.
struct DecodePlan {
  int channels = 3;
  int scale_num = 8;
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // full-resolution crop, half-open
};
static_assert(std::is_trivially_destructible_v<DecodePlan>);

}  // namespace

struct ImageDecoder::Impl {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::string name;
  ImageInfo info;
  bool pending = false;

  std::vector<uint8_t> pixels;
  std::vector<uint8_t> row;
  std::vector<png_bytep> rows;
  DecodedRegion region;

  jpeg_decompress_struct jpeg{};
  JpegErrorManager jpeg_error{};
  bool jpeg_created = false;

  png_structp png = nullptr;
  png_infop png_info = nullptr;
  PngSource png_source;

  ~Impl() {
    destroy_png();
    if (jpeg_created) jpeg_destroy_decompress(&jpeg);
  }

  void destroy_png() {
    if (png != nullptr) png_destroy_read_struct(&png, png_info != nullptr ? &png_info : nullptr, nullptr);
    png = nullptr;
    png_info = nullptr;
  }

  void ensure_jpeg() {
    if (jpeg_created) return;
    jpeg.err = jpeg_std_error(&jpeg_error.pub);
    jpeg_error.pub.error_exit = jpeg_error_exit;
    jpeg_error.pub.emit_message = jpeg_emit_message;
    jpeg_create_decompress(&jpeg);
    jpeg_created = true;
  }

  // Each of the following returns false (message in jpeg_error / png_source) on a
  // codec error. They hold no objects with destructors across setjmp.
  bool jpeg_open() {
    if (setjmp(jpeg_error.jump)) {
      jpeg_abort_decompress(&jpeg);
      return false;
    }
    jpeg_mem_src(&jpeg, data, static_cast<unsigned long>(size));
    jpeg_read_header(&jpeg, TRUE);
    return true;
  }

  bool jpeg_decode(const DecodePlan& plan, bool cmyk);
  bool png_open();
  bool png_decode(const DecodePlan& plan);

  void decode_jpeg(const DecodePlan& plan);
  void decode_png(const DecodePlan& plan);
};

bool ImageDecoder::Impl::jpeg_decode(const DecodePlan& plan, bool cmyk) {
  if (setjmp(jpeg_error.jump)) {
    jpeg_abort_decompress(&jpeg);
    return false;
  }
  jpeg.scale_num = static_cast<unsigned>(plan.scale_num);
  jpeg.scale_denom = 8;
  jpeg_start_decompress(&jpeg);

  // The crop in scaled coordinates: every scaled pixel the full-resolution crop touches.
  JDIMENSION sx0 = static_cast<JDIMENSION>(plan.x0 * plan.scale_num / 8);
  JDIMENSION sx1 = std::min<JDIMENSION>(static_cast<JDIMENSION>((plan.x1 * plan.scale_num + 7) / 8), jpeg.output_width);
  JDIMENSION sy0 = static_cast<JDIMENSION>(plan.y0 * plan.scale_num / 8);
  JDIMENSION sy1 = std::min<JDIMENSION>(static_cast<JDIMENSION>((plan.y1 * plan.scale_num + 7) / 8), jpeg.output_height);
  JDIMENSION x_offset = 0;
  if (sx0 > 0 || sx1 < jpeg.output_width) {
    // Two columns of margin: fancy chroma upsampling replicates the region's edge
    // columns, so the outermost column of a cropped decode differs from a full
    // decode (by a few levels). The left side is then widened to an iMCU boundary.
    x_offset = sx0 >= 2 ? sx0 - 2 : 0;
    JDIMENSION width = std::min<JDIMENSION>(sx1 + 2, jpeg.output_width) - x_offset;
    jpeg_crop_scanline(&jpeg, &x_offset, &width);
  }
  if (sy0 > 0) jpeg_skip_scanlines(&jpeg, sy0);

  const int64_t width = jpeg.output_width;
  const int64_t height = sy1 - sy0;
  const int components = jpeg.output_components;
  pixels.resize(static_cast<size_t>(width * height * plan.channels));
  if (cmyk) row.resize(static_cast<size_t>(width * components));
  for (int64_t y = 0; y < height; ++y) {
    uint8_t* out = pixels.data() + y * width * plan.channels;
    JSAMPROW target = cmyk ? row.data() : out;
    jpeg_read_scanlines(&jpeg, &target, 1);
    if (cmyk) detail::convert_row(row.data(), components, true, out, plan.channels, width);
  }

  region.pixels = pixels.data();
  region.width = width;
  region.height = height;
  region.channels = plan.channels;
  region.row_stride = width * plan.channels;
  region.scale = plan.scale_num / 8.0;
  region.x = x_offset;
  region.y = sy0;

  if (jpeg.output_scanline < jpeg.output_height && !jpeg_input_complete(&jpeg)) {
    // Stopped before the end: the rows below were never read, so look for the
    // end-of-image marker instead (entropy-coded data cannot contain FF D9).
    // The entropy decoder reads ahead and may already have met the marker.
    const uint8_t* rest = jpeg.src->next_input_byte;
    const uint8_t* end = rest + jpeg.src->bytes_in_buffer;
    bool found = jpeg.unread_marker == 0xD9;
    for (const uint8_t* p = rest; p + 1 < end && !found;) {
      p = static_cast<const uint8_t*>(std::memchr(p, 0xFF, static_cast<size_t>(end - p - 1)));
      if (p == nullptr) break;
      found = p[1] == 0xD9;
      ++p;
    }
    jpeg_abort_decompress(&jpeg);
    if (!found) {
      std::snprintf(jpeg_error.message, sizeof jpeg_error.message, "Premature end of JPEG file (no end-of-image marker)");
      return false;
    }
    return true;
  }
  if (jpeg.output_scanline < jpeg.output_height) {
    jpeg_abort_decompress(&jpeg);
  } else {
    jpeg_finish_decompress(&jpeg);
  }
  return true;
}

bool ImageDecoder::Impl::png_open() {
  png_source = PngSource{};
  png_source.data = data;
  png_source.size = size;
  png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &png_source, png_error_fn, png_warning_fn);
  if (png == nullptr) return false;
  png_info = png_create_info_struct(png);
  if (png_info == nullptr) return false;
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, &png_source, png_read_fn);
  png_read_info(png, png_info);
  return true;
}

bool ImageDecoder::Impl::png_decode(const DecodePlan& plan) {
  if (setjmp(png_jmpbuf(png))) return false;
  const png_uint_32 image_width = png_get_image_width(png, png_info);
  const png_uint_32 image_height = png_get_image_height(png, png_info);
  const int bit_depth = png_get_bit_depth(png, png_info);
  const int color_type = png_get_color_type(png, png_info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bit_depth == 16) png_set_strip_16(png);  // keeps the high byte
  png_set_strip_alpha(png);                    // also the alpha a tRNS chunk would add
  const bool grey = (color_type & PNG_COLOR_MASK_COLOR) == 0;
  if (grey && plan.channels == 3) png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, png_info);
  const int components = png_get_channels(png, png_info);
  const size_t row_bytes = png_get_rowbytes(png, png_info);

  const int64_t width = plan.x1 - plan.x0;
  const int64_t height = plan.y1 - plan.y0;
  pixels.resize(static_cast<size_t>(width * height * plan.channels));
  if (passes == 1) {
    // Every row is read, also below the crop, so that truncation is always caught.
    row.resize(row_bytes);
    for (png_uint_32 y = 0; y < image_height; ++y) {
      png_read_row(png, row.data(), nullptr);
      if (y >= plan.y0 && y < plan.y1) {
        detail::convert_row(row.data() + plan.x0 * components, components, false,
                    pixels.data() + (y - plan.y0) * width * plan.channels, plan.channels, width);
      }
    }
  } else {
    row.resize(row_bytes * image_height);
    rows.resize(image_height);
    for (png_uint_32 y = 0; y < image_height; ++y) rows[y] = row.data() + y * row_bytes;
    png_read_image(png, rows.data());
    for (int64_t y = plan.y0; y < plan.y1; ++y) {
      detail::convert_row(rows[y] + plan.x0 * components, components, false,
                  pixels.data() + (y - plan.y0) * width * plan.channels, plan.channels, width);
    }
  }
  png_read_end(png, nullptr);
  (void)image_width;

  region.pixels = pixels.data();
  region.width = width;
  region.height = height;
  region.channels = plan.channels;
  region.row_stride = width * plan.channels;
  region.scale = 1.0;
  region.x = plan.x0;
  region.y = plan.y0;
  return true;
}

void ImageDecoder::Impl::decode_jpeg(const DecodePlan& plan) {
  bool cmyk = false;
  switch (jpeg.jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
      // libjpeg converts grey -> RGB and YCbCr/RGB -> grey (the Y channel) itself.
      jpeg.out_color_space = plan.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      jpeg.out_color_space = JCS_CMYK;
      cmyk = true;
      break;
    default:
      TORCH_CHECK(false, "cannot decode JPEG ", name, ": unsupported colour space ",
                  static_cast<int>(jpeg.jpeg_color_space), " with ", jpeg.num_components, " components");
  }
  TORCH_CHECK(jpeg_decode(plan, cmyk), "cannot decode JPEG ", name, ": ", jpeg_error.message);
}

void ImageDecoder::Impl::decode_png(const DecodePlan& plan) {
  bool ok = png_decode(plan);
  std::string message = png_source.message;
  destroy_png();
  TORCH_CHECK(ok, "cannot decode PNG ", name, ": ", message);
}

ImageFormat detect_image_format(const uint8_t* data, size_t size) {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::kJpeg;
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) return ImageFormat::kPng;
  return detail::detect_other_format(data, size);
}

ImageDecoder::ImageDecoder() : impl_(std::make_unique<Impl>()) {}
ImageDecoder::~ImageDecoder() = default;

ImageInfo ImageDecoder::open(const uint8_t* data, size_t size, const std::string& name) {
  Impl& s = *impl_;
  if (s.pending && s.info.format == ImageFormat::kJpeg) jpeg_abort_decompress(&s.jpeg);
  s.destroy_png();
  s.pending = false;
  s.data = data;
  s.size = size;
  s.name = name;
  s.info = ImageInfo{};
  TORCH_CHECK(size > 0, "image ", name, " is empty (0 bytes)");
  s.info.format = detect_image_format(data, size);
  TORCH_CHECK(s.info.format != ImageFormat::kUnknown, "image ", name,
              " is neither a JPEG nor a PNG, BMP, PNM or WebP file (first bytes: ", first_bytes_hex(data, size), ")");
  if (s.info.format == ImageFormat::kJpeg) {
    s.ensure_jpeg();
    TORCH_CHECK(s.jpeg_open(), "cannot read JPEG ", name, ": ", s.jpeg_error.message);
    s.info.width = s.jpeg.image_width;
    s.info.height = s.jpeg.image_height;
    s.info.stored_channels = s.jpeg.num_components;
  } else if (s.info.format != ImageFormat::kPng) {
    s.info = detail::read_other_info(s.info.format, data, size, name);
  } else {
    if (!s.png_open()) {
      std::string message = s.png_source.message;
      s.destroy_png();
      TORCH_CHECK(false, "cannot read PNG ", name, ": ", message);
    }
    s.info.width = png_get_image_width(s.png, s.png_info);
    s.info.height = png_get_image_height(s.png, s.png_info);
    int color_type = png_get_color_type(s.png, s.png_info);
    s.info.stored_channels = color_type == PNG_COLOR_TYPE_PALETTE ? 3 : png_get_channels(s.png, s.png_info);
  }
  s.pending = true;
  return s.info;
}

const DecodedRegion& ImageDecoder::decode(const DecodeOptions& options) {
  Impl& s = *impl_;
  TORCH_CHECK(s.pending, "ImageDecoder::decode called without a successful open()");
  s.pending = false;
  TORCH_CHECK(options.channels() == 1 || options.channels() == 3,
              "DecodeOptions::channels must be 1 or 3, got ", options.channels());
  const int64_t width = s.info.width;
  const int64_t height = s.info.height;
  if (width * height > options.max_pixels()) {
    if (s.info.format == ImageFormat::kJpeg) jpeg_abort_decompress(&s.jpeg);
    s.destroy_png();
    TORCH_CHECK(false, "image ", s.name, " has ", width, "x", height, " = ", width * height,
                " pixels, more than the limit of ", options.max_pixels(), " (decompression-bomb guard; to read it, "
                "set the environment variable SPLITSHARE_MAX_PIXELS=", width * height, " or more)");
  }

  DecodePlan plan;
  plan.channels = static_cast<int>(options.channels());
  plan.x1 = width;
  plan.y1 = height;
  if (options.crop()) {
    const PixelRect& crop = *options.crop();
    plan.x0 = std::clamp<int64_t>(crop.x, 0, width);
    plan.y0 = std::clamp<int64_t>(crop.y, 0, height);
    plan.x1 = std::clamp<int64_t>(crop.x + crop.width, 0, width);
    plan.y1 = std::clamp<int64_t>(crop.y + crop.height, 0, height);
    if (plan.x1 <= plan.x0 || plan.y1 <= plan.y0) {
      if (s.info.format == ImageFormat::kJpeg) jpeg_abort_decompress(&s.jpeg);
      s.destroy_png();
      TORCH_CHECK(false, "crop (x=", crop.x, ", y=", crop.y, ", ", crop.width, "x", crop.height,
                  ") does not overlap image ", s.name, " (", width, "x", height, ")");
    }
  }
  if (s.info.format == ImageFormat::kJpeg) {
    for (int num : kDctScales) {
      if (num / 8.0 >= options.min_scale()) {
        plan.scale_num = num;
        break;
      }
    }
    s.decode_jpeg(plan);
  } else if (s.info.format == ImageFormat::kPng) {
    s.decode_png(plan);
  } else {
    detail::decode_other(s.info.format, s.data, s.size, s.name, plan.channels,
                         PixelRect{plan.x0, plan.y0, plan.x1 - plan.x0, plan.y1 - plan.y0}, s.pixels, s.region);
  }
  s.region.image_width = width;
  s.region.image_height = height;
  return s.region;
}

void read_file_bytes(const std::string& path, std::vector<uint8_t>& buffer) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TORCH_CHECK(fd >= 0, "cannot open image file ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int error = errno;
    ::close(fd);
    TORCH_CHECK(false, "cannot stat image file ", path, ": ", std::strerror(error));
  }
  buffer.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = n < 0 ? errno : 0;
      ::close(fd);
      TORCH_CHECK(false, "cannot read image file ", path, ": ",
                  error ? std::strerror(error) : "file shrank while reading");
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

ImageInfo read_image_info(const std::string& path) {
  std::vector<uint8_t> bytes;
  read_file_bytes(path, bytes);
  ImageDecoder decoder;
  return decoder.open(bytes.data(), bytes.size(), path);
}

torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& options) {
  ImageDecoder decoder;
  ImageInfo info = decoder.open(data, size, name);
  const DecodedRegion& region = decoder.decode(options);
  PixelRect crop = options.crop().value_or(PixelRect{0, 0, info.width, info.height});
  // The requested crop's footprint in the (possibly scaled) image, relative to the region.
  const double s = region.scale;
  auto lo = [&](int64_t v, int64_t limit) { return static_cast<int64_t>(std::clamp<int64_t>(v, 0, limit) * s); };
  auto hi = [&](int64_t v, int64_t limit) {
    return static_cast<int64_t>(std::ceil(std::clamp<int64_t>(v, 0, limit) * s));
  };
  int64_t x0 = lo(crop.x, info.width) - region.x;
  int64_t y0 = lo(crop.y, info.height) - region.y;
  int64_t x1 = std::min(hi(crop.x + crop.width, info.width) - region.x, region.width);
  int64_t y1 = std::min(hi(crop.y + crop.height, info.height) - region.y, region.height);
  auto hwc = torch::from_blob(const_cast<uint8_t*>(region.pixels), {region.height, region.width, region.channels},
                              {region.row_stride, region.channels, 1}, torch::kUInt8);
  // clone: the pixels live in the decoder, which dies here.
  return hwc.slice(0, y0, y1).slice(1, x0, x1).permute({2, 0, 1}).clone(torch::MemoryFormat::Contiguous);
}

torch::Tensor decode_image(const std::string& path, const DecodeOptions& options) {
  std::vector<uint8_t> bytes;
  read_file_bytes(path, bytes);
  return decode_image(bytes.data(), bytes.size(), path, options);
}

}  // namespace splitshare::data
