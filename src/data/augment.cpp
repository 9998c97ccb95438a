#include <splitshare/data/augment.h>
#include <splitshare/data/transforms.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace splitshare::data {
namespace {

using Op = AugmentOp;

// RandAugment's torchvision defaults.
constexpr int64_t kRandAugmentOps = 2;
constexpr int64_t kRandAugmentMagnitude = 9;
// Magnitude bins of RandAugment and TrivialAugmentWide, and of AutoAugment's policy table.
constexpr int64_t kWideBins = 31;
constexpr int64_t kAutoAugmentBins = 10;

// The ops RandAugment and TrivialAugmentWide choose from, in torchvision's table order.
constexpr std::array<Op, 14> kRandomOps = {Op::kIdentity,   Op::kShearX,     Op::kShearY,    Op::kTranslateX,
                                           Op::kTranslateY, Op::kRotate,     Op::kBrightness, Op::kColor,
                                           Op::kContrast,   Op::kSharpness,  Op::kPosterize, Op::kSolarize,
                                           Op::kAutoContrast, Op::kEqualize};

// The largest magnitude of each op in a policy's _AUGMENTATION_SPACE.
struct MagnitudeSpace {
  double shear = 0.3;
  // TranslateX/Y: a fixed number of pixels, or 150/331 of the image side (AutoAugment's).
  double translate = 0.0;
  bool translate_relative = true;
  double rotate = 30.0;
  // Brightness, Color, Contrast, Sharpness.
  double enhance = 0.9;
  // Posterize bits: 8 - round(bin / ((bins - 1) / divisor)).
  double posterize_divisor = 4.0;
};

constexpr MagnitudeSpace kStandardSpace{};  // RandAugment and AutoAugment
constexpr MagnitudeSpace kWideSpace{0.99, 32.0, false, 135.0, 0.99, 6.0};  // TrivialAugmentWide

// One step of an AutoAugment sub-policy; bin < 0: the op has no magnitude.
struct PolicyStep {
  Op op;
  double probability;
  int64_t bin;
};
using SubPolicy = std::array<PolicyStep, 2>;

// torchvision's AutoAugmentPolicy.IMAGENET.
constexpr std::array<SubPolicy, 25> kImageNetPolicy = {{
    {{{Op::kPosterize, 0.4, 8}, {Op::kRotate, 0.6, 9}}},
    {{{Op::kSolarize, 0.6, 5}, {Op::kAutoContrast, 0.6, -1}}},
    {{{Op::kEqualize, 0.8, -1}, {Op::kEqualize, 0.6, -1}}},
    {{{Op::kPosterize, 0.6, 7}, {Op::kPosterize, 0.6, 6}}},
    {{{Op::kEqualize, 0.4, -1}, {Op::kSolarize, 0.2, 4}}},
    {{{Op::kEqualize, 0.4, -1}, {Op::kRotate, 0.8, 8}}},
    {{{Op::kSolarize, 0.6, 3}, {Op::kEqualize, 0.6, -1}}},
    {{{Op::kPosterize, 0.8, 5}, {Op::kEqualize, 1.0, -1}}},
    {{{Op::kRotate, 0.2, 3}, {Op::kSolarize, 0.6, 8}}},
    {{{Op::kEqualize, 0.6, -1}, {Op::kPosterize, 0.4, 6}}},
    {{{Op::kRotate, 0.8, 8}, {Op::kColor, 0.4, 0}}},
    {{{Op::kRotate, 0.4, 9}, {Op::kEqualize, 0.6, -1}}},
    {{{Op::kEqualize, 0.0, -1}, {Op::kEqualize, 0.8, -1}}},
    {{{Op::kInvert, 0.6, -1}, {Op::kEqualize, 1.0, -1}}},
    {{{Op::kColor, 0.6, 4}, {Op::kContrast, 1.0, 8}}},
    {{{Op::kRotate, 0.8, 8}, {Op::kColor, 1.0, 2}}},
    {{{Op::kColor, 0.8, 8}, {Op::kSolarize, 0.8, 7}}},
    {{{Op::kSharpness, 0.4, 7}, {Op::kInvert, 0.6, -1}}},
    {{{Op::kShearX, 0.6, 5}, {Op::kEqualize, 1.0, -1}}},
    {{{Op::kColor, 0.4, 0}, {Op::kEqualize, 0.6, -1}}},
    {{{Op::kEqualize, 0.4, -1}, {Op::kSolarize, 0.2, 4}}},
    {{{Op::kSolarize, 0.6, 5}, {Op::kAutoContrast, 0.6, -1}}},
    {{{Op::kInvert, 0.6, -1}, {Op::kEqualize, 1.0, -1}}},
    {{{Op::kColor, 0.6, 4}, {Op::kContrast, 1.0, 8}}},
    {{{Op::kEqualize, 0.8, -1}, {Op::kEqualize, 0.6, -1}}},
}};

// torch.randint(n, ()) from uniform01 (platform-independent).
int64_t random_index(int64_t n, std::mt19937_64& rng) {
  return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform01(rng) * static_cast<double>(n)));
}

