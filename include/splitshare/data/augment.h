#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace splitshare::data {

/// The image operations of torchvision's automatic augmentation policies
/// (`torchvision.transforms.v2._auto_augment`), in the order of its tables.
enum class AugmentOp {
  kIdentity,
  kShearX,
  kShearY,
  kTranslateX,
  kTranslateY,
  kRotate,
  kBrightness,
  kColor,
  kContrast,
  kSharpness,
  kPosterize,
  kSolarize,
  kAutoContrast,
  kEqualize,
  kInvert,
};

/// torchvision's name of the op: "Identity", "ShearX", ..., "Invert".
std::string to_string(AugmentOp op);

/// Applies `op` to a uint8 image [C, H, W] (C = 1 or 3) as torchvision's
/// `_AutoAugmentBase._apply_image_or_video_transform` does with nearest interpolation
/// and no fill (uncovered pixels are 0), with the semantics of
/// `torchvision.transforms.v2.functional` on uint8 tensors. `magnitude` is the policy's:
///   ShearX/ShearY: the shear factor, affine(shear=degrees(atan(m))) about the top-left
///     corner (center=[0, 0]), like the AutoAugment paper's (1, m, 0, 0, 1, 0);
///   TranslateX/TranslateY: pixels, truncated to an integer (int(m));
///   Rotate: degrees counter-clockwise about the centre;
///   Brightness, Color (saturation), Contrast, Sharpness: factor 1 + m;
///   Posterize: bits kept, int(m) in [0, 8];
///   Solarize: threshold 255 * m (pixels >= it are inverted), m in [0, 1];
///   Identity, AutoContrast, Equalize, Invert: m is ignored.
/// Returns a uint8 image of the same shape (possibly `image` itself, e.g. Identity).
torch::Tensor apply_augment_op(const torch::Tensor& image, AugmentOp op, double magnitude);

/// An automatic augmentation policy.
enum class AutoAugmentKind {
  /// No automatic augmentation.
  kNone,
  /// RandAugment (Cubuk et al. 2020), torchvision's defaults: 2 ops drawn uniformly from
  /// 14, each at magnitude bin 9 of 31.
  kRandAugment,
  /// TrivialAugmentWide (Müller & Hutter 2021): 1 op of 14 at a uniform bin of 31 (the wide ranges).
  kTrivialAugment,
  /// AutoAugment (Cubuk et al. 2019) with torchvision's ImageNet policy: one of 25 sub-policies
  /// of two (op, probability, magnitude bin of 10) steps.
  kAutoAugment,
};

/// "none", "randaugment", "trivialaugment", "autoaugment".
std::string to_string(AutoAugmentKind kind);

/// The inverse of to_string; throws naming the text and the accepted values.
AutoAugmentKind parse_auto_augment(const std::string& text);

/// One op a policy applies, with its signed magnitude (0 for ops without one).
struct AugmentStep {
  AugmentOp op = AugmentOp::kIdentity;
  double magnitude = 0.0;
};

/// Draws the steps `kind` applies to an image of height x width, exactly as torchvision's
/// forward() draws them (op, magnitude bin, sign; AutoAugment: sub-policy and each step's
/// probability), each random choice from uniform01(rng). kNone draws nothing.
std::vector<AugmentStep> sample_auto_augment(AutoAugmentKind kind, int64_t height, int64_t width,
                                             std::mt19937_64& rng);

/// The policy `kind` on a uint8 image [C, H, W] (C = 1 or 3): sample_auto_augment then
/// apply_augment_op for each step. Returns uint8 [C, H, W]; deterministic for a given rng state.
torch::Tensor auto_augment(const torch::Tensor& image, AutoAugmentKind kind, std::mt19937_64& rng);

/// torchvision's RandomErasing (Zhong et al. 2020) with a constant value.
///
///   auto options = RandomErasingOptions().probability(0.25);
struct RandomErasingOptions {
  /// Probability that an image is erased at all.
  TORCH_ARG(double, probability) = 0.5;
  /// Erased area as a fraction of the image area.
  TORCH_ARG(double, min_scale) = 0.02;
  TORCH_ARG(double, max_scale) = 0.33;
  /// Aspect ratio (height / width) of the erased rectangle, sampled log-uniformly.
  TORCH_ARG(double, min_ratio) = 0.3;
  TORCH_ARG(double, max_ratio) = 3.3;
  /// What the rectangle is filled with (on the normalised scale: 0 is the mean colour).
  TORCH_ARG(double, value) = 0.0;
};

/// A rectangle erased by RandomErasing: rows [top, top + height), columns [left, left + width).
struct ErasedRect {
  int64_t top = 0;
  int64_t left = 0;
  int64_t height = 0;
  int64_t width = 0;
};

/// The rectangle RandomErasing erases in a height x width image, or nullopt (not erased:
/// the probability draw failed, or none of the 10 attempts fit inside the image).
/// Draws as torchvision's make_params does: rand() >= p skips; then per attempt the area
/// fraction, log-ratio, h = round(sqrt(area * ratio)), w = round(sqrt(area / ratio)),
/// accepted when h < height and w < width, then top and left uniformly.
std::optional<ErasedRect> sample_random_erasing(int64_t height, int64_t width, const RandomErasingOptions& options,
                                                std::mt19937_64& rng);

/// Applies RandomErasing in place to a float image [C, H, W] (any strides, e.g. a slot of a
/// batch: `batch.select(0, i)`); returns the rectangle erased, if any.
std::optional<ErasedRect> random_erase_(torch::Tensor image, const RandomErasingOptions& options,
                                        std::mt19937_64& rng);

}  // namespace splitshare::data
