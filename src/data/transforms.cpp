#include <splitshare/data/transforms.h>
#include <splitshare/data/preprocess_json.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include "resample.h"

namespace splitshare::data {
namespace {

// Python's round(): half to even (the default floating-point rounding mode).
int64_t round_half_even(double value) { return static_cast<int64_t>(std::nearbyint(value)); }

inline float triangle(float x) {
  x = std::fabs(x);
  return x < 1.0f ? 1.0f - x : 0.0f;
}

// The hot loops are also compiled for x86-64-v3 (AVX2 + FMA) and picked at load time
// (GCC/Clang function multiversioning), so a generic x86-64 build still runs them 8 wide.
// Not under ThreadSanitizer: the clones' resolver runs while the program is being loaded,
// before the TSan runtime is ready, and its instrumented entry crashes there.
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute) && !defined(__SANITIZE_THREAD__)
#if __has_attribute(target_clones)
#define SPLITSHARE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef SPLITSHARE_SIMD_CLONES
#define SPLITSHARE_SIMD_CLONES
#endif

SPLITSHARE_SIMD_CLONES
void to_float(const uint8_t* in, int64_t n, float* out) {
  for (int64_t e = 0; e < n; ++e) out[e] = static_cast<float>(in[e]);
}

// Vertical pass for one output row: out[e] = sum_k w[k] * rows[k][e].
SPLITSHARE_SIMD_CLONES
void weighted_rows(const float* const* rows, const float* w, int32_t count, int64_t n, float* out) {
  const float w0 = w[0];
  const float* r0 = rows[0];
  for (int64_t e = 0; e < n; ++e) out[e] = w0 * r0[e];
  for (int32_t k = 1; k < count; ++k) {
    const float wk = w[k];
    const float* r = rows[k];
    for (int64_t e = 0; e < n; ++e) out[e] += wk * r[e];
  }
}

// Horizontal pass for one output row of interleaved RGB, fused with the channel map,
// the flip and the strided store. Each tap is one 4-wide multiply-add over
// (R, G, B, next R); four output pixels are computed side by side so that their
// multiply-add chains overlap, all with the largest tap count of the four (the
// weights are zero-padded to max_taps). `row` needs 3 * max_taps + 1 floats of
// finite padding after its last pixel.
SPLITSHARE_SIMD_CLONES
void resample_row_rgb(const float* row, const int32_t* first, const int32_t* count, const float* weights,
                      int32_t max_taps, int64_t out_cols, bool flip, const ChannelMap& map, float* dst,
                      int64_t channel_stride, int64_t col_stride) {
#if defined(__GNUC__)
  typedef float v4f __attribute__((vector_size(16)));
  const v4f scale = {map.scale[0], map.scale[1], map.scale[2], 0.0f};
  const v4f bias = {map.bias[0], map.bias[1], map.bias[2], 0.0f};
  auto load = [](const float* p) {
    v4f x;
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  auto store = [&](int64_t j, v4f acc) {
    acc = acc * scale + bias;
    float* o = dst + (flip ? out_cols - 1 - j : j) * col_stride;
    o[0] = acc[0];
    o[channel_stride] = acc[1];
    o[2 * channel_stride] = acc[2];
  };
  int64_t j = 0;
  for (; j + 4 <= out_cols; j += 4) {
    const float* w = weights + j * max_taps;
    const float* p0 = row + first[j] * 3;
    const float* p1 = row + first[j + 1] * 3;
    const float* p2 = row + first[j + 2] * 3;
    const float* p3 = row + first[j + 3] * 3;
    const int32_t taps = std::max(std::max(count[j], count[j + 1]), std::max(count[j + 2], count[j + 3]));
    v4f a0 = {0.0f, 0.0f, 0.0f, 0.0f};
    v4f a1 = a0, a2 = a0, a3 = a0;
    for (int32_t k = 0; k < taps; ++k) {
      a0 += w[k] * load(p0 + k * 3);
      a1 += w[max_taps + k] * load(p1 + k * 3);
      a2 += w[2 * max_taps + k] * load(p2 + k * 3);
      a3 += w[3 * max_taps + k] * load(p3 + k * 3);
    }
    store(j, a0);
    store(j + 1, a1);
    store(j + 2, a2);
    store(j + 3, a3);
  }
  for (; j < out_cols; ++j) {
    const float* w = weights + j * max_taps;
    const float* p = row + first[j] * 3;
    v4f acc = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int32_t k = 0; k < count[j]; ++k) acc += w[k] * load(p + k * 3);
    store(j, acc);
  }
#else
  for (int64_t j = 0; j < out_cols; ++j) {
    const float* w = weights + j * max_taps;
    const float* p = row + first[j] * 3;
    float acc[3] = {0.0f, 0.0f, 0.0f};
    for (int32_t k = 0; k < count[j]; ++k) {
      for (int c = 0; c < 3; ++c) acc[c] += w[k] * p[k * 3 + c];
    }
    float* o = dst + (flip ? out_cols - 1 - j : j) * col_stride;
    for (int c = 0; c < 3; ++c) o[c * channel_stride] = acc[c] * map.scale[c] + map.bias[c];
  }
#endif
}

void resample_row_grey(const float* row, const int32_t* first, const int32_t* count, const float* weights,
                       int32_t max_taps, int64_t out_cols, bool flip, const ChannelMap& map, float* dst,
                       int64_t col_stride) {
  for (int64_t j = 0; j < out_cols; ++j) {
    const float* w = weights + j * max_taps;
    const float* p = row + first[j];
    float acc = 0.0f;
    for (int32_t k = 0; k < count[j]; ++k) acc += w[k] * p[k];
    dst[(flip ? out_cols - 1 - j : j) * col_stride] = acc * map.scale[0] + map.bias[0];
  }
}

// Copies a planar row ([channels][width]) to its place in the output. The row is
// assembled in a small buffer first because the destination (a slot of a large batch)
// is not in cache: whole-line sequential stores keep the store buffer from stalling
// on scattered misses.
// The uint8 output of a row: rounded half away from zero and clamped, as torchvision's
// antialiased uint8 resize does.
void store_row_bytes(const float* row, int channels, int64_t width, uint8_t* dst, const OutputPlanes& out) {
  for (int c = 0; c < channels; ++c) {
    for (int64_t j = 0; j < width; ++j) {
      const float v = std::round(row[c * width + j]);
      dst[j * out.col_stride + c * out.channel_stride] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
    }
  }
}

void store_row(const float* row, int channels, int64_t width, float* dst, const OutputPlanes& out) {
  if (out.col_stride == 1) {
    for (int c = 0; c < channels; ++c) {
      std::memcpy(dst + c * out.channel_stride, row + c * width, sizeof(float) * static_cast<size_t>(width));
    }
    return;
  }
  for (int64_t j = 0; j < width; ++j) {
    for (int c = 0; c < channels; ++c) dst[j * out.col_stride + c * out.channel_stride] = row[c * width + j];
  }
}

}  // namespace

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

