#include <splitshare/data/loader.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

namespace splitshare::data {
namespace {

// Elements per at::parallel_for chunk: small batches stay on one thread.
constexpr int64_t kGrainElements = 16384;
// Shuffled samples are scattered over the dataset (47 MB for Fashion-MNIST, more
// than the caches hold): fetching a few images ahead hides the memory latency.
constexpr int64_t kPrefetchAhead = 4;
constexpr int64_t kCacheLine = 64;

void prefetch_image(const uint8_t* image, int64_t bytes) {
  for (int64_t offset = 0; offset < bytes; offset += kCacheLine) __builtin_prefetch(image + offset);
}

// One generator per (seed, epoch); the same on every rank and every platform.
std::mt19937_64 epoch_generator(uint64_t seed, int64_t epoch) {
  return std::mt19937_64(mix_seed(seed ^ mix_seed(static_cast<uint64_t>(epoch))));
}

// Uniform in [0, n) by rejection; unlike std::uniform_int_distribution the
// result is specified, so orders agree across standard libraries.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  uint64_t x = rng();
  while (x < threshold) x = rng();
  return x % n;
}

/// Where a sample's crop window sits in the padded image, and whether it is mirrored.
struct Placement {
  int32_t dy = 0;  // crop row offset relative to the unpadded image, in [-pad, pad]
  int32_t dx = 0;
  bool flip = false;
};

// One 64-bit draw -> offsets in [-pad, pad] (multiply-shift; bias < 2^-24) and a flip bit.
Placement draw_placement(uint64_t draw, int64_t pad, bool flip) {
  const uint64_t span = static_cast<uint64_t>(2 * pad + 1);
  Placement p;
  p.dy = static_cast<int32_t>(((draw & 0xffffffffull) * span) >> 32) - static_cast<int32_t>(pad);
  p.dx = static_cast<int32_t>((((draw >> 32) & 0x7fffffffull) * span) >> 31) - static_cast<int32_t>(pad);
  p.flip = flip && (draw >> 63) != 0;
  return p;
}

/// Output geometry of one batch tensor (element strides).
struct OutLayout {
  int64_t channels, height, width;
  int64_t stride_c, stride_h, stride_w;
};

// A source pixel as output: normalised float, or the byte itself (uint8 batches, normalised
// later by images_on with the same v * scale + bias).
template <typename Out>
Out output(uint8_t v, float scale, float bias) {
  if constexpr (std::is_same_v<Out, float>) {
    return static_cast<float>(v) * scale + bias;
  } else {
    return v;
  }
}

// out[x * stride] = output source column for the columns whose source lies inside the
// image, a zero pixel (the padding) elsewhere.
template <bool kUnitStride, typename Out>
void write_row(const uint8_t* src_row, Out* out_row, int64_t stride, int64_t width, int32_t dx, bool flip,
               float scale, float bias) {
  auto at = [&](int64_t x) -> Out& { return out_row[kUnitStride ? x : x * stride]; };
  const Out zero = output<Out>(0, scale, bias);
  const int64_t lo = std::clamp<int64_t>(flip ? dx : -dx, 0, width);
  const int64_t hi = std::clamp<int64_t>(flip ? width + dx : width - dx, 0, width);
  for (int64_t x = 0; x < lo; ++x) at(x) = zero;
  if (flip) {
    const int64_t mirror = width - 1 + dx;  // source column = mirror - x
    for (int64_t x = lo; x < hi; ++x) at(x) = output<Out>(src_row[mirror - x], scale, bias);
  } else {
    for (int64_t x = lo; x < hi; ++x) at(x) = output<Out>(src_row[x + dx], scale, bias);
  }
  for (int64_t x = std::max(lo, hi); x < width; ++x) at(x) = zero;
}

// Pads, crops, flips and normalises one uint8 [C, H, W] image into `out` in a single pass.
template <bool kUnitStride, typename Out>
void write_sample(const uint8_t* src, Out* out, const OutLayout& layout, const Placement& place, const float* scale,
                  const float* bias) {
  const int64_t h = layout.height, w = layout.width;
  for (int64_t c = 0; c < layout.channels; ++c) {
    const uint8_t* plane = src + c * h * w;
    Out* out_plane = out + c * layout.stride_c;
    for (int64_t y = 0; y < h; ++y) {
      Out* out_row = out_plane + y * layout.stride_h;
      const int64_t sy = y + place.dy;
      if (sy < 0 || sy >= h) {
        const Out zero = output<Out>(0, scale[c], bias[c]);
        for (int64_t x = 0; x < w; ++x) out_row[kUnitStride ? x : x * layout.stride_w] = zero;
      } else {
        write_row<kUnitStride, Out>(plane + sy * w, out_row, layout.stride_w, w, place.dx, place.flip, scale[c],
                                    bias[c]);
      }
    }
  }
}

template <typename Out>
void write_any(const uint8_t* src, Out* out, const OutLayout& layout, const Placement& place, const float* scale,
               const float* bias) {
  if (layout.stride_w == 1) {
    write_sample<true, Out>(src, out, layout, place, scale, bias);
  } else {
    write_sample<false, Out>(src, out, layout, place, scale, bias);
  }
}

class TensorLoader final : public BatchStream {
 public:
  TensorLoader(TensorDataset dataset, const std::vector<double>& mean, const std::vector<double>& std,
               LoaderOptions options)
      : images_(dataset.images.contiguous()), labels_(dataset.labels.contiguous()), options_(options) {
    const int64_t n = labels_.size(0);
    const int64_t world = options_.world_size(), rank = options_.rank();
    if (options_.shuffle()) {
      size_ = (n + world - 1) / world;
    } else {
      size_ = rank < n ? (n - rank + world - 1) / world : 0;
    }
    for (size_t c = 0; c < mean.size(); ++c) {
      // (v / 255 - mean) / std == v * scale + bias
      scale_.push_back(static_cast<float>(1.0 / (255.0 * std[c])));
      bias_.push_back(static_cast<float>(-mean[c] / std[c]));
    }
  }

