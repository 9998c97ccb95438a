#include <splitshare/data/fashion_mnist.h>

#include <splitshare/data/idx.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

// `dir/stem`, or `dir/stem.gz` when only the compressed file exists.
std::string find_idx_file(const std::string& dir, const std::string& stem) {
  const fs::path plain = fs::path(dir) / stem;
  if (fs::is_regular_file(plain)) return plain.string();
  const fs::path gz = fs::path(dir) / (stem + ".gz");
  TORCH_CHECK(fs::is_regular_file(gz), "Cannot find ", stem, " or ", stem, ".gz in ", dir,
              fs::is_directory(dir) ? "" : " (no such directory)");
  return gz.string();
}

}  // namespace

std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

std::vector<std::string> mnist_classes() {
  std::vector<std::string> names;
  for (int digit = 0; digit < 10; ++digit) names.push_back(std::to_string(digit));
  return names;
}

TensorDataset read_mnist_idx(const std::string& dir, Split split, std::vector<std::string> classes) {
  TORCH_CHECK(!classes.empty(), "read_mnist_idx(", dir, "): no class names given");
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");

  TensorDataset dataset;
  dataset.images = read_idx_images(images_path);
  dataset.labels = read_idx_labels(labels_path);
  TORCH_CHECK(dataset.images.size(0) == dataset.labels.size(0), "Image and label counts differ: ",
              images_path, " holds ", dataset.images.size(0), " images but ", labels_path, " holds ",
              dataset.labels.size(0), " labels");

  const int64_t num_classes = static_cast<int64_t>(classes.size());
  const auto* labels = dataset.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < dataset.labels.size(0); ++i) {
    TORCH_CHECK(labels[i] < num_classes, "Label file ", labels_path, ": label ", labels[i],
                " of sample ", i, " is out of range (", num_classes, " classes)");
  }
  dataset.classes = std::move(classes);
  return dataset;
}

TensorDataset read_fashion_mnist(const std::string& dir, Split split) {
  return read_mnist_idx(dir, split, fashion_mnist_classes());
}

}  // namespace splitshare::data