PixelRect sample_random_resized_crop(int64_t width, int64_t height, const RandomResizedCropOptions& options,
                                     std::mt19937_64& rng) {
  TORCH_CHECK(width > 0 && height > 0, "sample_random_resized_crop: empty image ", width, "x", height);
  TORCH_CHECK(options.min_scale() > 0 && options.min_scale() <= options.max_scale(),
              "RandomResizedCrop scale range must satisfy 0 < min <= max, got ", options.min_scale(), "..",
              options.max_scale());
  TORCH_CHECK(options.min_ratio() > 0 && options.min_ratio() <= options.max_ratio(),
              "RandomResizedCrop ratio range must satisfy 0 < min <= max, got ", options.min_ratio(), "..",
              options.max_ratio());
  const double area = static_cast<double>(width) * static_cast<double>(height);
  const double log_min = std::log(options.min_ratio());
  const double log_max = std::log(options.max_ratio());
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target_area = area * (options.min_scale() + (options.max_scale() - options.min_scale()) * uniform01(rng));
    double aspect = std::exp(log_min + (log_max - log_min) * uniform01(rng));
    int64_t w = round_half_even(std::sqrt(target_area * aspect));
    int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      int64_t y = static_cast<int64_t>(rng() % static_cast<uint64_t>(height - h + 1));
      int64_t x = static_cast<int64_t>(rng() % static_cast<uint64_t>(width - w + 1));
      return PixelRect{x, y, w, h};
    }
  }
  // Fallback: centre crop at the nearest allowed aspect ratio.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width;
  int64_t h = height;
  if (in_ratio < options.min_ratio()) {
    h = round_half_even(static_cast<double>(w) / options.min_ratio());
  } else if (in_ratio > options.max_ratio()) {
    w = round_half_even(static_cast<double>(h) * options.max_ratio());
  }
  return PixelRect{(width - w) / 2, (height - h) / 2, w, h};
}

