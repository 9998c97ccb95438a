#pragma once

// Writing WebDataset shards (POSIX tar files) for `splitshare pack`. Internal to the library.

#include <cstdint>
#include <memory>
#include <string>

namespace splitshare::data {

/// One tar shard being written through libarchive (pax-restricted format: plain ustar
/// headers, pax records only for names over 100 bytes). The archive goes to PATH.tmp and
/// becomes PATH on finish(), after an fsync, so a shard is whole or absent. Headers carry
/// mode 0644, owner 0, and modification time 0, so the same members give the same bytes
/// (what makes a resumed pack equal an uninterrupted one).
class ShardWriter {
 public:
  /// Starts PATH.tmp (replacing a left-over one); throws naming the path when it cannot.
  explicit ShardWriter(std::string path);
  /// Abandons an unfinished shard: PATH.tmp is removed.
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  /// Appends a regular file `name` holding `bytes`; throws naming the shard and member.
  void add(const std::string& name, const std::string& bytes);
  /// The archive's size so far: headers, data and padding (exact for names under 100 bytes),
  /// without the end-of-archive blocks.
  int64_t bytes() const { return bytes_; }
  /// What add(name, bytes of `size`) adds to bytes().
  static int64_t member_bytes(size_t name_length, size_t size);
  /// Ends the archive, syncs it and renames PATH.tmp to PATH.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  int64_t bytes_ = 0;
};

}  // namespace splitshare::data
