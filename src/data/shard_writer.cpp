#include "shard_writer.h"

#include <torch/torch.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace splitshare::data {

struct ShardWriter::Impl {
  archive* writer = nullptr;
  archive_entry* entry = nullptr;
  bool finished = false;

  ~Impl() {
    if (entry != nullptr) archive_entry_free(entry);
    if (writer != nullptr) archive_write_free(writer);
  }
};

namespace {

int64_t padded(int64_t size) { return (size + 511) / 512 * 512; }

}  // namespace

ShardWriter::ShardWriter(std::string path) : impl_(std::make_unique<Impl>()), path_(std::move(path)) {
  const auto tmp = path_ + ".tmp";
  std::error_code ignored;
  std::filesystem::remove(tmp, ignored);
  impl_->writer = archive_write_new();
  impl_->entry = archive_entry_new();
  TORCH_CHECK(impl_->writer != nullptr && impl_->entry != nullptr, "cannot start the shard ", path_, ": out of memory");
  archive_write_set_format_pax_restricted(impl_->writer);
  // No block padding beyond the format's own: the file ends after the end-of-archive blocks.
  archive_write_set_bytes_in_last_block(impl_->writer, 1);
  TORCH_CHECK(archive_write_open_filename(impl_->writer, tmp.c_str()) == ARCHIVE_OK, "cannot create the shard ", tmp,
              ": ", archive_error_string(impl_->writer));
}

ShardWriter::~ShardWriter() {
  if (impl_ && !impl_->finished) {
    archive_write_close(impl_->writer);
    std::error_code ignored;
    std::filesystem::remove(path_ + ".tmp", ignored);
  }
}

void ShardWriter::add(const std::string& name, const std::string& bytes) {
  auto* entry = impl_->entry;
  archive_entry_clear(entry);
  archive_entry_set_pathname(entry, name.c_str());
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_entry_set_perm(entry, 0644);
  archive_entry_set_size(entry, static_cast<la_int64_t>(bytes.size()));
  archive_entry_set_mtime(entry, 0, 0);
  TORCH_CHECK(archive_write_header(impl_->writer, entry) == ARCHIVE_OK, "cannot write member ", name, " of ",
              path_, ".tmp: ", archive_error_string(impl_->writer));
  const auto written = archive_write_data(impl_->writer, bytes.data(), bytes.size());
  TORCH_CHECK(written == static_cast<la_ssize_t>(bytes.size()), "cannot write member ", name, " of ", path_,
              ".tmp: ", archive_error_string(impl_->writer));
  bytes_ += member_bytes(name.size(), bytes.size());
}

int64_t ShardWriter::member_bytes(size_t name_length, size_t size) {
  // A ustar header is one 512-byte block; a name over 99 bytes adds a pax record (about two more).
  return (name_length > 99 ? 1536 : 512) + padded(static_cast<int64_t>(size));
}

void ShardWriter::finish() {
  const auto tmp = path_ + ".tmp";
  TORCH_CHECK(archive_write_close(impl_->writer) == ARCHIVE_OK, "cannot finish the shard ", tmp, ": ",
              archive_error_string(impl_->writer));
  impl_->finished = true;
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  TORCH_CHECK(synced, "cannot sync the shard ", tmp, " to disk");
  std::error_code error;
  std::filesystem::rename(tmp, path_, error);
  TORCH_CHECK(!error, "cannot rename ", tmp, " to ", path_, ": ", error.message());
}

}  // namespace splitshare::data
