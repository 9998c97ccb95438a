#include <splitshare/data/webdataset.h>

#include "tar.h"
#include <splitshare/image/decode.h>
#include <splitshare/util/files.h>
#include <splitshare/util/numbers.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>


namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

constexpr size_t kReportLimit = 10;
// As the checkpoint format's bound on classes.
constexpr int64_t kMaxClasses = 1000000;

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// WebDataset's split of a member name into key and extension: the extension starts at the
// first '.' of the file name (so "a/b.seg.png" is key "a/b", extension "seg.png").
std::pair<std::string, std::string> key_and_extension(const std::string& name) {
  const auto slash = name.rfind('/');
  const auto dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
  if (dot == std::string::npos) return {name, ""};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

// The shards of a name with one {A..B} range.
std::vector<std::string> expand_range(const std::string& location, size_t open, size_t close) {
  const std::string range = location.substr(open + 1, close - open - 1);
  const auto dots = range.find("..");
  TORCH_CHECK(dots != std::string::npos, "shard pattern ", location, ": expected a range like {000000..000099}");
  const auto first = util::parse_number<int64_t>(range.substr(0, dots));
  const auto last = util::parse_number<int64_t>(range.substr(dots + 2));
  TORCH_CHECK(first && last && *first >= 0 && *first <= *last && *last - *first < 1000000, "shard pattern ", location,
              ": the range {", range, "} is not two numbers FIRST..LAST with FIRST <= LAST");
  const auto width = dots;
  std::vector<std::string> shards;
  for (int64_t n = *first; n <= *last; ++n) {
    std::string digits = std::to_string(n);
    if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
    shards.push_back(location.substr(0, open) + digits + location.substr(close + 1));
    std::error_code error;
    TORCH_CHECK(fs::is_regular_file(shards.back(), error), "shard pattern ", location, ": shard ", shards.back(),
                " does not exist");
  }
  return shards;
}


// Collects one shard set's samples; `skip` records (or, strict, throws) a sample left out.
class ShardIndexer {
 public:
  ShardIndexer(const std::string& root, std::vector<std::string> classes, bool strict)
      : strict_(strict), numbered_(classes.empty()) {
    result_.index.root = root;
    result_.index.classes = std::move(classes);
  }

  void add_shard(const std::string& shard) {
    auto listing = list_tar_file(shard);
    const auto shard_number = static_cast<int64_t>(result_.index.shards.size());
    result_.index.shards.push_back(shard);
    const auto& members = listing.members;
    for (size_t begin = 0; begin < members.size();) {
      const auto key = key_and_extension(members[begin].name).first;
      size_t end = begin + 1;
      while (end < members.size() && key_and_extension(members[end].name).first == key) ++end;
      add_sample(shard, shard_number, members, begin, end);
      begin = end;
    }
    if (!listing.problem.empty()) skip(listing.problem + "; the rest of the shard is not read");
  }

  ShardIndex finish() {
    auto& index = result_.index;
    if (numbered_) {
      const int64_t count = index.labels.empty() ? 0 : *std::max_element(index.labels.begin(), index.labels.end()) + 1;
      for (int64_t c = 0; c < count; ++c) index.classes.push_back(std::to_string(c));
    }
    return std::move(result_);
  }

 private:
  void add_sample(const std::string& shard, int64_t shard_number, const std::vector<TarMember>& members, size_t begin,
                  size_t end) {
    const TarMember* image = nullptr;
    const TarMember* label = nullptr;
    for (size_t i = begin; i < end; ++i) {
      const auto extension = lower(key_and_extension(members[i].name).second);
      if (!image && has_image_extension(members[i].name)) image = &members[i];
      if (!label && extension == "cls") label = &members[i];
    }
    const auto key = key_and_extension(members[begin].name).first;
    if (!image) return skip(shard + ": sample " + key + " has no image member (.jpg, .png, .webp, ...)");
    if (!label) return skip(shard + ": sample " + key + " has no .cls member (its class index)");
    std::vector<uint8_t> bytes;
    util::read_file_range(shard, label->offset, std::min<int64_t>(label->size, 64), bytes, "member " + label->name);
    std::string text(bytes.begin(), bytes.end());
    text.erase(text.find_last_not_of(" \t\r\n") + 1);
    text.erase(0, std::min(text.size(), text.find_first_not_of(" \t\r\n")));
    const auto value = util::parse_number<int64_t>(text);
    const auto classes = static_cast<int64_t>(result_.index.classes.size());
    if (!value || *value < 0 || *value >= (numbered_ ? kMaxClasses : classes)) {
      return skip(shard + ": " + label->name + " holds '" + text + "', not a class index from 0 to " +
                  std::to_string((numbered_ ? kMaxClasses : classes) - 1));
    }
    auto& index = result_.index;
    index.paths.push_back(shard + "/" + image->name);
    index.labels.push_back(*value);
    index.members.push_back({shard_number, image->offset, image->size});
  }

  void skip(const std::string& reason) {
    TORCH_CHECK(!strict_, reason, " (--strict refuses such shards; without it the sample is skipped and counted)");
    ++result_.skipped;
    if (result_.skipped_reports.size() < kReportLimit) result_.skipped_reports.push_back(reason);
  }

  bool strict_;
  bool numbered_;
  ShardIndex result_;
};

void report_skipped(const ShardIndex& shards, const std::string& what) {
  if (shards.skipped == 0) return;
  for (const auto& reason : shards.skipped_reports) std::fprintf(stderr, "warning: %s\n", reason.c_str());
  std::fprintf(stderr, "warning: %lld %s sample(s) skipped in all (--strict refuses them instead)\n",
               static_cast<long long>(shards.skipped), what.c_str());
}

void check_every_class_has_samples(const ImageFolderIndex& index, const std::string& location) {
  const auto counts = class_counts(index);
  for (size_t c = 0; c < counts.size(); ++c) {
    TORCH_CHECK(counts[c] > 0, "wds:", location, ": class ", c, " (", index.classes[c],
                ") has no training sample; a class that is never trained on cannot be predicted");
  }
}

}  // namespace

