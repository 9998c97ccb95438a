#include <splitshare/data/loader.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <set>
#include <tuple>
#include <vector>

#include "data_files.h"
#include "support.h"

namespace splitshare::testing {
namespace {

using splitshare::data::Batch;
using splitshare::data::BatchStream;
using splitshare::data::LoaderOptions;
using splitshare::data::TensorDataset;

// Image i is filled with the value i, label i % 3: a batch tells which samples it holds.
TensorDataset indexed_dataset(int64_t n, int64_t channels = 1, int64_t side = 4) {
  TensorDataset d;
  d.images = torch::arange(n, torch::kInt64).to(torch::kUInt8).view({n, 1, 1, 1}).expand({n, channels, side, side}).contiguous();
  d.labels = torch::arange(n, torch::kInt64).remainder(3);
  d.classes = {"a", "b", "c"};
  return d;
}

TensorDataset random_dataset(int64_t n, int64_t channels, int64_t side, uint64_t seed = 1) {
  torch::manual_seed(seed);
  TensorDataset d;
  d.images = torch::randint(0, 256, {n, channels, side, side}, torch::kInt64).to(torch::kUInt8);
  d.labels = torch::randint(0, 10, {n}, torch::kInt64);
  return d;
}

std::unique_ptr<BatchStream> loader(TensorDataset d, LoaderOptions options, double mean = 0.0, double std = 1.0) {
  const auto c = static_cast<size_t>(d.images.size(1));
  return data::make_tensor_loader(std::move(d), std::vector<double>(c, mean), std::vector<double>(c, std), options);
}

std::vector<Batch> epoch(BatchStream& stream, int64_t e) {
  stream.reset(e);
  std::vector<Batch> batches;
  while (auto batch = stream.next()) batches.push_back(*batch);
  return batches;
}

std::vector<int64_t> indices_of(const std::vector<Batch>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) {
    for (int64_t i = 0; i < b.indices.size(0); ++i) out.push_back(b.indices[i].item<int64_t>());
  }
  return out;
}

torch::Tensor images_of(const std::vector<Batch>& batches) {
  std::vector<torch::Tensor> parts;
  for (const auto& b : batches) parts.push_back(b.images);
  return torch::cat(parts);
}

TEST(TensorLoader, CoversEverySampleOncePerEpochWithoutDropLast) {
  auto stream = loader(indexed_dataset(10), LoaderOptions().batch_size(3).shuffle(true).seed(5));
  EXPECT_EQ(stream->size(), 10);
  EXPECT_EQ(stream->batches_per_epoch(), 4);
  auto batches = epoch(*stream, 0);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches.back().images.size(0), 1);
  auto seen = indices_of(batches);
  std::vector<int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  for (const auto& b : batches) {
    EXPECT_EQ(b.images.sizes().slice(1), (std::vector<int64_t>{1, 4, 4}));
    EXPECT_EQ(b.images.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(b.labels.equal(b.indices.remainder(3)));
    // Image i holds i / 255 everywhere (mean 0, std 1).
    auto expected = (b.indices.to(torch::kFloat32) / 255.0f).view({-1, 1, 1, 1}).expand_as(b.images);
    expect_close(b.images, expected, 1e-6);
  }
}

TEST(TensorLoader, DropLastDropsTheIncompleteBatch) {
  auto stream = loader(indexed_dataset(10), LoaderOptions().batch_size(3).shuffle(true).drop_last(true));
  EXPECT_EQ(stream->batches_per_epoch(), 3);
  auto batches = epoch(*stream, 0);
  EXPECT_EQ(batches.size(), 3u);
  EXPECT_EQ(indices_of(batches).size(), 9u);
}

TEST(TensorLoader, WithoutShuffleKeepsDatasetOrder) {
  auto stream = loader(indexed_dataset(5), LoaderOptions().batch_size(2));
  EXPECT_EQ(indices_of(epoch(*stream, 3)), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(TensorLoader, SameSeedSameBatchesAndNewOrderEachEpoch) {
  const auto options = LoaderOptions().batch_size(16).shuffle(true).augment(true).pad(2).seed(42);
  auto a = loader(random_dataset(100, 1, 8), options);
  auto b = loader(random_dataset(100, 1, 8), options);
  auto a0 = epoch(*a, 0), b0 = epoch(*b, 0);
  EXPECT_EQ(indices_of(a0), indices_of(b0));
  EXPECT_TRUE(images_of(a0).equal(images_of(b0)));

  auto a1 = epoch(*a, 1);
  EXPECT_NE(indices_of(a0), indices_of(a1));
  EXPECT_TRUE(images_of(epoch(*a, 0)).equal(images_of(a0)));  // epoch 0 again: same batches

  auto other_seed = loader(random_dataset(100, 1, 8), LoaderOptions(options).seed(43));
  EXPECT_NE(indices_of(epoch(*other_seed, 0)), indices_of(a0));
}

TEST(TensorLoader, BatchesDoNotDependOnThreadCount) {
  const int threads = at::get_num_threads();
  const auto options = LoaderOptions().batch_size(256).shuffle(true).augment(true).pad(2).seed(7);
  at::set_num_threads(1);
  auto one = images_of(epoch(*loader(random_dataset(600, 1, 28), options), 2));
  at::set_num_threads(4);
  auto four = images_of(epoch(*loader(random_dataset(600, 1, 28), options), 2));
  at::set_num_threads(threads);
  EXPECT_TRUE(one.equal(four));
}

TEST(TensorLoader, TrainingShardsArePaddedToEqualSizesAndCoverAll) {
  const auto options = LoaderOptions().batch_size(4).shuffle(true).seed(3).world_size(2);
  auto rank0 = loader(indexed_dataset(11), LoaderOptions(options).rank(0));
  auto rank1 = loader(indexed_dataset(11), LoaderOptions(options).rank(1));
  EXPECT_EQ(rank0->size(), 6);
  EXPECT_EQ(rank1->size(), 6);
  auto i0 = indices_of(epoch(*rank0, 1)), i1 = indices_of(epoch(*rank1, 1));
  EXPECT_EQ(i0.size(), 6u);
  EXPECT_EQ(i1.size(), 6u);
  std::set<int64_t> all(i0.begin(), i0.end());
  all.insert(i1.begin(), i1.end());
  EXPECT_EQ(all.size(), 11u);

  // The shards interleave the single-process order of the same epoch.
  auto single = indices_of(epoch(*loader(indexed_dataset(11), LoaderOptions(options).world_size(1)), 1));
  for (size_t k = 0; k < single.size(); ++k) EXPECT_EQ(single[k], (k % 2 == 0 ? i0 : i1)[k / 2]);
}

TEST(TensorLoader, EvaluationShardsAreDisjointAndComplete) {
  const auto options = LoaderOptions().batch_size(4).world_size(2);
  auto rank0 = loader(indexed_dataset(11), LoaderOptions(options).rank(0));
  auto rank1 = loader(indexed_dataset(11), LoaderOptions(options).rank(1));
  EXPECT_EQ(rank0->size(), 6);
  EXPECT_EQ(rank1->size(), 5);
  EXPECT_EQ(rank1->batches_per_epoch(), 2);
  auto i0 = indices_of(epoch(*rank0, 0)), i1 = indices_of(epoch(*rank1, 0));
  EXPECT_EQ(i0, (std::vector<int64_t>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(i1, (std::vector<int64_t>{1, 3, 5, 7, 9}));
}

TEST(TensorLoader, AugmentationStaysInTheNormalisedRange) {
  const double mean = 0.3, std = 0.2;
  auto stream = loader(random_dataset(300, 1, 28), LoaderOptions().batch_size(100).shuffle(true).augment(true).pad(2),
                       mean, std);
  auto images = images_of(epoch(*stream, 0));
  EXPECT_GE(images.min().item<double>(), (0.0 - mean) / std - 1e-5);
  EXPECT_LE(images.max().item<double>(), (1.0 - mean) / std + 1e-5);
  // Padding shows up as exact normalised zeros on some border rows.
  EXPECT_GT(images.eq(static_cast<float>((0.0 - mean) / std)).sum().item<int64_t>(), 300 * 28);
}

TEST(TensorLoader, AugmentationWithoutPadOrFlipIsPlainNormalisation) {
  auto dataset = random_dataset(50, 3, 6);
  const std::vector<double> mean{0.5, 0.4, 0.3}, std{0.25, 0.2, 0.3};
  auto stream = data::make_tensor_loader(dataset, mean, std,
                                         LoaderOptions().batch_size(50).augment(true).pad(0).flip(false).shuffle(true));
  auto batch = epoch(*stream, 0).front();
  auto m = torch::tensor(mean, torch::kFloat32).view({1, 3, 1, 1});
  auto s = torch::tensor(std, torch::kFloat32).view({1, 3, 1, 1});
  auto expected = (dataset.images.index_select(0, batch.indices).to(torch::kFloat32) / 255.0f - m) / s;
  expect_close(batch.images, expected, 1e-5);
}

TEST(TensorLoader, FlipMirrorsAboutHalfTheImages) {
  auto dataset = random_dataset(200, 1, 5);
  auto stream = loader(dataset, LoaderOptions().batch_size(200).augment(true).pad(0).flip(true));
  auto batch = epoch(*stream, 0).front();
  auto plain = dataset.images.to(torch::kFloat32) / 255.0f;
  int flipped = 0;
  for (int64_t i = 0; i < 200; ++i) {
    const bool same = torch::allclose(batch.images[i], plain[i], 0, 1e-6);
    const bool mirrored = torch::allclose(batch.images[i], plain[i].flip({2}), 0, 1e-6);
    EXPECT_TRUE(same || mirrored) << "sample " << i;
    flipped += mirrored && !same;
  }
  EXPECT_GT(flipped, 60);
  EXPECT_LT(flipped, 140);
}

TEST(TensorLoader, PadAndCropMatchesAWindowOfTheZeroPaddedImage) {
  const int64_t pad = 2, side = 6, n = 128;
  auto dataset = random_dataset(n, 2, side);
  auto stream = loader(dataset, LoaderOptions().batch_size(n).augment(true).pad(pad).flip(true));
  auto batch = epoch(*stream, 0).front();
  auto padded = torch::constant_pad_nd(dataset.images.to(torch::kFloat32) / 255.0f, {pad, pad, pad, pad});
  std::set<std::tuple<int64_t, int64_t, bool>> placements;
  for (int64_t i = 0; i < n; ++i) {
    bool found = false;
    for (int64_t y = 0; y <= 2 * pad && !found; ++y) {
      for (int64_t x = 0; x <= 2 * pad && !found; ++x) {
        auto window = padded[i].narrow(1, y, side).narrow(2, x, side);
        for (bool flip : {false, true}) {
          if (!found && torch::allclose(batch.images[i], flip ? window.flip({2}) : window, 0, 1e-6)) {
            found = true;
            placements.insert({y, x, flip});
          }
        }
      }
    }
    EXPECT_TRUE(found) << "sample " << i << " is no (mirrored) window of its padded image";
  }
  EXPECT_GT(placements.size(), 30u);  // 50 possible placements
}

TEST(TensorLoader, ChannelsLastHoldsTheSameValues) {
  const auto options = LoaderOptions().batch_size(8).shuffle(true).augment(true).pad(4).seed(9);
  auto nchw = epoch(*loader(random_dataset(20, 3, 32), options), 0);
  auto nhwc = epoch(*loader(random_dataset(20, 3, 32), LoaderOptions(options).channels_last(true)), 0);
  ASSERT_EQ(nchw.size(), nhwc.size());
  for (size_t k = 0; k < nchw.size(); ++k) {
    EXPECT_TRUE(nhwc[k].images.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_FALSE(nhwc[k].images.is_contiguous());
    EXPECT_TRUE(nchw[k].images.is_contiguous());
    EXPECT_TRUE(nchw[k].images.equal(nhwc[k].images));
  }
}

TEST(TensorLoader, RejectsMisuse) {
  auto stream = loader(indexed_dataset(4), LoaderOptions());
  EXPECT_TRUE(contains(expect_error([&] { stream->next(); }), "before reset"));
  EXPECT_TRUE(contains(expect_error([&] { data::make_tensor_loader(indexed_dataset(4), {0.5, 0.5}, {1, 1}, {}); }),
                       "1 channels but mean has 2 values"));
  EXPECT_TRUE(contains(expect_error([&] { loader(indexed_dataset(4), LoaderOptions().rank(2).world_size(2)); }),
                       "rank 2 is not in [0, world_size = 2)"));
}

}  // namespace
}  // namespace splitshare::testing
