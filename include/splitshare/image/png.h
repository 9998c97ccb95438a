#pragma once

#include <torch/torch.h>

#include <string>

namespace splitshare::data {

/// Encodes uint8 [C, H, W] (C = 1 grey or 3 RGB) as PNG bytes (libpng, default compression).
std::string encode_png(const torch::Tensor& image);

/// Writes encode_png(image) to `path`, replacing it atomically (written beside it,
/// then renamed). Throws naming the path when it cannot be written.
void write_png(const std::string& path, const torch::Tensor& image);

}  // namespace splitshare::data
