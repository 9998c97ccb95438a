#pragma once

// The one Fisher-Yates shuffle of the loaders (index-mode epochs, the streaming order's shard
// order and buffer): an explicit engine and a specified draw, so orders agree on every platform.
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace splitshare::data {

template <typename T>
void shuffle_in_place(std::vector<T>& values, std::mt19937_64& rng) {
  for (int64_t i = static_cast<int64_t>(values.size()) - 1; i > 0; --i) {
    std::swap(values[i], values[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
  }
}

}  // namespace splitshare::data
