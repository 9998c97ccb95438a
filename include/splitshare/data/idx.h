#pragma once

#include <torch/torch.h>

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

}  // namespace splitshare::data
