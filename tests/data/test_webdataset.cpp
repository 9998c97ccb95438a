// WebDataset shards: the tar reader on archives GNU tar writes in each of its formats,
// `wds:` data read through the same pipeline as an image folder of the same images, and the
// streaming order (shards dealt to ranks, a shuffle buffer).
#include <splitshare/data/webdataset.h>

#include "data/tar.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "image_writers.h"
#include "support.h"

namespace fs = std::filesystem;
namespace sd = splitshare::data;
namespace st = splitshare::testing;

namespace {

// GNU tar writes `names` (relative to `dir`, in this order) into `tar` in `format`.
void gnu_tar(const fs::path& dir, const std::string& tar, const std::string& format,
             const std::vector<std::string>& names) {
  std::string command = "tar -C '" + dir.string() + "' -b1 --format=" + format + " -cf '" + tar + "'";
  for (const auto& name : names) command += " '" + name + "'";
  std::string output;
  ASSERT_EQ(st::run_command(command, &output), 0) << command << "\n" << output;
}

std::string bytes_at(const std::string& path, int64_t offset, int64_t size) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(offset);
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), size);
  return bytes;
}

// An image folder DIR/{train,val}/<class>/<i>.png and the same images as WebDataset shards
// SHARDS/{train,val}-000000.tar (KEY.png + KEY.cls, in the folder's order).
struct SameData {
  std::string folder, shards;
};

SameData make_same_data(const st::TempDir& dir, bool with_val_shards) {
  SameData data{dir.file("folder"), dir.file("shards")};
  const fs::path staging = dir.file("staging");
  fs::create_directories(data.shards);
  uint64_t seed = 1;
  for (const std::string split : {"train", "val"}) {
    std::vector<std::string> members;
    for (int c = 0; c < 3; ++c) {
      const std::string name = "class" + std::to_string(c);
      fs::create_directories(data.folder + "/" + split + "/" + name);
      for (int i = 0; i < (split == "train" ? 6 : 2); ++i) {
        const auto png = st::encode_png(st::test_picture(3, 40, 36, seed++));
        st::write_file(data.folder + "/" + split + "/" + name + "/" + std::to_string(i) + ".png", png);
        const std::string key = split + "-" + name + "-" + std::to_string(i);
        fs::create_directories(staging);
        st::write_file((staging / (key + ".png")).string(), png);
        st::write_file((staging / (key + ".cls")).string(), std::to_string(c) + "\n");
        members.insert(members.end(), {key + ".cls", key + ".png"});
      }
    }
    if (split == "train" || with_val_shards) gnu_tar(staging, data.shards + "/" + split + "-000000.tar", "ustar", members);
  }
  return data;
}

sd::DataOptions photo_options() {
  return sd::DataOptions().image_size(24).small_image_side(0).batch_size(4).eval_batch_size(5).workers(2).seed(3);
}

std::vector<sd::Batch> all_batches(sd::BatchStream& stream, int64_t epoch) {
  stream.reset(epoch);
  std::vector<sd::Batch> batches;
  while (auto batch = stream.next()) batches.push_back(*batch);
  return batches;
}

void expect_same_batches(sd::BatchStream& a, sd::BatchStream& b, int64_t epoch) {
  const auto x = all_batches(a, epoch), y = all_batches(b, epoch);
  ASSERT_EQ(x.size(), y.size());
  ASSERT_FALSE(x.empty());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(torch::equal(x[i].images, y[i].images)) << "batch " << i;
    EXPECT_TRUE(torch::equal(x[i].labels, y[i].labels)) << "batch " << i;
  }
}

}  // namespace

