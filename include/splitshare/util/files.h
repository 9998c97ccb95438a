#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace splitshare::util {

/// Replaces `path` with `bytes` atomically: writes `path`.tmp, flushes it to disk
/// (fsync), renames it over `path` and syncs the folder, so a crash or `kill -9` at any
/// moment leaves either the old or the new file, never a torn one. On failure (disk full,
/// file size limit, permissions) the temporary file is removed, `path` is untouched, and
/// the error names the file and the reason.
void write_file_atomic(const std::string& path, const std::string& bytes);

/// The whole of `path` as bytes; throws naming the file (as "`what` PATH") when it cannot be
/// opened or read.
std::string read_file(const std::string& path, const std::string& what = "file");

/// `size` bytes at `offset` of `path` into `out` (resized to `size`); throws naming the file
/// and `what` (e.g. "member KEY.jpg") when it cannot be opened or ends before offset + size.
void read_file_range(const std::string& path, int64_t offset, int64_t size, std::vector<uint8_t>& out,
                     const std::string& what);

/// Appends `text` to `path` (created when missing) and flushes it to disk; throws naming
/// the file when the write fails (e.g. the disk is full).
void append_to_file(const std::string& path, const std::string& text);

/// Refuses (naming `what`, e.g. "--dump-inputs") to write `output` when it is the same file as
/// one of `inputs`: same device and inode, so symlinks, hard links and `..` are seen through.
/// An output that does not exist yet cannot be an input.
void check_not_an_input(const std::string& output, const std::vector<std::string>& inputs, const std::string& what);

/// A file written as a stream and published whole: the text goes to PATH.tmp, commit() flushes
/// it to disk and renames it over PATH. Destroyed without commit() (an error, a stop request),
/// the temporary file is removed, so PATH is the old file or the complete new one, and no .tmp
/// is left behind (only kill -9 can leave one). Errors name PATH, the user's name, and why.
class StreamedFile {
 public:
  /// `what` names the file in messages (e.g. "--output").
  StreamedFile(const std::string& path, const std::string& what);
  ~StreamedFile();
  StreamedFile(const StreamedFile&) = delete;
  StreamedFile& operator=(const StreamedFile&) = delete;

  void write(const std::string& text);
  void commit();

 private:
  std::string path_, what_;
  std::FILE* file_ = nullptr;
};

/// Checks that `dir` exists or can be created, is writable and has at least
/// `min_free_bytes` free; throws with a message that names the folder otherwise.
void check_output_folder(const std::string& dir, int64_t min_free_bytes);

}  // namespace splitshare::util
