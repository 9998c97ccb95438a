#pragma once

#include <splitshare/data/augment.h>
#include <splitshare/data/dataset.h>
#include <splitshare/data/loader.h>

#include <memory>
#include <string>
#include <vector>

namespace splitshare::data {

/// What `--data` names. Accepted forms:
///   "fashion-mnist" (Debian's dataset-fashion-mnist, the default),
///   "fashion-mnist:DIR" or "mnist:DIR" (idx files, plain or .gz),
///   "cifar10:DIR", "cifar100:DIR" (the binary versions),
///   "imagefolder:DIR" (DIR/train + DIR/val, or, without DIR/train, DIR/<class>/* split into
///   training and validation by DataOptions::val_split) or "imagefolder:TRAIN,VAL",
///   "wds:LOCATION" (WebDataset tar shards: a folder, a shard, or DIR/train-{000000..000009}.tar;
///   see webdataset.h).
struct DataSpec {
  std::string kind;
  std::string train_path;
  std::string val_path;
  /// "imagefolder:DIR": DIR (a single class-per-folder root when DIR/train does not exist);
  /// "wds:LOCATION": LOCATION.
  std::string root;
};

/// Parses `--data`; throws (TORCH_CHECK) naming the text when it is not one of the forms above.
DataSpec parse_data_spec(const std::string& text);

/// Settings shared by every dataset kind.
struct DataOptions {
  TORCH_ARG(int64_t, batch_size) = kDefaultBatchSize;
  TORCH_ARG(int64_t, eval_batch_size) = 256;
  TORCH_ARG(uint64_t, seed) = 0;
  /// Image decoding threads for image folders (0 = the thread that takes the batches).
  TORCH_ARG(int64_t, workers) = 2;
  TORCH_ARG(int64_t, rank) = 0;
  TORCH_ARG(int64_t, world_size) = 1;
  TORCH_ARG(bool, strict) = false;
  TORCH_ARG(bool, augment) = true;
  /// Photo folders: the paper's augmentation and evaluation transform, or torchvision's
  /// (28/32-px data always pads, crops and flips when augmenting).
  TORCH_ARG(PhotoRecipe, photo_recipe) = PhotoRecipe::kPaper;
  /// Photo folders, training: torchvision's automatic augmentation (RandAugment,
  /// TrivialAugmentWide, AutoAugment) and RandomErasing probability (see ImageFolderOptions).
  TORCH_ARG(AutoAugmentKind, auto_augment) = AutoAugmentKind::kNone;
  TORCH_ARG(double, random_erase) = 0.0;
  /// Photo folders, torchvision recipe: RandomResizedCrop's scale and ratio ranges.
  TORCH_ARG(std::vector<double>, crop_scale) = {0.08, 1.0};
  TORCH_ARG(std::vector<double>, crop_ratio) = {3.0 / 4.0, 4.0 / 3.0};
  /// imagefolder:DIR with one class-per-folder root (no DIR/train): the validation share,
  /// split per class (split_image_folder, seeded by `seed`).
  TORCH_ARG(double, val_split) = 0.1;
  /// The validation files of an earlier split (relative to the root) to use instead of
  /// splitting again: what a run records in val_files.txt. Empty = split.
  TORCH_ARG(std::vector<std::string>, val_files) = {};
  /// Image folders: a class map file (read_class_map) fixing the class order and names.
  TORCH_ARG(std::string, class_map) = "";
  /// Training: draw samples with replacement, each with probability inversely proportional
  /// to its class's size (balanced classes per epoch; deterministic for a seed, sharded).
  TORCH_ARG(bool, balanced_sampler) = false;
  /// wds: training data of photos: > 0 streams the shards through a shuffle buffer of this
  /// many samples (LoaderOptions::shuffle_buffer) instead of permuting every sample by index.
  TORCH_ARG(int64_t, shuffle_buffer) = 0;
  /// Read the training split as evaluation reads the validation split: in order, each sample
  /// once, no batch dropped, no sampler, no augmentation (`select`'s pass over it).
  TORCH_ARG(bool, train_in_order) = false;
  /// > 0: a stratified share of the training split (stratified_holdout of its labels, after
  /// limit_train, with `train_holdout_seed`) is left out of `train` and listed in
  /// DataBundle::holdout: data a head-selection gate (`select`) can train on that the model
  /// never saw. 0 = train on the whole split.
  TORCH_ARG(double, train_holdout) = 0.0;
  TORCH_ARG(uint64_t, train_holdout_seed) = 0;
  TORCH_ARG(bool, channels_last) = false;
  /// The training stream delivers uint8 batches, normalised on the device by images_on
  /// (LoaderOptions::uint8_images): for a GPU.
  TORCH_ARG(bool, uint8_train_images) = false;
  /// Batches in page-locked memory (LoaderOptions::pin_memory): for a GPU.
  TORCH_ARG(bool, pin_memory) = false;
  /// Training crop size for photos (image folders); evaluation resizes to size/0.875 and centre-crops.
  TORCH_ARG(int64_t, image_size) = 224;
  /// An image folder whose images are at most this many pixels on each side (judged from the
  /// first image of every class, headers only) is decoded once into memory and read like CIFAR:
  /// no resize or crop, pad-crop-flip when augmenting, the small-image model by default
  /// (DataBundle::small_images). Every image must then have the first one's size. 0 = always
  /// the photo pipeline (what an explicit image_size or photo recipe asks for).
  TORCH_ARG(int64_t, small_image_side) = 64;
  /// Use only the first N training / validation samples (0 = all): quick runs and tests.
  TORCH_ARG(int64_t, limit_train) = 0;
  TORCH_ARG(int64_t, limit_val) = 0;
  /// Per-channel normalisation ([0, 1] scale) to use instead of the data's own, e.g. a
  /// checkpoint's when evaluating it. Empty = the (limited) training images' statistics, or
  /// ImageNet's for photos.
  TORCH_ARG(std::vector<double>, mean) = {};
  TORCH_ARG(std::vector<double>, std) = {};
};

/// Training and validation streams plus what a model needs to know about the data.
struct DataBundle {
  std::unique_ptr<BatchStream> train;
  std::unique_ptr<BatchStream> val;
  std::vector<std::string> classes;
  /// Evaluation preprocessing (what `predict` applies to a new image).
  Preprocess preprocess;
  /// True for 28x28 / 32x32 data (in-memory kinds, small-image folders): selects the
  /// small-image model by default.
  bool small_images = false;
  /// Training samples per class ([K], before sharding): for class weights.
  std::vector<int64_t> class_counts;
  /// A single-root image folder split: its validation files (relative to the root).
  std::vector<std::string> val_files;
  /// Image folders: the training split's files by dataset index (the paths as listed,
  /// root/class/file); empty for in-memory data, whose dataset index is the position.
  std::vector<std::string> train_files;
  /// With DataOptions::train_holdout: the positions in the whole training split (after
  /// limit_train) left out of `train`, int64, ascending; undefined otherwise.
  torch::Tensor holdout;
};

/// A stratified hold-out: per class, round(fraction x its count) of the positions of
/// `labels` (int64 [N]), drawn with `seed`; the positions chosen, ascending. fraction in (0, 1).
torch::Tensor stratified_holdout(const torch::Tensor& labels, double fraction, uint64_t seed);

/// The positions [0, n) not in `rows` (int64, ascending), int64, ascending.
torch::Tensor other_rows(int64_t n, const torch::Tensor& rows);

/// Opens the dataset `spec` names.
/// For the in-memory kinds (fashion-mnist, mnist, cifar10, cifar100) the training
/// split feeds `train` (shuffled per epoch from `seed`; pad-and-crop with 2 px of
/// padding for 28x28 images and 4 px for 32x32, plus horizontal flips except for
/// mnist digits, when `augment`; drop_last whenever a rank has a full batch) and
/// the test split feeds `val` (dataset order, `eval_batch_size`, sharded without
/// padding: see make_tensor_loader). Both are normalised with the per-channel mean
/// and std of the (limited) training images, or options.mean()/std() when given, which
/// `preprocess` records.
/// "imagefolder" is delegated to open_image_folder_data.
DataBundle open_data(const DataSpec& spec, const DataOptions& options);

/// The in-memory streams of open_data over `train` and `val` (uint8 [N, C, H, W]): normalised
/// with the training images' per-channel statistics (or options.mean()/std()), pad-crop and,
/// with `flip`, horizontal flips when augmenting; `holdout` (may be undefined) is recorded as
/// DataBundle::holdout. small_images is true and preprocess.size is the images' side.
DataBundle in_memory_bundle(TensorDataset train, TensorDataset val, torch::Tensor holdout,
                            const DataOptions& options, bool flip);

/// The photo recipe whose evaluation transform `preprocess` records (square resize: the paper's).
PhotoRecipe photo_recipe_of(const Preprocess& preprocess);

/// `options` with the evaluation a model was trained for: its normalisation, photo recipe
/// (resize mode) and crop size, and no augmentation (what `eval` and `gradcam` open data with).
DataOptions evaluation_options(DataOptions options, const Preprocess& preprocess);

/// Loss weights for imbalanced classes, sklearn's "balanced": N / (K * n_k) for a class of
/// n_k of the N samples (1 for every class when balanced); a class without samples gets 0.
std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts);

/// Reads `classes` non-negative class weights from a text file (numbers separated by
/// whitespace, commas or new lines; '#' starts a comment); errors name the file and the problem.
std::vector<double> read_class_weights(const std::string& path, int64_t classes);

/// Where Debian's dataset-fashion-mnist puts its files.
std::string default_fashion_mnist_dir();

}  // namespace splitshare::data
