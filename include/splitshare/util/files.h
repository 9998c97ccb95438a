#pragma once

#include <cstdint>
#include <string>

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

/// Appends `text` to `path` (created when missing) and flushes it to disk; throws naming
/// the file when the write fails (e.g. the disk is full).
void append_to_file(const std::string& path, const std::string& text);

/// Checks that `dir` exists or can be created, is writable and has at least
/// `min_free_bytes` free; throws with a message that names the folder otherwise.
void check_output_folder(const std::string& dir, int64_t min_free_bytes);

}  // namespace splitshare::util
