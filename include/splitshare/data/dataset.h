#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace splitshare::data {

/// Which part of a dataset to read.
enum class Split { kTrain, kTest };

/// An in-memory labelled image set.
struct TensorDataset {
  /// uint8 [N, C, H, W].
  torch::Tensor images;
  /// int64 [N], values in [0, classes.size()).
  torch::Tensor labels;
  /// Class names, index = label.
  std::vector<std::string> classes;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

/// How photos are resized before the crop.
enum class ResizeMode {
  /// Shorter side to the size, aspect ratio kept (torchvision's Resize(int)).
  kShorterSide,
  /// The whole image to size x size, aspect ratio not kept (the paper's "resized to 256 x 256").
  kSquare,
};

/// "shorter", "square".
std::string to_string(ResizeMode mode);
/// The inverse of to_string; throws naming the text.
ResizeMode parse_resize_mode(const std::string& text);

/// How photo folders are augmented and evaluated.
enum class PhotoRecipe {
  /// The paper's (Section 4): training resizes to 256 x 256, takes a random 224 x 224 crop
  /// and flips; evaluation resizes to 256 x 256 and takes the centre 224 x 224.
  kPaper,
  /// torchvision's ImageNet recipe: RandomResizedCrop(224) + flip; evaluation resizes the
  /// shorter side to 256 and takes the centre 224 x 224.
  kTorchvision,
};

/// "paper", "torchvision".
std::string to_string(PhotoRecipe recipe);
PhotoRecipe parse_photo_recipe(const std::string& text);

/// The preprocessing a model expects; stored in checkpoint metadata so `predict`
/// can apply it to new images.
struct Preprocess {
  int64_t channels = 3;
  /// How `resize` applies: shorter side (torchvision) or the whole image to a square (the paper).
  ResizeMode resize_mode = ResizeMode::kShorterSide;
  /// Resized to this (per resize_mode) before cropping (evaluation); nullopt = no resize.
  std::optional<int64_t> resize;
  /// Centre crop (evaluation) / random-resized-crop (training) size; nullopt = none.
  std::optional<int64_t> crop;
  /// Side of the square images the model was trained on when there is no resize and
  /// crop (28 for Fashion-MNIST, 32 for CIFAR): `predict` resizes a whole new image to
  /// size x size. nullopt = not recorded (photos use resize + crop instead).
  std::optional<int64_t> size;
  /// Per-channel mean and std on the [0, 1] scale.
  std::vector<double> mean;
  std::vector<double> std;
};

}  // namespace splitshare::data
