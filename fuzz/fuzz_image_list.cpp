#include "fuzz_target.h"

#include <splitshare/eval/predict.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

// The input is the text of a `predict @LIST` file, read in a scratch folder that holds an
// image, a folder with an image and a second list. '/' becomes '_' and ".." becomes "._", so
// that no entry reaches outside the scratch folder. Accepted: a non-empty list of paths that exist.
namespace splitshare::fuzz {
namespace {

std::string scratch_folder() {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / ("splitshare-fuzz-" + std::to_string(::getpid()) + "-lists");
  if (!fs::exists(dir / "l2.txt")) {
    fs::create_directories(dir / "sub");
    std::ofstream(dir / "a.png") << "x";
    std::ofstream(dir / "sub" / "b.jpg") << "x";
    std::ofstream(dir / "l2.txt") << "a.png\n# comment\nsub\n";
  }
  return dir.string();
}

}  // namespace

void image_list(const uint8_t* data, size_t size) {
  const auto dir = scratch_folder();
  std::string text(reinterpret_cast<const char*>(data), size);
  for (auto& c : text) c = c == '/' ? '_' : c;
  for (size_t at = text.find(".."); at != std::string::npos; at = text.find("..", at)) text[at + 1] = '_';
  const std::string list = dir + "/fuzzed-list.txt";
  {
    std::ofstream out(list, std::ios::binary | std::ios::trunc);
    out << text;
  }
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  std::vector<std::string> paths;
  try {
    paths = eval::expand_image_arguments({"@" + list});
  } catch (const c10::Error& e) {
    std::filesystem::current_path(previous);
    require_named(e, "fuzzed-list.txt");
    return;
  }
  std::filesystem::current_path(previous);
  require(!paths.empty(), "an accepted list names no images");
  for (const auto& path : paths) {
    require(std::filesystem::exists(std::filesystem::path(dir) / path) || std::filesystem::exists(path),
            "an accepted path does not exist:", path);
  }
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(image_list)
