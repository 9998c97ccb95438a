#include <splitshare/data/image_folder.h>
#include <splitshare/data/image_folder_stream.h>
#include <splitshare/util/files.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <utility>

namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

std::string join(const std::vector<std::string>& names, size_t limit = 8) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < names.size() && i < limit; ++i) out << (i ? ", " : "") << names[i];
  if (names.size() > limit) out << ", ... (" << names.size() << " in all)";
  out << "]";
  return out.str();
}

// Image files under one class folder, in torchvision's order: sorted(os.walk(...))
// visits folders by path, each folder's files sorted by name.
std::vector<std::string> list_class_images(const fs::path& folder, int64_t& ignored) {
  std::vector<std::pair<std::string, std::string>> files;  // (folder, file name)
  std::error_code error;
  fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink, error);
  TORCH_CHECK(!error, "cannot list class folder ", folder.string(), ": ", error.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
    TORCH_CHECK(!error, "cannot list class folder ", folder.string(), ": ", error.message());
    std::error_code kind_error;
    if (!it->is_regular_file(kind_error)) continue;
    if (has_image_extension(it->path().string())) {
      files.emplace_back(it->path().parent_path().string(), it->path().filename().string());
    } else {
      ++ignored;
    }
  }
  TORCH_CHECK(!error, "cannot list class folder ", folder.string(), ": ", error.message());
  std::sort(files.begin(), files.end());
  std::vector<std::string> paths;
  paths.reserve(files.size());
  for (auto& [dir, name] : files) paths.push_back((fs::path(dir) / name).string());
  return paths;
}

// A class with no training images could never be predicted; torchvision's ImageFolder
// refuses such folders too ("Found no valid file for the classes ...").
void check_no_empty_classes(const ImageFolderIndex& index) {
  std::vector<int64_t> counts(index.classes.size(), 0);
  for (int64_t label : index.labels) ++counts[static_cast<size_t>(label)];
  std::vector<std::string> empty;
  for (size_t c = 0; c < counts.size(); ++c) {
    if (counts[c] == 0) empty.push_back(index.classes[c]);
  }
  TORCH_CHECK(empty.empty(), "training folder ", index.root,
              " has class folders without images (.jpg/.png/.bmp/.ppm/.pgm/.webp): ",
              join(empty), " (add images or remove the folders)");
}

// The files at `rows` (int64 positions) of `index`, in that order.
ImageFolderIndex rows_of(const ImageFolderIndex& index, const torch::Tensor& rows) {
  ImageFolderIndex out;
  out.root = index.root;
  out.classes = index.classes;
  out.ignored_files = index.ignored_files;
  out.shards = index.shards;
  const auto* row = rows.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows.numel(); ++i) out.add_from(index, static_cast<size_t>(row[i]));
  return out;
}

ImageInfo sample_info(const ImageFolderIndex& index, size_t i) {
  if (index.members.empty()) return read_image_info(index.paths[i]);
  std::vector<uint8_t> bytes;
  read_sample_bytes(index, static_cast<int64_t>(i), bytes);
  return ImageDecoder().open(bytes.data(), bytes.size(), index.paths[i]);
}

torch::Tensor decode_sample(const ImageFolderIndex& index, size_t i) {
  if (index.members.empty()) return decode_image(index.paths[i]);
  std::vector<uint8_t> bytes;
  read_sample_bytes(index, static_cast<int64_t>(i), bytes);
  return decode_image(bytes.data(), bytes.size(), index.paths[i]);
}

}  // namespace

void ImageFolderIndex::add_from(const ImageFolderIndex& other, size_t i) {
  paths.push_back(other.paths[i]);
  labels.push_back(other.labels[i]);
  if (!other.members.empty()) members.push_back(other.members[i]);
}

void read_sample_bytes(const ImageFolderIndex& index, int64_t i, std::vector<uint8_t>& buffer) {
  const auto at = static_cast<size_t>(i);
  if (index.members.empty()) return read_file_bytes(index.paths[at], buffer);
  const auto& member = index.members[at];
  util::read_file_range(index.shards[static_cast<size_t>(member.shard)], member.offset, member.size, buffer,
                        "member " + index.paths[at]);
}

