#include <splitshare/data/loader.h>
#include <splitshare/data/transforms.h>

#include "shuffle.h"

#include <algorithm>

namespace splitshare::data {
namespace {

// The samples of `shards` (ascending sample order within each), through a shuffle buffer.
std::vector<int64_t> buffered_stream(const std::vector<std::vector<int64_t>>& samples_of,
                                     const std::vector<int64_t>& shards, int64_t buffer, std::mt19937_64& rng) {
  std::vector<int64_t> out, held;
  for (auto shard : shards) {
    for (auto sample : samples_of[static_cast<size_t>(shard)]) {
      if (static_cast<int64_t>(held.size()) < buffer) {
        held.push_back(sample);
        continue;
      }
      auto& slot = held[static_cast<size_t>(rng() % static_cast<uint64_t>(held.size()))];
      out.push_back(slot);
      slot = sample;
    }
  }
  shuffle_in_place(held, rng);
  out.insert(out.end(), held.begin(), held.end());
  return out;
}

}  // namespace

uint64_t mix_seed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::vector<int64_t> streaming_order(const std::vector<int64_t>& shard_of, int64_t buffer, uint64_t seed,
                                     int64_t epoch, int64_t rank, int64_t world_size) {
  TORCH_CHECK(buffer >= 1, "streaming: the shuffle buffer must hold at least 1 sample, got ", buffer);
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "streaming: rank ", rank,
              " is outside world_size ", world_size);
  TORCH_CHECK(!shard_of.empty(), "streaming: no samples");
  int64_t shards = 0;
  for (auto shard : shard_of) {
    TORCH_CHECK(shard >= 0, "streaming: a sample's shard is negative: ", shard);
    shards = std::max(shards, shard + 1);
  }
  std::vector<std::vector<int64_t>> samples_of(static_cast<size_t>(shards));
  for (size_t i = 0; i < shard_of.size(); ++i) samples_of[static_cast<size_t>(shard_of[i])].push_back(static_cast<int64_t>(i));
  std::vector<int64_t> order;
  for (int64_t s = 0; s < shards; ++s) {
    if (!samples_of[static_cast<size_t>(s)].empty()) order.push_back(s);
  }
  TORCH_CHECK(static_cast<int64_t>(order.size()) >= world_size, "streaming: ", order.size(),
              " shards hold training samples, fewer than the ", world_size,
              " ranks (each rank reads whole shards): write smaller shards, or shuffle by index");
  std::mt19937_64 shared(mix_seed(mix_seed(seed ^ 0x2545f4914f6cdd1dULL) ^ static_cast<uint64_t>(epoch)));
  shuffle_in_place(order, shared);
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(rank); i < order.size(); i += static_cast<size_t>(world_size)) {
    mine.push_back(order[i]);
  }
  std::mt19937_64 own(mix_seed(shared() ^ mix_seed(static_cast<uint64_t>(rank))));
  auto stream = buffered_stream(samples_of, mine, buffer, own);
  const auto n = static_cast<int64_t>(shard_of.size());
  const int64_t length = (n + world_size - 1) / world_size;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(length));
  for (int64_t i = 0; i < length; ++i) out.push_back(stream[static_cast<size_t>(i % static_cast<int64_t>(stream.size()))]);
  return out;
}

std::vector<int64_t> weighted_draws(const std::vector<double>& weights, int64_t count, std::mt19937_64& rng) {
  TORCH_CHECK(!weights.empty(), "weighted_draws: no weights");
  std::vector<double> cumulative(weights.size());
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK(weights[i] >= 0, "sample weight ", i, " is negative: ", weights[i]);
    total += weights[i];
    cumulative[i] = total;
  }
  TORCH_CHECK(total > 0, "sample weights sum to 0");
  std::vector<int64_t> out(static_cast<size_t>(count));
  for (auto& index : out) {
    const double u = uniform01(rng) * total;
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
    index = std::min<int64_t>(static_cast<int64_t>(it - cumulative.begin()), static_cast<int64_t>(weights.size()) - 1);
  }
  return out;
}

}  // namespace splitshare::data

#include <splitshare/data/datasets.h>

#include <fstream>
#include <sstream>

namespace splitshare::data {

std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (auto c : counts) total += c;
  TORCH_CHECK(total > 0, "balanced class weights: no samples");
  std::vector<double> weights;
  for (auto c : counts) {
    weights.push_back(c > 0 ? static_cast<double>(total) / static_cast<double>(counts.size() * c) : 0.0);
  }
  return weights;
}

std::vector<double> read_class_weights(const std::string& path, int64_t classes) {
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read class weights file ", path);
  std::vector<double> weights;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    for (auto& c : line) {
      if (c == ',') c = ' ';
    }
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      size_t used = 0;
      double value = -1;
      try {
        value = std::stod(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      TORCH_CHECK(used == word.size() && value >= 0, path, ": class weight '", word,
                  "' is not a number >= 0");
      weights.push_back(value);
    }
  }
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == classes, path, ": ", weights.size(), " class weights for ",
              classes, " classes");
  return weights;
}

}  // namespace splitshare::data
