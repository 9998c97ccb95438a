#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/data/pack.h>
#include <splitshare/data/webdataset.h>
#include <splitshare/run/folder.h>
#include <splitshare/util/numbers.h>

#include <cstdio>
#include <filesystem>
#include <utility>

namespace splitshare::cli {
namespace {

// --shard-size: "256MB", "1GiB", "500KB", "4096B" (bytes) or "1000samples".
std::pair<int64_t, int64_t> shard_size(const std::string& text) {
  static const std::vector<std::pair<std::string, int64_t>> kUnits = {
      {"samples", 0}, {"KiB", int64_t{1} << 10}, {"MiB", int64_t{1} << 20}, {"GiB", int64_t{1} << 30},
      {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}, {"B", 1}};
  for (const auto& [unit, scale] : kUnits) {
    if (text.size() <= unit.size() || text.compare(text.size() - unit.size(), unit.size(), unit) != 0) continue;
    const auto number = util::parse_number<int64_t>(text.substr(0, text.size() - unit.size()));
    if (!number || *number < 1 || (scale > 0 && *number > INT64_MAX / scale)) break;
    return scale == 0 ? std::pair<int64_t, int64_t>{0, *number} : std::pair<int64_t, int64_t>{*number * scale, 0};
  }
  TORCH_CHECK(false, "--shard-size: '", text, "' is not a size; write bytes with a unit (256MB, 1GiB, 500KB) or a "
              "sample count (1000samples)");
  return {};
}

std::string command_line(int argc, char** argv) {
  std::string line = "splitshare pack";
  for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
  return line;
}

}  // namespace

int run_pack(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Pack a data set into WebDataset shards (tar files of KEY.jpg + KEY.cls + KEY.json) that "
                           "train, eval and the other commands read with --data wds:OUT: images decoded and resized "
                           "once instead of every epoch. A stopped pack continues where it stopped when run again.");
  options.positional_help("SOURCE");
  const data::PackOptions defaults;
  options.add_options()
      ("source", "what to pack, as --data names it: imagefolder:DIR | imagefolder:TRAIN,VAL | cifar10:DIR | "
                 "cifar100:DIR | fashion-mnist[:DIR] | mnist:DIR | wds:LOCATION", cxxopts::value<std::string>())
      ("out", "output folder for the shards and dataset.json", cxxopts::value<std::string>())
      ("max-side", "resize images whose longer side is over N down to N (0 = keep)",
       number<int64_t>()->default_value(text(defaults.max_side())))
      ("shorter-side", "resize images whose shorter side is over N down to N, like torchvision's Resize(N) "
                       "(0 = keep; 256 suits 224-pixel training)",
       number<int64_t>()->default_value(text(defaults.shorter_side())))
      ("quality", "re-encode every image as JPEG at this quality, 1..100 (0 = keep the bytes of images that are "
                  "not resized; resized JPEGs get 90, resized lossless images PNG)",
       number<int64_t>()->default_value(text(defaults.quality())))
      ("shard-size", "bytes per shard (256MB, 1GiB) or samples per shard (1000samples)",
       cxxopts::value<std::string>()->default_value("256MiB"))
      ("workers", "decoding and encoding threads (0 = the writing thread)",
       number<int64_t>()->default_value(text(defaults.workers())))
      ("seed", "seed of the sample order within the shards", number<uint64_t>()->default_value(text(defaults.seed())))
      ("strict", "stop at the first unreadable image instead of skipping it")
      ("no-progress", "no progress bar")
      ("json", "print dataset.json when done");
  options.parse_positional({"source"});
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("source"), "give the data to pack, e.g. splitshare pack imagefolder:photos --out shards");
  TORCH_CHECK(args->count("out"), "--out is required: the folder the shards go to");
  const auto source = (*args)["source"].as<std::string>();
  const auto out = (*args)["out"].as<std::string>();
  const auto [bytes, samples] = shard_size((*args)["shard-size"].as<std::string>());
  auto pack = data::PackOptions()
                  .max_side(in_range<int64_t>(*args, "max-side", 0, 65535))
                  .shorter_side(in_range<int64_t>(*args, "shorter-side", 0, 65535))
                  .quality(in_range<int64_t>(*args, "quality", 0, 100))
                  .workers(in_range<int64_t>(*args, "workers", 0, 256))
                  .seed((*args)["seed"].as<uint64_t>())
                  .strict(args->count("strict") > 0)
                  .progress(args->count("no-progress") == 0)
                  .command(command_line(argc, argv));
  if (samples > 0) pack.shard_samples(samples);
  if (bytes > 0) pack.shard_bytes(bytes);
  const auto spec = data::parse_data_spec(source);
  TORCH_CHECK(!run::holds_results(out) || std::filesystem::exists(out + "/" + data::kPackPlanFileName) ||
                  std::filesystem::exists(out + "/" + data::kDatasetFileName),
              "pack: ", out, " holds a training run; choose another --out");
  // One writer at a time; a pack refused before its first shard leaves nothing behind.
  run::FolderClaim claim(out, "splitshare pack", run::Existing::kContinue);
  const auto result = data::pack_dataset(spec, source, out, pack);
  if (args->count("json")) {
    std::printf("%s\n", result.dataset.dump(2).c_str());
    return 0;
  }
  for (const auto& [split, record] : result.dataset["splits"].items()) {
    std::printf("%s: %lld samples in %zu shards, %lld skipped\n", split.c_str(),
                static_cast<long long>(record["samples"].get<int64_t>()), record["shards"].size(),
                static_cast<long long>(record["skipped"].get<int64_t>()));
    for (const auto& report : record["skipped_reports"]) std::printf("  skipped: %s\n", report.get<std::string>().c_str());
  }
  std::printf("%s: %.1f MB; %lld samples packed in %.1f s (%.0f images/s)%s; train with --data wds:%s\n", out.c_str(),
              result.bytes / 1e6, static_cast<long long>(result.samples_written), result.seconds,
              result.seconds > 0 ? result.samples_written / result.seconds : 0.0,
              result.shards_kept > 0 ? (", " + std::to_string(result.shards_kept) + " shards kept from the stopped "
                                        "pack").c_str() : "",
              out.c_str());
  return 0;
}

}  // namespace splitshare::cli
