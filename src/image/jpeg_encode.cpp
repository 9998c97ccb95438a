#include <splitshare/image/jpeg.h>

#include <cstdio>
// jpeglib.h needs FILE and size_t declared before it.
#include <jpeglib.h>

#include <csetjmp>
#include <cstdlib>

namespace splitshare::data {
namespace {

// libjpeg reports errors through error_exit, which must not return: it longjmps back to
// compress(), whose frame holds nothing with a destructor.
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = "";
};

void error_exit(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

bool compress(jpeg_compress_struct& cinfo, ErrorManager& errors, const uint8_t* pixels, int64_t width, int64_t height,
              int64_t channels, int64_t quality, unsigned char** out, unsigned long* out_size) {
  if (setjmp(errors.jump)) return false;
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, out, out_size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = static_cast<int>(channels);
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, static_cast<int>(quality), TRUE);
  if (channels == 3 && quality >= 90) {
    for (int c = 0; c < 3; ++c) cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  }
  // Huffman tables fitted to the image: a few per cent smaller files, same pixels.
  cinfo.optimize_coding = TRUE;
  jpeg_start_compress(&cinfo, TRUE);
  const auto stride = static_cast<size_t>(width * channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels + cinfo.next_scanline * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  return true;
}

}  // namespace

std::string encode_jpeg(const uint8_t* pixels, int64_t width, int64_t height, int64_t channels, int64_t quality) {
  TORCH_CHECK(channels == 1 || channels == 3, "encode_jpeg: expected 1 or 3 channels, got ", channels);
  TORCH_CHECK(width >= 1 && height >= 1 && width <= JPEG_MAX_DIMENSION && height <= JPEG_MAX_DIMENSION,
              "encode_jpeg: a JPEG holds 1 to ", JPEG_MAX_DIMENSION, " pixels per side, got ", width, "x", height);
  TORCH_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be 1..100, got ", quality);
  jpeg_compress_struct cinfo{};
  ErrorManager errors;
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = error_exit;
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  const bool ok = compress(cinfo, errors, pixels, width, height, channels, quality, &out, &out_size);
  jpeg_destroy_compress(&cinfo);
  std::string bytes;
  if (ok) bytes.assign(reinterpret_cast<const char*>(out), out_size);
  std::free(out);
  TORCH_CHECK(ok, "encode_jpeg: libjpeg failed on a ", width, "x", height, " image: ", errors.message);
  return bytes;
}

std::string encode_jpeg(const torch::Tensor& image, int64_t quality) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.scalar_type() == torch::kUInt8,
              "encode_jpeg: expected a uint8 image [1 or 3, H, W], got ", image.sizes(), " ", image.scalar_type());
  const auto hwc = image.to(torch::kCPU).permute({1, 2, 0}).contiguous();
  return encode_jpeg(hwc.data_ptr<uint8_t>(), hwc.size(1), hwc.size(0), hwc.size(2), quality);
}

}  // namespace splitshare::data
