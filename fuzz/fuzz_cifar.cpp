#include "fuzz_target.h"

#include <splitshare/data/cifar.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

// First byte: bit 0 chooses CIFAR-100 over CIFAR-10; bit 1 adds a class-name file made
// of the next (second byte) bytes. The rest is the test batch. The readers take a
// folder, so the input is written to a scratch folder first.
namespace splitshare::fuzz {
namespace {

const std::filesystem::path& scratch_dir() {
  // One folder per process, reused by every input (libFuzzer calls the target
  // millions of times) and removed at exit.
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "splitshare-fuzz-cifar-XXXXXX").string();
    require(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(pattern);
  }();
  return dir;
}

void write(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  require(out.good(), "cannot write", path.string());
}

}  // namespace

void cifar(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const bool cifar100 = data[0] & 1;
  const bool names = data[0] & 2;
  size_t offset = 2;
  const auto& dir = scratch_dir();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) std::filesystem::remove(entry.path(), ec);
  if (names) {
    const size_t length = std::min<size_t>(data[1], size - offset);
    write(dir / (cifar100 ? "fine_label_names.txt" : "batches.meta.txt"), data + offset, length);
    offset += length;
  }
  write(dir / (cifar100 ? "test.bin" : "test_batch.bin"), data + offset, size - offset);
  data::TensorDataset set;
  try {
    set = cifar100 ? data::read_cifar100(dir.string(), data::Split::kTest)
                   : data::read_cifar10(dir.string(), data::Split::kTest);
  } catch (const c10::Error& e) {
    require_named(e, dir.string());
    return;
  }
  const int64_t classes = cifar100 ? 100 : 10;
  require(set.images.size(0) == set.labels.size(0) && set.images.size(1) == 3, "accepted CIFAR has the wrong shape");
  require(set.labels.min().item<int64_t>() >= 0 && set.labels.max().item<int64_t>() < classes, "label range");
  require(static_cast<int64_t>(set.classes.size()) == classes, "class-name count");
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(cifar)