ResampleSpec crop_resample(const PixelRect& crop, int64_t size, bool flip) {
  TORCH_CHECK(crop.width > 0 && crop.height > 0 && size > 0, "crop_resample: crop ", crop.width, "x", crop.height,
              " to size ", size, " must be non-empty");
  ResampleSpec spec;
  spec.x = ResampleAxis{static_cast<double>(crop.x), static_cast<double>(crop.width), size, 0, size};
  spec.y = ResampleAxis{static_cast<double>(crop.y), static_cast<double>(crop.height), size, 0, size};
  spec.flip = flip;
  return spec;
}

std::pair<int64_t, int64_t> resized_shorter_side(int64_t height, int64_t width, int64_t size) {
  TORCH_CHECK(height > 0 && width > 0 && size > 0, "resized_shorter_side: image ", width, "x", height,
              " and size ", size, " must be positive");
  const int64_t shorter = std::min(height, width);
  const int64_t longer = std::max(height, width);
  const int64_t new_long = static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return width <= height ? std::make_pair(new_long, size) : std::make_pair(size, new_long);
}

std::string to_string(ResizeMode mode) { return mode == ResizeMode::kSquare ? "square" : "shorter"; }

nlohmann::json to_json(const Preprocess& preprocess) {
  const auto size = [](const std::optional<int64_t>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  };
  return {{"channels", preprocess.channels},        {"resize", size(preprocess.resize)},
          {"resize_mode", to_string(preprocess.resize_mode)}, {"crop", size(preprocess.crop)},
          {"size", size(preprocess.size)},          {"mean", preprocess.mean},
          {"std", preprocess.std}};
}

ResizeMode parse_resize_mode(const std::string& text) {
  if (text == "shorter") return ResizeMode::kShorterSide;
  if (text == "square") return ResizeMode::kSquare;
  TORCH_CHECK(false, "unknown resize mode '", text, "': expected shorter or square");
}

std::string to_string(PhotoRecipe recipe) { return recipe == PhotoRecipe::kPaper ? "paper" : "torchvision"; }

PhotoRecipe parse_photo_recipe(const std::string& text) {
  if (text == "paper") return PhotoRecipe::kPaper;
  if (text == "torchvision") return PhotoRecipe::kTorchvision;
  TORCH_CHECK(false, "unknown photo recipe '", text, "': expected paper or torchvision");
}

ResampleSpec square_resize_crop(int64_t width, int64_t height, int64_t resize, int64_t crop, int64_t left,
                                int64_t top, bool flip) {
  TORCH_CHECK(width > 0 && height > 0, "square_resize_crop: empty image ", width, "x", height);
  TORCH_CHECK(crop > 0 && resize >= crop, "square_resize_crop: resize (", resize, ") must be >= crop (", crop,
              ") > 0");
  TORCH_CHECK(left >= 0 && top >= 0 && left <= resize - crop && top <= resize - crop, "square_resize_crop: window (",
              left, ", ", top, ") is outside [0, ", resize - crop, "]");
  ResampleSpec spec;
  spec.x = ResampleAxis{0.0, static_cast<double>(width), resize, left, crop};
  spec.y = ResampleAxis{0.0, static_cast<double>(height), resize, top, crop};
  spec.flip = flip;
  return spec;
}

