// `pack`: data sets into WebDataset shards — the same images back, resized within the
// resampler's rounding, resumable byte for byte, refusals by name, and both directions of
// interoperability with the `webdataset` package.
#include <splitshare/data/fashion_mnist.h>
#include <splitshare/data/pack.h>
#include <splitshare/data/webdataset.h>

#include "data/pack_encode.h"
#include "data/tar.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include "data_files.h"
#include "image_writers.h"
#include "support.h"

namespace fs = std::filesystem;
namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {

// FOLDER/{train,val}/<class>/<i>.EXT: 3 classes, 7 and 2 images each, 40 x 36 pictures.
std::string make_folder(const st::TempDir& dir, bool jpeg) {
  const auto root = dir.file("folder");
  uint64_t seed = 1;
  for (const std::string split : {"train", "val"}) {
    for (const std::string name : {"ant", "bee", "cat"}) {
      fs::create_directories(root + "/" + split + "/" + name);
      for (int i = 0; i < (split == "train" ? 7 : 2); ++i) {
        const auto picture = st::test_picture(3, 36, 40, seed++);
        st::write_file(root + "/" + split + "/" + name + "/" + std::to_string(i) + (jpeg ? ".jpg" : ".png"),
                       jpeg ? st::encode_jpeg(picture) : st::encode_png(picture));
      }
    }
  }
  return root;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(st::read_file(path)); }

// Every shard's bytes, by file name.
std::map<std::string, std::string> shard_bytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".tar") out[entry.path().filename().string()] = st::read_file(entry.path().string());
  }
  return out;
}

sd::PackOptions quiet() { return sd::PackOptions().progress(false).workers(2); }

sd::PackResult pack(const std::string& source, const std::string& out, const sd::PackOptions& options) {
  return sd::pack_dataset(sd::parse_data_spec(source), source, out, options);
}

}  // namespace

TEST(Pack, ShardsHoldTheFolderImagesByteForByteWithLabelsAndARecord) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  const auto out = dir.file("shards");
  const auto result = pack("imagefolder:" + folder, out, quiet().shard_samples(4));
  const auto dataset = read_json(out + "/dataset.json");
  EXPECT_EQ(dataset, result.dataset);
  EXPECT_EQ(dataset["classes"].get<std::vector<std::string>>(), (std::vector<std::string>{"ant", "bee", "cat"}));
  EXPECT_EQ(dataset["class_map"]["cat"], 2);
  EXPECT_EQ(dataset["splits"]["train"]["samples"], 21);
  EXPECT_EQ(dataset["splits"]["train"]["per_class"].get<std::vector<int64_t>>(), (std::vector<int64_t>{7, 7, 7}));
  EXPECT_EQ(dataset["splits"]["train"]["shards"].size(), 6u);  // 4 + 4 + 4 + 4 + 4 + 1
  EXPECT_EQ(dataset["splits"]["val"]["samples"], 6);
  EXPECT_EQ(dataset["splits"]["val"]["shards"][1]["file"], "val-000001.tar");
  EXPECT_EQ(dataset["splits"]["val"]["shards"][1]["bytes"].get<uint64_t>(), fs::file_size(out + "/val-000001.tar"));
  EXPECT_FALSE(fs::exists(out + "/pack.json"));
  for (const std::string split : {"train", "val"}) {
    const auto shards = sd::expand_shards(out + "/" + split + "-{000000..00000" +
                                          std::to_string(dataset["splits"][split]["shards"].size() - 1) + "}.tar");
    const auto index = sd::index_shards(shards, out, dataset["classes"].get<std::vector<std::string>>(), /*strict=*/true).index;
    ASSERT_EQ(index.size(), dataset["splits"][split]["samples"].get<int64_t>());
    std::map<std::string, int> seen;
    std::vector<uint8_t> bytes;
    for (int64_t i = 0; i < index.size(); ++i) {
      // The .json member beside each image names its file: same bytes, same class.
      const auto& path = index.paths[static_cast<size_t>(i)];
      const auto key = path.substr(path.rfind('/') + 1, 9);
      const auto listing = sd::list_tar_file(index.shards[static_cast<size_t>(index.members[i].shard)]);
      std::string meta;
      for (const auto& m : listing.members) {
        if (m.name == key + ".json") meta = st::read_file(index.shards[index.members[i].shard]).substr(m.offset, m.size);
      }
      const auto record = nlohmann::json::parse(meta);
      sd::read_sample_bytes(index, i, bytes);
      const auto original = folder + "/" + split + "/" + record["path"].get<std::string>();
      EXPECT_EQ(std::string(bytes.begin(), bytes.end()), st::read_file(original)) << original;
      EXPECT_EQ(index.classes[index.labels[i]], fs::path(original).parent_path().filename().string());
      EXPECT_EQ(record["width"], 40);
      ++seen[original];
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(index.size()));  // every file once
  }
}