namespace {

// ROOT/dataset.json parsed, or null when ROOT has none.
nlohmann::json read_dataset_record(const std::string& root) {
  const auto path = (fs::path(root) / kDatasetFileName).string();
  std::error_code error;
  if (!fs::exists(path, error)) return nullptr;
  try {
    return nlohmann::json::parse(util::read_file(path, "dataset description"));
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, " is not valid JSON: ", e.what());
  }
  return nullptr;
}

// The shards dataset.json records ({file: {"bytes", "samples"}}), from `pack`'s "splits".
std::map<std::string, std::pair<int64_t, int64_t>> recorded_shards(const nlohmann::json& record, const std::string& path) {
  std::map<std::string, std::pair<int64_t, int64_t>> out;
  if (!record.is_object() || !record.contains("splits")) return out;
  try {
    for (const auto& [split, entry] : record.at("splits").items()) {
      for (const auto& shard : entry.at("shards")) {
        out[shard.at("file").get<std::string>()] = {shard.at("bytes").get<int64_t>(), shard.at("samples").get<int64_t>()};
      }
    }
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, ": its \"splits\" do not list shards as {\"file\", \"bytes\", \"samples\"}: ", e.what());
  }
  return out;
}

// When ROOT/dataset.json lists shards (written by `pack`): each of `shards` must be one of them,
// of the recorded size, with the recorded number of samples in `indexed`.
void check_recorded_shards(const std::string& root, const std::vector<std::string>& shards, const ShardIndex& indexed) {
  const auto path = (fs::path(root) / kDatasetFileName).string();
  const auto recorded = recorded_shards(read_dataset_record(root), path);
  if (recorded.empty()) return;
  std::vector<int64_t> samples(shards.size(), 0);
  for (const auto& member : indexed.index.members) ++samples[static_cast<size_t>(member.shard)];
  for (size_t i = 0; i < shards.size(); ++i) {
    const auto name = fs::path(shards[i]).filename().string();
    const auto it = recorded.find(name);
    TORCH_CHECK(it != recorded.end(), shards[i], " is not among the shards ", path, " records: the folder holds shards "
                "of another pack; pack again or remove ", kDatasetFileName);
    const auto bytes = static_cast<int64_t>(fs::file_size(shards[i]));
    TORCH_CHECK(bytes == it->second.first && samples[i] == it->second.second, shards[i], " has ", bytes, " bytes and ",
                samples[i], " readable samples, but ", path, " records ", it->second.first, " and ", it->second.second,
                ": it changed since it was packed (pack again, or remove ", kDatasetFileName, " to read it as it is)");
  }
}

