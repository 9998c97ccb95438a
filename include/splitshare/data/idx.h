#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <string>

namespace splitshare::data {

/// Reads an idx3 image file (MNIST layout: big-endian magic 0x00000803, count,
/// rows, columns, then count*rows*columns bytes), plain or gzip-compressed
/// (detected by the 1f 8b magic bytes, not by the file name).
/// Returns uint8 [N, 1, H, W]. Throws (c10::Error) naming the file when it cannot
/// be opened, has the wrong magic, is truncated or has zero/absurd dimensions.
torch::Tensor read_idx_images(const std::string& path);

/// Reads an idx1 label file (magic 0x00000801, count, then count bytes), plain or
/// gzip-compressed. Returns int64 [N]. Throws like `read_idx_images`.
torch::Tensor read_idx_labels(const std::string& path);

/// read_idx_images for the bytes of a file already in memory (plain or gzip);
/// `name` is used in error messages. A header that declares more than `max_bytes`
/// of (uncompressed) file is refused before anything that size is allocated.
torch::Tensor parse_idx_images(const std::string& file_bytes, const std::string& name,
                               uint64_t max_bytes = std::numeric_limits<uint64_t>::max());

/// read_idx_labels for the bytes of a file already in memory (plain or gzip).
torch::Tensor parse_idx_labels(const std::string& file_bytes, const std::string& name,
                               uint64_t max_bytes = std::numeric_limits<uint64_t>::max());

}  // namespace splitshare::data
