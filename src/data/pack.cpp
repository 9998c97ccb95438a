#include <splitshare/data/pack.h>

#include "pack_encode.h"
#include "shard_writer.h"
#include <splitshare/data/in_memory.h>
#include <splitshare/data/webdataset.h>
#include <splitshare/util/build_info.h>
#include <splitshare/util/files.h>
#include <splitshare/util/progress.h>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <thread>

namespace splitshare::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kReportLimit = 10;

// The data being packed: indexes or in-memory splits, and one PackSource per split.
struct PackInput {
  std::vector<std::string> classes;
  std::vector<ImageFolderIndex> indexes;
  std::vector<TensorDataset> memory;
  std::vector<PackSource> splits;
};

void add_index_split(PackInput& input, ImageFolderIndex index, const std::string& split) {
  input.indexes.push_back(std::move(index));
  input.splits.push_back(PackSource{split, &input.indexes.back(), nullptr, ""});
}

void open_image_folders(const DataSpec& spec, PackInput& input) {
  std::error_code error;
  if (!spec.root.empty() && !fs::is_directory(spec.train_path, error)) {
    add_index_split(input, list_image_folder(spec.root), "train");
  } else {
    add_index_split(input, list_image_folder(spec.train_path), "train");
    add_index_split(input, list_image_folder(spec.val_path), "val");
    TORCH_CHECK(input.indexes[0].classes == input.indexes[1].classes, "the class folders of ", spec.train_path,
                " (", input.indexes[0].classes.size(), ") and ", spec.val_path, " (", input.indexes[1].classes.size(),
                ") differ: a label must mean the same class in both");
  }
  input.classes = input.indexes[0].classes;
}

void open_shards(const DataSpec& spec, PackInput& input, bool strict) {
  const auto set = shard_set(spec.root);
  add_index_split(input, index_shards(set.train, set.root, recorded_classes(set.root), strict).index, "train");
  if (!set.val.empty()) {
    add_index_split(input, index_shards(set.val, set.root, input.indexes[0].classes, strict).index, "val");
  }
  input.classes = input.indexes[0].classes;
}

// Opens what `spec` names; pointers into `input` stay valid (its vectors never grow past two).
void open_input(const DataSpec& spec, PackInput& input, bool strict) {
  input.indexes.reserve(2);
  input.memory.reserve(2);
  if (spec.kind == "imagefolder") return open_image_folders(spec, input);
  if (spec.kind == "wds") return open_shards(spec, input, strict);
  input.memory.push_back(read_in_memory_split(spec, Split::kTrain));
  input.memory.push_back(read_in_memory_split(spec, Split::kTest));
  input.splits.push_back(PackSource{"train", nullptr, &input.memory[0], spec.kind + " train"});
  input.splits.push_back(PackSource{"val", nullptr, &input.memory[1], spec.kind + " test"});
  input.classes = input.memory[0].classes;
}

std::string shard_name(const std::string& split, int64_t number) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%06lld.tar", split.c_str(), static_cast<long long>(number));
  return name;
}

std::string sample_key(int64_t position) {
  char key[32];
  std::snprintf(key, sizeof key, "%09lld", static_cast<long long>(position));
  return key;
}

std::string crc32_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "cannot read the shard ", path, " back");
  std::vector<char> chunk(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(chunk.data()), static_cast<uInt>(in.gcount()));
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc));
  return hex;
}

// Where one split's writing stands: its finished shards and the next position to pack.
struct SplitProgress {
  nlohmann::json shards = nlohmann::json::array();
  std::vector<int64_t> per_class;
  int64_t samples = 0;
  int64_t next = 0;
  int64_t skipped = 0;
  std::vector<std::string> reports;
  int64_t bytes = 0;
};

nlohmann::json shard_record(const std::string& out, const std::string& file, int64_t samples) {
  const auto path = (fs::path(out) / file).string();
  return {{"file", file}, {"samples", samples}, {"bytes", static_cast<int64_t>(fs::file_size(path))},
          {"crc32", crc32_of_file(path)}};
}

// The complete shards an earlier pack left (SPLIT-000000.tar, ... without a gap), read back.
SplitProgress resume_split(const std::string& out, const std::string& split, const std::vector<std::string>& classes) {
  SplitProgress progress;
  progress.per_class.assign(classes.size(), 0);
  for (int64_t number = 0;; ++number) {
    const auto file = shard_name(split, number);
    const auto path = (fs::path(out) / file).string();
    if (!fs::exists(path)) break;
    auto shard = index_shards({path}, out, classes, /*strict=*/true);
    TORCH_CHECK(shard.index.size() > 0, path, " holds no sample: remove it and run pack again to rewrite it");
    for (auto label : shard.index.labels) ++progress.per_class[static_cast<size_t>(label)];
    const auto& last = shard.index.paths.back();
    const auto member = last.substr(last.rfind('/') + 1);
    progress.next = std::stoll(member.substr(0, member.find('.'))) + 1;
    progress.samples += shard.index.size();
    progress.shards.push_back(shard_record(out, file, shard.index.size()));
    progress.bytes += progress.shards.back()["bytes"].get<int64_t>();
  }
  // Samples skipped before the resume point: positions packed minus samples written.
  progress.skipped = progress.next - progress.samples;
  return progress;
}