TEST(Pack, ResizedImagesAreTheResamplersWithinJpegLossAndSizesAreRecorded) {
  EXPECT_EQ(sd::packed_size(4000, 3000, sd::PackOptions().shorter_side(256)), (std::pair<int64_t, int64_t>{341, 256}));
  EXPECT_EQ(sd::packed_size(4000, 3000, sd::PackOptions().max_side(1000)), (std::pair<int64_t, int64_t>{1000, 750}));
  EXPECT_EQ(sd::packed_size(300, 200, sd::PackOptions().shorter_side(256).max_side(1000)),
            (std::pair<int64_t, int64_t>{300, 200}));  // already small: kept
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/true);
  const auto out = dir.file("small");
  pack("imagefolder:" + folder, out, quiet().shorter_side(18));
  const auto index = sd::index_shards(sd::expand_shards(out + "/train-000000.tar"), out, {}, true).index;
  ASSERT_EQ(index.size(), 21);
  std::vector<uint8_t> bytes;
  for (int64_t i = 0; i < index.size(); ++i) {
    sd::read_sample_bytes(index, i, bytes);
    const auto packed = sd::decode_image(bytes.data(), bytes.size(), index.paths[i]);
    ASSERT_EQ(packed.sizes(), (torch::IntArrayRef{3, 18, 20})) << index.paths[i];
  }
  // One image against the resampler applied to the decoded original: JPEG q90's loss only.
  const auto one = folder + "/train/ant/0.jpg";
  sd::PackSource source{"train", nullptr, nullptr, ""};
  auto listed = sd::list_image_folder(folder + "/train");
  source.index = &listed;
  sd::SampleEncoder encoder(sd::PackOptions().shorter_side(18));
  const auto sample = encoder.encode(source, 0);
  ASSERT_EQ(sample.error, "");
  EXPECT_EQ(sample.extension, "jpg");
  const auto got = sd::decode_image(reinterpret_cast<const uint8_t*>(sample.image.data()), sample.image.size(), "x")
                       .to(torch::kFloat);
  sd::ResampleSpec spec;
  spec.x = sd::ResampleAxis{0.0, 40.0, 20, 0, 20};
  spec.y = sd::ResampleAxis{0.0, 36.0, 18, 0, 18};
  const auto expected = sd::resample(sd::decode_image(one), spec).round();
  EXPECT_LT((got - expected).abs().mean().item<double>(), 3.0);
}

TEST(Pack, AStoppedPackContinuesAndEqualsAnUninterruptedOneByteForByte) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/true);
  for (const auto& options : {quiet().shard_samples(5).quality(80), quiet().shard_bytes(6000).workers(0)}) {
    const auto whole = dir.file("whole"), stopped = dir.file("stopped");
    fs::remove_all(whole);
    fs::remove_all(stopped);
    const auto first = pack("imagefolder:" + folder, whole, options);
    ASSERT_GE(first.dataset["splits"]["train"]["shards"].size(), 3u);
    pack("imagefolder:" + folder, stopped, options);
    // As a pack stopped after train-000001.tar: later shards, a half-written one and dataset.json gone.
    for (const auto& [name, bytes] : shard_bytes(stopped)) {
      if (name > "train-000001.tar") fs::remove(stopped + "/" + name);
    }
    st::write_file(stopped + "/train-000002.tar.tmp", "half a shard");
    fs::remove(stopped + "/dataset.json");
    const auto resumed = pack("imagefolder:" + folder, stopped, options);
    EXPECT_EQ(resumed.shards_kept, 2);
    EXPECT_EQ(shard_bytes(stopped), shard_bytes(whole));
    EXPECT_FALSE(fs::exists(stopped + "/train-000002.tar.tmp"));
    auto a = first.dataset, b = resumed.dataset;
    for (auto* d : {&a, &b}) (*d)["made"].erase("date");
    EXPECT_EQ(a, b);
  }
}

