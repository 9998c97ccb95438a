#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/data/loader.h>
#include <splitshare/explain/gradcam.h>
#include <splitshare/nn/classifier.h>

#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::explain {

/// How Grad-CAM pictures are drawn.
///
/// ```
/// auto grid = render_cam_grid(display, cams, classes, labels, FigureOptions().min_size(160));
/// ```
struct FigureOptions {
  /// Images smaller than this (longer side, pixels) are enlarged by the smallest integer
  /// factor that reaches it (nearest neighbour for the image, bilinear for the map), so
  /// that 28x28 inputs stay legible.
  TORCH_ARG(int64_t, min_size) = 128;
  /// Weight of the image in the blend (the heatmap gets 1 - image_weight).
  TORCH_ARG(double, image_weight) = 0.5;
};

/// Undoes the normalisation of images [N, C, H, W] (mean/std per channel, [0, 1]
/// scale) -> uint8 [N, C, H, W].
torch::Tensor denormalize(const torch::Tensor& images, const std::vector<double>& mean,
                          const std::vector<double>& std);

/// The integer enlargement factor FigureOptions::min_size asks for an H x W image.
int64_t display_scale(int64_t height, int64_t width, const FigureOptions& options);

/// One overlay: uint8 image [C, H, W] and a raw map [h, w] -> uint8 RGB [3, H*f, W*f]
/// (f = display_scale): the map upsampled to the (enlarged) input size, min-max
/// scaled, coloured with jet and blended over the image.
torch::Tensor cam_overlay(const torch::Tensor& image, const torch::Tensor& map, const FigureOptions& options = {});

/// Column titles of the figure: "input", "whole model", then one per head ("split 1
/// ch 0-511" for SSM, "head 1" for k-FC).
std::vector<std::string> cam_column_titles(const HeadCams& cams);

/// The figure of paper Figure 2: one row per image; columns input, whole model, and
/// each head's map (split j over its own channels). Under the input: the true class
/// (when `labels` int64 [N] is defined) and the model's prediction; under each map: the
/// explained class and the probability the whole model / that head gives it.
/// display: uint8 [N, C, H, W]; returns uint8 RGB [3, height, width].
torch::Tensor render_cam_grid(const torch::Tensor& display, const HeadCams& cams,
                              const std::vector<std::string>& classes, const torch::Tensor& labels = {},
                              const FigureOptions& options = {});

/// The Grad-CAM figure of the first `count` samples of `stream` (normalised batches,
/// e.g. DataBundle::val), explaining their true labels; the stream is reset.
torch::Tensor validation_grid(nn::ClassifierImpl& model, data::BatchStream& stream,
                              const data::Preprocess& preprocess, const std::vector<std::string>& classes,
                              int64_t count = 4, CamMethod method = CamMethod::kGradCam,
                              const FigureOptions& options = {});

}  // namespace splitshare::explain