std::vector<int64_t> shuffled_positions(int64_t n, uint64_t seed, size_t split_number) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 2 + split_number);
  // Fisher-Yates with our own draws: std::shuffle's sequence differs between standard libraries.
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

// The progress bar's state across splits.
struct Meter {
  util::ProgressBar& bar;
  int64_t done = 0;
  double start = 0.0;
  int64_t bytes_before = 0;
  // Positions packed by an earlier, stopped pack: in `done`, not in the rate.
  int64_t resumed = 0;
};

// Writes one split's shards from progress.next on.
class SplitWriter {
 public:
  SplitWriter(const std::string& out, const PackSource& source, const PackOptions& options, SplitProgress& progress)
      : out_(out), source_(source), options_(options), progress_(progress) {
    for (int64_t i = 0; i < std::max<int64_t>(1, options.workers()); ++i) {
      encoders_.push_back(std::make_unique<SampleEncoder>(options));
    }
  }

  // Packs positions [progress.next, order.size()) of `order`; returns the samples written.
  int64_t run(const std::vector<int64_t>& order, Meter& meter) {
    const auto window = std::max<int64_t>(64, 16 * static_cast<int64_t>(encoders_.size()));
    int64_t written = 0;
    const auto total = static_cast<int64_t>(order.size());
    for (int64_t begin = progress_.next; begin < total; begin += window) {
      const auto end = std::min(total, begin + window);
      auto packed = encode_window(order, begin, end);
      for (int64_t p = begin; p < end; ++p) written += add(p, order[static_cast<size_t>(p)], packed[p - begin]);
      meter.done += end - begin;
      const double seconds = elapsed() - meter.start;
      char status[128];
      std::snprintf(status, sizeof status, "%.0f img/s, %.1f MB written", seconds > 0 ? (meter.done - meter.resumed) / seconds : 0.0,
                    (meter.bytes_before + progress_.bytes + (shard_ ? shard_->bytes() : 0)) / 1e6);
      meter.bar.update(meter.done, status);
    }
    if (shard_) close_shard();
    progress_.next = total;
    return written;
  }

  static double elapsed() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

 private:
  std::vector<PackedSample> encode_window(const std::vector<int64_t>& order, int64_t begin, int64_t end) {
    std::vector<PackedSample> packed(static_cast<size_t>(end - begin));
    std::atomic<int64_t> next{begin};
    auto work = [&](SampleEncoder& encoder) {
      for (int64_t p = next++; p < end; p = next++) {
        packed[static_cast<size_t>(p - begin)] = encoder.encode(source_, order[static_cast<size_t>(p)]);
      }
    };
    if (options_.workers() == 0) {
      work(*encoders_[0]);
      return packed;
    }
    std::vector<std::thread> threads;
    for (auto& encoder : encoders_) threads.emplace_back(work, std::ref(*encoder));
    for (auto& thread : threads) thread.join();
    return packed;
  }

  // Adds the sample at `position` (source row `row`); returns 1 when written, 0 when skipped.
  int64_t add(int64_t position, int64_t row, const PackedSample& sample) {
    if (!sample.error.empty()) {
      TORCH_CHECK(!options_.strict(), "pack --strict: ", sample.error);
      if (static_cast<int64_t>(progress_.reports.size()) < kReportLimit) progress_.reports.push_back(sample.error);
      ++progress_.skipped;
      return 0;
    }
    const auto label = source_.label(row);
    const auto& names = source_.index != nullptr ? source_.index->classes : source_.memory->classes;
    const auto key = sample_key(position);
    const std::string cls = std::to_string(label);
    const std::string json = nlohmann::json{{"path", source_.name(row)}, {"label", names[static_cast<size_t>(label)]},
                                            {"width", sample.width}, {"height", sample.height},
                                            {"source_width", sample.source_width},
                                            {"source_height", sample.source_height}}
                                 .dump();
    const auto size = ShardWriter::member_bytes(key.size() + 1 + sample.extension.size(), sample.image.size()) +
                      ShardWriter::member_bytes(key.size() + 4, cls.size()) +
                      ShardWriter::member_bytes(key.size() + 5, json.size());
    if (shard_ && (options_.shard_samples() > 0 ? in_shard_ >= options_.shard_samples()
                                                 : shard_->bytes() + size > options_.shard_bytes())) {
      close_shard();
    }
    if (!shard_) {
      shard_ = std::make_unique<ShardWriter>((fs::path(out_) / shard_name(source_.split, shard_number())).string());
    }
    shard_->add(key + "." + sample.extension, sample.image);
    shard_->add(key + ".cls", cls);
    shard_->add(key + ".json", json);
    ++in_shard_;
    ++progress_.per_class[static_cast<size_t>(label)];
    ++progress_.samples;
    return 1;
  }