// A folder location must hold every shard its dataset.json lists.
void check_no_recorded_shard_missing(const std::string& root, const std::vector<std::string>& shards) {
  const auto path = (fs::path(root) / kDatasetFileName).string();
  std::set<std::string> present;
  for (const auto& shard : shards) present.insert(fs::path(shard).filename().string());
  for (const auto& [name, _] : recorded_shards(read_dataset_record(root), path)) {
    TORCH_CHECK(present.count(name) > 0, path, " records the shard ", name, ", which ", root,
                " does not hold: a pack not finished copying, or a shard removed");
  }
}

}  // namespace

std::vector<std::string> recorded_classes(const std::string& root) {
  const auto json = read_dataset_record(root);
  if (json.is_null()) return {};
  const auto path = (fs::path(root) / kDatasetFileName).string();
  TORCH_CHECK(json.is_object() && json.contains("classes") && json.at("classes").is_array(), path,
              ": expected an object with a \"classes\" list of names");
  std::vector<std::string> classes;
  for (const auto& name : json.at("classes")) {
    TORCH_CHECK(name.is_string() && !name.get<std::string>().empty(), path, ": a class name is not a non-empty string: ",
                name.dump());
    classes.push_back(name.get<std::string>());
  }
  TORCH_CHECK(!classes.empty(), path, ": the \"classes\" list is empty");
  return classes;
}

std::vector<std::string> expand_shards(const std::string& location) {
  TORCH_CHECK(!location.empty(), "wds: names no shards; write wds:DIR or wds:DIR/train-{000000..000009}.tar");
  const auto open = location.find('{');
  if (open != std::string::npos) {
    const auto close = location.find('}', open);
    TORCH_CHECK(close != std::string::npos, "shard pattern ", location, ": '{' without '}'");
    return expand_range(location, open, close);
  }
  std::error_code error;
  if (fs::is_regular_file(location, error)) return {location};
  TORCH_CHECK(fs::is_directory(location, error), "wds:", location, ": no such folder or shard file");
  std::vector<std::string> shards;
  for (fs::directory_iterator it(location, error); !error && it != fs::directory_iterator(); it.increment(error)) {
    if (it->path().extension() == ".tar") shards.push_back(it->path().string());
  }
  TORCH_CHECK(!error, "cannot list ", location, ": ", error.message());
  std::sort(shards.begin(), shards.end());
  TORCH_CHECK(!shards.empty(), "wds:", location, ": the folder holds no .tar shards");
  return shards;
}

ShardIndex index_shards(const std::vector<std::string>& shards, const std::string& root,
                        std::vector<std::string> classes, bool strict) {
  ShardIndexer indexer(root, std::move(classes), strict);
  for (const auto& shard : shards) indexer.add_shard(shard);
  return indexer.finish();
}

ShardSet shard_set(const std::string& location) {
  ShardSet set;
  set.all = expand_shards(location);
  std::error_code error;
  set.root = fs::is_directory(location, error) ? location : fs::path(set.all[0]).parent_path().string();
  for (const auto& shard : set.all) {
    (fs::path(shard).filename().string().rfind("val", 0) == 0 ? set.val : set.train).push_back(shard);
  }
  TORCH_CHECK(!set.train.empty(), "wds:", location, ": only validation shards (val*.tar); training needs others");
  return set;
}

DataBundle open_webdataset(const std::string& location, const DataOptions& options) {
  const auto set = shard_set(location);
  const auto& root = set.root;
  const auto& train_shards = set.train;
  const auto& val_shards = set.val;
  std::error_code error;
  if (fs::is_directory(location, error)) check_no_recorded_shard_missing(root, set.all);
  auto classes = recorded_classes(root);
  auto train = index_shards(train_shards, root, classes, options.strict());
  check_recorded_shards(root, train_shards, train);
  report_skipped(train, "training");
  TORCH_CHECK(train.index.size() > 0, "wds:", location, ": the training shards hold no sample with an image and a "
              ".cls label", train.skipped_reports.empty() ? std::string() : " (" + train.skipped_reports[0] + ")");
  check_every_class_has_samples(train.index, location);
  if (val_shards.empty()) {
    return open_image_index_split(std::move(train.index), options, "validation shards (val-*.tar)");
  }
  auto val = index_shards(val_shards, root, train.index.classes, options.strict());
  check_recorded_shards(root, val_shards, val);
  report_skipped(val, "validation");
  TORCH_CHECK(val.index.size() > 0, "wds:", location, ": the validation shards hold no usable sample");
  return open_image_index_data(std::move(train.index), std::move(val.index), options);
}

}  // namespace splitshare::data
