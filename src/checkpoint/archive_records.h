#pragma once

// A guard for torch archives read from users' files. Internal to the checkpoint area.

#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <string>

namespace splitshare::train {

/// Why the archive `reader` opened from `path` (`file_size` bytes) cannot be read safely, or "" when
/// it can: libtorch allocates a record's declared size before reading it, so an edited archive
/// that declares gigabytes in a small file would exhaust memory. torch.save and torch.jit.save
/// store records uncompressed, so no record of a real archive is larger than its file.
inline std::string oversized_record(caffe2::serialize::PyTorchStreamReader& reader, uint64_t file_size) {
  for (const auto& name : reader.getAllRecords()) {
    const auto size = reader.getRecordSize(name);
    if (size > file_size) {
      return "record " + name + " declares " + std::to_string(size) + " bytes in a file of " +
             std::to_string(file_size) + " (a corrupt or edited archive)";
    }
  }
  return "";
}

}  // namespace splitshare::train
