#include <splitshare/data/datasets.h>
#include <splitshare/data/in_memory.h>
#include <splitshare/data/webdataset.h>

#include <splitshare/data/cifar.h>
#include <splitshare/data/fashion_mnist.h>
#include <splitshare/data/image_folder.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAcceptedForms =
    "fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR, cifar100:DIR, imagefolder:DIR, "
    "imagefolder:TRAIN,VAL, wds:DIR, wds:DIR/train-{000000..000009}.tar";
constexpr std::array<const char*, 6> kKinds{"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "wds"};

bool is_known_kind(const std::string& kind) {
  for (const char* known : kKinds) {
    if (kind == known) return true;
  }
  return false;
}

/// Per-channel mean and std of uint8 [N, C, H, W] images on the [0, 1] scale.
struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> std;
};

// Exact statistics from a per-channel histogram of byte values.
ChannelStats channel_stats(const torch::Tensor& images) {
  const torch::Tensor contiguous = images.contiguous();
  const int64_t n = contiguous.size(0), channels = contiguous.size(1);
  const int64_t plane = contiguous.size(2) * contiguous.size(3);
  std::vector<std::array<int64_t, 256>> histogram(static_cast<size_t>(channels));
  for (auto& h : histogram) h.fill(0);
  const uint8_t* data = contiguous.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      const uint8_t* p = data + (i * channels + c) * plane;
      auto& h = histogram[static_cast<size_t>(c)];
      for (int64_t k = 0; k < plane; ++k) ++h[p[k]];
    }
  }
  ChannelStats stats;
  for (const auto& h : histogram) {
    double count = 0, sum = 0, squares = 0;
    for (int v = 0; v < 256; ++v) {
      const double x = v / 255.0;
      count += static_cast<double>(h[static_cast<size_t>(v)]);
      sum += x * static_cast<double>(h[static_cast<size_t>(v)]);
      squares += x * x * static_cast<double>(h[static_cast<size_t>(v)]);
    }
    const double mean = count > 0 ? sum / count : 0.0;
    const double std = count > 0 ? std::sqrt(std::max(0.0, squares / count - mean * mean)) : 0.0;
    stats.mean.push_back(mean);
    // A constant channel has no spread to normalise by; leave it unscaled.
    stats.std.push_back(std > 1e-6 ? std : 1.0);
  }
  return stats;
}

TensorDataset take_first(TensorDataset dataset, int64_t limit) {
  if (limit > 0 && limit < dataset.size()) {
    dataset.images = dataset.images.narrow(0, 0, limit);
    dataset.labels = dataset.labels.narrow(0, 0, limit);
  }
  return dataset;
}


}  // namespace

TensorDataset read_in_memory_split(const DataSpec& spec, Split split) {
  const std::string& dir = split == Split::kTrain ? spec.train_path : spec.val_path;
  TORCH_CHECK(fs::is_directory(dir), "Data directory ", dir, " (", spec.kind, ") does not exist");
  if (spec.kind == "fashion-mnist") return read_fashion_mnist(dir, split);
  if (spec.kind == "mnist") return read_mnist_idx(dir, split, mnist_classes());
  if (spec.kind == "cifar10") return read_cifar10(dir, split);
  TORCH_CHECK(spec.kind == "cifar100", "open_data: unknown data kind '", spec.kind, "'; accepted: ", kAcceptedForms);
  return read_cifar100(dir, split);
}

std::string default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

DataSpec parse_data_spec(const std::string& text) {
  const size_t colon = text.find(':');
  DataSpec spec;
  spec.kind = text.substr(0, colon);
  TORCH_CHECK(is_known_kind(spec.kind), "Unknown data kind '", spec.kind, "' in data spec '", text,
              "'; accepted forms: ", kAcceptedForms);
  if (colon == std::string::npos && spec.kind == "fashion-mnist") {
    spec.train_path = spec.val_path = default_fashion_mnist_dir();
    return spec;
  }
  const std::string path = colon == std::string::npos ? "" : text.substr(colon + 1);
  TORCH_CHECK(!path.empty(), "Data spec '", text, "' names no directory; write ", spec.kind,
              spec.kind == "imagefolder" ? ":DIR or imagefolder:TRAIN,VAL" : ":DIR");
  if (spec.kind == "wds") spec.root = path;
  if (spec.kind != "imagefolder") {
    spec.train_path = spec.val_path = path;
    return spec;
  }
  const size_t comma = path.find(',');
  if (comma == std::string::npos) {
    spec.root = path;
    spec.train_path = (fs::path(path) / "train").string();
    spec.val_path = (fs::path(path) / "val").string();
  } else {
    spec.train_path = path.substr(0, comma);
    spec.val_path = path.substr(comma + 1);
    TORCH_CHECK(!spec.train_path.empty() && !spec.val_path.empty() && spec.val_path.find(',') == std::string::npos,
                "Data spec '", text, "': expected imagefolder:TRAIN,VAL with two non-empty directories");
  }
  return spec;
}

PhotoRecipe photo_recipe_of(const Preprocess& preprocess) {
  return preprocess.resize_mode == ResizeMode::kSquare ? PhotoRecipe::kPaper : PhotoRecipe::kTorchvision;
}

