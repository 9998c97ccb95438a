#pragma once

#include <splitshare/data/augment.h>
#include <splitshare/data/dataset.h>
#include <splitshare/image/decode.h>
#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>
#include <splitshare/data/transforms.h>

#include <memory>
#include <string>
#include <vector>

namespace splitshare::data {

/// Where a sample's image is inside a tar shard (a WebDataset sample, see webdataset.h).
struct ArchiveMember {
  /// Position in ImageFolderIndex::shards.
  int64_t shard = 0;
  /// The image member's data: offset in the shard file and length.
  int64_t offset = 0;
  int64_t size = 0;
};

/// The images of a data set and their labels: the files of an ImageNet-layout folder
/// (ROOT/<class>/<image>, images also in nested sub-folders of a class folder), or the
/// image members of WebDataset shards (then `members` says where each one is).
struct ImageFolderIndex {
  std::string root;
  /// Class folder names sorted by byte value (Python's sorted()); label = position.
  std::vector<std::string> classes;
  /// Image paths grouped by class; within a class sorted by (folder, file name),
  /// the order of torchvision's ImageFolder.
  std::vector<std::string> paths;
  /// Label of each path.
  std::vector<int64_t> labels;
  /// Files skipped while listing because of their extension.
  int64_t ignored_files = 0;
  /// Shards: the tar files the members are in (empty for a folder).
  std::vector<std::string> shards;
  /// Per path, where its bytes are in `shards` (empty for a folder: the paths are files; for
  /// shards a path is SHARD/MEMBER, a name for messages and split lists).
  std::vector<ArchiveMember> members;