ImageFolderIndex list_image_folder(const std::string& root) {
  std::error_code error;
  TORCH_CHECK(fs::is_directory(root, error), "image folder ", root, " is not a directory",
              error ? " (" + error.message() + ")" : std::string());
  ImageFolderIndex index;
  index.root = root;
  for (fs::directory_iterator it(root, error); !error && it != fs::directory_iterator(); it.increment(error)) {
    std::error_code kind_error;
    const std::string name = it->path().filename().string();
    if (it->is_directory(kind_error) && !name.empty() && name[0] != '.') index.classes.push_back(name);
  }
  TORCH_CHECK(!error, "cannot list image folder ", root, ": ", error.message());
  std::sort(index.classes.begin(), index.classes.end());
  for (size_t label = 0; label < index.classes.size(); ++label) {
    for (auto& path : list_class_images(fs::path(root) / index.classes[label], index.ignored_files)) {
      index.paths.push_back(std::move(path));
      index.labels.push_back(static_cast<int64_t>(label));
    }
  }
  TORCH_CHECK(!index.paths.empty(), "image folder ", root,
              " has no images (.jpg/.png/.bmp/.ppm/.pgm/.webp) in class sub-folders (",
              index.classes.size(), " class folders; expected ROOT/<class>/<image>)");
  return index;
}

ImageFolderIndex subsample(const ImageFolderIndex& index, int64_t limit) {
  TORCH_CHECK(limit >= 0, "subsample: limit must be >= 0, got ", limit);
  if (limit == 0 || limit >= index.size()) return index;
  // Evenly spread: position i * size / limit, rounded down.
  return rows_of(index, torch::div(torch::arange(limit, torch::kInt64) * index.size(), limit, "floor"));
}

bool has_small_images(const ImageFolderIndex& index, int64_t max_side) {
  if (max_side <= 0 || index.paths.empty()) return false;
  std::vector<bool> seen(index.classes.size(), false);
  for (size_t i = 0; i < index.paths.size(); ++i) {
    const auto label = static_cast<size_t>(index.labels[i]);
    if (seen[label]) continue;
    seen[label] = true;
    const auto info = sample_info(index, i);
    if (info.width > max_side || info.height > max_side) return false;
  }
  return true;
}

TensorDataset decode_image_folder(const ImageFolderIndex& index) {
  TORCH_CHECK(!index.paths.empty(), "image folder ", index.root, ": no images to decode");
  const auto first = decode_sample(index, 0);
  auto images = torch::empty({index.size(), 3, first.size(1), first.size(2)}, torch::kUInt8);
  for (int64_t i = 0; i < index.size(); ++i) {
    const auto& path = index.paths[static_cast<size_t>(i)];
    const auto image = i == 0 ? first : decode_sample(index, static_cast<size_t>(i));
    TORCH_CHECK(image.sizes() == first.sizes(), "image folder ", index.root, ": ", path, " is ", image.size(2), "x",
                image.size(1), " but ", index.paths[0], " is ", first.size(2), "x", first.size(1),
                "; a folder of small images is read into memory and needs one size (resize the images, or pass "
                "--image-size N to read it through the photo pipeline)");
    images[i].copy_(image);
  }
  return TensorDataset{images, torch::tensor(index.labels, torch::kInt64), index.classes};
}

int64_t eval_resize(const ImageFolderOptions& options) {
  if (options.resize() > 0) return options.resize();
  return static_cast<int64_t>(static_cast<double>(options.image_size()) / 0.875);
}

Preprocess image_folder_preprocess(const ImageFolderOptions& options) {
  Preprocess preprocess;
  preprocess.channels = options.channels();
  preprocess.resize = eval_resize(options);
  preprocess.resize_mode = options.recipe() == PhotoRecipe::kPaper ? ResizeMode::kSquare : ResizeMode::kShorterSide;
  preprocess.crop = options.image_size();
  preprocess.mean = options.mean();
  preprocess.std = options.std();
  return preprocess;
}

