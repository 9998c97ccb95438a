#pragma once

// Writers for small dataset files in the on-disk formats the data readers accept.

#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support.h"

namespace splitshare::testing {

/// Big-endian 32-bit integer as 4 bytes (idx headers).
inline std::string be32(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16), static_cast<char>(value >> 8),
          static_cast<char>(value)};
}

/// An idx3 image file: magic 0x803, count, rows, cols, then pixel i = (i * 7 + 3) % 256.
inline std::string idx_images_bytes(uint32_t count, uint32_t rows, uint32_t cols, uint32_t magic = 0x803) {
  std::string bytes = be32(magic) + be32(count) + be32(rows) + be32(cols);
  for (uint64_t i = 0; i < uint64_t{count} * rows * cols; ++i) bytes.push_back(static_cast<char>((i * 7 + 3) % 256));
  return bytes;
}

/// An idx1 label file holding `labels`.
inline std::string idx_labels_bytes(const std::vector<uint8_t>& labels, uint32_t magic = 0x801) {
  std::string bytes = be32(magic) + be32(static_cast<uint32_t>(labels.size()));
  for (uint8_t label : labels) bytes.push_back(static_cast<char>(label));
  return bytes;
}

/// Writes `bytes` gzip-compressed with zlib's gz* API.
inline void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << "could not open " << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

/// CIFAR records: `label_bytes` label bytes (the label repeated, coarse = label / 5
/// for CIFAR-100) then 3072 pixels, pixel k of record r = (r + k) % 256.
inline std::string cifar_bytes(const std::vector<uint8_t>& labels, int label_bytes) {
  std::string bytes;
  for (size_t r = 0; r < labels.size(); ++r) {
    if (label_bytes == 2) bytes.push_back(static_cast<char>(labels[r] / 5));
    bytes.push_back(static_cast<char>(labels[r]));
    for (size_t k = 0; k < 3072; ++k) bytes.push_back(static_cast<char>((r + k) % 256));
  }
  return bytes;
}

/// True when `text` contains `part`.
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }


}  // namespace splitshare::testing