DataOptions evaluation_options(DataOptions options, const Preprocess& preprocess) {
  options.augment(false).mean(preprocess.mean).std(preprocess.std).photo_recipe(photo_recipe_of(preprocess));
  // A model trained through the photo pipeline keeps it, whatever the images' size.
  if (preprocess.crop) options.image_size(*preprocess.crop).small_image_side(0);
  return options;
}

DataBundle open_data(const DataSpec& spec, const DataOptions& options) {
  TORCH_CHECK(options.shuffle_buffer() >= 0, "open_data: shuffle_buffer must be >= 0, got ", options.shuffle_buffer());
  TORCH_CHECK(options.shuffle_buffer() == 0 || spec.kind == "wds", "streaming (--shuffle shards) reads WebDataset "
              "shards front to back; ", spec.kind, " data is read by index (leave --shuffle at index)");
  if (spec.kind == "wds") return open_webdataset(spec.root, options);
  if (spec.kind == "imagefolder") {
    std::error_code error;
    if (!spec.root.empty() && !fs::exists(spec.train_path, error)) return open_image_folder_split(spec.root, options);
    return open_image_folder_data(spec.train_path, spec.val_path, options);
  }
  TORCH_CHECK(options.limit_train() >= 0 && options.limit_val() >= 0, "open_data: limit_train (",
              options.limit_train(), ") and limit_val (", options.limit_val(), ") must be >= 0");
  TORCH_CHECK(options.world_size() > 0, "open_data: world_size is ", options.world_size());

  TensorDataset train = take_first(read_in_memory_split(spec, Split::kTrain), options.limit_train());
  TensorDataset val = take_first(read_in_memory_split(spec, Split::kTest), options.limit_val());
  torch::Tensor holdout;
  if (options.train_holdout() > 0) {
    holdout = stratified_holdout(train.labels, options.train_holdout(), options.train_holdout_seed());
    const auto keep = other_rows(train.size(), holdout);
    train.images = train.images.index_select(0, keep);
    train.labels = train.labels.index_select(0, keep);
  }
  TORCH_CHECK(options.class_map().empty(), "a class map applies to image folders, not to ", spec.kind);
  TORCH_CHECK(options.auto_augment() == AutoAugmentKind::kNone && options.random_erase() == 0,
              "automatic augmentation and random erasing apply to photo folders, not to ", spec.kind);
  // Mirrored digits are different digits.
  return in_memory_bundle(std::move(train), std::move(val), holdout, options, /*flip=*/spec.kind != "mnist");
}

DataBundle in_memory_bundle(TensorDataset train, TensorDataset val, torch::Tensor holdout,
                            const DataOptions& options, bool flip) {
  ChannelStats stats = channel_stats(train.images);
  if (!options.mean().empty() || !options.std().empty()) {
    const auto channels = static_cast<size_t>(train.images.size(1));
    TORCH_CHECK(options.mean().size() == channels && options.std().size() == channels,
                "open_data: the normalisation given has ", options.mean().size(), " means and ", options.std().size(),
                " stds, but the data has ", channels, " channel(s)");
    stats.mean = options.mean();
    stats.std = options.std();
  }

  DataBundle bundle;
  bundle.holdout = holdout;
  bundle.classes = train.classes;
  const auto counts = torch::bincount(train.labels.to(torch::kInt64), {}, static_cast<int64_t>(train.classes.size()));
  bundle.class_counts.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
  std::vector<double> weights;
  if (options.balanced_sampler() && !options.train_in_order()) {
    const auto per_sample = 1.0 / counts.to(torch::kFloat64).index_select(0, train.labels.to(torch::kInt64));
    weights.assign(per_sample.data_ptr<double>(), per_sample.data_ptr<double>() + per_sample.numel());
  }
  bundle.preprocess.channels = train.images.size(1);
  bundle.preprocess.resize = std::nullopt;
  bundle.preprocess.crop = std::nullopt;
  bundle.preprocess.size = train.images.size(2);
  bundle.preprocess.mean = stats.mean;
  bundle.preprocess.std = stats.std;
  bundle.small_images = true;

  // Drop the incomplete last batch only when a rank has at least one full one.
  const int64_t per_rank = (train.size() + options.world_size() - 1) / options.world_size();
  const auto train_options = LoaderOptions()
                                 .batch_size(options.batch_size())
                                 .shuffle(!options.train_in_order())
                                 .drop_last(!options.train_in_order() && per_rank >= options.batch_size())
                                 .augment(options.augment() && !options.train_in_order())
                                 .pad(train.images.size(2) <= 28 ? 2 : 4)
                                 .flip(flip)
                                 .seed(options.seed())
                                 .rank(options.rank())
                                 .world_size(options.world_size())
                                 .channels_last(options.channels_last())
                                 .uint8_images(options.uint8_train_images())
                                 .pin_memory(options.pin_memory())
                                 .sample_weights(weights);
  const auto val_options = LoaderOptions()
                               .batch_size(options.eval_batch_size())
                               .rank(options.rank())
                               .world_size(options.world_size())
                               .channels_last(options.channels_last())
                               .pin_memory(options.pin_memory());
  bundle.train = make_tensor_loader(std::move(train), stats.mean, stats.std, train_options);
  // For a GPU (pinned batches) the next batch is assembled while the step runs.
  if (options.pin_memory()) bundle.train = prefetching(std::move(bundle.train));
  bundle.val = make_tensor_loader(std::move(val), stats.mean, stats.std, val_options);
  return bundle;
}

}  // namespace splitshare::data