namespace {

// The index in the class map's order and names, when one is given.
ImageFolderIndex mapped(const ImageFolderIndex& index, const DataOptions& options) {
  if (options.class_map().empty()) return index;
  return apply_class_map(index, read_class_map(options.class_map()), options.class_map());
}

// Per-sample weights of the balanced sampler: 1 / (samples of the sample's class).
std::vector<double> balanced_weights(const ImageFolderIndex& index) {
  const auto counts = class_counts(index);
  std::vector<double> weights;
  weights.reserve(index.labels.size());
  for (int64_t label : index.labels) weights.push_back(1.0 / static_cast<double>(counts[static_cast<size_t>(label)]));
  return weights;
}

// The photo pipeline's decoding and augmentation settings for `options`.
ImageFolderOptions photo_folder_options(const DataOptions& options) {
  ImageFolderOptions folder;
  folder.image_size(options.image_size())
      .recipe(options.photo_recipe())
      .auto_augment(options.auto_augment())
      .random_erase(options.random_erase());
  if (!options.mean().empty() || !options.std().empty()) {
    TORCH_CHECK(options.mean().size() == 3 && options.std().size() == 3, "image folders are RGB: the normalisation "
                "given has ", options.mean().size(), " means and ", options.std().size(), " stds, expected 3 each");
    folder.mean(options.mean()).std(options.std());
  }
  TORCH_CHECK(options.crop_scale().size() == 2 && options.crop_ratio().size() == 2,
              "crop scale and ratio take two values each (MIN,MAX)");
  folder.random_crop(folder.random_crop()
                         .min_scale(options.crop_scale()[0])
                         .max_scale(options.crop_scale()[1])
                         .min_ratio(options.crop_ratio()[0])
                         .max_ratio(options.crop_ratio()[1]));
  return folder;
}

// The photo pipeline's walk: training shuffles, drops the last batch and augments; evaluation
// reads every sample once, in order, as float.
LoaderOptions photo_loader_options(const DataOptions& options, bool train) {
  TORCH_CHECK(options.shuffle_buffer() == 0 || !options.balanced_sampler(), "a balanced sampler draws samples at "
              "random from the whole set: it needs shuffling by index, not streaming shards (--shuffle shards)");
  LoaderOptions loader;
  loader.batch_size(options.batch_size())
      .shuffle(true)
      .drop_last(true)
      .augment(options.augment())
      .seed(options.seed())
      .workers(options.workers())
      .rank(options.rank())
      .world_size(options.world_size())
      .strict(options.strict())
      .channels_last(options.channels_last())
      .uint8_images(options.uint8_train_images())
      .pin_memory(options.pin_memory())
      .shuffle_buffer(options.shuffle_buffer());
  if (!train) {
    loader.batch_size(options.eval_batch_size()).shuffle(false).drop_last(false).augment(false).uint8_images(false);
  }
  return loader;
}

DataBundle image_folder_bundle(ImageFolderIndex train, ImageFolderIndex val, const DataOptions& options);

}  // namespace

DataBundle open_image_folder_data(const std::string& train_root, const std::string& val_root,
                                  const DataOptions& options) {
  ImageFolderIndex train = list_image_folder(train_root);
  check_no_empty_classes(train);
  ImageFolderIndex val = list_image_folder(val_root);
  if (train.classes != val.classes) {
    auto mismatch = std::mismatch(train.classes.begin(), train.classes.end(), val.classes.begin(), val.classes.end());
    std::string train_class = mismatch.first == train.classes.end() ? "(none)" : *mismatch.first;
    std::string val_class = mismatch.second == val.classes.end() ? "(none)" : *mismatch.second;
    TORCH_CHECK(false, "validation folder ", val_root, " has classes ", join(val.classes), " but training folder ",
                train_root, " has ", join(train.classes), " (first difference at position ",
                mismatch.first - train.classes.begin(), ": '", train_class, "' vs '", val_class, "')");
  }
  return open_image_index_data(std::move(train), std::move(val), options);
}

DataBundle open_image_index_data(ImageFolderIndex train, ImageFolderIndex val, const DataOptions& options) {
  return image_folder_bundle(mapped(train, options), mapped(val, options), options);
}