ResampleSpec sample_square_resize_crop(int64_t width, int64_t height, int64_t resize, int64_t crop,
                                       double flip_probability, std::mt19937_64& rng) {
  const int64_t room = resize - crop + 1;
  TORCH_CHECK(room >= 1, "sample_square_resize_crop: resize (", resize, ") must be >= crop (", crop, ")");
  // Integer draws from uniform01 (platform-independent, unlike std::uniform_int_distribution).
  const auto top = std::min<int64_t>(room - 1, static_cast<int64_t>(uniform01(rng) * static_cast<double>(room)));
  const auto left = std::min<int64_t>(room - 1, static_cast<int64_t>(uniform01(rng) * static_cast<double>(room)));
  const bool flip = uniform01(rng) < flip_probability;
  return square_resize_crop(width, height, resize, crop, left, top, flip);
}

ResampleSpec resize_center_crop(int64_t width, int64_t height, int64_t resize, int64_t crop, ResizeMode mode) {
  TORCH_CHECK(crop > 0 && resize >= crop, "resize_center_crop: resize (", resize, ") must be >= crop (", crop,
              ") > 0");
  if (mode == ResizeMode::kSquare) {
    const auto offset = round_half_even((resize - crop) / 2.0);
    return square_resize_crop(width, height, resize, crop, offset, offset, false);
  }
  auto [new_height, new_width] = resized_shorter_side(height, width, resize);
  ResampleSpec spec;
  spec.x = ResampleAxis{0.0, static_cast<double>(width), new_width, round_half_even((new_width - crop) / 2.0), crop};
  spec.y = ResampleAxis{0.0, static_cast<double>(height), new_height, round_half_even((new_height - crop) / 2.0), crop};
  return spec;
}

void Resampler::compute_taps(const ResampleAxis& axis, double scale, int64_t origin, int64_t size, Taps& taps) {
  // PyTorch's _compute_indices_weights_aa (from PIL's precompute_coeffs), relative to
  // the integer pixel `base` at or left of the span start in decoded coordinates.
  const double start = axis.start * scale - static_cast<double>(origin);
  const int64_t base = static_cast<int64_t>(std::floor(start));
  const double frac = start - static_cast<double>(base);
  const double step = axis.length * scale / static_cast<double>(axis.resized);
  const double support = step >= 1.0 ? step : 1.0;
  const float inverse = static_cast<float>(step >= 1.0 ? 1.0 / step : 1.0);
  // Taps stay inside the span (as when the crop is cut out first) and the decoded region.
  const int64_t lo = std::max<int64_t>(0, -base);
  const int64_t hi = std::min<int64_t>(static_cast<int64_t>(std::ceil(frac + axis.length * scale)), size - base);
  TORCH_CHECK(hi > lo, "resample: source span [", axis.start, ", ", axis.start + axis.length,
              ") misses the decoded region");

  taps.max_taps = static_cast<int32_t>(std::ceil(support)) * 2 + 1;
  taps.first.resize(static_cast<size_t>(axis.count));
  taps.count.resize(static_cast<size_t>(axis.count));
  taps.weights.assign(static_cast<size_t>(axis.count * taps.max_taps), 0.0f);
  for (int64_t i = 0; i < axis.count; ++i) {
    const double center = frac + (static_cast<double>(i + axis.offset) + 0.5) * step;
    int64_t x0 = std::max(static_cast<int64_t>(std::floor(center - support + 0.5)), lo);
    int64_t x1 = std::min(static_cast<int64_t>(std::floor(center + support + 0.5)), hi);
    if (x1 <= x0) {  // the output pixel lies past the span's end: nearest pixel
      x0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(center)), lo, hi - 1);
      x1 = x0 + 1;
    }
    x1 = std::min<int64_t>(x1, x0 + taps.max_taps);
    float* w = taps.weights.data() + i * taps.max_taps;
    float total = 0.0f;
    for (int64_t x = x0; x < x1; ++x) {
      w[x - x0] = triangle(static_cast<float>((static_cast<double>(x) - center + 0.5) * inverse));
      total += w[x - x0];
    }
    if (total == 0.0f) {
      w[0] = 1.0f;
      x1 = x0 + 1;
    } else {
      for (int64_t x = x0; x < x1; ++x) w[x - x0] /= total;
    }
    taps.first[i] = static_cast<int32_t>(base + x0);
    taps.count[i] = static_cast<int32_t>(x1 - x0);
  }
}

