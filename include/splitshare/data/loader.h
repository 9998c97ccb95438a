#pragma once

#include <splitshare/data/dataset.h>

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <random>
#include <vector>

namespace splitshare::data {

/// The training batch size when none is given (loaders, data and training options).
inline constexpr int64_t kDefaultBatchSize = 128;

/// One mini-batch as the model consumes it.
struct Batch {
  /// float32 [B, C, H, W], normalised; or, from a loader with LoaderOptions::uint8_images,
  /// uint8 [B, C, H, W] before normalisation (model input = images * scale[c] + shift[c],
  /// what images_on computes on the device).
  torch::Tensor images;
  /// int64 [B].
  torch::Tensor labels;
  /// Dataset indices of the samples, int64 [B] (for tracing predictions back).
  torch::Tensor indices;
  /// float32 [C]: the normalisation still to apply to uint8 `images` (undefined for float ones).
  torch::Tensor scale, shift;
};

/// The batch's images as model input on `device`: float32 [B, C, H, W], normalised, in the
/// batch's memory format. uint8 images cross to the device as bytes (a quarter of the float
/// copy; asynchronously from page-locked memory for CUDA) and are normalised there with the
/// same float operations the loaders use on the CPU (v * scale + shift), so both paths give
/// the same input.
torch::Tensor images_on(const Batch& batch, const torch::Device& device);

/// How a loader walks a dataset.
struct LoaderOptions {
  TORCH_ARG(int64_t, batch_size) = kDefaultBatchSize;
  /// Reshuffle every epoch (from `seed` and the epoch number).
  TORCH_ARG(bool, shuffle) = false;
  /// Drop the last incomplete batch (training).
  TORCH_ARG(bool, drop_last) = false;
  /// Training augmentation (pad-and-crop + horizontal flip for small images,
  /// random-resized-crop + flip for photos).
  TORCH_ARG(bool, augment) = false;
  /// Padding for the small-image pad-and-crop augmentation.
  TORCH_ARG(int64_t, pad) = 4;
  /// Random horizontal flip as part of `augment` (turn off for digits and text).
  TORCH_ARG(bool, flip) = true;
  TORCH_ARG(uint64_t, seed) = 0;
  /// Decoding threads (image folders); 0 = decode on the calling thread.
  TORCH_ARG(int64_t, workers) = 0;
  /// Sharding for distributed training: this process sees every world_size-th
  /// sample starting at rank (after the shared shuffle).
  TORCH_ARG(int64_t, rank) = 0;
  TORCH_ARG(int64_t, world_size) = 1;
  /// Refuse (instead of skipping and counting) unreadable files.
  TORCH_ARG(bool, strict) = false;
  /// Output memory format: channels-last batches feed oneDNN convolutions faster.
  TORCH_ARG(bool, channels_last) = false;
  /// Deliver uint8 images before normalisation (Batch::scale/shift say how to finish; see
  /// images_on): for a GPU, a quarter of the bytes to copy and the normalisation on the device.
  /// Photos are then rounded to whole grey levels after resampling, as torchvision's uint8
  /// pipeline does (at most half a level from the float path). Ignored with random erasing.
  TORCH_ARG(bool, uint8_images) = false;
  /// Allocate batches in page-locked (pinned) memory so a CUDA copy needs no staging copy.
  /// Only where CUDA is available; ignored otherwise.
  TORCH_ARG(bool, pin_memory) = false;
  /// With shuffle: each epoch draws its samples with replacement, sample i with probability
  /// sample_weights[i] / sum (weighted_draws), instead of a permutation; one weight per
  /// sample of the dataset. Empty = a permutation.
  TORCH_ARG(std::vector<double>, sample_weights) = {};
  /// With shuffle, over the samples of tar shards: > 0 streams instead of permuting (for data
  /// larger than the page cache; reads each shard front to back). Each epoch shuffles the
  /// shard order, rank r reads shards r, r + world_size, ... of it through a shuffle buffer
  /// of this many samples (streaming_order). 0 = a permutation of every sample.
  TORCH_ARG(int64_t, shuffle_buffer) = 0;
};

/// splitmix64's finaliser: decorrelates seeds built from small integers (seed, epoch, rank).
uint64_t mix_seed(uint64_t x);

/// The samples rank `rank` of `world_size` reads in epoch `epoch` when streaming shards
/// (LoaderOptions::shuffle_buffer). `shard_of[i]` is sample i's shard; a shard's samples are
/// read in ascending i (their order in the shard). The shards that hold samples are shuffled
/// by (seed, epoch), the same on every rank, and dealt out: rank r gets positions r,
/// r + world_size, ... of that order (at least one shard per rank, or it throws). Its samples,
/// shard after shard, pass through a buffer of `buffer` samples: each arriving sample
/// replaces a random one, which is emitted (webdataset's shuffle; buffer 1 = shard order).
/// Every rank returns ceil(N / world_size) samples, so ranks run the same number of batches:
/// a rank whose shards hold fewer starts its stream again, one whose shards hold more stops
/// early (shards of equal size, as `pack` writes, make that at most one shard's difference).
std::vector<int64_t> streaming_order(const std::vector<int64_t>& shard_of, int64_t buffer, uint64_t seed,
                                     int64_t epoch, int64_t rank, int64_t world_size);

/// The TensorOptions of a batch tensor of `dtype` under `options`: its memory format, and
/// page-locked memory when options.pin_memory() and CUDA is available.
torch::TensorOptions batch_options(const LoaderOptions& options, torch::ScalarType dtype);

/// `count` sample indices drawn with replacement, index i with probability weights[i] / sum
/// (weights >= 0, sum > 0), from `rng`: the same on every platform.
std::vector<int64_t> weighted_draws(const std::vector<double>& weights, int64_t count, std::mt19937_64& rng);

/// A source of mini-batches, epoch by epoch. Implementations: in-memory tensors
/// (Fashion-MNIST, CIFAR) and image folders.
class BatchStream {
 public:
  virtual ~BatchStream() = default;
  /// Samples this process sees per epoch (after sharding).
  virtual int64_t size() const = 0;
  /// Batches per epoch (respects drop_last).
  virtual int64_t batches_per_epoch() const = 0;
  /// Samples per full batch; 0 = not stated (the trainer then cannot check it).
  virtual int64_t batch_size() const { return 0; }
  /// Starts epoch `epoch` (reshuffles when shuffling). Must be called before next().
  virtual void reset(int64_t epoch) = 0;
  /// Starts epoch `epoch` part-way, for resuming a run: the first `consumed` positions of
  /// the epoch's shared order (the samples all ranks together have already trained on)
  /// are skipped and the rest is sharded over the ranks as usual, position p going to rank
  /// (p - consumed) % world_size. With the world size of the interrupted run (`consumed`
  /// a multiple of batch_size * world_size) the remaining batches are exactly those the
  /// uninterrupted run sees; with another world size no sample of the epoch is repeated
  /// or skipped. The default accepts only consumed == 0.
  virtual void reset_at(int64_t epoch, int64_t consumed) {
    TORCH_CHECK(consumed == 0, "this data stream cannot start an epoch part-way (at position ", consumed, ")");
    reset(epoch);
  }
  /// The next batch of the current epoch, or nullopt at its end.
  virtual std::optional<Batch> next() = 0;
  /// Files skipped as unreadable so far (image folders; 0 for in-memory data).
  virtual int64_t skipped() const { return 0; }
};

/// `inner`'s batches, each assembled on a background thread while the caller still uses the
/// previous one (one batch ahead): for a GPU, which runs the step's copies and kernels
/// asynchronously, so the next in-memory batch is ready when the step is queued. Same
/// batches, same order; reset/reset_at first wait for the batch in flight.
std::unique_ptr<BatchStream> prefetching(std::unique_ptr<BatchStream> inner);

/// A loader over an in-memory dataset. Images are converted to float and
/// normalised with `mean`/`std` (one value per channel, [0, 1] scale).
/// `dataset.images` must be uint8 [N, C, H, W]; batches are float32 [B, C, H, W]
/// (channels-last strides when `options.channels_last`).
///
/// Order and sharding: every epoch walks a permutation of [0, N) that depends only
/// on (`seed`, epoch) (the identity when not shuffling), shared by all ranks;
/// position i of it goes to rank i % world_size.
///  - With `shuffle` (training) the permutation is padded by wrapping around to a
///    multiple of world_size, so every rank gets ceil(N / world_size) samples and
///    the same number of batches (a few samples appear twice per epoch).
///  - Without `shuffle` (evaluation) nothing is padded: each rank gets exactly its
///    own samples, the shards are disjoint and together hold all N once, and rank
///    sizes may differ by one (reduce sums across ranks, not means).
/// Augmentation (pad-and-crop with zero padding of `pad` pixels, plus a horizontal
/// flip with probability 1/2 when `flip`) draws from the same (`seed`, epoch)
/// generator, one draw per position of the padded permutation, so the batches are
/// identical for any number of threads, and a sample's crop does not depend on
/// world_size. `workers` is unused: batches are assembled on the calling thread
/// with at::parallel_for.
std::unique_ptr<BatchStream> make_tensor_loader(TensorDataset dataset,
                                                std::vector<double> mean,
                                                std::vector<double> std,
                                                LoaderOptions options);

}  // namespace splitshare::data
