#include <splitshare/run/folder.h>

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace splitshare::run {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLockName = ".lock";

std::vector<std::string> sorted_entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string local_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  localtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, format, &parts);
  return text;
}

std::string host_name() {
  char name[256] = "";
  ::gethostname(name, sizeof name - 1);
  return name;
}

// "DIR is in use by COMMAND (pid P on host H)": the holder as its lock file records it.
std::string holder_of(const std::string& lock_path) {
  std::ifstream in(lock_path);
  std::string line;
  std::getline(in, line);
  return line.empty() ? "another process" : line;
}

}  // namespace

bool holds_results(const std::string& dir) {
  for (const char* name : {"checkpoint.pt", "best.pt", "metrics.jsonl", "summary.json", "compare.json", "gated.pt",
                           "select.json", "gradcam.json", "pack.json", "dataset.json"}) {
    std::error_code error;
    if (fs::exists(fs::path(dir) / name, error)) return true;
  }
  return false;
}

FolderClaim::FolderClaim(const std::string& dir, const std::string& command, Existing existing,
                         const std::string& choices)
    : dir_(dir) {
  TORCH_CHECK(!dir.empty(), command, ": no output folder given");
  std::error_code error;
  TORCH_CHECK(!fs::exists(dir, error) || fs::is_directory(dir, error), "output folder ", dir,
              " is a file, not a folder; choose another --out");
  created_ = !fs::exists(dir, error);
  fs::create_directories(dir, error);
  TORCH_CHECK(!error, "cannot create the output folder ", dir, ": ", error.message());
  before_ = sorted_entries(dir);
  lock(command);
  had_results_ = holds_results(dir);
  if (had_results_ && existing == Existing::kRefuse) {
    release();
    TORCH_CHECK(false, "output folder ", dir, " already holds a run (its checkpoint, metrics or summary); nothing "
                "was changed. ", choices);
  }
  if (had_results_ && existing == Existing::kMoveAside) {
    auto aside = dir + ".old-" + local_time("%Y%m%d-%H%M%S");
    for (int n = 2; fs::exists(aside, error); ++n) aside = dir + ".old-" + local_time("%Y%m%d-%H%M%S") + "-" +
                                                          std::to_string(n);
    fs::rename(dir, aside, error);
    release();  // the lock went with the old folder; the new one gets its own
    TORCH_CHECK(!error, "cannot move the run in ", dir, " aside to ", aside, ": ", error.message());
    moved_to_ = aside;
    fs::create_directories(dir, error);
    TORCH_CHECK(!error, "cannot create the output folder ", dir, ": ", error.message());
    before_.clear();
    lock(command);
  }
}

void FolderClaim::lock(const std::string& command) {
  const auto path = dir_ + "/" + kLockName;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  TORCH_CHECK(fd_ >= 0, "cannot create the lock ", path, " of the output folder: ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int reason = errno;
    ::close(fd_);
    fd_ = -1;
    TORCH_CHECK(reason == EWOULDBLOCK, "cannot lock ", path, ": ", std::strerror(reason));
    TORCH_CHECK(false, "output folder ", dir_, " is in use by ", holder_of(path), " (its lock: ", path,
                "); wait for it to finish or choose another --out");
  }
  const auto holder = command + " (pid " + std::to_string(::getpid()) + " on host " + host_name() + ")\n";
  // Without this note the lock still holds; only the message to a second writer is poorer.
  if (::ftruncate(fd_, 0) == 0) {
    const auto written = ::pwrite(fd_, holder.data(), holder.size(), 0);
    static_cast<void>(written);
  }
}

void FolderClaim::release() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
}

namespace {

// Results anywhere below `dir` (compare keeps its runs in sub-folders).
bool holds_results_below(const std::string& dir) {
  if (holds_results(dir)) return true;
  std::error_code error;
  for (fs::recursive_directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    if (it->is_directory(error) && holds_results(it->path().string())) return true;
  }
  return false;
}

}  // namespace

FolderClaim::~FolderClaim() {
  const bool abandoned = !holds_results_below(dir_);
  if (abandoned) {
    // What the failed command added goes; what was there before stays.
    for (const auto& name : sorted_entries(dir_)) {
      if (name == kLockName || std::binary_search(before_.begin(), before_.end(), name)) continue;
      std::error_code error;
      fs::remove_all(fs::path(dir_) / name, error);
    }
  }
  release();
  std::error_code error;
  // The lock file is the claim's own unless an earlier command left it.
  const bool own_lock = !std::binary_search(before_.begin(), before_.end(), kLockName);
  if (abandoned && own_lock) fs::remove(fs::path(dir_) / kLockName, error);
  if (abandoned && (created_ || !moved_to_.empty()) && sorted_entries(dir_).empty()) {
    fs::remove(dir_, error);
    if (!moved_to_.empty()) fs::rename(moved_to_, dir_, error);
  }
}

std::string fresh_folder(const std::string& base) {
  const auto stem = base + "-" + local_time("%Y-%m-%d") + "-";
  for (int n = 1;; ++n) {
    std::error_code error;
    if (!fs::exists(stem + std::to_string(n), error)) return stem + std::to_string(n);
  }
}

}  // namespace splitshare::run