TEST(Pack, RefusesFinishedPacksAndChangedOptionsNamingThem) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  const auto out = dir.file("out");
  pack("imagefolder:" + folder, out, quiet());
  auto message = st::expect_error([&] { pack("imagefolder:" + folder, out, quiet()); });
  EXPECT_NE(message.find(out + " already holds a finished pack"), std::string::npos) << message;
  // A stopped pack (its plan left) asked to continue with other options.
  fs::remove(out + "/dataset.json");
  st::write_file(out + "/pack.json", R"({"source": "imagefolder:)" + folder + R"(", "quality": 0, "max_side": 0,
      "shorter_side": 0, "shard_bytes": 268435456, "shard_samples": 0, "seed": 0})");
  message = st::expect_error([&] { pack("imagefolder:" + folder, out, quiet().quality(75)); });
  EXPECT_NE(message.find("holds a stopped pack with quality 0, not 75"), std::string::npos) << message;
}

TEST(Pack, UnreadableImagesAreSkippedAndNamedOrStopAPackWithStrict) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  st::write_file(folder + "/train/bee/broken.png", "not a png");
  const auto out = dir.file("out");
  const auto result = pack("imagefolder:" + folder, out, quiet());
  EXPECT_EQ(result.dataset["splits"]["train"]["samples"], 21);
  EXPECT_EQ(result.dataset["splits"]["train"]["skipped"], 1);
  const auto report = result.dataset["splits"]["train"]["skipped_reports"][0].get<std::string>();
  EXPECT_EQ(report.rfind("bee/broken.png: ", 0), 0u) << report;
  const auto message = st::expect_error([&] { pack("imagefolder:" + folder, dir.file("strict"), quiet().strict(true)); });
  EXPECT_NE(message.find("pack --strict: bee/broken.png"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir.file("strict") + "/train-000000.tar"));
}

TEST(Pack, InMemoryDataBecomesLosslessPngsOfTheSamePixels) {
  st::TempDir dir;
  const auto idx = dir.file("idx");
  fs::create_directories(idx);
  const std::vector<uint8_t> labels{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2};
  for (const std::string prefix : {"train", "t10k"}) {
    st::write_file(idx + "/" + prefix + "-images-idx3-ubyte", st::idx_images_bytes(12, 28, 28));
    st::write_file(idx + "/" + prefix + "-labels-idx1-ubyte", st::idx_labels_bytes(labels));
  }
  const auto out = dir.file("out");
  pack("fashion-mnist:" + idx, out, quiet());
  const auto memory = sd::read_fashion_mnist(idx, sd::Split::kTrain);
  const auto index = sd::index_shards({out + "/train-000000.tar"}, out, sd::recorded_classes(out), true).index;
  ASSERT_EQ(index.size(), 12);
  EXPECT_EQ(index.classes, memory.classes);
  std::vector<uint8_t> bytes;
  for (int64_t i = 0; i < index.size(); ++i) {
    sd::read_sample_bytes(index, i, bytes);
    const auto image = sd::decode_image(bytes.data(), bytes.size(), index.paths[i], sd::DecodeOptions().channels(1));
    // Rows hold different pixels, so the match names the row: its label must follow.
    bool found = false;
    for (int64_t row = 0; row < memory.size() && !found; ++row) {
      if (torch::equal(image, memory.images[row]) && memory.labels[row].item<int64_t>() == index.labels[i]) found = true;
    }
    EXPECT_TRUE(found) << index.paths[i];
  }
}

