// Checkpoints that continue a run: loaders starting part-way through an epoch, fit()
// stopped and resumed (bitwise equal to an uninterrupted run), another world size, and
// `splitshare train --resume`.
#include <splitshare/data/image_folder.h>
#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/distributed/distributed.h>
#include <splitshare/train/fit.h>

#include <algorithm>
#include <csignal>
#include <numeric>
#include <set>

#include "image_writers.h"
#include "ranks.h"
#include "support.h"

namespace sd = splitshare::data;
namespace sn = splitshare::nn;
namespace tr = splitshare::train;
using splitshare::testing::expect_error;
using splitshare::testing::read_file;
using splitshare::testing::run_command;
using splitshare::testing::run_ranks;
using splitshare::testing::TempDir;

namespace {

const std::string kCli = SPLITSHARE_CLI;

sd::TensorDataset random_dataset(int64_t n) {
  torch::manual_seed(11);
  return {torch::randint(0, 256, {n, 1, 8, 8}, torch::kInt64).to(torch::kUInt8), torch::arange(n) % 10};
}

sd::LoaderOptions train_loader(int64_t rank, int64_t world) {
  return sd::LoaderOptions().batch_size(4).shuffle(true).drop_last(true).augment(true).pad(2).seed(9).rank(rank).world_size(world);
}

std::vector<sd::Batch> drain(sd::BatchStream& stream) {
  std::vector<sd::Batch> out;
  while (auto batch = stream.next()) out.push_back(*batch);
  return out;
}

bool have_fashion_mnist() { return std::filesystem::exists(sd::default_fashion_mnist_dir()); }

sd::DataBundle tiny_data(int64_t rank = 0, int64_t world = 1) {
  return sd::open_data(sd::parse_data_spec("fashion-mnist"),
                       sd::DataOptions().batch_size(16).limit_train(160).limit_val(32).seed(4).rank(rank).world_size(world));
}

sn::ClassifierOptions tiny_model() {
  return sn::ClassifierOptions().arch("resnet10").width(4).in_channels(1).stem(sn::Stem::kSmall).num_classes(10)
      .head(sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(2));
}

tr::TrainOptions tiny_options() {
  return tr::TrainOptions().epochs(4).batch_size(16).lr(0.05).schedule(tr::ScheduleKind::kCosine).warmup_epochs(0.5);
}

tr::RunContext quiet(const std::string& out) { return tr::RunContext().observer({}).out_dir(out); }

tr::TrainResult run(const tr::TrainOptions& options, const tr::RunContext& context, int seed = 1) {
  auto data = tiny_data();
  torch::manual_seed(seed);
  auto model = sn::make_classifier(tiny_model());
  tr::CheckpointMetadata meta;
  meta.model = tiny_model();
  return tr::fit(model, data, options, context, meta);
}

// Stops after the global step `at` (1-based).
std::function<int()> stop_after(int64_t at) {
  auto steps = std::make_shared<int64_t>(0);
  return [steps, at] { return ++*steps == at ? SIGTERM : 0; };
}

void expect_same_tensors(const std::string& a, const std::string& b) {
  auto x = tr::read_archive_tensors(a), y = tr::read_archive_tensors(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, tensor] : x) {
    ASSERT_TRUE(y.count(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, y.at(name))) << name << " differs between " << a << " and " << b;
  }
}

}  // namespace

TEST(ResumeLoader, SameWorldSizeGivesTheRemainingBatches) {
  auto data = random_dataset(50);
  for (int64_t rank = 0; rank < 2; ++rank) {
    auto whole = sd::make_tensor_loader(data, {0.5}, {0.25}, train_loader(rank, 2));
    whole->reset(1);
    auto all = drain(*whole);
    ASSERT_EQ(all.size(), 6u);  // ceil(50 / 2) = 25 per rank, 6 full batches of 4
    auto resumed = sd::make_tensor_loader(data, {0.5}, {0.25}, train_loader(rank, 2));
    resumed->reset_at(1, 2 * 4 * 2);  // two steps of both ranks done
    auto rest = drain(*resumed);
    ASSERT_EQ(rest.size(), 4u);
    for (size_t i = 0; i < rest.size(); ++i) {
      EXPECT_TRUE(torch::equal(rest[i].indices, all[i + 2].indices)) << "rank " << rank << " batch " << i;
      EXPECT_TRUE(torch::equal(rest[i].images, all[i + 2].images)) << "rank " << rank << " batch " << i;
    }
  }
}

