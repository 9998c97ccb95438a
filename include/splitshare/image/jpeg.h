#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace splitshare::data {

/// Encodes interleaved uint8 pixels (row-major, `channels` = 1 grey or 3 RGB samples per pixel,
/// rows of width * channels bytes) as baseline JPEG bytes with libjpeg-turbo at `quality`
/// (1..100) and optimised Huffman tables; colour is subsampled 4:2:0 below quality 90 and not
/// at all from 90 (fine detail of small images keeps its colour). Deterministic: the same
/// pixels and quality give the same bytes.
std::string encode_jpeg(const uint8_t* pixels, int64_t width, int64_t height, int64_t channels, int64_t quality);

/// encode_jpeg for a uint8 image [C, H, W] (C = 1 or 3).
std::string encode_jpeg(const torch::Tensor& image, int64_t quality);

}  // namespace splitshare::data
