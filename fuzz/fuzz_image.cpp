#include "fuzz_target.h"

#include <splitshare/image/decode.h>

#include <string>

// First byte: decoding options (bit 0: one channel instead of three; bit 1: crop; bits
// 2-3: DCT scale 1, 1/2, 1/4, 1/8); with a crop, the next four bytes are x, y, width,
// height. The rest is the encoded image.
namespace splitshare::fuzz {

void image(const uint8_t* data, size_t size) {
  if (size < 5) return;
  const uint8_t flags = data[0];
  // A small bomb limit keeps each decode in the fuzzer's memory and time budget.
  auto options = data::DecodeOptions().channels(flags & 1 ? 1 : 3).max_pixels(int64_t{1} << 22);
  options.min_scale(1.0 / (1 << ((flags >> 2) & 3)));
  if (flags & 2) options.crop(data::PixelRect{data[1], data[2], data[3], data[4]});
  const uint8_t* encoded = data + 5;
  const size_t encoded_size = size - 5;

  data::ImageInfo info;
  torch::Tensor pixels;
  try {
    // The header reader alone, then a full decode, then the decoder reused on the same
    // bytes (the loader keeps one decoder per thread).
    data::ImageDecoder decoder;
    info = decoder.open(encoded, encoded_size, "fuzz.img");
    pixels = data::decode_image(encoded, encoded_size, "fuzz.img", options);
    decoder.open(encoded, encoded_size, "fuzz.img");
    decoder.decode(options.crop(std::nullopt));
  } catch (const c10::Error& e) {
    require_named(e, "fuzz.img");
    return;
  }
  require(info.width >= 1 && info.height >= 1, "accepted image without pixels");
  require(pixels.dim() == 3 && pixels.size(0) == options.channels() && pixels.size(1) >= 1 && pixels.size(2) >= 1,
          "decoded image has the wrong shape");
  require(pixels.size(1) <= info.height && pixels.size(2) <= info.width, "decoded image is larger than its header");
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(image)
