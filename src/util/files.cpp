#include <splitshare/util/files.h>

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace splitshare::util {
namespace {

std::string reason(int error) {
  std::string text = std::strerror(error);
  if (error == ENOSPC || error == EFBIG || error == EDQUOT) text += " (disk full or file size limit)";
  return text;
}

// Writes all of `bytes` to `fd`; returns 0 or the errno of the failure.
int write_all(int fd, const std::string& bytes) {
  const char* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return ENOSPC;
    data += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

void sync_folder_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  const int fd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, "could not write ", path, ": cannot create ", temporary, ": ", reason(errno));
  int error = write_all(fd, bytes);
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && std::rename(temporary.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    std::remove(temporary.c_str());
    TORCH_CHECK(false, "could not write ", path, ": ", reason(error), "; the previous version of the file is kept");
  }
  sync_folder_of(path);
}

void append_to_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, "could not open ", path, " for appending: ", reason(errno));
  int error = write_all(fd, text);
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  TORCH_CHECK(error == 0, "could not append to ", path, ": ", reason(error));
}

void check_not_an_input(const std::string& output, const std::vector<std::string>& inputs, const std::string& what) {
  struct stat out {};
  if (::stat(output.c_str(), &out) != 0) return;
  for (const auto& input : inputs) {
    struct stat in {};
    if (::stat(input.c_str(), &in) != 0) continue;
    TORCH_CHECK(in.st_dev != out.st_dev || in.st_ino != out.st_ino, what, " ", output, " is the input ", input,
                "; writing it would destroy that input: choose another file name");
  }
}

StreamedFile::StreamedFile(const std::string& path, const std::string& what) : path_(path), what_(what) {
  const auto temporary = path + ".tmp";
  file_ = std::fopen(temporary.c_str(), "wb");
  if (!file_) {
    const int error = errno;
    const auto parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    const bool no_folder = !parent.empty() && !std::filesystem::is_directory(parent, ec);
    TORCH_CHECK(false, what, " ", path, ": cannot create the file: ", reason(error),
                no_folder ? " (the folder " + parent.string() + " does not exist)" : std::string());
  }
}

StreamedFile::~StreamedFile() {
  if (!file_) return;
  std::fclose(file_);
  std::remove((path_ + ".tmp").c_str());
}

void StreamedFile::write(const std::string& text) {
  TORCH_CHECK(file_, what_, " ", path_, ": written after it was committed");
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) {
    TORCH_CHECK(false, what_, " ", path_, ": writing failed: ", reason(errno), "; ", path_, " was not changed");
  }
}

void StreamedFile::commit() {
  TORCH_CHECK(file_, what_, " ", path_, ": committed twice");
  int error = std::fflush(file_) != 0 ? errno : 0;
  if (error == 0 && ::fsync(fileno(file_)) != 0) error = errno;
  if (std::fclose(file_) != 0 && error == 0) error = errno;
  file_ = nullptr;
  const auto temporary = path_ + ".tmp";
  if (error == 0 && std::rename(temporary.c_str(), path_.c_str()) != 0) error = errno;
  if (error != 0) {
    std::remove(temporary.c_str());
    TORCH_CHECK(false, what_, " ", path_, ": writing failed: ", reason(error), "; ", path_, " was not changed");
  }
  sync_folder_of(path_);
}

void check_output_folder(const std::string& dir, int64_t min_free_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TORCH_CHECK(!ec && std::filesystem::is_directory(dir), "output folder ", dir, " cannot be created: ",
              ec ? ec.message() : "a file of that name exists");
  TORCH_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0, "output folder ", dir, " is not writable: ",
              std::strerror(errno));
  struct statvfs fs {};
  TORCH_CHECK(::statvfs(dir.c_str(), &fs) == 0, "output folder ", dir, ": cannot query free space: ",
              std::strerror(errno));
  const auto free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
  TORCH_CHECK(free_bytes >= min_free_bytes, "output folder ", dir, " has only ", free_bytes / (1 << 20),
              " MiB free; checkpoints of this model need about ", (min_free_bytes + (1 << 20) - 1) / (1 << 20),
              " MiB (free some space or choose another --out)");
}

void read_file_range(const std::string& path, int64_t offset, int64_t size, std::vector<uint8_t>& out,
                     const std::string& what) {
  TORCH_CHECK(offset >= 0 && size >= 0, "cannot read ", what, " of ", path, ": offset ", offset, ", size ", size);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TORCH_CHECK(fd >= 0, "cannot open ", path, " to read ", what, ": ", std::strerror(errno));
  out.resize(static_cast<size_t>(size));
  int64_t done = 0;
  while (done < size) {
    const auto n = ::pread(fd, out.data() + done, static_cast<size_t>(size - done), static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string reason = n < 0 ? std::strerror(errno) : "the file ends first";
      ::close(fd);
      TORCH_CHECK(false, "cannot read ", what, " of ", path, " (", size, " bytes at offset ", offset, "): ", reason);
    }
    done += n;
  }
  ::close(fd);
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "cannot open ", what, " ", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TORCH_CHECK(!in.bad(), "error reading ", what, " ", path);
  return bytes;
}

}  // namespace splitshare::util