TEST(ResumeLoader, AnotherWorldSizeNeitherRepeatsNorSkips) {
  const int64_t n = 50, consumed = 16;
  auto data = random_dataset(n);
  // Positions 0..15 of epoch 3 were trained on by 2 ranks; the samples they were:
  std::multiset<int64_t> seen;
  for (int64_t rank = 0; rank < 2; ++rank) {
    auto stream = sd::make_tensor_loader(data, {0.5}, {0.25}, train_loader(rank, 2));
    stream->reset(3);
    for (int step = 0; step < 2; ++step) {
      auto batch = stream->next();
      for (int64_t i = 0; i < batch->indices.size(0); ++i) seen.insert(batch->indices[i].item<int64_t>());
    }
  }
  ASSERT_EQ(static_cast<int64_t>(seen.size()), consumed);
  // The rest of the epoch on 3 ranks, without dropping the last batch: every sample
  // exactly once overall, plus the padding of the last round (< 3 repeats).
  std::multiset<int64_t> rest;
  for (int64_t rank = 0; rank < 3; ++rank) {
    auto stream = sd::make_tensor_loader(data, {0.5}, {0.25}, train_loader(rank, 3).drop_last(false));
    stream->reset_at(3, consumed);
    for (const auto& batch : drain(*stream)) {
      for (int64_t i = 0; i < batch.indices.size(0); ++i) rest.insert(batch.indices[i].item<int64_t>());
    }
  }
  EXPECT_EQ(static_cast<int64_t>(rest.size()), (n - consumed + 2) / 3 * 3);
  std::set<int64_t> fresh;
  for (auto s : rest) {
    if (!seen.count(s)) fresh.insert(s);
  }
  EXPECT_EQ(static_cast<int64_t>(fresh.size()), n - consumed) << "a remaining sample was skipped or repeated";
  for (int64_t s = 0; s < n; ++s) EXPECT_TRUE(seen.count(s) || fresh.count(s)) << "sample " << s << " skipped";
  // Without shuffling nothing is padded: the shards are disjoint and hold exactly the rest.
  std::vector<int64_t> plain;
  for (int64_t rank = 0; rank < 3; ++rank) {
    auto stream = sd::make_tensor_loader(data, {0.5}, {0.25}, sd::LoaderOptions().batch_size(4).rank(rank).world_size(3));
    stream->reset_at(0, consumed);
    for (const auto& batch : drain(*stream)) {
      for (int64_t i = 0; i < batch.indices.size(0); ++i) plain.push_back(batch.indices[i].item<int64_t>());
    }
  }
  std::sort(plain.begin(), plain.end());
  std::vector<int64_t> expected(static_cast<size_t>(n - consumed));
  std::iota(expected.begin(), expected.end(), consumed);
  EXPECT_EQ(plain, expected);
}

TEST(ResumeLoader, ImageFolderStartsPartWay) {
  TempDir dir;
  for (int c = 0; c < 2; ++c) {
    std::filesystem::create_directories(dir.path() / ("class" + std::to_string(c)));
    for (int i = 0; i < 9; ++i) {
      splitshare::testing::write_file(
          (dir.path() / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + ".png")).string(),
          splitshare::testing::encode_png(splitshare::testing::test_picture(3, 24, 24 + 4 * i, c * 100 + i)));
    }
  }
  const auto index = sd::list_image_folder(dir.path().string());
  const auto options = sd::ImageFolderOptions().image_size(16);
  auto loader = [&](int64_t rank, int64_t world, int64_t workers) {
    return sd::ImageFolderLoader(index, options, sd::LoaderOptions().batch_size(2).workers(workers).seed(5)
        .shuffle(true).drop_last(true).augment(true).rank(rank).world_size(world));
  };
  // 18 images on 2 ranks: 9 each, 4 batches of 2; two steps of both ranks = 8 positions.
  std::set<int64_t> seen;
  for (int64_t rank = 0; rank < 2; ++rank) {
    auto whole = loader(rank, 2, 0);
    whole.reset(1);
    auto all = drain(whole);
    ASSERT_EQ(all.size(), 4u);
    for (int b = 0; b < 2; ++b) {
      for (int64_t i = 0; i < 2; ++i) seen.insert(all[b].indices[i].item<int64_t>());
    }
    auto resumed = loader(rank, 2, 2);
    resumed.reset_at(1, 8);
    auto rest = drain(resumed);
    ASSERT_EQ(rest.size(), 2u);
    for (size_t b = 0; b < rest.size(); ++b) {
      EXPECT_TRUE(torch::equal(rest[b].indices, all[b + 2].indices)) << "rank " << rank;
      EXPECT_TRUE(torch::equal(rest[b].images, all[b + 2].images)) << "rank " << rank;
    }
  }
  ASSERT_EQ(seen.size(), 8u);
  // On 3 ranks: positions 8..16 (whole rounds of 3), one batch of 2 and a dropped one each.
  std::multiset<int64_t> rest;
  for (int64_t rank = 0; rank < 3; ++rank) {
    auto resumed = loader(rank, 3, 0);
    EXPECT_EQ(resumed.batches_per_epoch(), 3);
    resumed.reset_at(1, 8);
    for (const auto& batch : drain(resumed)) {
      for (int64_t i = 0; i < batch.indices.size(0); ++i) rest.insert(batch.indices[i].item<int64_t>());
    }
  }
  EXPECT_EQ(rest.size(), 6u);
  for (auto s : rest) {
    EXPECT_FALSE(seen.count(s)) << "sample " << s << " trained on twice in one epoch";
    EXPECT_EQ(rest.count(s), 1u) << "sample " << s << " repeated";
  }
}