  int64_t size() const { return static_cast<int64_t>(paths.size()); }
  /// Appends sample `i` of `other` (same root, classes and shards) to this index.
  void add_from(const ImageFolderIndex& other, size_t i);
};

/// The bytes of sample `i` of `index` (its file, or its member of a shard) into `buffer`;
/// throws naming the file or member when they cannot be read.
void read_sample_bytes(const ImageFolderIndex& index, int64_t i, std::vector<uint8_t>& buffer);

/// Lists an image folder. Class folders are the sub-folders of `root` whose names do
/// not start with '.'; images are the files has_image_extension accepts (.jpg, .jpeg,
/// .png, .bmp, .ppm, .pgm, .pbm, .pnm, .webp, in any case; other files are counted in
/// ignored_files). Empty class folders are kept (a class without images); a root without
/// any image is an error naming the root.
ImageFolderIndex list_image_folder(const std::string& root);

/// Keeps `limit` samples spread evenly over the index (every class keeps its share,
/// unlike the first `limit` paths, which would be one class); 0 or >= size keeps all.
ImageFolderIndex subsample(const ImageFolderIndex& index, int64_t limit);

/// True when the first image of every class of `index` is at most `max_side` pixels on each
/// side (read from the headers): a folder that DataOptions::small_image_side reads like CIFAR.
bool has_small_images(const ImageFolderIndex& index, int64_t max_side);

/// Every image of `index` decoded to RGB: images uint8 [N, 3, H, W], labels int64 [N], the
/// index's classes. Throws naming the first file whose size differs from the first file's
/// (or that cannot be read).
TensorDataset decode_image_folder(const ImageFolderIndex& index);

/// A class-per-folder root divided into training and validation files.
struct ImageFolderSplit {
  ImageFolderIndex train;
  ImageFolderIndex val;
  /// The validation files, relative to the root ("class/file.jpg"), in index order: what a
  /// run records (val_files.txt) so that resuming and evaluating see the same split.
  std::vector<std::string> val_files;
};

/// Splits `index` per class: round(fraction * n) of each class's n files (at least 1 when
/// n >= 2, never all of them) go to validation, chosen by a shuffle seeded from `seed` and
/// the class name, so adding a class does not move the others' files. fraction in (0, 1).
ImageFolderSplit split_image_folder(const ImageFolderIndex& index, double fraction, uint64_t seed);

/// The split whose validation files are `val_files` (relative to the root, as
/// ImageFolderSplit::val_files); a listed file missing from the index is an error naming it.
ImageFolderSplit split_image_folder(const ImageFolderIndex& index, const std::vector<std::string>& val_files);

/// The file in a run folder listing its validation files (one relative path per line).
inline constexpr const char* kValFilesName = "val_files.txt";
/// Writes / reads such a list (atomically; reading errors name the file).
void write_val_files(const std::vector<std::string>& files, const std::string& path);
std::vector<std::string> read_val_files(const std::string& path);

/// A class map: the class order (label = line number) and display names.
struct ClassMap {
  /// Folder names, in label order.
  std::vector<std::string> folders;
  /// Display names (the folder name unless the line gives one).
  std::vector<std::string> names;
};

/// Reads a class map: one class per line, "FOLDER" or "FOLDER<TAB>NAME"; blank lines and
/// lines starting with '#' are skipped. Errors name the file and line (a folder listed twice,
/// two folders with one name, a tab in a name, an empty folder or name).
ClassMap read_class_map(const std::string& path);

/// `index` relabelled in the map's order with its display names. Every class folder must be
/// in the map and every map entry must be a folder of the index (errors name them).
ImageFolderIndex apply_class_map(const ImageFolderIndex& index, const ClassMap& map, const std::string& source);

/// Samples per class of `index` ([K]).
std::vector<int64_t> class_counts(const ImageFolderIndex& index);

/// How an image-folder loader turns files into tensors.
///
///   auto options = ImageFolderOptions().image_size(160).channels(3);
struct ImageFolderOptions {
  /// Channels of the model: 3 (RGB) or 1 (luma).
  TORCH_ARG(int64_t, channels) = 3;
  /// Training and evaluation crop size.
  TORCH_ARG(int64_t, image_size) = 224;
  /// Resize before the crop (the paper's recipe: the whole image to resize x resize, in
  /// training and evaluation; torchvision's: evaluation resizes the shorter side to it);
  /// 0 = int(image_size / 0.875) (256 for 224).
  TORCH_ARG(int64_t, resize) = 0;
  /// The paper's augmentation and evaluation transform, or torchvision's.
  TORCH_ARG(PhotoRecipe, recipe) = PhotoRecipe::kPaper;
  /// torchvision recipe: the crop's scale and ratio; both recipes: the flip probability.
  TORCH_ARG(RandomResizedCropOptions, random_crop) = {};
  /// Training: torchvision's automatic augmentation on the resized crop, as on a uint8 image
  /// (the crop is rounded to uint8 first, as torchvision's uint8 pipeline would be).
  TORCH_ARG(AutoAugmentKind, auto_augment) = AutoAugmentKind::kNone;
  /// Training: probability of torchvision's RandomErasing (scale 0.02..0.33, ratio 0.3..3.3,
  /// value 0) on the normalised image, after the automatic augmentation; 0 = off.
  TORCH_ARG(double, random_erase) = 0.0;
  /// Normalisation, [0, 1] scale, one value per channel (ImageNet's by default).
  TORCH_ARG(std::vector<double>, mean) = {kImageNetMean.begin(), kImageNetMean.end()};
  TORCH_ARG(std::vector<double>, std) = {kImageNetStd.begin(), kImageNetStd.end()};
  /// DCT-domain scaling: JPEGs are decoded at 1/2, 1/4 or 1/8 size when the decoded
  /// image is still at least this many times the resized one (see min_decode_scale);
  /// 0 = always decode at full size. ImageNet-sized photos (~500x375) are never
  /// scaled at the default of 2 (a 224 crop would need a source >= 896 pixels).
  TORCH_ARG(double, dct_reducing_gap) = 2.0;
  /// Images with more pixels than this are refused (counted as unreadable).
  TORCH_ARG(int64_t, max_pixels) = default_max_pixels();
  /// Batches decoded ahead of the consumer (workers > 0).
  TORCH_ARG(int64_t, prefetch_batches) = 2;
  /// Unreadable files reported on stderr one by one; later ones are only counted.
  TORCH_ARG(int64_t, report_limit) = 10;
  /// Print those reports and the per-epoch count on stderr (off: only skipped_reports()).
  TORCH_ARG(bool, report_to_stderr) = true;
};

/// The resize a loader uses for evaluation: options.resize() or int(image_size / 0.875).
int64_t eval_resize(const ImageFolderOptions& options);

/// The evaluation preprocessing of `options` as stored in checkpoints.
Preprocess image_folder_preprocess(const ImageFolderOptions& options);

/// A BatchStream over an image folder. Worker threads (LoaderOptions::workers;
/// 0 = the calling thread) decode samples straight into the batch tensor
/// (float [B, C, S, S], S = image_size, normalised) with up to prefetch_batches
/// batches in flight.
///
/// Training (augment): with the paper's recipe, resize to eval_resize x eval_resize + a
/// random image_size crop + horizontal flip; with torchvision's, RandomResizedCrop(image_size)
/// + flip. Otherwise (evaluation) resize (the whole image to a square, or the shorter side,
/// per the recipe) to eval_resize + centre crop(image_size). JPEGs are decoded
/// cropped to the pixels the resample reads and, where allowed, DCT-scaled.
/// Training then follows torchvision's order: the crop (+ flip), auto_augment on it as
/// uint8, normalisation, RandomErasing (random_erase). Evaluation never augments.
///
/// Determinism: the per-epoch shuffle comes from (seed, epoch) and every sample's
/// crop, flip, policy and erasing from (seed, epoch, sample index), so batches are identical for
/// any number of workers. Sharding (rank, world_size) takes every world_size-th
/// sample of the shared shuffle; with drop_last all ranks get the same count.
///
/// Unreadable files (missing, empty, not an image, corrupt, truncated, over
/// max_pixels) are dropped from their batch, counted (skipped(), distinct files)
/// and reported on stderr (the first report_limit, then a count per epoch);
/// with LoaderOptions::strict, next() throws naming the first one instead.
class ImageFolderLoader : public BatchStream {
 public:
  ImageFolderLoader(ImageFolderIndex index, ImageFolderOptions options, LoaderOptions loader);
  ~ImageFolderLoader() override;