bool is_signed(Op op) {
  return op == Op::kShearX || op == Op::kShearY || op == Op::kTranslateX || op == Op::kTranslateY ||
         op == Op::kRotate || op == Op::kBrightness || op == Op::kColor || op == Op::kContrast ||
         op == Op::kSharpness;
}

// torchvision's magnitude bins of `op` (float32 values, computed with the same torch calls),
// undefined for the ops without a magnitude.
torch::Tensor magnitude_bins(Op op, const MagnitudeSpace& space, int64_t bins, int64_t height, int64_t width) {
  switch (op) {
    case Op::kShearX:
    case Op::kShearY: return torch::linspace(0.0, space.shear, bins);
    case Op::kTranslateX:
      return torch::linspace(0.0, space.translate_relative ? 150.0 / 331.0 * static_cast<double>(width)
                                                           : space.translate, bins);
    case Op::kTranslateY:
      return torch::linspace(0.0, space.translate_relative ? 150.0 / 331.0 * static_cast<double>(height)
                                                           : space.translate, bins);
    case Op::kRotate: return torch::linspace(0.0, space.rotate, bins);
    case Op::kBrightness:
    case Op::kColor:
    case Op::kContrast:
    case Op::kSharpness: return torch::linspace(0.0, space.enhance, bins);
    case Op::kPosterize:
      return torch::rsub(torch::arange(bins) / (static_cast<double>(bins - 1) / space.posterize_divisor), 8)
          .round()
          .to(torch::kInt32);
    case Op::kSolarize: return torch::linspace(1.0, 0.0, bins);
    default: return {};
  }
}

// `bin` of the op's magnitudes (kRandomBin: a uniform one), negated with probability 1/2
// for signed ops; 0 for ops without a magnitude. The draws are torchvision's, in its order.
constexpr int64_t kRandomBin = -1;
AugmentStep draw_step(Op op, const MagnitudeSpace& space, int64_t bins, int64_t bin, int64_t height, int64_t width,
                      std::mt19937_64& rng) {
  AugmentStep step{op, 0.0};
  torch::Tensor magnitudes = magnitude_bins(op, space, bins, height, width);
  if (!magnitudes.defined()) return step;
  if (bin == kRandomBin) bin = random_index(bins, rng);
  step.magnitude = magnitudes[bin].item<double>();
  if (is_signed(op) && uniform01(rng) <= 0.5) step.magnitude = -step.magnitude;
  return step;
}

}  // namespace

std::string to_string(AutoAugmentKind kind) {
  switch (kind) {
    case AutoAugmentKind::kNone: return "none";
    case AutoAugmentKind::kRandAugment: return "randaugment";
    case AutoAugmentKind::kTrivialAugment: return "trivialaugment";
    case AutoAugmentKind::kAutoAugment: return "autoaugment";
  }
  TORCH_CHECK(false, "unknown AutoAugmentKind ", static_cast<int>(kind));
}

AutoAugmentKind parse_auto_augment(const std::string& text) {
  for (auto kind : {AutoAugmentKind::kNone, AutoAugmentKind::kRandAugment, AutoAugmentKind::kTrivialAugment,
                    AutoAugmentKind::kAutoAugment}) {
    if (text == to_string(kind)) return kind;
  }
  TORCH_CHECK(false, "unknown automatic augmentation '", text,
              "': expected none, randaugment, trivialaugment or autoaugment");
}

