#include <splitshare/data/image_folder.h>
#include <splitshare/util/files.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

// FNV-1a: a class's shuffle depends on its name, not on its position among the classes.
uint64_t name_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string relative_path(const ImageFolderIndex& index, size_t i) {
  return fs::path(index.paths[i]).lexically_relative(index.root).generic_string();
}

ImageFolderIndex empty_like(const ImageFolderIndex& index) {
  ImageFolderIndex out;
  out.root = index.root;
  out.classes = index.classes;
  out.ignored_files = index.ignored_files;
  out.shards = index.shards;
  return out;
}

// The split given which samples are validation ones.
ImageFolderSplit split_by_flags(const ImageFolderIndex& index, const std::vector<bool>& is_val) {
  ImageFolderSplit split{empty_like(index), empty_like(index), {}};
  for (size_t i = 0; i < index.paths.size(); ++i) {
    (is_val[i] ? split.val : split.train).add_from(index, i);
    if (is_val[i]) split.val_files.push_back(relative_path(index, i));
  }
  return split;
}

}  // namespace

std::vector<int64_t> class_counts(const ImageFolderIndex& index) {
  std::vector<int64_t> counts(index.classes.size(), 0);
  for (int64_t label : index.labels) ++counts[static_cast<size_t>(label)];
  return counts;
}

ImageFolderSplit split_image_folder(const ImageFolderIndex& index, double fraction, uint64_t seed) {
  TORCH_CHECK(fraction > 0 && fraction < 1, "validation split must be a fraction in (0, 1), got ", fraction);
  std::vector<std::vector<size_t>> members(index.classes.size());
  for (size_t i = 0; i < index.labels.size(); ++i) members[static_cast<size_t>(index.labels[i])].push_back(i);
  std::vector<bool> is_val(index.paths.size(), false);
  for (size_t c = 0; c < members.size(); ++c) {
    auto& m = members[c];
    const auto n = static_cast<int64_t>(m.size());
    if (n < 2) continue;
    const int64_t take = std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n - 1);
    std::mt19937_64 rng(seed ^ name_hash(index.classes[c]));
    for (int64_t i = n - 1; i > 0; --i) {
      std::swap(m[static_cast<size_t>(i)], m[static_cast<size_t>(rng() % static_cast<uint64_t>(i + 1))]);
    }
    for (int64_t i = 0; i < take; ++i) is_val[m[static_cast<size_t>(i)]] = true;
  }
  return split_by_flags(index, is_val);
}

ImageFolderSplit split_image_folder(const ImageFolderIndex& index, const std::vector<std::string>& val_files) {
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < index.paths.size(); ++i) position[relative_path(index, i)] = i;
  std::vector<bool> is_val(index.paths.size(), false);
  for (const auto& file : val_files) {
    auto it = position.find(file);
    TORCH_CHECK(it != position.end(), "validation file ", file, " of the recorded split is not an image of ",
                index.root, " any more; the split cannot be reproduced");
    is_val[it->second] = true;
  }
  return split_by_flags(index, is_val);
}

void write_val_files(const std::vector<std::string>& files, const std::string& path) {
  std::string text;
  for (const auto& f : files) text += f + "\n";
  util::write_file_atomic(path, text);
}

std::vector<std::string> read_val_files(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read the recorded validation split ", path);
  std::vector<std::string> files;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) files.push_back(line);
  }
  TORCH_CHECK(!files.empty(), path, " lists no validation file");
  return files;
}

ClassMap read_class_map(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read class map ", path);
  ClassMap map;
  std::set<std::string> seen;
  std::map<std::string, int64_t> name_line;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    const std::string folder = line.substr(0, tab);
    const std::string name = tab == std::string::npos ? folder : line.substr(tab + 1);
    TORCH_CHECK(!folder.empty() && !name.empty(), path, ":", number, ": empty class folder or name");
    TORCH_CHECK(seen.insert(folder).second, path, ":", number, ": class folder '", folder, "' listed twice");
    TORCH_CHECK(name.find('\t') == std::string::npos, path, ":", number, ": the class name '", name, "' holds a tab; "
                "a line is FOLDER or FOLDER<TAB>NAME, with no tab in NAME");
    const auto [earlier, fresh] = name_line.emplace(name, number);
    TORCH_CHECK(fresh, path, ":", number, ": the class name '", name, "' is also the name on line ", earlier->second,
                "; two classes with one name could not be told apart in reports and predictions");
    map.folders.push_back(folder);
    map.names.push_back(name);
  }
  TORCH_CHECK(!map.folders.empty(), "class map ", path, " lists no class");
  return map;
}

ImageFolderIndex apply_class_map(const ImageFolderIndex& index, const ClassMap& map, const std::string& source) {
  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < map.folders.size(); ++i) label_of[map.folders[i]] = static_cast<int64_t>(i);
  std::string unmapped;
  std::vector<int64_t> relabel(index.classes.size());
  for (size_t c = 0; c < index.classes.size(); ++c) {
    auto it = label_of.find(index.classes[c]);
    if (it == label_of.end()) unmapped += " '" + index.classes[c] + "'";
    relabel[c] = it == label_of.end() ? -1 : it->second;
  }
  TORCH_CHECK(unmapped.empty(), "class map ", source, " does not list the class folders", unmapped, " of ",
              index.root);
  std::string missing;
  const std::set<std::string> present(index.classes.begin(), index.classes.end());
  for (const auto& folder : map.folders) {
    if (!present.count(folder)) missing += " '" + folder + "'";
  }
  TORCH_CHECK(missing.empty(), "class map ", source, " lists classes with no folder in ", index.root, ":", missing);
  ImageFolderIndex out = index;
  out.classes = map.names;
  for (auto& label : out.labels) label = relabel[static_cast<size_t>(label)];
  return out;
}

}  // namespace splitshare::data
