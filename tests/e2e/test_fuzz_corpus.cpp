// Replays the committed fuzz corpus (fuzz/corpus/<target>/: seeds and the inputs that
// once crashed a reader, named regression-*) through the fuzz targets. A target aborts
// on a broken property and lets nothing but a clean c10::Error refusal through, so a
// passing test means every file was either read correctly or refused by name.
#include "fuzz_target.h"
#include "support.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> corpus(const std::string& target) {
  const fs::path dir = fs::path(SPLITSHARE_SOURCE_DIR) / "fuzz" / "corpus" / target;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void replay(const std::string& target, void (*run)(const uint8_t*, size_t)) {
  const auto files = corpus(target);
  ASSERT_GE(files.size(), 3u) << "fuzz/corpus/" << target << " lost its seeds";
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    const std::string bytes = splitshare::testing::read_file(file.string());
    run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    // Every prefix of a seed is a truncated file: cut at a few places.
    for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, bytes.size() / 2, bytes.size() - 1}) {
      if (cut < bytes.size()) run(reinterpret_cast<const uint8_t*>(bytes.data()), cut);
    }
  }
}

TEST(FuzzCorpus, Idx) { replay("idx", splitshare::fuzz::idx); }
TEST(FuzzCorpus, Cifar) { replay("cifar", splitshare::fuzz::cifar); }
TEST(FuzzCorpus, Image) { replay("image", splitshare::fuzz::image); }
TEST(FuzzCorpus, CheckpointMetadata) { replay("checkpoint_metadata", splitshare::fuzz::checkpoint_metadata); }
TEST(FuzzCorpus, ClassMap) { replay("class_map", splitshare::fuzz::class_map); }
TEST(FuzzCorpus, ImageList) { replay("image_list", splitshare::fuzz::image_list); }
TEST(FuzzCorpus, Tar) { replay("tar", splitshare::fuzz::tar); }
TEST(FuzzCorpus, ExportCheckpoint) { replay("export_checkpoint", splitshare::fuzz::export_checkpoint); }

}  // namespace
