// WebP through libwebp, when the build found it (CMake's SPLITSHARE_WEBP defines
// SPLITSHARE_HAVE_WEBP for this file only); otherwise a refusal that names the file.
#include "formats.h"
#include "pixel_rows.h"

#ifdef SPLITSHARE_HAVE_WEBP
#include <webp/decode.h>
#endif

namespace splitshare::data::detail {

#ifdef SPLITSHARE_HAVE_WEBP
namespace {

const char* status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data (truncated)";
    default: return "decoding failed";
  }
}

WebPBitstreamFeatures features_of(const uint8_t* data, size_t size, const std::string& name) {
  WebPBitstreamFeatures features{};
  const VP8StatusCode status = WebPGetFeatures(data, size, &features);
  TORCH_CHECK(status == VP8_STATUS_OK, "cannot read WebP ", name, ": ", status_text(status));
  TORCH_CHECK(!features.has_animation, "cannot read WebP ", name, ": animated WebP is not supported");
  TORCH_CHECK(features.width > 0 && features.height > 0, "cannot read WebP ", name, ": size ", features.width, "x",
              features.height);
  return features;
}

}  // namespace

bool webp_built() {
  return true;
}

ImageInfo read_webp_info(const uint8_t* data, size_t size, const std::string& name) {
  const WebPBitstreamFeatures features = features_of(data, size, name);
  ImageInfo info;
  info.format = ImageFormat::kWebp;
  info.width = features.width;
  info.height = features.height;
  info.stored_channels = features.has_alpha ? 4 : 3;
  return info;
}

void decode_webp(const uint8_t* data, size_t size, const std::string& name, int channels,
                 std::vector<uint8_t>& pixels) {
  WebPDecoderConfig config;
  TORCH_CHECK(WebPInitDecoderConfig(&config), "cannot decode WebP ", name, ": libwebp version mismatch");
  config.input = features_of(data, size, name);
  const int64_t width = config.input.width;
  const int64_t height = config.input.height;
  // MODE_RGB drops alpha without blending, as PIL's convert("RGB") does.
  std::vector<uint8_t> rgb;
  std::vector<uint8_t>& target = channels == 3 ? pixels : rgb;
  target.resize(static_cast<size_t>(width * height * 3));
  config.output.colorspace = MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = target.data();
  config.output.u.RGBA.stride = static_cast<int>(width * 3);
  config.output.u.RGBA.size = target.size();
  const VP8StatusCode status = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);
  TORCH_CHECK(status == VP8_STATUS_OK, "cannot decode WebP ", name, ": ", status_text(status));
  if (channels == 3) return;
  pixels.resize(static_cast<size_t>(width * height));
  for (int64_t y = 0; y < height; ++y) {
    convert_row(rgb.data() + y * width * 3, 3, false, pixels.data() + y * width, 1, width);
  }
}

#else

bool webp_built() {
  return false;
}

ImageInfo read_webp_info(const uint8_t*, size_t, const std::string& name) {
  TORCH_CHECK(false, "cannot read WebP ", name,
              ": splitshare was built without WebP support (install libwebp-dev "
              "and configure with -DSPLITSHARE_WEBP=AUTO or ON)");
  return {};
}

void decode_webp(const uint8_t* data, size_t size, const std::string& name, int, std::vector<uint8_t>&) {
  read_webp_info(data, size, name);
}

#endif

}  // namespace splitshare::data::detail