TEST(Resume, StoppedAndResumedRunEndsBitwiseEqual) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir whole, parts;
  auto uninterrupted = run(tiny_options(), quiet(whole.file("run")));
  ASSERT_EQ(uninterrupted.history.size(), 4u);
  // 10 steps per epoch. Stop after the last step of epoch 2 (N/2, before its evaluation),
  // then in the middle of epoch 3, then run to the end.
  auto first = run(tiny_options(), quiet(parts.file("run")).stop_requested(stop_after(20)));
  EXPECT_EQ(first.stopped_by, SIGTERM);
  EXPECT_EQ(first.stopped_epoch, 2);
  EXPECT_EQ(first.stopped_step, 10);
  const auto checkpoint = parts.file("run/checkpoint.pt");
  auto state = tr::read_training_state(checkpoint);
  ASSERT_TRUE(state);
  EXPECT_EQ(state->epoch, 1);
  EXPECT_EQ(state->consumed, 160);
  EXPECT_EQ(state->global_step, 20);
  EXPECT_FALSE(state->optimizer_state.empty());
  EXPECT_EQ(state->config["train"]["lr"], 0.05);
  // The model's tensors are still exactly what Python's state_dict() sees: no extra entries.
  EXPECT_EQ(tr::read_archive_tensors(checkpoint).size(), sn::named_state(*sn::make_classifier(tiny_model())).size());

  // A different initial model: everything comes from the checkpoint.
  auto second = run(tiny_options(), quiet(parts.file("run")).resume_from(checkpoint).stop_requested(stop_after(4)), 7);
  EXPECT_EQ(second.stopped_by, SIGTERM);
  EXPECT_EQ(second.stopped_epoch, 3);
  EXPECT_EQ(second.stopped_step, 4);
  EXPECT_EQ(tr::read_training_state(checkpoint)->consumed, 64);
  auto last = run(tiny_options(), quiet(parts.file("run")).resume_from(checkpoint), 8);
  EXPECT_EQ(last.stopped_by, 0);
  ASSERT_EQ(last.history.size(), 4u);
  expect_same_tensors(whole.file("run/checkpoint.pt"), checkpoint);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_EQ(last.history[e].val.top1, uninterrupted.history[e].val.top1) << "epoch " << e + 1;
    EXPECT_EQ(last.history[e].val.loss, uninterrupted.history[e].val.loss) << "epoch " << e + 1;
    EXPECT_EQ(last.history[e].train_loss, uninterrupted.history[e].train_loss) << "epoch " << e + 1;
  }
  EXPECT_EQ(last.best_epoch, uninterrupted.best_epoch);
  // metrics.jsonl has one line per epoch, as after the uninterrupted run.
  auto lines = read_file(parts.file("run/metrics.jsonl"));
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 4);
  expect_same_tensors(whole.file("run/best.pt"), parts.file("run/best.pt"));
}

