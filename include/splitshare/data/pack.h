#pragma once

#include <splitshare/data/datasets.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace splitshare::data {

/// The file in a pack's output folder that records its source and options while it runs
/// (removed when dataset.json is written).
inline constexpr const char* kPackPlanFileName = "pack.json";

/// How `pack` turns a data set into WebDataset shards.
///
///   auto options = PackOptions().shorter_side(256).quality(90).workers(2);
struct PackOptions {
  /// Images whose longer side is over this are resized down to it (aspect kept); 0 = no limit.
  TORCH_ARG(int64_t, max_side) = 0;
  /// Images whose shorter side is over this are resized down to it (aspect kept, torchvision's
  /// Resize(N)); 0 = no limit. With max_side too, the smaller of the two scales applies.
  TORCH_ARG(int64_t, shorter_side) = 0;
  /// 1..100: every image is re-encoded as JPEG at this quality (libjpeg-turbo). 0 (default):
  /// images that need no resize keep their bytes; resized JPEGs are re-encoded at quality 90,
  /// resized lossless images (PNG, BMP, PNM, WebP) and in-memory data become PNG.
  TORCH_ARG(int64_t, quality) = 0;
  /// A shard is closed before the sample that would take it over this many bytes (a
  /// shard holds at least one sample). WebDataset's advice is 100 MB to 1 GB.
  TORCH_ARG(int64_t, shard_bytes) = int64_t{256} << 20;
  /// > 0: every shard but the last holds this many samples instead (shard_bytes unused).
  TORCH_ARG(int64_t, shard_samples) = 0;
  /// Decoding, resizing and encoding threads (0 = the writing thread).
  TORCH_ARG(int64_t, workers) = 2;
  /// Samples are written in an order shuffled by this seed (per split), so that a shard
  /// holds a mix of classes (what streaming readers need).
  TORCH_ARG(uint64_t, seed) = 0;
  /// Images that cannot be read (missing, corrupt, over the pixel limit) are skipped and
  /// counted; with strict the first one stops the pack, naming it.
  TORCH_ARG(bool, strict) = false;
  /// A progress bar on stderr: samples, images/s and bytes written.
  TORCH_ARG(bool, progress) = true;
  /// Recorded in dataset.json as how the shards were made (the command line).
  TORCH_ARG(std::string, command) = "";
};

/// What a pack did.
struct PackResult {
  /// The dataset.json written (see pack_dataset).
  nlohmann::json dataset;
  /// Shards found complete from an earlier, stopped pack and kept.
  int64_t shards_kept = 0;
  /// Samples written by this call and their seconds (wall clock).
  int64_t samples_written = 0;
  double seconds = 0.0;
  /// Bytes of all the shards.
  int64_t bytes = 0;
};

/// Packs the data set `spec` names into WebDataset shards in `out`: OUT/train-000000.tar, …
/// and OUT/val-000000.tar, … (the validation split: an image folder's val folder, the test
/// split of CIFAR and idx data; a single class-per-folder root gives training shards only,
/// which `wds:` then splits like the folder), each sample KEY.EXT (the image: jpg, png, webp,
/// bmp or pnm) + KEY.cls (the label as decimal text) + KEY.json ({"path", "label", "width",
/// "height", "source_width", "source_height"}); KEY is the sample's position in the shuffled
/// split, nine digits. Then OUT/dataset.json: {"format", "classes" (label order),
/// "class_map" {name: label}, "splits": {NAME: {"samples", "per_class", "skipped", "shards":
/// [{"file", "samples", "bytes", "crc32"}]}}, "made": {source, options, command, build, date}}.
///
/// Shards are written whole or not at all (ShardWriter). A stopped pack, run again with the same
/// source and options, keeps the complete shards and continues at the next one, and the result
/// equals an uninterrupted pack byte for byte. OUT/pack.json records the source and options
/// while packing; a second pack with different ones is refused, naming both. A finished OUT
/// (dataset.json present) is refused. The caller keeps other writers out of OUT (the CLI holds
/// a run::FolderClaim on it).
PackResult pack_dataset(const DataSpec& spec, const std::string& source_text, const std::string& out,
                        const PackOptions& options);

}  // namespace splitshare::data