std::vector<AugmentStep> sample_auto_augment(AutoAugmentKind kind, int64_t height, int64_t width,
                                             std::mt19937_64& rng) {
  std::vector<AugmentStep> steps;
  const auto ops = static_cast<int64_t>(kRandomOps.size());
  switch (kind) {
    case AutoAugmentKind::kNone: break;
    case AutoAugmentKind::kRandAugment:
      for (int64_t i = 0; i < kRandAugmentOps; ++i) {
        Op op = kRandomOps[static_cast<size_t>(random_index(ops, rng))];
        steps.push_back(draw_step(op, kStandardSpace, kWideBins, kRandAugmentMagnitude, height, width, rng));
      }
      break;
    case AutoAugmentKind::kTrivialAugment: {
      Op op = kRandomOps[static_cast<size_t>(random_index(ops, rng))];
      steps.push_back(draw_step(op, kWideSpace, kWideBins, kRandomBin, height, width, rng));
      break;
    }
    case AutoAugmentKind::kAutoAugment: {
      const auto& policy = kImageNetPolicy[static_cast<size_t>(random_index(kImageNetPolicy.size(), rng))];
      for (const PolicyStep& step : policy) {
        // torchvision applies a step when rand() <= probability.
        if (!(uniform01(rng) <= step.probability)) continue;
        const int64_t bin = step.bin < 0 ? 0 : step.bin;
        steps.push_back(draw_step(step.op, kStandardSpace, kAutoAugmentBins, bin, height, width, rng));
      }
      break;
    }
  }
  return steps;
}

torch::Tensor auto_augment(const torch::Tensor& image, AutoAugmentKind kind, std::mt19937_64& rng) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.scalar_type() == torch::kUInt8,
              "auto_augment(", to_string(kind), "): expected a uint8 image [C, H, W] with C = 1 or 3, got ",
              image.scalar_type(), " ", image.sizes());
  torch::Tensor out = image;
  for (const AugmentStep& step : sample_auto_augment(kind, image.size(1), image.size(2), rng)) {
    out = apply_augment_op(out, step.op, step.magnitude);
  }
  return out;
}

std::optional<ErasedRect> sample_random_erasing(int64_t height, int64_t width, const RandomErasingOptions& options,
                                                std::mt19937_64& rng) {
  TORCH_CHECK(options.probability() >= 0 && options.probability() <= 1,
              "RandomErasing: probability must be in [0, 1], got ", options.probability());
  TORCH_CHECK(options.min_scale() >= 0 && options.min_scale() <= options.max_scale() && options.max_scale() <= 1,
              "RandomErasing: scale must satisfy 0 <= min <= max <= 1, got ", options.min_scale(), "..",
              options.max_scale());
  TORCH_CHECK(options.min_ratio() > 0 && options.min_ratio() <= options.max_ratio(),
              "RandomErasing: ratio must satisfy 0 < min <= max, got ", options.min_ratio(), "..",
              options.max_ratio());
  if (uniform01(rng) >= options.probability()) return std::nullopt;
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_min = std::log(options.min_ratio());
  const double log_max = std::log(options.max_ratio());
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double erase_area =
        area * (options.min_scale() + (options.max_scale() - options.min_scale()) * uniform01(rng));
    const double aspect = std::exp(log_min + (log_max - log_min) * uniform01(rng));
    // Python's round(): half to even.
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(erase_area * aspect)));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(erase_area / aspect)));
    if (!(h < height && w < width)) continue;
    ErasedRect rect;
    rect.height = h;
    rect.width = w;
    rect.top = random_index(height - h + 1, rng);
    rect.left = random_index(width - w + 1, rng);
    return rect;
  }
  return std::nullopt;
}

std::optional<ErasedRect> random_erase_(torch::Tensor image, const RandomErasingOptions& options,
                                        std::mt19937_64& rng) {
  TORCH_CHECK(image.dim() == 3 && image.is_floating_point(), "random_erase_: expected a float image [C, H, W], got ",
              image.scalar_type(), " ", image.sizes());
  auto rect = sample_random_erasing(image.size(1), image.size(2), options, rng);
  if (rect) {
    image.slice(1, rect->top, rect->top + rect->height).slice(2, rect->left, rect->left + rect->width).fill_(
        options.value());
  }
  return rect;
}

}  // namespace splitshare::data