void Resampler::run(const DecodedRegion& source, const ResampleSpec& spec, const ChannelMap& map,
                    const OutputPlanes& out) {
  const int channels = static_cast<int>(source.channels);
  TORCH_CHECK(channels == 1 || channels == 3, "Resampler: 1 or 3 channels expected, got ", channels);
  TORCH_CHECK(spec.x.count > 0 && spec.y.count > 0 && spec.x.resized > 0 && spec.y.resized > 0,
              "Resampler: empty output ", spec.x.count, "x", spec.y.count);
  compute_taps(spec.x, source.scale, source.x, source.width, x_taps_);
  compute_taps(spec.y, source.scale, source.y, source.height, y_taps_);

  // Only the columns some output pixel reads take part in the vertical pass.
  int32_t x_lo = x_taps_.first[0];
  int32_t x_hi = 0;
  for (size_t j = 0; j < x_taps_.first.size(); ++j) {
    x_lo = std::min(x_lo, x_taps_.first[j]);
    x_hi = std::max(x_hi, x_taps_.first[j] + x_taps_.count[j]);
  }
  for (auto& first : x_taps_.first) first -= x_lo;
  const int64_t n = static_cast<int64_t>(x_hi - x_lo) * channels;

  ring_rows_ = y_taps_.max_taps;
  ring_.resize(static_cast<size_t>(ring_rows_ * n));
  ring_tags_.assign(static_cast<size_t>(ring_rows_), -1);
  ring_pointers_.resize(static_cast<size_t>(ring_rows_));
  row_.assign(static_cast<size_t>(n + 3 * x_taps_.max_taps + 4), 0.0f);
  const int64_t width = spec.x.count;
  out_row_.resize(static_cast<size_t>(width * channels));
  const uint8_t* pixels = source.pixels + x_lo * channels;
  for (int64_t i = 0; i < spec.y.count; ++i) {
    weighted_rows(source_rows(pixels, source.row_stride, i, n), y_taps_.weights.data() + i * y_taps_.max_taps,
                  y_taps_.count[i], n, row_.data());
    if (channels == 3) {
      resample_row_rgb(row_.data(), x_taps_.first.data(), x_taps_.count.data(), x_taps_.weights.data(),
                       x_taps_.max_taps, width, spec.flip, map, out_row_.data(), width, 1);
    } else {
      resample_row_grey(row_.data(), x_taps_.first.data(), x_taps_.count.data(), x_taps_.weights.data(),
                        x_taps_.max_taps, width, spec.flip, map, out_row_.data(), 1);
    }
    if (out.bytes != nullptr) {
      store_row_bytes(out_row_.data(), channels, width, out.bytes + i * out.row_stride, out);
    } else {
      store_row(out_row_.data(), channels, width, out.data + i * out.row_stride, out);
    }
  }
}

const float* const* Resampler::source_rows(const uint8_t* pixels, int64_t row_stride, int64_t i, int64_t n) {
  // Source rows are converted to float once, into a ring of max_taps rows: the rows an
  // output row reads are consecutive and move down monotonically.
  for (int32_t k = 0; k < y_taps_.count[i]; ++k) {
    const int32_t y = y_taps_.first[i] + k;
    const int32_t slot = y % ring_rows_;
    float* cached = ring_.data() + slot * n;
    if (ring_tags_[slot] != y) {
      to_float(pixels + y * row_stride, n, cached);
      ring_tags_[slot] = y;
    }
    ring_pointers_[k] = cached;
  }
  return ring_pointers_.data();
}

PixelRect source_rect(const ResampleSpec& spec, int64_t image_width, int64_t image_height) {
  auto axis_range = [](const ResampleAxis& axis, int64_t size) {
    const double step = axis.length / static_cast<double>(axis.resized);
    const double support = std::max(step, 1.0);
    const double first = axis.start + (static_cast<double>(axis.offset) + 0.5) * step;
    const double last = axis.start + (static_cast<double>(axis.offset + axis.count) - 0.5) * step;
    // One pixel of margin on each side absorbs rounding differences with compute_taps.
    int64_t lo = static_cast<int64_t>(std::floor(first - support + 0.5)) - 1;
    int64_t hi = static_cast<int64_t>(std::floor(last + support + 0.5)) + 1;
    lo = std::clamp<int64_t>(std::max<int64_t>(lo, static_cast<int64_t>(std::floor(axis.start))), 0, size);
    hi = std::clamp<int64_t>(std::min<int64_t>(hi, static_cast<int64_t>(std::ceil(axis.start + axis.length))), 0, size);
    return std::make_pair(lo, std::max(hi, lo + 1));
  };
  auto [x0, x1] = axis_range(spec.x, image_width);
  auto [y0, y1] = axis_range(spec.y, image_height);
  return PixelRect{x0, y0, x1 - x0, y1 - y0};
}