TEST(Tar, ListsEveryFormatGnuTarWritesWithTheMembersBytes) {
  st::TempDir dir;
  const fs::path files = dir.file("files");
  const std::string long_name = "deep/" + std::string(140, 'n') + ".cls";
  fs::create_directories(files / "deep");
  st::write_file((files / "a.jpg").string(), std::string(700, 'x'));
  st::write_file((files / "a.cls").string(), "3");
  st::write_file((files / long_name).string(), "12\n");
  st::write_file((files / "empty.json").string(), "");
  for (const std::string format : {"ustar", "gnu", "pax", "v7"}) {
    SCOPED_TRACE(format);
    std::vector<std::string> names{"a.jpg", "a.cls", "empty.json"};
    if (format != "ustar" && format != "v7") names.push_back(long_name);  // longer than ustar's 255
    const auto tar = dir.file(format + ".tar");
    gnu_tar(files, tar, format, names);
    const auto listing = sd::list_tar_file(tar);
    EXPECT_EQ(listing.problem, "");
    ASSERT_EQ(listing.members.size(), names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      EXPECT_EQ(listing.members[i].name, names[i]);
      EXPECT_EQ(bytes_at(tar, listing.members[i].offset, listing.members[i].size),
                st::read_file((files / names[i]).string()));
    }
  }
}

TEST(Tar, ACutShortOrCorruptArchiveStopsNamingItTheOffsetAndTheLastGoodMember) {
  st::TempDir dir;
  const fs::path files = dir.file("files");
  fs::create_directories(files);
  st::write_file((files / "a.png").string(), std::string(2000, 'p'));
  st::write_file((files / "b.png").string(), std::string(3000, 'q'));
  const auto tar = dir.file("shard.tar");
  gnu_tar(files, tar, "ustar", {"a.png", "b.png"});
  const auto whole = st::read_file(tar);

  const auto cut = dir.file("cut.tar");
  st::write_file(cut, whole.substr(0, 512 + 2048 + 512 + 1000));  // b.png's data cut short
  auto listing = sd::list_tar_file(cut);
  ASSERT_EQ(listing.members.size(), 1u);
  EXPECT_NE(listing.problem.find(cut + ": member b.png is cut short"), std::string::npos) << listing.problem;
  EXPECT_NE(listing.problem.find("after member a.png"), std::string::npos) << listing.problem;

  auto corrupt = whole;
  corrupt[512 + 2048 + 10] ^= 0x55;  // a byte of b.png's header name
  const auto bad = dir.file("bad.tar");
  st::write_file(bad, corrupt);
  listing = sd::list_tar_file(bad);
  ASSERT_EQ(listing.members.size(), 1u);
  EXPECT_NE(listing.problem.find("checksum is wrong"), std::string::npos) << listing.problem;
  EXPECT_NE(listing.problem.find("offset 2560"), std::string::npos) << listing.problem;

  const auto text = dir.file("text.tar");
  st::write_file(text, "not a tar file at all");
  EXPECT_NE(sd::list_tar_file(text).problem.find("shorter than one tar header"), std::string::npos);
}

TEST(WebDataset, ShardsTrainAndEvaluateExactlyAsTheFolderOfTheSameImages) {
  st::TempDir dir;
  const auto data = make_same_data(dir, /*with_val_shards=*/true);
  for (int64_t small_side : {int64_t{0}, int64_t{64}}) {  // the photo pipeline, and read into memory
    SCOPED_TRACE(small_side);
    const auto options = photo_options().small_image_side(small_side);
    auto folder = sd::open_data(sd::parse_data_spec("imagefolder:" + data.folder), options);
    auto shards = sd::open_data(sd::parse_data_spec("wds:" + data.shards), options);
    EXPECT_EQ(shards.classes, (std::vector<std::string>{"0", "1", "2"}));  // no dataset.json: numbered
    EXPECT_EQ(shards.class_counts, folder.class_counts);
    expect_same_batches(*folder.train, *shards.train, 0);
    expect_same_batches(*folder.train, *shards.train, 1);
    expect_same_batches(*folder.val, *shards.val, 0);
  }
}

TEST(WebDataset, TrainingShardsAloneAreSplitAndTheSplitIsRecordedByMemberName) {
  st::TempDir dir;
  const auto data = make_same_data(dir, /*with_val_shards=*/false);
  st::write_file(data.shards + "/dataset.json", R"({"classes": ["ant", "bee", "cat"]})");
  const auto options = photo_options().val_split(0.34);
  auto first = sd::open_data(sd::parse_data_spec("wds:" + data.shards + "/train-{000000..000000}.tar"), options);
  EXPECT_EQ(first.classes, (std::vector<std::string>{"ant", "bee", "cat"}));
  ASSERT_EQ(first.val_files.size(), 6u);  // 2 of each class's 6
  EXPECT_EQ(first.val_files[0].rfind("train-000000.tar/train-class0-", 0), 0u) << first.val_files[0];
  auto again = sd::open_data(sd::parse_data_spec("wds:" + data.shards), photo_options().val_files(first.val_files));
  expect_same_batches(*first.val, *again.val, 0);
  expect_same_batches(*first.train, *again.train, 0);
}