DataBundle open_image_folder_split(const std::string& root, const DataOptions& options) {
  ImageFolderIndex all = list_image_folder(root);
  check_no_empty_classes(all);
  return open_image_index_split(std::move(all), options, "imagefolder:TRAIN,VAL");
}

DataBundle open_image_folder_stream(const std::string& root, const DataOptions& options, bool train) {
  ImageFolderIndex index = list_image_folder(root);
  check_no_empty_classes(index);
  index = subsample(mapped(index, options), train ? options.limit_train() : options.limit_val());
  LoaderOptions loader = photo_loader_options(options, train);
  if (train && options.balanced_sampler()) loader.sample_weights(balanced_weights(index));
  const auto folder = photo_folder_options(options);
  DataBundle bundle;
  bundle.classes = index.classes;
  bundle.class_counts = class_counts(index);
  bundle.preprocess = image_folder_preprocess(folder);
  if (train) bundle.train_files = index.paths;
  (train ? bundle.train : bundle.val) = make_image_folder_loader(std::move(index), folder, loader);
  return bundle;
}

DataBundle open_image_index_split(ImageFolderIndex all, const DataOptions& options, const std::string& alternative) {
  auto split = options.val_files().empty() ? split_image_folder(all, options.val_split(), options.seed())
                                           : split_image_folder(all, options.val_files());
  TORCH_CHECK(!split.val.paths.empty(), all.root, ": the validation split is empty (every class has fewer than 2 "
              "images); add images or give ", alternative);
  auto bundle = image_folder_bundle(mapped(split.train, options), mapped(split.val, options), options);
  bundle.val_files = std::move(split.val_files);
  return bundle;
}

namespace {

// A folder of small images, decoded once and read like CIFAR (DataOptions::small_image_side).
DataBundle small_image_bundle(const ImageFolderIndex& train, const ImageFolderIndex& val, const torch::Tensor& holdout,
                              const DataOptions& options) {
  TORCH_CHECK(options.auto_augment() == AutoAugmentKind::kNone && options.random_erase() == 0, "image folder ",
              train.root, " holds small images (at most ", options.small_image_side(),
              " px), read into memory like CIFAR: automatic augmentation and random erasing belong to the photo "
              "pipeline; pass --image-size N to use it");
  TORCH_CHECK(options.shuffle_buffer() == 0, "image data ", train.root, " holds small images (at most ",
              options.small_image_side(), " px), decoded once into memory and shuffled there: streaming shards "
              "(--shuffle shards) belongs to the photo pipeline; pass --image-size N to use it");
  auto bundle = in_memory_bundle(decode_image_folder(train), decode_image_folder(val), holdout, options, true);
  bundle.train_files = train.paths;
  return bundle;
}

DataBundle image_folder_bundle(ImageFolderIndex train, ImageFolderIndex val, const DataOptions& options) {
  train = subsample(train, options.limit_train());
  val = subsample(val, options.limit_val());
  torch::Tensor holdout;
  if (options.train_holdout() > 0) {
    holdout = stratified_holdout(torch::tensor(train.labels, torch::kInt64), options.train_holdout(),
                                 options.train_holdout_seed());
    train = rows_of(train, other_rows(train.size(), holdout));
  }
  if (has_small_images(train, options.small_image_side())) return small_image_bundle(train, val, holdout, options);

  const ImageFolderOptions folder = photo_folder_options(options);
  LoaderOptions train_loader = photo_loader_options(options, true);
  const LoaderOptions val_loader = photo_loader_options(options, false);
  if (options.train_in_order()) train_loader.shuffle(false).drop_last(false).augment(false);
  LoaderOptions balanced = train_loader;
  if (options.balanced_sampler() && !options.train_in_order()) balanced.sample_weights(balanced_weights(train));
  DataBundle bundle;
  bundle.classes = train.classes;
  bundle.class_counts = class_counts(train);
  bundle.train_files = train.paths;
  bundle.holdout = holdout;
  bundle.preprocess = image_folder_preprocess(folder);
  bundle.small_images = false;
  bundle.train = make_image_folder_loader(std::move(train), folder, balanced);
  bundle.val = make_image_folder_loader(std::move(val), folder, val_loader);
  return bundle;
}

}  // namespace

}  // namespace splitshare::data