  int64_t size() const override { return size_; }
  int64_t batch_size() const override { return options_.batch_size(); }

  int64_t batches_per_epoch() const override {
    const int64_t b = options_.batch_size();
    return options_.drop_last() ? size_ / b : (size_ + b - 1) / b;
  }

  void reset(int64_t epoch) override { reset_at(epoch, 0); }

  void reset_at(int64_t epoch, int64_t consumed) override {
    TORCH_CHECK(consumed >= 0, "TensorLoader::reset_at: consumed must be >= 0, got ", consumed);
    const int64_t n = labels_.size(0);
    const int64_t world = options_.world_size(), rank = options_.rank();
    std::mt19937_64 rng = epoch_generator(options_.seed(), epoch);
    std::vector<int64_t> permutation(static_cast<size_t>(n));
    std::iota(permutation.begin(), permutation.end(), int64_t{0});
    if (options_.shuffle() && !options_.sample_weights().empty()) {
      permutation = weighted_draws(options_.sample_weights(), n, rng);
    } else if (options_.shuffle()) {
      for (int64_t i = n - 1; i > 0; --i) {
        std::swap(permutation[i], permutation[uniform_below(rng, static_cast<uint64_t>(i + 1))]);
      }
    }
    // Positions [consumed, end) remain; shuffling pads them by wrapping around to a multiple
    // of world_size. Every rank walks all positions so that the augmentation draws line up.
    const int64_t remaining = std::max<int64_t>(0, n - consumed);
    const int64_t end = consumed + (options_.shuffle() ? (remaining + world - 1) / world * world : remaining);
    order_.clear();
    placements_.clear();
    order_.reserve(static_cast<size_t>(size_));
    placements_.reserve(static_cast<size_t>(size_));
    for (int64_t p = 0; p < end; ++p) {
      Placement place;
      if (options_.augment()) place = draw_placement(rng(), options_.pad(), options_.flip());
      if (p >= consumed && (p - consumed) % world == rank) {
        order_.push_back(permutation[static_cast<size_t>(p % n)]);
        placements_.push_back(place);
      }
    }
    position_ = 0;
    started_ = true;
  }