TEST(WebDataset, SamplesWithoutALabelOrImageAreSkippedAndCountedOrRefusedWithStrict) {
  st::TempDir dir;
  const fs::path staging = dir.file("staging");
  fs::create_directories(staging);
  const auto png = st::encode_png(st::test_picture(3, 30, 30, 1));
  for (const std::string key : {"k0", "k1", "k2", "nolabel", "badlabel"}) st::write_file((staging / (key + ".png")).string(), png);
  st::write_file((staging / "k0.cls").string(), "0");
  st::write_file((staging / "k1.cls").string(), "1");
  st::write_file((staging / "k2.cls").string(), " 1 \n");
  st::write_file((staging / "badlabel.cls").string(), "7x");
  st::write_file((staging / "onlylabel.cls").string(), "0");
  const auto shard = dir.file("shards/train-000000.tar");
  fs::create_directories(dir.file("shards"));
  gnu_tar(staging, shard, "gnu", {"k0.png", "k0.cls", "nolabel.png", "k1.cls", "k1.png", "badlabel.cls",
                                  "badlabel.png", "onlylabel.cls", "k2.png", "k2.cls"});
  auto relaxed = sd::index_shards({shard}, dir.file("shards"), {}, /*strict=*/false);
  EXPECT_EQ(relaxed.index.size(), 3);
  EXPECT_EQ(relaxed.index.labels, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(relaxed.index.classes, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(relaxed.skipped, 3);
  ASSERT_EQ(relaxed.skipped_reports.size(), 3u);
  EXPECT_EQ(relaxed.skipped_reports[0], shard + ": sample nolabel has no .cls member (its class index)");
  EXPECT_NE(relaxed.skipped_reports[1].find("badlabel.cls holds '7x', not a class index"), std::string::npos);
  EXPECT_EQ(relaxed.skipped_reports[2], shard + ": sample onlylabel has no image member (.jpg, .png, .webp, ...)");
  const auto message = st::expect_error([&] { sd::index_shards({shard}, dir.file("shards"), {}, /*strict=*/true); });
  EXPECT_NE(message.find(shard + ": sample nolabel has no .cls member"), std::string::npos) << message;
  // A label outside dataset.json's classes.
  const auto named = sd::index_shards({shard}, dir.file("shards"), {"only"}, /*strict=*/false);
  EXPECT_EQ(named.index.size(), 1);
  EXPECT_NE(named.skipped_reports[1].find("k1.cls holds '1', not a class index from 0 to 0"), std::string::npos);
}

TEST(WebDataset, LocationsThatNameNoShardsAreRefusedByName) {
  st::TempDir dir;
  fs::create_directories(dir.file("empty"));
  EXPECT_NE(st::expect_error([&] { sd::expand_shards(dir.file("empty")); }).find("holds no .tar shards"),
            std::string::npos);
  EXPECT_NE(st::expect_error([&] { sd::expand_shards(dir.file("nowhere")); }).find("no such folder or shard file"),
            std::string::npos);
  st::write_file(dir.file("s-01.tar"), "");
  const auto gap = st::expect_error([&] { sd::expand_shards(dir.file("s-{01..02}.tar")); });
  EXPECT_NE(gap.find("shard " + dir.file("s-02.tar") + " does not exist"), std::string::npos) << gap;
  EXPECT_EQ(sd::expand_shards(dir.file("s-{01..01}.tar")), (std::vector<std::string>{dir.file("s-01.tar")}));
  EXPECT_NE(st::expect_error([&] { sd::expand_shards(dir.file("s-{02..01}.tar")); }).find("FIRST <= LAST"),
            std::string::npos);
}

namespace {

// shard_of for shards of the given sizes, samples numbered shard after shard.
std::vector<int64_t> shards_of_sizes(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> shard_of;
  for (size_t s = 0; s < sizes.size(); ++s) shard_of.insert(shard_of.end(), static_cast<size_t>(sizes[s]), s);
  return shard_of;
}

}  // namespace

TEST(Streaming, EachRankReadsWholeShardsOfAShuffledOrderOncePerEpoch) {
  const auto shard_of = shards_of_sizes({5, 5, 5, 5, 5, 5});
  std::set<std::vector<int64_t>> shard_orders;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    std::vector<int64_t> together, shards_read;
    for (int64_t rank = 0; rank < 2; ++rank) {
      const auto order = sd::streaming_order(shard_of, /*buffer=*/1, /*seed=*/3, epoch, rank, 2);
      ASSERT_EQ(order.size(), 15u);
      // Buffer 1: whole shards, front to back.
      for (size_t i = 0; i < order.size(); ++i) {
        EXPECT_EQ(order[i] % 5, static_cast<int64_t>(i % 5)) << "rank " << rank << " position " << i;
        if (i % 5 == 0) shards_read.push_back(shard_of[static_cast<size_t>(order[i])]);
      }
      together.insert(together.end(), order.begin(), order.end());
    }
    std::sort(together.begin(), together.end());
    std::vector<int64_t> all(30);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(together, all) << "epoch " << epoch;  // every sample once over the two ranks
    shard_orders.insert(shards_read);
  }
  EXPECT_GT(shard_orders.size(), 1u);  // the shard order changes between epochs
  EXPECT_EQ(sd::streaming_order(shard_of, 4, 3, 1, 0, 2), sd::streaming_order(shard_of, 4, 3, 1, 0, 2));
  EXPECT_NE(sd::streaming_order(shard_of, 4, 3, 1, 0, 2), sd::streaming_order(shard_of, 4, 4, 1, 0, 2));
}

TEST(Streaming, TheBufferShufflesWithinReachAndNoFurther) {
  const auto shard_of = shards_of_sizes({40, 40, 40});
  const auto in_order = sd::streaming_order(shard_of, 1, 9, 0, 0, 1);
  for (int64_t buffer : {2, 8, 32}) {
    const auto order = sd::streaming_order(shard_of, buffer, 9, 0, 0, 1);
    EXPECT_NE(order, in_order) << "buffer " << buffer;
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    auto expected = in_order;
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(sorted, expected);
    // A sample leaves the buffer only after it arrived: the k-th out arrived at most buffer - 1 later.
    std::map<int64_t, size_t> arrival;
    for (size_t i = 0; i < in_order.size(); ++i) arrival[in_order[i]] = i;
    size_t furthest = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      ASSERT_LE(arrival[order[k]], k + static_cast<size_t>(buffer) - 1) << "buffer " << buffer << " position " << k;
      furthest = std::max(furthest, arrival[order[k]] + static_cast<size_t>(buffer) - 1 - k);
    }
    EXPECT_GT(furthest, 0u);  // some sample left early in its reach: a real shuffle
  }
}

TEST(Streaming, UnevenShardsGiveEveryRankTheSameCountAndTooFewShardsAreRefused) {
  const auto shard_of = shards_of_sizes({5, 5, 2});
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    for (int64_t rank = 0; rank < 2; ++rank) {
      const auto order = sd::streaming_order(shard_of, 3, 1, epoch, rank, 2);
      EXPECT_EQ(order.size(), 6u);  // ceil(12 / 2), whichever shards the rank drew
      std::set<int64_t> shards;
      for (auto sample : order) shards.insert(shard_of[static_cast<size_t>(sample)]);
      const auto other = sd::streaming_order(shard_of, 3, 1, epoch, 1 - rank, 2);
      for (auto sample : other) EXPECT_EQ(shards.count(shard_of[static_cast<size_t>(sample)]), 0u);
    }
  }
  const auto message = st::expect_error([&] { sd::streaming_order(shards_of_sizes({4, 4}), 8, 0, 0, 0, 3); });
  EXPECT_NE(message.find("2 shards hold training samples, fewer than the 3 ranks"), std::string::npos) << message;
  EXPECT_NE(st::expect_error([&] { sd::streaming_order(shard_of, 0, 0, 0, 0, 1); }).find("at least 1 sample"),
            std::string::npos);
}
