#include "pack_encode.h"

#include <splitshare/image/jpeg.h>
#include <splitshare/image/png.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace splitshare::data {
namespace {

// Resized JPEGs without --quality: high enough that the resize, not the encoder, decides the pixels.
constexpr int64_t kResizedJpegQuality = 90;

std::string extension_of(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "jpg";
    case ImageFormat::kPng: return "png";
    case ImageFormat::kBmp: return "bmp";
    case ImageFormat::kPnm: return "pnm";
    case ImageFormat::kWebp: return "webp";
    default: return "";
  }
}

// A resize of the whole image to width x height.
ResampleSpec whole_image(int64_t source_width, int64_t source_height, int64_t width, int64_t height) {
  ResampleSpec spec;
  spec.x = ResampleAxis{0.0, static_cast<double>(source_width), width, 0, width};
  spec.y = ResampleAxis{0.0, static_cast<double>(source_height), height, 0, height};
  return spec;
}

}  // namespace

int64_t PackSource::label(int64_t row) const {
  return index != nullptr ? index->labels[static_cast<size_t>(row)] : memory->labels[row].item<int64_t>();
}

std::string PackSource::name(int64_t row) const {
  if (index == nullptr) return memory_name + " #" + std::to_string(row);
  const auto& path = index->paths[static_cast<size_t>(row)];
  if (!index->members.empty()) return path;
  const auto relative = std::filesystem::path(path).lexically_relative(index->root).string();
  return relative.empty() || relative.rfind("..", 0) == 0 ? path : relative;
}

std::pair<int64_t, int64_t> packed_size(int64_t width, int64_t height, const PackOptions& options) {
  double scale = 1.0;
  if (options.max_side() > 0) scale = std::min(scale, static_cast<double>(options.max_side()) / std::max(width, height));
  if (options.shorter_side() > 0) {
    scale = std::min(scale, static_cast<double>(options.shorter_side()) / std::min(width, height));
  }
  if (scale >= 1.0) return {width, height};
  const auto side = [scale](int64_t n) { return std::max<int64_t>(1, std::llround(n * scale)); };
  return {side(width), side(height)};
}

PackedSample SampleEncoder::encode(const PackSource& source, int64_t row) {
  try {
    return source.index != nullptr ? encode_file(source, row) : encode_memory(source, row);
  } catch (const c10::Error& e) {
    PackedSample failed;
    failed.error = source.name(row) + ": " + e.msg();
    return failed;
  }
}

PackedSample SampleEncoder::encode_file(const PackSource& source, int64_t row) {
  read_sample_bytes(*source.index, row, bytes_);
  const auto info = decoder_.open(bytes_.data(), bytes_.size(), source.index->paths[static_cast<size_t>(row)]);
  PackedSample out;
  out.source_width = info.width;
  out.source_height = info.height;
  std::tie(out.width, out.height) = packed_size(info.width, info.height, options_);
  const bool resize = out.width != info.width || out.height != info.height;
  if (!resize && options_.quality() == 0) {
    // The image's own bytes: nothing to gain from decoding it here (a corrupt body is
    // skipped by the loader that reads the shards, as it would be in the folder).
    out.extension = extension_of(info.format);
    out.image.assign(bytes_.begin(), bytes_.end());
    return out;
  }
  const int64_t channels = info.stored_channels == 1 ? 1 : 3;
  const auto spec = whole_image(info.width, info.height, out.width, out.height);
  const auto& region = decoder_.decode(DecodeOptions().channels(channels).min_scale(min_decode_scale(spec)));
  pixels_.resize(static_cast<size_t>(out.width * out.height * channels));
  resampler_.run(region, spec, ChannelMap{}, OutputPlanes{nullptr, 1, out.width * channels, channels, pixels_.data()});
  out.image = encode_pixels(pixels_.data(), out.width, out.height, channels, info.format == ImageFormat::kJpeg,
                            out.extension);
  return out;
}

PackedSample SampleEncoder::encode_memory(const PackSource& source, int64_t row) {
  auto image = source.memory->images[row];
  PackedSample out;
  out.source_width = image.size(2);
  out.source_height = image.size(1);
  std::tie(out.width, out.height) = packed_size(out.source_width, out.source_height, options_);
  if (out.width != out.source_width || out.height != out.source_height) {
    const auto spec = whole_image(out.source_width, out.source_height, out.width, out.height);
    image = resample(image, spec).round().clamp(0, 255).to(torch::kUInt8);
  }
  const auto hwc = image.permute({1, 2, 0}).contiguous();
  out.image = encode_pixels(hwc.data_ptr<uint8_t>(), out.width, out.height, hwc.size(2), false, out.extension);
  return out;
}

std::string SampleEncoder::encode_pixels(const uint8_t* pixels, int64_t width, int64_t height, int64_t channels,
                                         bool lossy_source, std::string& extension) const {
  if (options_.quality() > 0 || lossy_source) {
    extension = "jpg";
    return encode_jpeg(pixels, width, height, channels,
                       options_.quality() > 0 ? options_.quality() : kResizedJpegQuality);
  }
  extension = "png";
  const auto chw = torch::from_blob(const_cast<uint8_t*>(pixels), {height, width, channels}, torch::kUInt8)
                       .permute({2, 0, 1});
  return encode_png(chw);
}

}  // namespace splitshare::data
