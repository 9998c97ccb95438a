#pragma once

// The resampler behind the photo transforms: resize-and-crop specs, the decoder window they
// read, and the separable antialiased-bilinear kernel fused with flip and normalisation.
// Internal to the library (src/data/, src/eval/predict.cpp) and its tests and benchmarks.

#include <splitshare/data/transforms.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

namespace splitshare::data {

/// One axis of a resize followed by a crop. The source span [start, start + length)
/// (full-resolution pixels) is resized to `resized` pixels, of which the output
/// keeps [offset, offset + count).
struct ResampleAxis {
  double start = 0.0;
  double length = 0.0;
  int64_t resized = 0;
  int64_t offset = 0;
  int64_t count = 0;
};

/// A resize-and-crop of an image, optionally mirrored left-right afterwards.
///
/// Interpolation is antialiased bilinear: PyTorch's
/// `interpolate(mode="bilinear", align_corners=False, antialias=True)`, which is
/// PIL's BILINEAR resampling (a triangle filter stretched by the downscale factor,
/// so every source pixel contributes when shrinking). Evaluation (resize + centre
/// crop) therefore matches torchvision's tensor backend, and training crops match
/// torchvision's RandomResizedCrop on tensors with antialias=True.
struct ResampleSpec {
  ResampleAxis x;
  ResampleAxis y;
  bool flip = false;
};

/// The training resample: `crop` resized to size x size, mirrored when `flip`.
ResampleSpec crop_resample(const PixelRect& crop, int64_t size, bool flip);

/// The evaluation resample: resized to `resize` per `mode` (shorter side: torchvision's
/// Resize(resize); square: the whole image to resize x resize), then a centre crop of
/// crop x crop (CenterCrop(crop), offset round((resize - crop) / 2)); needs resize >= crop.
ResampleSpec resize_center_crop(int64_t width, int64_t height, int64_t resize, int64_t crop,
                                ResizeMode mode = ResizeMode::kShorterSide);

/// The paper's training resample: the whole image resized to resize x resize, the
/// crop x crop window at (left, top), both in [0, resize - crop], mirrored when `flip`.
ResampleSpec square_resize_crop(int64_t width, int64_t height, int64_t resize, int64_t crop, int64_t left,
                                int64_t top, bool flip);

/// square_resize_crop at a random window (left and top uniform over [0, resize - crop], as
/// torchvision's RandomCrop), mirrored with probability `flip_probability`.
ResampleSpec sample_square_resize_crop(int64_t width, int64_t height, int64_t resize, int64_t crop,
                                       double flip_probability, std::mt19937_64& rng);

/// The full-resolution source pixels the resample reads (the union of its filter
/// footprints): what to ask the decoder for (DecodeOptions::crop).
PixelRect source_rect(const ResampleSpec& spec, int64_t image_width, int64_t image_height);

/// The smallest scale the source may be decoded at (DecodeOptions::min_scale) so that
/// the decoded image is still `reducing_gap` times larger than the resampled one on
/// both axes. With a gap of 2 (PIL's thumbnail() default for its JPEG draft mode)
/// the antialiased resize, not the DCT scaling, shapes the result, which stays
/// within a few levels of a full-resolution decode; 1 allows scaling right down to
/// the output size.
double min_decode_scale(const ResampleSpec& spec, double reducing_gap = 2.0);

/// Where resampled pixels go: float samples addressed by element strides, so one
/// call writes straight into a slot of a [B, C, H, W] batch (NCHW or channels-last).
struct OutputPlanes {
  float* data = nullptr;
  int64_t channel_stride = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 0;
  /// When set, the samples go here instead of `data`, rounded and clamped to uint8 (give an
  /// identity ChannelMap: the values stay on the [0, 255] scale).
  uint8_t* bytes = nullptr;
};

/// Per-channel affine map applied to the resampled [0, 255] values:
/// out = v * scale[c] + bias[c]. normalization(mean, std) gives (v / 255 - mean) / std.
struct ChannelMap {
  std::array<float, 4> scale = {1.0f, 1.0f, 1.0f, 1.0f};
  std::array<float, 4> bias = {0.0f, 0.0f, 0.0f, 0.0f};
};

/// The ChannelMap of torchvision's ToTensor + Normalize(mean, std) (one value per channel, [0, 1] scale).
ChannelMap normalization(const std::vector<double>& mean, const std::vector<double>& std);

/// Separable antialiased-bilinear resampler fused with flip and normalisation.
/// Keeps its filter tables and scratch rows between calls: one per thread.
class Resampler {
 public:
  /// Resamples `source` (a decoded region, possibly DCT-scaled and cropped) per
  /// `spec` into spec.y.count x spec.x.count pixels of source.channels channels.
  void run(const DecodedRegion& source, const ResampleSpec& spec, const ChannelMap& map, const OutputPlanes& out);

 private:
  struct Taps {
    std::vector<int32_t> first;
    std::vector<int32_t> count;
    std::vector<float> weights;
    int32_t max_taps = 0;
  };
  static void compute_taps(const ResampleAxis& axis, double scale, int64_t origin, int64_t size, Taps& taps);
  const float* const* source_rows(const uint8_t* pixels, int64_t row_stride, int64_t i, int64_t n);

  Taps x_taps_;
  Taps y_taps_;
  int32_t ring_rows_ = 0;
  std::vector<float> ring_;
  std::vector<int32_t> ring_tags_;
  std::vector<const float*> ring_pointers_;
  std::vector<float> row_;
  std::vector<float> out_row_;
};

/// Resamples uint8 [C, H, W] into float [C, spec.y.count, spec.x.count] on the
/// [0, 255] scale (no rounding, no normalisation).
torch::Tensor resample(const torch::Tensor& image, const ResampleSpec& spec);

}  // namespace splitshare::data
