#pragma once

#include <splitshare/data/dataset.h>

#include <string>
#include <vector>

namespace splitshare::data {

/// The ten Fashion-MNIST class names, index = label ("T-shirt/top" … "Ankle boot").
std::vector<std::string> fashion_mnist_classes();

/// The MNIST digit class names "0" … "9".
std::vector<std::string> mnist_classes();

/// Reads an MNIST-layout idx dataset from `dir`: `train-images-idx3-ubyte` and
/// `train-labels-idx1-ubyte` (Split::kTrain) or the `t10k-` pair (Split::kTest),
/// each plain or with a `.gz` suffix (the plain file wins when both exist).
/// Returns images uint8 [N, 1, H, W], labels int64 [N] with every label
/// < classes.size(), and `classes`. Throws naming the files when a file is missing,
/// the image and label counts differ, or a label is out of range.
///
///   auto test = read_mnist_idx("/data/mnist", Split::kTest, mnist_classes());
TensorDataset read_mnist_idx(const std::string& dir, Split split, std::vector<std::string> classes);

/// Fashion-MNIST (Zalando): `read_mnist_idx` with `fashion_mnist_classes()`.
/// Train: 60000 images, test: 10000 images, uint8 [N, 1, 28, 28].
TensorDataset read_fashion_mnist(const std::string& dir, Split split);

}  // namespace splitshare::data