double min_decode_scale(const ResampleSpec& spec, double reducing_gap) {
  TORCH_CHECK(reducing_gap >= 1.0, "min_decode_scale: reducing_gap must be >= 1, got ", reducing_gap);
  return reducing_gap * std::max(static_cast<double>(spec.x.resized) / spec.x.length,
                                 static_cast<double>(spec.y.resized) / spec.y.length);
}

ChannelMap normalization(const std::vector<double>& mean, const std::vector<double>& std) {
  TORCH_CHECK(mean.size() == std.size() && !mean.empty() && mean.size() <= 4,
              "normalization: mean and std need the same number (1-4) of values, got ", mean.size(), " and ",
              std.size());
  ChannelMap map;
  for (size_t c = 0; c < mean.size(); ++c) {
    TORCH_CHECK(std[c] > 0, "normalization: std[", c, "] must be positive, got ", std[c]);
    map.scale[c] = static_cast<float>(1.0 / (255.0 * std[c]));
    map.bias[c] = static_cast<float>(-mean[c] / std[c]);
  }
  return map;
}

namespace {

torch::Tensor resample_tensor(const torch::Tensor& image, const ResampleSpec& spec, const ChannelMap& map) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8,
              "expected a uint8 [C, H, W] image, got ", image.scalar_type(), " ", image.sizes());
  const int64_t channels = image.size(0);
  TORCH_CHECK(channels == 1 || channels == 3, "expected 1 or 3 channels, got ", channels);
  auto hwc = image.permute({1, 2, 0}).contiguous();
  DecodedRegion region;
  region.pixels = hwc.data_ptr<uint8_t>();
  region.height = image.size(1);
  region.width = image.size(2);
  region.channels = channels;
  region.row_stride = region.width * channels;
  region.image_width = region.width;
  region.image_height = region.height;
  auto out = torch::empty({channels, spec.y.count, spec.x.count}, torch::kFloat32);
  OutputPlanes planes{out.data_ptr<float>(), out.stride(0), out.stride(1), out.stride(2)};
  Resampler().run(region, spec, map, planes);
  return out;
}

}  // namespace

torch::Tensor resample(const torch::Tensor& image, const ResampleSpec& spec) {
  return resample_tensor(image, spec, ChannelMap{});
}

torch::Tensor eval_transform(const torch::Tensor& image, int64_t resize, int64_t crop,
                             const std::vector<double>& mean, const std::vector<double>& std, ResizeMode mode) {
  TORCH_CHECK(image.dim() == 3, "eval_transform: expected [C, H, W], got ", image.sizes());
  TORCH_CHECK(static_cast<int64_t>(mean.size()) == image.size(0), "eval_transform: ", mean.size(),
              " mean values for ", image.size(0), " channels");
  return resample_tensor(image, resize_center_crop(image.size(2), image.size(1), resize, crop, mode),
                         normalization(mean, std));
}

torch::Tensor train_transform(const torch::Tensor& image, const RandomResizedCropOptions& options,
                              const std::vector<double>& mean, const std::vector<double>& std,
                              std::mt19937_64& rng) {
  TORCH_CHECK(image.dim() == 3, "train_transform: expected [C, H, W], got ", image.sizes());
  TORCH_CHECK(static_cast<int64_t>(mean.size()) == image.size(0), "train_transform: ", mean.size(),
              " mean values for ", image.size(0), " channels");
  PixelRect crop = sample_random_resized_crop(image.size(2), image.size(1), options, rng);
  bool flip = uniform01(rng) < options.flip_probability();
  return resample_tensor(image, crop_resample(crop, options.size(), flip), normalization(mean, std));
}

}  // namespace splitshare::data
