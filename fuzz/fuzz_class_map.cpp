#include "fuzz_target.h"

#include <splitshare/data/image_folder.h>

#include <unistd.h>

#include <fstream>
#include <set>
#include <string>

// The input is the text of a --class-map file. An accepted map has as many names as folders,
// no folder and no name twice, nothing empty and no tab in a name.
namespace splitshare::fuzz {

void class_map(const uint8_t* data, size_t size) {
  const std::string path = "/tmp/splitshare-fuzz-" + std::to_string(::getpid()) + "-class-map.txt";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  data::ClassMap map;
  try {
    map = data::read_class_map(path);
  } catch (const c10::Error& e) {
    require_named(e, path);
    return;
  }
  require(!map.folders.empty() && map.folders.size() == map.names.size(), "accepted map has mismatched sizes");
  const std::set<std::string> folders(map.folders.begin(), map.folders.end());
  const std::set<std::string> names(map.names.begin(), map.names.end());
  require(folders.size() == map.folders.size() && names.size() == map.names.size(), "accepted map has a duplicate");
  for (const auto& name : map.names) require(!name.empty() && name.find('\t') == std::string::npos, "bad name", name);
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(class_map)
