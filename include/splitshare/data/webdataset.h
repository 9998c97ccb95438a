#pragma once

#include <splitshare/data/datasets.h>
#include <splitshare/data/image_folder.h>

#include <string>
#include <vector>

namespace splitshare::data {

/// The shard files a `wds:` location names, in order: a folder (its `*.tar` files, sorted by
/// name), one tar file, or a file name with one brace range of numbers
/// (`DIR/train-{000000..000099}.tar`, zero-padded to the first number's width). Throws naming
/// the location when it names no shard or a shard of the range is missing.
std::vector<std::string> expand_shards(const std::string& location);

/// The shards of a `wds:` location by split: file names starting with `val` are the validation
/// shards, the others the training shards.
struct ShardSet {
  /// The location's folder: where dataset.json is.
  std::string root;
  /// expand_shards(location), and the same split in two.
  std::vector<std::string> all, train, val;
};

/// shard_set for `location`; throws naming it when it names only validation shards.
ShardSet shard_set(const std::string& location);

/// The file beside the shards that describes them (written by `splitshare pack`; optional for
/// shards written by other tools): {"classes": [names in label order], ...}.
inline constexpr const char* kDatasetFileName = "dataset.json";

/// The class names (label order) of ROOT/dataset.json; empty when ROOT has none. Throws naming
/// the file when it is not JSON or has no non-empty "classes" list of non-empty names.
std::vector<std::string> recorded_classes(const std::string& root);

/// What a shard set holds, sample by sample.
struct ShardIndex {
  /// The samples with an image and a label: paths are SHARD/MEMBER, members say where the
  /// image's bytes are (ImageFolderIndex::members); root is the shards' folder.
  ImageFolderIndex index;
  /// Samples left out (no image member, no or unreadable `.cls`, a label outside the classes,
  /// members after a corrupt or cut-short header), and the first few reasons, naming shard
  /// and member.
  int64_t skipped = 0;
  std::vector<std::string> skipped_reports;
};

/// Indexes WebDataset shards (POSIX tar files): members are grouped into samples by key (the
/// member name up to the first '.' of its file name) as consecutive members, the way the
/// `webdataset` package does. A sample's image is its member with an image extension (`jpg`,
/// `jpeg`, `png`, `webp`, `bmp`, `ppm`, `pgm`, `pbm`, `pnm`), its label the decimal integer in its
/// `cls` member. `classes` names the labels (label = position); empty: labels must be 0..K-1 and
/// are named "0", "1", .... With `strict`, the first sample that would be skipped throws instead,
/// naming the shard and member.
ShardIndex index_shards(const std::vector<std::string>& shards, const std::string& root,
                        std::vector<std::string> classes, bool strict);

/// Opens `wds:LOCATION` (see expand_shards) as a DataBundle through the photo pipeline, every
/// recipe option as for an image folder. Shards whose names start with `val` are the validation
/// set and the others the training set; without validation shards, the training samples are
/// split per class by options.val_split (or options.val_files), as for a single image folder.
/// Class names come from LOCATION's folder's dataset.json when there is one.
DataBundle open_webdataset(const std::string& location, const DataOptions& options);

}  // namespace splitshare::data
