#pragma once

// One sample of `splitshare pack`: read, resized when asked, encoded. Internal to the library.

#include "resample.h"

#include <splitshare/data/dataset.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/data/pack.h>
#include <splitshare/image/decode.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace splitshare::data {

/// Where a split's samples come from: an image index (files or shard members) or images in memory.
struct PackSource {
  std::string split;
  /// One of the two is set.
  const ImageFolderIndex* index = nullptr;
  const TensorDataset* memory = nullptr;
  /// For names of in-memory samples: "cifar10 train".
  std::string memory_name;

  int64_t size() const { return index != nullptr ? index->size() : memory->size(); }
  int64_t label(int64_t row) const;
  /// The sample's name as the user knows it: its path relative to the root, or "NAME #ROW".
  std::string name(int64_t row) const;
};

/// A sample ready for a shard, or why it was skipped.
struct PackedSample {
  /// Empty when packed; otherwise the problem, naming the sample.
  std::string error;
  std::string extension;
  std::string image;
  int64_t width = 0;
  int64_t height = 0;
  int64_t source_width = 0;
  int64_t source_height = 0;
};

/// The packed size of a width x height image under options.max_side() / shorter_side(): the
/// same size when neither asks for less, else scaled down (aspect kept, each side rounded,
/// at least 1).
std::pair<int64_t, int64_t> packed_size(int64_t width, int64_t height, const PackOptions& options);

/// Reads, resizes and encodes samples; keeps a decoder, a resampler and buffers: one per thread.
class SampleEncoder {
 public:
  explicit SampleEncoder(const PackOptions& options) : options_(options) {}
  /// Never throws for a bad image: the error is returned in PackedSample::error.
  PackedSample encode(const PackSource& source, int64_t row);

 private:
  PackedSample encode_file(const PackSource& source, int64_t row);
  PackedSample encode_memory(const PackSource& source, int64_t row);
  std::string encode_pixels(const uint8_t* pixels, int64_t width, int64_t height, int64_t channels, bool lossy_source,
                            std::string& extension) const;

  PackOptions options_;
  ImageDecoder decoder_;
  Resampler resampler_;
  std::vector<uint8_t> bytes_;
  std::vector<uint8_t> pixels_;
};

}  // namespace splitshare::data
