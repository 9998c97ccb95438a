// The uint8 image operations of torchvision's automatic augmentations. They follow
// torchvision.transforms.v2.functional's tensor kernels op for op (same libtorch ops, same
// float32 arithmetic), so results match torchvision's bit for bit.
#include <splitshare/data/augment.h>

#include <array>
#include <cmath>

namespace splitshare::data {
namespace {

// CPython's math.radians / math.degrees (x * (pi / 180), x * (180 / pi)).
constexpr double kPi = 3.14159265358979323846;
double radians(double degrees) { return degrees * (kPi / 180.0); }
double degrees(double radians) { return radians * (180.0 / kPi); }

// Python's float `x % 360`: the result takes the sign of the divisor.
double python_mod_360(double x) {
  double mod = std::fmod(x, 360.0);
  if (mod != 0.0 && mod < 0.0) mod += 360.0;
  return mod == 0.0 ? 0.0 : mod;
}

// torchvision's _get_inverse_affine_matrix (scale 1): output pixel -> input pixel, both
// relative to the image centre.
std::array<double, 6> inverse_affine_matrix(double cx, double cy, double angle, double tx, double ty, double shear_x,
                                            double shear_y) {
  const double rot = radians(angle);
  const double sx = radians(shear_x);
  const double sy = radians(shear_y);
  const double cos_sy = std::cos(sy);
  const double tan_sx = std::tan(sx);
  const double rot_minus_sy = rot - sy;
  const double cx_plus_tx = cx + tx;
  const double cy_plus_ty = cy + ty;
  const double a = std::cos(rot_minus_sy) / cos_sy;
  const double b = -(a * tan_sx + std::sin(rot));
  const double c = std::sin(rot_minus_sy) / cos_sy;
  const double d = std::cos(rot) - c * tan_sx;
  std::array<double, 6> m = {d, -b, 0.0, -c, a, 0.0};
  // Python's `matrix[2] += ...`, evaluated left to right (ISO C++ mode: no fused multiply-add).
  m[2] += cx - m[0] * cx_plus_tx - m[1] * cy_plus_ty;
  m[5] += cy - m[3] * cx_plus_tx - m[4] * cy_plus_ty;
  return m;
}

// torchvision's _affine_grid + _apply_grid_transform with nearest interpolation and no fill
// (grid_sample's zero padding), output the size of the input.
torch::Tensor grid_transform_nearest(const torch::Tensor& image, const std::array<double, 6>& matrix) {
  const int64_t height = image.size(1);
  const int64_t width = image.size(2);
  auto theta = torch::tensor(std::vector<double>(matrix.begin(), matrix.end()), torch::kFloat64)
                   .to(torch::kFloat32)
                   .reshape({1, 2, 3});
  auto base = torch::empty({1, height, width, 3}, torch::kFloat32);
  base.select(3, 0).copy_(torch::linspace((1.0 - static_cast<double>(width)) * 0.5,
                                          (static_cast<double>(width) - 1.0) * 0.5, width));
  base.select(3, 1).copy_(torch::linspace((1.0 - static_cast<double>(height)) * 0.5,
                                          (static_cast<double>(height) - 1.0) * 0.5, height)
                              .unsqueeze(-1));
  base.select(3, 2).fill_(1);
  auto scale = torch::tensor(std::vector<double>{0.5 * static_cast<double>(width), 0.5 * static_cast<double>(height)},
                             torch::kFloat64)
                   .to(torch::kFloat32);
  auto rescaled = theta.transpose(1, 2).div_(scale);
  auto grid = base.view({1, height * width, 3}).bmm(rescaled).view({1, height, width, 2});
  auto input = image.unsqueeze(0).to(torch::kFloat32);
  // interpolation 1 = nearest, padding 0 = zeros, align_corners = false (as F.grid_sample).
  auto output = torch::grid_sampler(input, grid, 1, 0, false);
  return output.round_().to(torch::kUInt8).squeeze(0);
}

// F.affine(image, angle=0, translate, scale=1, shear, NEAREST, center=None or [0, 0]).
torch::Tensor affine(const torch::Tensor& image, double tx, double ty, double shear_x, double shear_y,
                     bool corner_center) {
  double cx = 0.0;
  double cy = 0.0;
  if (corner_center) {
    // center=[0, 0] in pixels, made relative to the image centre as torchvision does.
    cx = 0.0 - static_cast<double>(image.size(2)) * 0.5;
    cy = 0.0 - static_cast<double>(image.size(1)) * 0.5;
  }
  return grid_transform_nearest(image, inverse_affine_matrix(cx, cy, 0.0, tx, ty, shear_x, shear_y));
}

// F.rotate(image, angle, NEAREST, expand=False, center=None), with its exact fast paths.
torch::Tensor rotate(const torch::Tensor& image, double angle) {
  angle = python_mod_360(angle);
  if (angle == 0.0) return image.clone();
  if (angle == 180.0) return torch::rot90(image, 2, {-2, -1});
  if (image.size(1) == image.size(2)) {
    if (angle == 90.0) return torch::rot90(image, 1, {-2, -1});
    if (angle == 270.0) return torch::rot90(image, 3, {-2, -1});
  }
  // rotate() passes -angle: affine and rotate turn in opposite directions.
  return grid_transform_nearest(image, inverse_affine_matrix(0.0, 0.0, -angle, 0.0, 0.0, 0.0, 0.0));
}

// _blend: image * ratio + other * (1 - ratio), clamped, truncated to uint8.
torch::Tensor blend(const torch::Tensor& image, const torch::Tensor& other, double ratio) {
  return image.mul(ratio).add_(other, 1.0 - ratio).clamp_(0, 255).to(torch::kUInt8);
}

// _rgb_to_grayscale_image(preserve_dtype=False) floored, as the uint8 kernels use it: [1, H, W] float.
torch::Tensor grayscale_floor(const torch::Tensor& image) {
  auto gray = image[0].mul(0.2989).add_(image[1], 0.587).add_(image[2], 0.114);
  return gray.unsqueeze(0).floor_();
}

void check_factor(double factor, const char* what) {
  TORCH_CHECK(factor >= 0, what, " factor must be non-negative, got ", factor);
}

torch::Tensor adjust_brightness(const torch::Tensor& image, double factor) {
  check_factor(factor, "brightness");
  return image.mul(factor).clamp_(0, 255).to(torch::kUInt8);
}

torch::Tensor adjust_saturation(const torch::Tensor& image, double factor) {
  check_factor(factor, "saturation");
  if (image.size(0) == 1) return image;  // PIL's behaviour, kept by torchvision
  return blend(image, grayscale_floor(image), factor);
}

torch::Tensor adjust_contrast(const torch::Tensor& image, double factor) {
  check_factor(factor, "contrast");
  auto gray = image.size(0) == 3 ? grayscale_floor(image) : image.to(torch::kFloat32);
  return blend(image, gray.mean({-3, -2, -1}, true), factor);
}

// Blends with a 3x3 smoothing (1s around a 5, /13) on the interior; the border stays.
torch::Tensor adjust_sharpness(const torch::Tensor& image, double factor) {
  check_factor(factor, "sharpness");
  const int64_t channels = image.size(0);
  if (image.numel() == 0 || image.size(1) <= 2 || image.size(2) <= 2) return image;
  const double a = 1.0 / 13.0;
  const double b = 5.0 / 13.0;
  auto kernel = torch::tensor(std::vector<double>{a, a, a, a, b, a, a, a, a}, torch::kFloat64)
                    .to(torch::kFloat32)
                    .view({3, 3})
                    .expand({channels, 1, 3, 3});
  auto output = image.to(torch::kFloat32);
  const std::vector<int64_t> ones = {1, 1};
  const std::vector<int64_t> no_padding = {0, 0};
  auto blurred = torch::conv2d(output, kernel, {}, ones, no_padding, ones, channels).round_();
  auto interior = output.slice(1, 1, -1).slice(2, 1, -1);
  interior.add_(blurred.sub_(interior), 1.0 - factor);
  return output.clamp_(0, 255).to(torch::kUInt8);
}

torch::Tensor posterize(const torch::Tensor& image, int64_t bits) {
  TORCH_CHECK(bits >= 0 && bits <= 8, "posterize: bits must be in [0, 8], got ", bits);
  if (bits >= 8) return image;
  const int64_t mask = ((int64_t{1} << bits) - 1) << (8 - bits);
  return image.bitwise_and(mask);
}

torch::Tensor solarize(const torch::Tensor& image, double threshold) {
  TORCH_CHECK(threshold <= 255.0, "solarize: threshold must be <= 255, got ", threshold);
  return torch::where(image.ge(threshold), image.bitwise_not(), image);
}

// Per channel: stretch [min, max] to [0, 255]; a flat channel is left as it is.
torch::Tensor autocontrast(const torch::Tensor& image) {
  if (image.numel() == 0) return image;
  auto values = image.to(torch::kFloat32);
  auto minimum = values.amin({-2, -1}, true);
  auto maximum = values.amax({-2, -1}, true);
  auto flat = maximum.eq(minimum);
  auto inv_scale = maximum.sub_(minimum).mul_(1.0 / 255.0);
  minimum.masked_fill_(flat, 0.0);
  inv_scale.masked_fill_(flat, 1.0);
  return values.sub_(minimum).div_(inv_scale).clamp_(0, 255).to(torch::kUInt8);
}

// PIL's histogram equalisation as torchvision computes it, per channel, in integers:
// step = (pixels not of the largest value present) / 255; lut[k] = (cum[k-1] + step/2) / step.
torch::Tensor equalize(const torch::Tensor& image) {
  auto output = image.contiguous().clone();
  const int64_t pixels = image.size(1) * image.size(2);
  uint8_t* data = output.data_ptr<uint8_t>();
  for (int64_t c = 0; c < image.size(0); ++c) {
    uint8_t* plane = data + c * pixels;
    std::array<int64_t, 256> histogram{};
    for (int64_t i = 0; i < pixels; ++i) ++histogram[plane[i]];
    int64_t last = 255;
    while (last > 0 && histogram[static_cast<size_t>(last)] == 0) --last;
    const int64_t step = (pixels - histogram[static_cast<size_t>(last)]) / 255;
    if (step == 0) continue;
    std::array<uint8_t, 256> lut{};
    int64_t cumulative = 0;
    for (size_t k = 1; k < 256; ++k) {
      cumulative += histogram[k - 1];
      lut[k] = static_cast<uint8_t>(std::min<int64_t>(255, (cumulative + step / 2) / step));
    }
    for (int64_t i = 0; i < pixels; ++i) plane[i] = lut[plane[i]];
  }
  return output;
}

}  // namespace

std::string to_string(AugmentOp op) {
  static constexpr const char* kNames[] = {"Identity",  "ShearX",    "ShearY",    "TranslateX",   "TranslateY",
                                           "Rotate",    "Brightness", "Color",     "Contrast",     "Sharpness",
                                           "Posterize", "Solarize",  "AutoContrast", "Equalize", "Invert"};
  return kNames[static_cast<size_t>(op)];
}

torch::Tensor apply_augment_op(const torch::Tensor& image, AugmentOp op, double magnitude) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.scalar_type() == torch::kUInt8,
              "apply_augment_op(", to_string(op), "): expected a uint8 image [C, H, W] with C = 1 or 3, got ",
              image.scalar_type(), " ", image.sizes());
  switch (op) {
    case AugmentOp::kIdentity: return image;
    case AugmentOp::kShearX: return affine(image, 0.0, 0.0, degrees(std::atan(magnitude)), 0.0, true);
    case AugmentOp::kShearY: return affine(image, 0.0, 0.0, 0.0, degrees(std::atan(magnitude)), true);
    case AugmentOp::kTranslateX: return affine(image, std::trunc(magnitude), 0.0, 0.0, 0.0, false);
    case AugmentOp::kTranslateY: return affine(image, 0.0, std::trunc(magnitude), 0.0, 0.0, false);
    case AugmentOp::kRotate: return rotate(image, magnitude);
    case AugmentOp::kBrightness: return adjust_brightness(image, 1.0 + magnitude);
    case AugmentOp::kColor: return adjust_saturation(image, 1.0 + magnitude);
    case AugmentOp::kContrast: return adjust_contrast(image, 1.0 + magnitude);
    case AugmentOp::kSharpness: return adjust_sharpness(image, 1.0 + magnitude);
    case AugmentOp::kPosterize: return posterize(image, static_cast<int64_t>(magnitude));
    case AugmentOp::kSolarize: return solarize(image, 255.0 * magnitude);
    case AugmentOp::kAutoContrast: return autocontrast(image);
    case AugmentOp::kEqualize: return equalize(image);
    case AugmentOp::kInvert: return image.bitwise_not();
  }
  TORCH_CHECK(false, "apply_augment_op: unknown op ", static_cast<int>(op));
}

}  // namespace splitshare::data
