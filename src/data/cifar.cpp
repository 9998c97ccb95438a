#include <splitshare/data/cifar.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChannels = 3;
constexpr int64_t kSide = 32;
constexpr int64_t kImageBytes = kChannels * kSide * kSide;  // R, G, B planes, row-major

/// How one CIFAR variant lays out its binary files.
struct CifarFormat {
  const char* name;
  /// Sub-folder of the archive, accepted when `dir` is its parent.
  const char* subdir;
  /// Label bytes before the pixels of each record.
  int64_t label_bytes;
  /// Which of those bytes is the label we keep.
  int64_t label_offset;
  int64_t num_classes;
  /// Class-name file inside the data folder (one name per line).
  const char* names_file;
};

constexpr CifarFormat kCifar10{"CIFAR-10", "cifar-10-batches-bin", 1, 0, 10, "batches.meta.txt"};
// CIFAR-100 records: coarse label, fine label, pixels. We keep the fine label.
constexpr CifarFormat kCifar100{"CIFAR-100", "cifar-100-binary", 2, 1, 100, "fine_label_names.txt"};

std::vector<std::string> cifar10_default_classes() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

// `dir` when it holds `first_file`, else `dir/subdir` when that holds it.
fs::path resolve_dir(const std::string& dir, const CifarFormat& format, const std::string& first_file) {
  const fs::path direct(dir);
  if (fs::exists(direct / first_file)) return direct;
  const fs::path nested = direct / format.subdir;
  TORCH_CHECK(fs::exists(nested / first_file), "Cannot find ", format.name, " file ",
              (direct / first_file).string(), " (nor ", (nested / first_file).string(), ")");
  return nested;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  const size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

std::vector<std::string> read_class_names(const fs::path& path, int64_t expected) {
  std::ifstream in(path);
  TORCH_CHECK(in, "Cannot open class-name file ", path.string());
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    std::string name = trim(line);
    if (!name.empty()) names.push_back(std::move(name));
  }
  TORCH_CHECK(in.eof(), "Error reading class-name file ", path.string());
  TORCH_CHECK(static_cast<int64_t>(names.size()) == expected, "Class-name file ", path.string(),
              " lists ", names.size(), " names, expected ", expected);
  return names;
}

TensorDataset read_cifar(const std::string& dir, const CifarFormat& format,
                         const std::vector<std::string>& files, std::vector<std::string> default_classes) {
  const fs::path root = resolve_dir(dir, format, files.front());
  const int64_t record = format.label_bytes + kImageBytes;

  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const auto& file : files) {
    const fs::path path = root / file;
    TORCH_CHECK(fs::is_regular_file(path), "Cannot find ", format.name, " file ", path.string());
    const auto size = static_cast<int64_t>(fs::file_size(path));
    TORCH_CHECK(size > 0 && size % record == 0, format.name, " file ", path.string(), " has ", size,
                " bytes, not a positive multiple of the ", record, "-byte record");
    counts.push_back(size / record);
    total += size / record;
  }

  TensorDataset dataset;
  dataset.images = torch::empty({total, kChannels, kSide, kSide}, torch::kUInt8);
  dataset.labels = torch::empty({total}, torch::kInt64);
  auto* images = dataset.images.data_ptr<uint8_t>();
  auto* labels = dataset.labels.data_ptr<int64_t>();
  std::vector<char> buffer;
  int64_t sample = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const fs::path path = root / files[f];
    buffer.resize(static_cast<size_t>(counts[f] * record));
    std::ifstream in(path, std::ios::binary);
    TORCH_CHECK(in, "Cannot open ", format.name, " file ", path.string());
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    TORCH_CHECK(in, "Error reading ", format.name, " file ", path.string(), " (", buffer.size(), " bytes)");
    for (int64_t i = 0; i < counts[f]; ++i, ++sample) {
      const char* rec = buffer.data() + i * record;
      const int64_t label = static_cast<uint8_t>(rec[format.label_offset]);
      TORCH_CHECK(label < format.num_classes, format.name, " file ", path.string(), ": label ", label,
                  " of record ", i, " is out of range (", format.num_classes, " classes)");
      labels[sample] = label;
      std::memcpy(images + sample * kImageBytes, rec + format.label_bytes, kImageBytes);
    }
  }

  const fs::path names = root / format.names_file;
  dataset.classes = fs::exists(names) ? read_class_names(names, format.num_classes) : std::move(default_classes);
  return dataset;
}

}  // namespace

TensorDataset read_cifar10(const std::string& dir, Split split) {
  std::vector<std::string> files;
  if (split == Split::kTrain) {
    for (int batch = 1; batch <= 5; ++batch) files.push_back("data_batch_" + std::to_string(batch) + ".bin");
  } else {
    files.push_back("test_batch.bin");
  }
  return read_cifar(dir, kCifar10, files, cifar10_default_classes());
}

TensorDataset read_cifar100(const std::string& dir, Split split) {
  std::vector<std::string> names;
  for (int i = 0; i < kCifar100.num_classes; ++i) names.push_back(std::to_string(i));
  return read_cifar(dir, kCifar100, {split == Split::kTrain ? "train.bin" : "test.bin"}, std::move(names));
}

}  // namespace splitshare::data
