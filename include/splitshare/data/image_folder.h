#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/data/image_io.h>
#include <splitshare/data/loader.h>
#include <splitshare/data/source.h>
#include <splitshare/data/transforms.h>

#include <memory>
#include <string>
#include <vector>

namespace splitshare::data {

/// The files of an ImageNet-layout folder: ROOT/<class>/<image>, images also in
/// nested sub-folders of a class folder.
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

  int64_t size() const { return static_cast<int64_t>(paths.size()); }
};

/// Lists an image folder. Class folders are the sub-folders of `root` whose names do
/// not start with '.'; images are files ending in .jpg, .jpeg or .png in any case
/// (other files are counted in ignored_files). Empty class folders are kept (a
/// class without images); a root without any image is an error naming the root.
ImageFolderIndex list_image_folder(const std::string& root);

/// Keeps `limit` samples spread evenly over the index (every class keeps its share,
/// unlike the first `limit` paths, which would be one class); 0 or >= size keeps all.
ImageFolderIndex subsample(const ImageFolderIndex& index, int64_t limit);

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
  /// Normalisation, [0, 1] scale, one value per channel (ImageNet's by default).
  TORCH_ARG(std::vector<double>, mean) = {kImageNetMean.begin(), kImageNetMean.end()};
  TORCH_ARG(std::vector<double>, std) = {kImageNetStd.begin(), kImageNetStd.end()};
  /// DCT-domain scaling: JPEGs are decoded at 1/2, 1/4 or 1/8 size when the decoded
  /// image is still at least this many times the resized one (see min_decode_scale);
  /// 0 = always decode at full size. ImageNet-sized photos (~500x375) are never
  /// scaled at the default of 2 (a 224 crop would need a source >= 896 pixels).
  TORCH_ARG(double, dct_reducing_gap) = 2.0;
  /// Images with more pixels than this are refused (counted as unreadable).
  TORCH_ARG(int64_t, max_pixels) = kDefaultMaxPixels;
  /// Batches decoded ahead of the consumer (workers > 0).
  TORCH_ARG(int64_t, prefetch_batches) = 2;
  /// Unreadable files reported on stderr one by one; later ones are only counted.
  TORCH_ARG(int64_t, report_limit) = 10;
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
///
/// Determinism: the per-epoch shuffle comes from (seed, epoch) and every sample's
/// crop and flip from (seed, epoch, sample index), so batches are identical for
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

}  // namespace splitshare::data
