#pragma once
// The weights a model packed for each of the last few input shapes: what InferenceModel (fp32,
// bf16) and QuantizedModel (int8) keep so that oneDNN does not reorder weights on every call.
// Internal to src/nn/.

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace splitshare::nn::detail {

/// Packed weights by input shape [N, C, H, W], oldest dropped first beyond kShapes (a model
/// serves a few batch sizes). A shape's packs are complete and read-only once stored, so
/// concurrent forwards share them; only the lookup takes the lock.
class ShapePacks {
 public:
  using Packs = std::vector<torch::Tensor>;
  static constexpr size_t kShapes = 4;

  /// The packs stored for `sizes`, or null.
  std::shared_ptr<const Packs> find(const std::vector<int64_t>& sizes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [key, packs] : entries_) {
      if (key == sizes) return packs;
    }
    return nullptr;
  }
  /// Keeps `packs` for `sizes` (a second store of a shape keeps the first).
  void store(std::vector<int64_t> sizes, std::shared_ptr<const Packs> packs) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& entry : entries_) {
      if (entry.first == sizes) return;
    }
    if (entries_.size() == kShapes) entries_.erase(entries_.begin());
    entries_.emplace_back(std::move(sizes), std::move(packs));
  }
  /// How many shapes have packs.
  size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::vector<int64_t>, std::shared_ptr<const Packs>>> entries_;
};

}  // namespace splitshare::nn::detail
