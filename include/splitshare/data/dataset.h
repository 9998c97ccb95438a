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

/// The preprocessing a model expects; stored in checkpoint metadata so `predict`
/// can apply it to new images.
struct Preprocess {
  int64_t channels = 3;
  /// Shorter side is resized to this before cropping (evaluation); nullopt = no resize.
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
