#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/image/decode.h>

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace splitshare::data {

/// ImageNet channel statistics on the [0, 1] scale (RGB).
inline constexpr std::array<double, 3> kImageNetMean = {0.485, 0.456, 0.406};
inline constexpr std::array<double, 3> kImageNetStd = {0.229, 0.224, 0.225};

/// torchvision's RandomResizedCrop (+ RandomHorizontalFlip) parameters.
///
///   auto options = RandomResizedCropOptions().size(160).min_scale(0.25);
struct RandomResizedCropOptions {
  /// Output is size x size.
  TORCH_ARG(int64_t, size) = 224;
  /// Crop area as a fraction of the image area.
  TORCH_ARG(double, min_scale) = 0.08;
  TORCH_ARG(double, max_scale) = 1.0;
  /// Crop aspect ratio (width / height), sampled log-uniformly.
  TORCH_ARG(double, min_ratio) = 3.0 / 4.0;
  TORCH_ARG(double, max_ratio) = 4.0 / 3.0;
  /// Probability of a horizontal flip.
  TORCH_ARG(double, flip_probability) = 0.5;
};

/// A uniform double in [0, 1) from 53 random bits (the same on every platform,
/// unlike std::uniform_real_distribution).
double uniform01(std::mt19937_64& rng);

/// torchvision's RandomResizedCrop.get_params: up to 10 attempts at a crop of
/// random area and aspect ratio that fits the image, then a centre crop of the
/// closest allowed aspect ratio. Rounding is Python's (half to even).
PixelRect sample_random_resized_crop(int64_t width, int64_t height, const RandomResizedCropOptions& options,
                                     std::mt19937_64& rng);

/// (height, width) after resizing the shorter side to `size`; the longer side is
/// truncated like torchvision's Resize(int).
std::pair<int64_t, int64_t> resized_shorter_side(int64_t height, int64_t width, int64_t size);

/// The evaluation transform on a decoded image: uint8 [C, H, W] -> float
/// [C, crop, crop], resized (to `resize` per `mode`), centre-cropped and
/// normalised with `mean`/`std` ([0, 1] scale, one value per channel).
torch::Tensor eval_transform(const torch::Tensor& image, int64_t resize, int64_t crop,
                             const std::vector<double>& mean, const std::vector<double>& std,
                             ResizeMode mode = ResizeMode::kShorterSide);

/// The training transform on a decoded image: uint8 [C, H, W] -> float
/// [C, size, size]: RandomResizedCrop + horizontal flip + normalisation.
torch::Tensor train_transform(const torch::Tensor& image, const RandomResizedCropOptions& options,
                              const std::vector<double>& mean, const std::vector<double>& std,
                              std::mt19937_64& rng);

}  // namespace splitshare::data
