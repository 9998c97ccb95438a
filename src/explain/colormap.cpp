#include <splitshare/explain/colormap.h>

#include <algorithm>
#include <cmath>

namespace splitshare::explain {
namespace {

// Each channel of jet is a clamped triangle 1.5 - |4v - centre| (OpenCV / MATLAB jet).
torch::Tensor jet_channel(const torch::Tensor& v, double centre) {
  return (1.5 - (v * 4.0 - centre).abs()).clamp(0.0, 1.0);
}

double jet_channel(double v, double centre) { return std::clamp(1.5 - std::abs(4.0 * v - centre), 0.0, 1.0); }

}  // namespace

std::array<uint8_t, 3> jet(double value) {
  const double v = std::isnan(value) ? 0.0 : std::clamp(value, 0.0, 1.0);
  auto level = [](double x) { return static_cast<uint8_t>(std::floor(255.0 * x + 0.5)); };
  return {level(jet_channel(v, 3.0)), level(jet_channel(v, 2.0)), level(jet_channel(v, 1.0))};
}

torch::Tensor apply_jet(const torch::Tensor& values) {
  TORCH_CHECK(values.dim() == 2, "apply_jet: expected values [H, W], got ", values.sizes());
  // Double precision and round-half-up, so that every pixel equals jet() of its value.
  const auto v = values.to(torch::kFloat64).nan_to_num(0.0).clamp(0.0, 1.0);
  auto rgb = torch::stack({jet_channel(v, 3.0), jet_channel(v, 2.0), jet_channel(v, 1.0)});
  return (rgb * 255.0 + 0.5).floor().to(torch::kUInt8);
}

torch::Tensor overlay_heatmap(const torch::Tensor& image, const torch::Tensor& map, double image_weight) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.scalar_type() == torch::kUInt8,
              "overlay_heatmap: expected a uint8 image [1 or 3, H, W], got ", image.sizes(), " ", image.scalar_type());
  TORCH_CHECK(map.dim() == 2 && map.size(0) == image.size(1) && map.size(1) == image.size(2),
              "overlay_heatmap: map ", map.sizes(), " does not match the image ", image.sizes());
  TORCH_CHECK(image_weight >= 0.0 && image_weight <= 1.0, "overlay_heatmap: image_weight must be in [0, 1], got ",
              image_weight);
  const auto rgb = image.expand({3, image.size(1), image.size(2)}).to(torch::kFloat32);
  const auto heat = apply_jet(map).to(torch::kFloat32);
  return (rgb * image_weight + heat * (1.0 - image_weight)).round().clamp(0, 255).to(torch::kUInt8);
}

}  // namespace splitshare::explain