  int64_t size() const override;
  int64_t batches_per_epoch() const override;
  int64_t batch_size() const override;
  void reset(int64_t epoch) override;
  void reset_at(int64_t epoch, int64_t consumed) override;
  std::optional<Batch> next() override;
  int64_t skipped() const override;

  /// The first report_limit unreadable files, as "reason" messages that name the file.
  std::vector<std::string> skipped_reports() const;
  const ImageFolderIndex& index() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// make_unique<ImageFolderLoader>.
std::unique_ptr<BatchStream> make_image_folder_loader(ImageFolderIndex index, ImageFolderOptions options,
                                                      LoaderOptions loader);

/// Opens an ImageNet-layout pair of folders (one sub-folder per class) as a DataBundle:
/// a shuffled, drop_last training stream (options.photo_recipe's augmentation when
/// options.augment) and a validation stream (resize to image_size / 0.875 +
/// centre crop), both normalised with ImageNet statistics, 3 channels. The
/// validation classes must equal the training classes (an error names both roots).
DataBundle open_image_folder_data(const std::string& train_root, const std::string& val_root,
                                  const DataOptions& options);

/// Opens a single class-per-folder root split into training and validation: by
/// options.val_files() when given, else split_image_folder(root, val_split, seed); otherwise
/// as open_image_folder_data. The bundle's val_files records the split.
DataBundle open_image_folder_split(const std::string& root, const DataOptions& options);

/// The bundle open_image_folder_data makes, for indexes listed already (folders or shards):
/// `val` must have `train`'s classes.
DataBundle open_image_index_data(ImageFolderIndex train, ImageFolderIndex val, const DataOptions& options);

/// The bundle open_image_folder_split makes, for an index listed already; an empty validation
/// split is refused naming `alternative` (how to give a validation set instead).
DataBundle open_image_index_split(ImageFolderIndex all, const DataOptions& options, const std::string& alternative);

}  // namespace splitshare::data