  int64_t shard_number() const { return static_cast<int64_t>(progress_.shards.size()); }

  void close_shard() {
    const auto file = shard_name(source_.split, shard_number());
    shard_->finish();
    shard_.reset();
    progress_.shards.push_back(shard_record(out_, file, in_shard_));
    progress_.bytes += progress_.shards.back()["bytes"].get<int64_t>();
    in_shard_ = 0;
  }

  std::string out_;
  const PackSource& source_;
  PackOptions options_;
  SplitProgress& progress_;
  std::vector<std::unique_ptr<SampleEncoder>> encoders_;
  std::unique_ptr<ShardWriter> shard_;
  int64_t in_shard_ = 0;
};

nlohmann::json options_record(const std::string& source_text, const PackOptions& options) {
  return {{"source", source_text},          {"max_side", options.max_side()},
          {"shorter_side", options.shorter_side()}, {"quality", options.quality()},
          {"shard_bytes", options.shard_bytes()}, {"shard_samples", options.shard_samples()},
          {"seed", options.seed()}};
}

// Claims the plan file: writes it, or checks that an earlier pack's matches.
void check_plan(const std::string& out, const nlohmann::json& plan) {
  const auto path = (fs::path(out) / kPackPlanFileName).string();
  if (!fs::exists(path)) return util::write_file_atomic(path, plan.dump(2) + "\n");
  nlohmann::json earlier;
  try {
    earlier = nlohmann::json::parse(util::read_file(path, "pack plan"));
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, " (an earlier pack's plan) is not valid JSON: ", e.what());
  }
  for (const auto& [key, value] : plan.items()) {
    TORCH_CHECK(earlier.contains(key) && earlier[key] == value, out, " holds a stopped pack with ", key, " ",
                earlier.contains(key) ? earlier[key].dump() : std::string("(none)"), ", not ", value.dump(),
                ": run the same pack again to finish it, or choose another --out");
  }
}

nlohmann::json split_record(const SplitProgress& progress) {
  return {{"samples", progress.samples}, {"per_class", progress.per_class}, {"skipped", progress.skipped},
          {"skipped_reports", progress.reports}, {"shards", progress.shards}};
}

nlohmann::json class_map(const std::vector<std::string>& classes) {
  nlohmann::json map = nlohmann::json::object();
  for (size_t i = 0; i < classes.size(); ++i) map[classes[i]] = static_cast<int64_t>(i);
  return map;
}

std::string utc_now() {
  const auto now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace

PackResult pack_dataset(const DataSpec& spec, const std::string& source_text, const std::string& out,
                        const PackOptions& options) {
  TORCH_CHECK(options.max_side() >= 0 && options.shorter_side() >= 0, "pack: --max-side and --shorter-side must be >= 0");
  TORCH_CHECK(options.quality() >= 0 && options.quality() <= 100, "pack: --quality must be 1..100 (or 0: keep), got ",
              options.quality());
  TORCH_CHECK(options.shard_bytes() >= 1 && options.shard_samples() >= 0 && options.workers() >= 0,
              "pack: the shard size must be positive and --workers >= 0");
  TORCH_CHECK(!fs::exists(fs::path(out) / kDatasetFileName), "pack: ", out, " already holds a finished pack (",
              kDatasetFileName, "); choose another --out, or delete it to pack again");
  PackInput input;
  open_input(spec, input, options.strict());
  fs::create_directories(out);
  const auto plan = options_record(source_text, options);
  check_plan(out, plan);

  PackResult result;
  nlohmann::json splits = nlohmann::json::object();
  int64_t total = 0;
  for (const auto& source : input.splits) total += source.size();
  util::ProgressBar bar("pack", total, options.progress());
  Meter meter{bar, 0, SplitWriter::elapsed(), 0, 0};
  for (size_t s = 0; s < input.splits.size(); ++s) {
    const auto& source = input.splits[s];
    auto progress = resume_split(out, source.split, input.classes);
    result.shards_kept += static_cast<int64_t>(progress.shards.size());
    meter.done += progress.next;
    meter.resumed += progress.next;
    meter.bytes_before = result.bytes;
    const auto order = shuffled_positions(source.size(), options.seed(), s);
    SplitWriter writer(out, source, options, progress);
    result.samples_written += writer.run(order, meter);
    result.bytes += progress.bytes;
    splits[source.split] = split_record(progress);
  }
  result.seconds = SplitWriter::elapsed() - meter.start;
  bar.finish("done");
  result.dataset = {{"format", "webdataset, written by splitshare pack"}, {"classes", input.classes},
                    {"class_map", class_map(input.classes)}, {"splits", splits},
                    {"made", {{"options", plan}, {"command", options.command()},
                              {"build", train::to_string(train::build_info())}, {"date", utc_now()}}}};
  util::write_file_atomic((fs::path(out) / kDatasetFileName).string(), result.dataset.dump(2) + "\n");
  fs::remove(fs::path(out) / kPackPlanFileName);
  return result;
}

}  // namespace splitshare::data