TEST(Resume, RefusesOtherSettingsAndCheckpointsWithoutState) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  run(tiny_options(), quiet(dir.file("run")).stop_requested(stop_after(3)));
  const auto checkpoint = dir.file("run/checkpoint.pt");
  auto message = expect_error([&] { run(tiny_options().lr(0.1), quiet(dir.file("run")).resume_from(checkpoint)); });
  EXPECT_NE(message.find("lr: 0.05 in the checkpoint, 0.1 given"), std::string::npos) << message;
  // A longer run is allowed.
  auto longer = run(tiny_options().epochs(5), quiet(dir.file("run")).resume_from(checkpoint).stop_requested(stop_after(1)));
  EXPECT_EQ(longer.stopped_by, SIGTERM);
  message = expect_error([&] { run(tiny_options(), quiet(dir.file("other")).resume_from(dir.file("run/nothing.pt"))); });
  EXPECT_NE(message.find("not found"), std::string::npos) << message;
  // best.pt holds the model only.
  run(tiny_options().epochs(5), quiet(dir.file("run")).resume_from(checkpoint).stop_requested(stop_after(10)));
  message = expect_error([&] { run(tiny_options(), quiet(dir.file("other")).resume_from(dir.file("run/best.pt"))); });
  EXPECT_NE(message.find("holds no training state"), std::string::npos) << message;
}

TEST(Resume, OneProcessCheckpointContinuesOnTwoRanks) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  // 1 process, stopped after 3 steps of epoch 2 (48 of its 160 samples done).
  run(tiny_options().epochs(3), quiet(dir.file("run")).stop_requested(stop_after(13)));
  const auto checkpoint = dir.file("run/checkpoint.pt");
  ASSERT_EQ(tr::read_training_state(checkpoint)->consumed, 48);
  // Built here, not in the rank threads (initialisation draws from the global generator).
  std::vector<sn::Classifier> models{sn::make_classifier(tiny_model()), sn::make_classifier(tiny_model())};
  std::vector<sd::DataBundle> data;
  for (int64_t rank = 0; rank < 2; ++rank) data.push_back(tiny_data(rank, 2));
  std::vector<tr::TrainResult> results(2);
  run_ranks(dir, 2, [&](int rank, const auto& dist) {
    tr::CheckpointMetadata meta;
    meta.model = tiny_model();
    results[rank] = tr::fit(models[rank], data[rank], tiny_options().epochs(3),
                            quiet(dir.file("run")).resume_from(checkpoint).distributed(dist), meta);
  });
  ASSERT_FALSE(HasFailure());
  for (const auto& r : results) ASSERT_EQ(r.history.size(), 3u);
  auto p0 = models[0]->parameters(), p1 = models[1]->parameters();
  for (size_t i = 0; i < p0.size(); ++i) EXPECT_TRUE(torch::equal(p0[i], p1[i]));
  auto state = tr::read_training_state(checkpoint);
  EXPECT_EQ(state->epoch, 3);
  EXPECT_EQ(state->world_size, 2);
  // Epoch 2 on 2 ranks: (160 - 48) / 2 = 56 samples each, 3 full batches of 16; epoch 3: 5.
  EXPECT_EQ(state->global_step, 13 + 3 + 5);
  auto lines = read_file(dir.file("run/metrics.jsonl"));
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 3);
}

TEST(Resume, CliResumesFromTheFolderAlone) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir dir;
  const std::string common = " --limit-train 160 --limit-val 32 --batch-size 16 --width 4 --splits 2 --threads 1"
                             " --no-progress --seed 3";
  std::string out;
  ASSERT_EQ(run_command(kCli + " train --epochs 2 --schedule cosine --out " + dir.file("part") + common, &out), 0) << out;
  out.clear();
  EXPECT_NE(run_command(kCli + " train --resume " + dir.file("part") + " --lr 0.3", &out), 0);
  EXPECT_NE(out.find("--lr cannot be combined with --resume"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(run_command(kCli + " train --resume " + dir.file("nowhere"), &out), 0);
  EXPECT_NE(out.find("not found"), std::string::npos) << out;
  // Extending a finished 2-epoch run by one epoch (the cosine schedule is recomputed for 3).
  out.clear();
  ASSERT_EQ(run_command(kCli + " train --resume " + dir.file("part") + " --epochs 3 --no-progress", &out), 0) << out;
  auto lines = read_file(dir.file("part/metrics.jsonl"));
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 3);
  auto state = tr::read_training_state(dir.file("part/checkpoint.pt"));
  ASSERT_TRUE(state);
  EXPECT_EQ(state->epoch, 3);
  EXPECT_NE(state->config["caller"]["args"].dump().find("--epochs=3"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir.file("part/summary.json")));
}