  std::optional<Batch> next() override {
    TORCH_CHECK(started_, "TensorLoader::next() called before reset(epoch)");
    const int64_t remaining = static_cast<int64_t>(order_.size()) - position_;
    const int64_t b = std::min(options_.batch_size(), remaining);
    if (b <= 0 || (options_.drop_last() && b < options_.batch_size())) return std::nullopt;

    const int64_t c = images_.size(1), h = images_.size(2), w = images_.size(3);
    Batch batch;
    const bool bytes = options_.uint8_images();
    batch.images = torch::empty({b, c, h, w}, batch_options(options_, bytes ? torch::kUInt8 : torch::kFloat32));
    if (bytes) {
      batch.scale = torch::tensor(scale_);
      batch.shift = torch::tensor(bias_);
    }
    batch.labels = torch::empty({b}, torch::kInt64);
    batch.indices = torch::empty({b}, torch::kInt64);
    const int64_t* order = order_.data() + position_;
    const Placement* placements = placements_.data() + position_;
    const int64_t* all_labels = labels_.data_ptr<int64_t>();
    auto* labels = batch.labels.data_ptr<int64_t>();
    auto* indices = batch.indices.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      indices[i] = order[i];
      labels[i] = all_labels[order[i]];
    }

    const OutLayout layout{c, h, w, batch.images.stride(1), batch.images.stride(2), batch.images.stride(3)};
    const int64_t stride_n = batch.images.stride(0);
    const int64_t image_elements = c * h * w;
    const uint8_t* src = images_.data_ptr<uint8_t>();
    const float* scale = scale_.data();
    const float* bias = bias_.data();
    const int64_t grain = std::max<int64_t>(1, kGrainElements / image_elements);
    at::parallel_for(0, b, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < std::min(begin + kPrefetchAhead, end); ++i) {
        prefetch_image(src + order[i] * image_elements, image_elements);
      }
      for (int64_t i = begin; i < end; ++i) {
        if (i + kPrefetchAhead < end) prefetch_image(src + order[i + kPrefetchAhead] * image_elements, image_elements);
        const uint8_t* image = src + order[i] * image_elements;
        if (bytes) {
          write_any(image, batch.images.data_ptr<uint8_t>() + i * stride_n, layout, placements[i], scale, bias);
        } else {
          write_any(image, batch.images.data_ptr<float>() + i * stride_n, layout, placements[i], scale, bias);
        }
      }
    });
    position_ += b;
    return batch;
  }

 private:
  torch::Tensor images_;  // uint8 [N, C, H, W], contiguous
  torch::Tensor labels_;  // int64 [N]
  LoaderOptions options_;
  std::vector<float> scale_, bias_;
  int64_t size_ = 0;
  // This rank's samples for the current epoch and their augmentation.
  std::vector<int64_t> order_;
  std::vector<Placement> placements_;
  int64_t position_ = 0;
  bool started_ = false;
};

}  // namespace

std::unique_ptr<BatchStream> make_tensor_loader(TensorDataset dataset, std::vector<double> mean,
                                                std::vector<double> std, LoaderOptions options) {
  TORCH_CHECK(dataset.images.defined() && dataset.images.dim() == 4 && dataset.images.dtype() == torch::kUInt8,
              "make_tensor_loader: images must be uint8 [N, C, H, W], got ",
              dataset.images.defined() ? toString(dataset.images.scalar_type()) : "undefined", " ",
              dataset.images.defined() ? dataset.images.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(dataset.labels.defined() && dataset.labels.dim() == 1 && dataset.labels.dtype() == torch::kInt64,
              "make_tensor_loader: labels must be int64 [N]");
  TORCH_CHECK(dataset.labels.size(0) == dataset.images.size(0), "make_tensor_loader: ", dataset.images.size(0),
              " images but ", dataset.labels.size(0), " labels");
  const auto channels = static_cast<size_t>(dataset.images.size(1));
  TORCH_CHECK(mean.size() == channels && std.size() == channels, "make_tensor_loader: images have ", channels,
              " channels but mean has ", mean.size(), " values and std ", std.size());
  for (size_t c = 0; c < channels; ++c) {
    TORCH_CHECK(std[c] > 0, "make_tensor_loader: std of channel ", c, " is ", std[c], ", must be > 0");
  }
  TORCH_CHECK(options.batch_size() > 0, "make_tensor_loader: batch_size is ", options.batch_size(), ", must be > 0");
  TORCH_CHECK(options.world_size() > 0 && options.rank() >= 0 && options.rank() < options.world_size(),
              "make_tensor_loader: rank ", options.rank(), " is not in [0, world_size = ", options.world_size(), ")");
  TORCH_CHECK(options.pad() >= 0 && options.pad() <= 1024, "make_tensor_loader: pad is ", options.pad(),
              ", must be in [0, 1024]");
  return std::make_unique<TensorLoader>(std::move(dataset), mean, std, options);
}

}  // namespace splitshare::data