TEST(Pack, TheWebdatasetPackageReadsOurShardsAndWritesShardsWeRead) {
  if (!st::have_python_torch()) GTEST_SKIP() << "no project Python (scripts/setup)";
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/true);
  const auto out = dir.file("ours");
  pack("imagefolder:" + folder, out, quiet().shard_samples(8));
  const auto script = std::string(SPLITSHARE_SOURCE_DIR) + "/tests/python/wds_interop.py";
  std::string output;
  ASSERT_EQ(st::run_command(std::string(st::python()) + " " + script + " read " + out + " " + folder, &output), 0)
      << output;
  EXPECT_NE(output.find("read 27 samples"), std::string::npos) << output;
  // The other way: shards from webdataset.ShardWriter (5 samples each), read by our index.
  const auto theirs = dir.file("theirs");
  output.clear();
  ASSERT_EQ(st::run_command(std::string(st::python()) + " " + script + " write " + folder + "/train " + theirs, &output),
            0) << output;
  const auto index = sd::index_shards(sd::expand_shards(theirs), theirs, {}, /*strict=*/true).index;
  ASSERT_EQ(index.size(), 21);
  std::vector<uint8_t> bytes;
  for (int64_t i = 0; i < index.size(); ++i) {
    const auto& path = index.paths[i];  // SHARD/CLASS_STEM.png
    const auto member = path.substr(path.rfind('/') + 1);
    const auto name = member.substr(0, member.find('_'));
    const auto stem = member.substr(member.find('_') + 1, member.find('.') - member.find('_') - 1);
    sd::read_sample_bytes(index, i, bytes);
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), st::read_file(folder + "/train/" + name + "/" + stem + ".jpg"));
    EXPECT_EQ(index.classes[index.labels[i]], std::to_string(name == "ant" ? 0 : name == "bee" ? 1 : 2));
  }
}

TEST(Pack, PackedShardsSplitBetweenRanksWithoutOverlapAndResumeMidEpochBitwise) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  const auto out = dir.file("shards");
  pack("imagefolder:" + folder, out, quiet().shard_samples(4));
  const auto index = sd::index_shards(sd::expand_shards(out + "/train-{000000..000005}.tar"), out, {}, true).index;
  ASSERT_EQ(index.size(), 21);
  const auto options = sd::ImageFolderOptions().image_size(16);
  const auto loader = [](int64_t rank) {
    return sd::LoaderOptions().batch_size(2).workers(1).shuffle(true).augment(true).seed(5).rank(rank).world_size(3);
  };
  std::vector<int64_t> together;
  for (int64_t rank = 0; rank < 3; ++rank) {
    sd::ImageFolderLoader stream(index, options, loader(rank));
    stream.reset(1);
    while (auto batch = stream.next()) {
      for (int64_t i = 0; i < batch->indices.size(0); ++i) together.push_back(batch->indices[i].item<int64_t>());
    }
  }
  std::sort(together.begin(), together.end());
  std::vector<int64_t> all(21);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(together, all);  // every sample once per epoch, over the three ranks
  // Resuming after 3 batches of epoch 1 gives the batches an uninterrupted epoch gives from there.
  sd::ImageFolderLoader whole(index, options, loader(0)), resumed(index, options, loader(0));
  whole.reset(1);
  std::vector<sd::Batch> expected;
  while (auto batch = whole.next()) expected.push_back(*batch);
  resumed.reset_at(1, 3 * 2 * 3);  // positions of the shared order: 3 batches of 2 on each of 3 ranks
  for (size_t b = 3; b < expected.size(); ++b) {
    auto batch = resumed.next();
    ASSERT_TRUE(batch.has_value());
    EXPECT_TRUE(torch::equal(batch->images, expected[b].images)) << "batch " << b;
  }
  EXPECT_FALSE(resumed.next().has_value());
}

