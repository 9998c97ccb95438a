#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace splitshare::data {

/// A regular file stored in a tar archive: its full name and where its bytes are.
struct TarMember {
  std::string name;
  /// Offset of the first data byte in the archive file, and the data's length.
  int64_t offset = 0;
  int64_t size = 0;
};

/// The regular files of a tar archive, in archive order, read from its headers only.
struct TarListing {
  std::vector<TarMember> members;
  /// Empty when the archive was read to its end; otherwise why listing stopped (a header
  /// whose checksum is wrong, a member cut short by the end of the file, a malformed pax
  /// record), naming the archive, the offset and the last good member. `members` then
  /// holds the members before that point.
  std::string problem;
};

/// Reads `size` bytes at `offset` of an archive into `out`; false when the file ends first.
using ReadAt = std::function<bool(int64_t offset, size_t size, char* out)>;

/// Lists the archive `name` of `file_size` bytes through `read_at`: POSIX ustar and pax
/// (extended `path` and `size` records; global headers ignored), GNU tar (long names, base-256
/// sizes) and v7 headers. Directories, links and devices are not members. Reads the headers
/// (and pax / long-name records, at most 1 MiB each), never the members' data. Our own reader
/// because an index for random access needs each member's data offset, which archive
/// libraries do not report.
TarListing list_tar(const ReadAt& read_at, int64_t file_size, const std::string& name);

/// list_tar on a file; throws naming the path when it cannot be opened.
TarListing list_tar_file(const std::string& path);

}  // namespace splitshare::data
