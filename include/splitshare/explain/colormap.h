#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>

namespace splitshare::explain {

/// The jet colormap as OpenCV's COLORMAP_JET and the Grad-CAM paper draw it:
/// 0 -> dark blue (0, 0, 128), 0.5 -> green, 1 -> dark red (128, 0, 0).
/// Values outside [0, 1] are clamped.
std::array<uint8_t, 3> jet(double value);

/// Maps float values [H, W] in [0, 1] to uint8 RGB [3, H, W] with jet().
torch::Tensor apply_jet(const torch::Tensor& values);

/// Blends a heatmap over an image: uint8 image [1 or 3, H, W] and a map [H, W] in
/// [0, 1] -> uint8 RGB [3, H, W] = image_weight * image + (1 - image_weight) * jet(map)
/// (pytorch-grad-cam's show_cam_on_image with its default weight 0.5). Grey images are
/// replicated to RGB.
torch::Tensor overlay_heatmap(const torch::Tensor& image, const torch::Tensor& map, double image_weight = 0.5);

}  // namespace splitshare::explain