TEST(Pack, StreamedShardsSplitBetweenRanksByShardAndResumeMidEpochBitwise) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  const auto out = dir.file("shards");
  pack("imagefolder:" + folder, out, quiet().shard_samples(3));  // 21 training samples: 7 shards
  const auto index = sd::index_shards(sd::expand_shards(out + "/train-{000000..000006}.tar"), out, {}, true).index;
  ASSERT_EQ(index.size(), 21);
  const auto options = sd::ImageFolderOptions().image_size(16);
  const auto loader = [](int64_t rank) {
    return sd::LoaderOptions().batch_size(2).workers(1).shuffle(true).drop_last(true).augment(true).seed(5).rank(rank)
        .world_size(2).shuffle_buffer(2);
  };
  std::vector<int64_t> shard_of;
  for (const auto& member : index.members) shard_of.push_back(member.shard);
  std::vector<std::vector<int64_t>> seen(2);
  for (int64_t rank = 0; rank < 2; ++rank) {
    sd::ImageFolderLoader stream(index, options, loader(rank));
    EXPECT_EQ(stream.size(), 11);  // ceil(21 / 2) on each rank
    EXPECT_EQ(stream.batches_per_epoch(), 5);
    stream.reset(1);
    while (auto batch = stream.next()) {
      for (int64_t i = 0; i < batch->indices.size(0); ++i) seen[rank].push_back(batch->indices[i].item<int64_t>());
    }
    const auto order = sd::streaming_order(shard_of, 2, 5, 1, rank, 2);
    EXPECT_EQ(seen[rank], std::vector<int64_t>(order.begin(), order.begin() + 10));  // 5 whole batches
  }
  // The ranks read different shards.
  for (auto a : seen[0]) {
    for (auto b : seen[1]) EXPECT_NE(index.members[a].shard, index.members[b].shard);
  }
  // Resuming after 2 batches of epoch 1 gives the batches an uninterrupted epoch gives from there.
  sd::ImageFolderLoader whole(index, options, loader(1)), resumed(index, options, loader(1));
  whole.reset(1);
  std::vector<sd::Batch> expected;
  while (auto batch = whole.next()) expected.push_back(*batch);
  resumed.reset_at(1, 2 * 2 * 2);  // positions: 2 batches of 2 on each of 2 ranks
  for (size_t b = 2; b < expected.size(); ++b) {
    auto batch = resumed.next();
    ASSERT_TRUE(batch.has_value());
    EXPECT_TRUE(torch::equal(batch->images, expected[b].images)) << "batch " << b;
    EXPECT_TRUE(torch::equal(batch->indices, expected[b].indices)) << "batch " << b;
  }
  EXPECT_FALSE(resumed.next().has_value());
}

TEST(Pack, StreamingIsRefusedWhereItCannotApplyNamingWhy) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  const auto out = dir.file("shards");
  pack("imagefolder:" + folder, out, quiet().shard_samples(3));
  const auto streaming = sd::DataOptions().shuffle_buffer(4).image_size(16).workers(0).batch_size(4);
  const auto on_folder = st::expect_error([&] { sd::open_data(sd::parse_data_spec("imagefolder:" + folder), streaming); });
  EXPECT_NE(on_folder.find("imagefolder data is read by index"), std::string::npos) << on_folder;
  const auto small = st::expect_error([&] { sd::open_data(sd::parse_data_spec("wds:" + out), streaming); });
  EXPECT_NE(small.find("decoded once into memory"), std::string::npos) << small;
  const auto photos = sd::DataOptions(streaming).small_image_side(0);
  const auto balanced = st::expect_error(
      [&] { sd::open_data(sd::parse_data_spec("wds:" + out), sd::DataOptions(photos).balanced_sampler(true)); });
  EXPECT_NE(balanced.find("needs shuffling by index"), std::string::npos) << balanced;
  auto bundle = sd::open_data(sd::parse_data_spec("wds:" + out), photos);
  EXPECT_EQ(bundle.train->size(), 21);
  EXPECT_EQ(bundle.train->batches_per_epoch(), 5);  // 21 samples in batches of 4, the last dropped
}

TEST(Pack, ShardsThatNoLongerMatchTheirRecordAreRefusedWhenRead) {
  st::TempDir dir;
  const auto folder = make_folder(dir, /*jpeg=*/false);
  const auto out = dir.file("shards");
  pack("imagefolder:" + folder, out, quiet().shard_samples(8));
  auto options = sd::DataOptions().image_size(16).small_image_side(0).batch_size(4).workers(0);
  EXPECT_EQ(sd::open_data(sd::parse_data_spec("wds:" + out), options).classes.size(), 3u);  // as packed: fine
  const auto shard = out + "/train-000001.tar";
  const auto bytes = st::read_file(shard);
  st::write_file(shard, bytes + std::string(512, '\0'));
  auto message = st::expect_error([&] { sd::open_data(sd::parse_data_spec("wds:" + out), options); });
  EXPECT_NE(message.find(shard + " has " + std::to_string(bytes.size() + 512) + " bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("changed since it was packed"), std::string::npos) << message;
  fs::remove(shard);
  message = st::expect_error([&] { sd::open_data(sd::parse_data_spec("wds:" + out), options); });
  EXPECT_NE(message.find("records the shard train-000001.tar, which " + out + " does not hold"), std::string::npos)
      << message;
  // A brace range may name a subset on purpose: the shards it names must still match.
  st::write_file(shard, bytes);
  EXPECT_EQ(sd::open_data(sd::parse_data_spec("wds:" + out + "/train-{000000..000001}.tar"), options.val_split(0.25))
                .classes.size(), 3u);
}
