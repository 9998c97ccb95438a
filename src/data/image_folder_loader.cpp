#include <splitshare/data/image_folder.h>

#include "shuffle.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#include "resample.h"
#endif

namespace splitshare::data {
namespace {

uint64_t shuffle_seed(uint64_t seed, int64_t epoch) { return mix_seed(mix_seed(seed) ^ static_cast<uint64_t>(epoch)); }

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t sample) {
  return mix_seed(mix_seed(mix_seed(seed ^ 0x5851f42d4c957f2dULL) ^ static_cast<uint64_t>(epoch)) ^
                  static_cast<uint64_t>(sample));
}

// While it lives, libtorch's operators run on the calling thread alone (OpenMP's team size
// is a per-thread setting). The decoding threads are the loader's parallelism: an OpenMP team
// per worker would oversubscribe the cores, and one thread makes the augmentation's
// reductions sum in the same order for any number of workers.
class SingleThreadedOps {
 public:
  SingleThreadedOps() {
#ifdef _OPENMP
    torch::empty({1}).fill_(0);  // libtorch sets a thread's team size on its first kernel: let it do so now
    previous_ = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
  }
  ~SingleThreadedOps() {
#ifdef _OPENMP
    omp_set_num_threads(previous_);
#endif
  }
  SingleThreadedOps(const SingleThreadedOps&) = delete;
  SingleThreadedOps& operator=(const SingleThreadedOps&) = delete;

 private:
  int previous_ = 1;
};

// What one decoding thread keeps between samples.
struct WorkerState {
  ImageDecoder decoder;
  Resampler resampler;
  std::vector<uint8_t> bytes;
  torch::Tensor scratch;  // float [C, S, S] on the [0, 255] scale, for auto_augment
};

// A batch being decoded. Slots are filled in any order; `remaining` reaches 0 when
// every slot has either pixels or an error.
// Workers read only this (never the loader's epoch state, which reset() replaces).
struct PendingBatch {
  int64_t epoch = 0;
  std::vector<int64_t> samples;  // dataset index per slot
  int64_t count = 0;
  torch::Tensor images;
  std::vector<std::string> errors;  // per slot; empty = decoded
  std::vector<uint8_t> fatal;       // per slot: the failure is not the file's fault
  int64_t assigned = 0;             // guarded by the loader's mutex
  int64_t remaining = 0;            // guarded by the loader's mutex
};

}  // namespace

struct ImageFolderLoader::Impl {
  ImageFolderIndex index;
  ImageFolderOptions options;
  LoaderOptions loader;
  ChannelMap map;
  torch::Tensor channel_scale;  // map as float [C, 1, 1] tensors
  torch::Tensor channel_bias;
  // uint8 batches (LoaderOptions::uint8_images), not with random erasing (it writes normalised values).
  bool bytes() const { return loader.uint8_images() && options.random_erase() == 0; }
  int64_t resize = 0;
  int64_t per_rank = 0;
  // Streaming (LoaderOptions::shuffle_buffer): each sample's shard.
  std::vector<int64_t> shard_of;
  bool streaming() const { return loader.shuffle() && loader.shuffle_buffer() > 0; }

  // Current epoch (touched by the consumer only, read by workers under the mutex).
  int64_t epoch = -1;
  std::vector<int64_t> order;
  int64_t batches = 0;
  int64_t consumed = 0;
  int64_t opened = 0;

  std::mutex mutex;
  std::condition_variable work_ready;
  std::condition_variable batch_ready;
  std::deque<std::shared_ptr<PendingBatch>> window;
  std::vector<torch::Tensor> pool;
  uint64_t generation = 0;
  bool stopping = false;
  std::vector<std::thread> threads;
  WorkerState inline_state;

  std::set<int64_t> bad_samples;
  std::vector<std::string> reports;
  int64_t skipped_this_epoch = 0;

  Impl(ImageFolderIndex index_in, ImageFolderOptions options_in, LoaderOptions loader_in);
  ~Impl();

  void start_epoch(int64_t new_epoch, int64_t start);  // start: positions already trained on
  void set_epoch_order(int64_t new_epoch, std::vector<int64_t> mine);
  std::shared_ptr<PendingBatch> open_batch();  // mutex held
  torch::Tensor batch_tensor(int64_t count);   // mutex held
  void decode_sample(WorkerState& state, int64_t epoch_of_batch, int64_t sample, torch::Tensor& images,
                     int64_t slot);
  void auto_augment_into(WorkerState& state, const DecodedRegion& region, const ResampleSpec& spec,
                         std::mt19937_64& rng, torch::Tensor slot_image) const;
  void run_slot(WorkerState& state, PendingBatch& pending, int64_t slot);
  void worker_loop();
  std::optional<Batch> finish(PendingBatch& pending);
  void report_epoch_end();
};

ImageFolderLoader::Impl::Impl(ImageFolderIndex index_in, ImageFolderOptions options_in, LoaderOptions loader_in)
    : index(std::move(index_in)), options(std::move(options_in)), loader(loader_in) {
  TORCH_CHECK(index.size() > 0, "ImageFolderLoader: image folder ", index.root, " has no images");
  TORCH_CHECK(options.channels() == 1 || options.channels() == 3, "ImageFolderLoader: channels must be 1 or 3, got ",
              options.channels());
  TORCH_CHECK(static_cast<int64_t>(options.mean().size()) == options.channels() &&
                  options.std().size() == options.mean().size(),
              "ImageFolderLoader: mean/std need ", options.channels(), " values each, got ", options.mean().size(),
              " and ", options.std().size());
  TORCH_CHECK(options.image_size() > 0, "ImageFolderLoader: image_size must be positive, got ", options.image_size());
  TORCH_CHECK(loader.batch_size() > 0, "ImageFolderLoader: batch_size must be positive, got ", loader.batch_size());
  TORCH_CHECK(loader.workers() >= 0, "ImageFolderLoader: workers must be >= 0, got ", loader.workers());
  TORCH_CHECK(options.dct_reducing_gap() == 0 || options.dct_reducing_gap() >= 1,
              "ImageFolderLoader: dct_reducing_gap must be 0 (off) or >= 1, got ", options.dct_reducing_gap());
  TORCH_CHECK(options.prefetch_batches() >= 1, "ImageFolderLoader: prefetch_batches must be >= 1, got ",
              options.prefetch_batches());
  TORCH_CHECK(loader.world_size() >= 1 && loader.rank() >= 0 && loader.rank() < loader.world_size(),
              "ImageFolderLoader: rank ", loader.rank(), " is outside world_size ", loader.world_size());
  TORCH_CHECK(options.random_erase() >= 0 && options.random_erase() <= 1,
              "ImageFolderLoader: random_erase is a probability in [0, 1], got ", options.random_erase());
  map = normalization(options.mean(), options.std());
  channel_scale = torch::tensor(std::vector<float>(map.scale.begin(), map.scale.begin() + options.channels()))
                      .view({options.channels(), 1, 1});
  channel_bias = torch::tensor(std::vector<float>(map.bias.begin(), map.bias.begin() + options.channels()))
                     .view({options.channels(), 1, 1});
  resize = eval_resize(options);
  options.random_crop().size(options.image_size());
  const int64_t n = index.size();
  const int64_t world = loader.world_size();
  const int64_t usable = loader.drop_last() ? n / world * world : n;
  per_rank = usable / world + (loader.rank() < usable % world ? 1 : 0);
  if (streaming()) {
    TORCH_CHECK(!index.members.empty(), "ImageFolderLoader: streaming (a shuffle buffer of ", loader.shuffle_buffer(),
                ") reads tar shards front to back; ", index.root, " is an image folder");
    TORCH_CHECK(loader.sample_weights().empty(), "ImageFolderLoader: streaming shards cannot draw a weighted "
                "(balanced) sample: that needs random access (shuffle by index)");
    for (const auto& member : index.members) shard_of.push_back(member.shard);
    per_rank = (n + world - 1) / world;
  }
  for (int64_t i = 0; i < loader.workers(); ++i) threads.emplace_back([this] { worker_loop(); });
}

ImageFolderLoader::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  work_ready.notify_all();
  for (auto& thread : threads) thread.join();
}

void ImageFolderLoader::Impl::start_epoch(int64_t new_epoch, int64_t start) {
  if (streaming()) {
    // Global position p of the epoch is local position p / world_size of rank p % world_size.
    const int64_t world = loader.world_size();
    const int64_t skip = std::max<int64_t>(0, (start + world - 1 - loader.rank()) / world);
    auto mine = streaming_order(shard_of, loader.shuffle_buffer(), loader.seed(), new_epoch, loader.rank(), world);
    mine.erase(mine.begin(), mine.begin() + std::min<int64_t>(skip, static_cast<int64_t>(mine.size())));
    return set_epoch_order(new_epoch, std::move(mine));
  }
  const int64_t n = index.size();
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  if (loader.shuffle() && !loader.sample_weights().empty()) {
    std::mt19937_64 rng(shuffle_seed(loader.seed(), new_epoch));
    all = weighted_draws(loader.sample_weights(), n, rng);
  } else if (loader.shuffle()) {
    std::mt19937_64 rng(shuffle_seed(loader.seed(), new_epoch));
    shuffle_in_place(all, rng);
  }
  // Positions [start, end) remain (whole rounds of world_size when dropping the last batch).
  const int64_t world = loader.world_size();
  const int64_t remaining = std::max<int64_t>(0, n - start);
  const int64_t end = start + (loader.drop_last() ? remaining / world * world : remaining);
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t i = start + loader.rank(); i < end; i += world) mine.push_back(all[i]);
  set_epoch_order(new_epoch, std::move(mine));
}

void ImageFolderLoader::Impl::set_epoch_order(int64_t new_epoch, std::vector<int64_t> mine) {
  const int64_t batch = loader.batch_size();
  const int64_t count = static_cast<int64_t>(mine.size());
  const int64_t new_batches = loader.drop_last() ? count / batch : (count + batch - 1) / batch;

  std::lock_guard<std::mutex> lock(mutex);
  ++generation;
  window.clear();
  epoch = new_epoch;
  order = std::move(mine);
  batches = new_batches;
  consumed = 0;
  opened = 0;
  skipped_this_epoch = 0;
}

torch::Tensor ImageFolderLoader::Impl::batch_tensor(int64_t count) {
  const int64_t size = options.image_size();
  const std::vector<int64_t> shape = {count, options.channels(), size, size};
  // Reuse a buffer nobody else references any more (the consumer dropped its batch):
  // fresh 40 MB buffers would cost a page fault per 4 KiB on every batch.
  for (auto& tensor : pool) {
    if (tensor.sizes() == shape && tensor.use_count() == 1 && tensor.storage().use_count() == 1) return tensor;
  }
  auto tensor = torch::empty(shape, batch_options(loader, bytes() ? torch::kUInt8 : torch::kFloat32));
  const size_t pool_limit = static_cast<size_t>(options.prefetch_batches() + 3);
  if (pool.size() >= pool_limit) {
    auto unused = std::find_if(pool.begin(), pool.end(), [](const torch::Tensor& t) {
      return t.use_count() == 1 && t.storage().use_count() == 1;
    });
    if (unused != pool.end()) pool.erase(unused);
  }
  if (pool.size() < pool_limit) pool.push_back(tensor);
  return tensor;
}

std::shared_ptr<PendingBatch> ImageFolderLoader::Impl::open_batch() {
  auto pending = std::make_shared<PendingBatch>();
  const int64_t begin = opened * loader.batch_size();
  pending->epoch = epoch;
  pending->count = std::min<int64_t>(loader.batch_size(), static_cast<int64_t>(order.size()) - begin);
  pending->samples.assign(order.begin() + begin, order.begin() + begin + pending->count);
  pending->images = batch_tensor(pending->count);
  pending->errors.resize(static_cast<size_t>(pending->count));
  pending->fatal.resize(static_cast<size_t>(pending->count));
  pending->remaining = pending->count;
  ++opened;
  window.push_back(pending);
  return pending;
}

void ImageFolderLoader::Impl::decode_sample(WorkerState& state, int64_t epoch_of_batch, int64_t sample,
                                            torch::Tensor& images, int64_t slot) {
  const std::string& path = index.paths[static_cast<size_t>(sample)];
  read_sample_bytes(index, sample, state.bytes);
  ImageInfo info = state.decoder.open(state.bytes.data(), state.bytes.size(), path);
  ResampleSpec spec;
  const bool paper = options.recipe() == PhotoRecipe::kPaper;
  std::mt19937_64 rng(sample_seed(loader.seed(), epoch_of_batch, sample));
  if (loader.augment()) {
    if (paper) {
      spec = sample_square_resize_crop(info.width, info.height, resize, options.image_size(),
                                       options.random_crop().flip_probability(), rng);
    } else {
      PixelRect crop = sample_random_resized_crop(info.width, info.height, options.random_crop(), rng);
      bool flip = uniform01(rng) < options.random_crop().flip_probability();
      spec = crop_resample(crop, options.image_size(), flip);
    }
  } else {
    spec = resize_center_crop(info.width, info.height, resize, options.image_size(),
                              paper ? ResizeMode::kSquare : ResizeMode::kShorterSide);
  }
  DecodeOptions decode;
  decode.channels(options.channels())
      .crop(source_rect(spec, info.width, info.height))
      .min_scale(options.dct_reducing_gap() > 0 ? min_decode_scale(spec, options.dct_reducing_gap()) : 1.0)
      .max_pixels(options.max_pixels());
  const DecodedRegion& region = state.decoder.decode(decode);
  if (loader.augment() && options.auto_augment() != AutoAugmentKind::kNone) {
    auto_augment_into(state, region, spec, rng, images.select(0, slot));
  } else if (bytes()) {
    OutputPlanes planes{nullptr, images.stride(1), images.stride(2), images.stride(3),
                        images.data_ptr<uint8_t>() + slot * images.stride(0)};
    state.resampler.run(region, spec, ChannelMap{}, planes);
  } else {
    OutputPlanes planes{images.data_ptr<float>() + slot * images.stride(0), images.stride(1), images.stride(2),
                        images.stride(3)};
    state.resampler.run(region, spec, map, planes);
  }
  if (loader.augment() && options.random_erase() > 0) {
    random_erase_(images.select(0, slot), RandomErasingOptions().probability(options.random_erase()), rng);
  }
}

// torchvision's uint8 pipeline: the resized crop rounded to uint8, the policy, then
// ToTensor + Normalize into the batch slot.
void ImageFolderLoader::Impl::auto_augment_into(WorkerState& state, const DecodedRegion& region,
                                                const ResampleSpec& spec, std::mt19937_64& rng,
                                                torch::Tensor slot_image) const {
  const int64_t size = options.image_size();
  SingleThreadedOps single_thread;
  if (!state.scratch.defined() || state.scratch.size(0) != options.channels() || state.scratch.size(1) != size) {
    state.scratch = torch::empty({options.channels(), size, size}, torch::kFloat32);
  }
  OutputPlanes planes{state.scratch.data_ptr<float>(), size * size, size, 1};
  state.resampler.run(region, spec, ChannelMap{}, planes);
  auto pixels = state.scratch.round().clamp_(0, 255).to(torch::kUInt8);
  auto augmented = auto_augment(pixels, options.auto_augment(), rng);
  if (bytes()) {
    slot_image.copy_(augmented);
  } else {
    slot_image.copy_(augmented.to(torch::kFloat32).mul_(channel_scale).add_(channel_bias));
  }
}

void ImageFolderLoader::Impl::run_slot(WorkerState& state, PendingBatch& pending, int64_t slot) {
  const int64_t sample = pending.samples[static_cast<size_t>(slot)];
  try {
    decode_sample(state, pending.epoch, sample, pending.images, slot);
  } catch (const c10::Error& error) {
    pending.errors[static_cast<size_t>(slot)] = error.what_without_backtrace();
  } catch (const std::exception& error) {
    pending.errors[static_cast<size_t>(slot)] =
        "loading " + index.paths[static_cast<size_t>(sample)] + " failed: " + error.what();
    pending.fatal[static_cast<size_t>(slot)] = 1;
  }
}

void ImageFolderLoader::Impl::worker_loop() {
  WorkerState state;
  std::unique_lock<std::mutex> lock(mutex);
  while (!stopping) {
    std::shared_ptr<PendingBatch> pending;
    for (auto& candidate : window) {
      if (candidate->assigned < candidate->count) {
        pending = candidate;
        break;
      }
    }
    if (!pending && opened < batches && static_cast<int64_t>(window.size()) < options.prefetch_batches()) {
      pending = open_batch();
    }
    if (!pending) {
      work_ready.wait(lock);
      continue;
    }
    const int64_t slot = pending->assigned++;
    const uint64_t my_generation = generation;
    lock.unlock();
    // Errors are recorded in the slot (each slot is written by one thread only).
    run_slot(state, *pending, slot);
    lock.lock();
    if (generation == my_generation && --pending->remaining == 0) batch_ready.notify_all();
  }
}

std::optional<Batch> ImageFolderLoader::Impl::finish(PendingBatch& pending) {
  std::vector<int64_t> keep;
  keep.reserve(static_cast<size_t>(pending.count));
  for (int64_t slot = 0; slot < pending.count; ++slot) {
    const std::string& error = pending.errors[static_cast<size_t>(slot)];
    if (error.empty()) {
      keep.push_back(slot);
      continue;
    }
    TORCH_CHECK(!pending.fatal[static_cast<size_t>(slot)], error);
    TORCH_CHECK(!loader.strict(), "unreadable image (strict mode): ", error);
    const int64_t sample = pending.samples[static_cast<size_t>(slot)];
    ++skipped_this_epoch;
    if (!bad_samples.insert(sample).second) continue;
    if (static_cast<int64_t>(reports.size()) < options.report_limit()) {
      reports.push_back(error);
      if (options.report_to_stderr()) std::cerr << "splitshare: skipping unreadable image: " << error << "\n";
    }
  }
  if (keep.empty()) return std::nullopt;
  std::vector<int64_t> labels(keep.size());
  std::vector<int64_t> samples(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) {
    samples[i] = pending.samples[static_cast<size_t>(keep[i])];
    labels[i] = index.labels[static_cast<size_t>(samples[i])];
  }
  Batch batch;
  batch.images = pending.images;
  if (static_cast<int64_t>(keep.size()) < pending.count) {
    batch.images = pending.images.index_select(0, torch::tensor(keep, torch::kInt64));
    if (loader.channels_last()) batch.images = batch.images.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  batch.labels = torch::tensor(labels, torch::kInt64);
  batch.indices = torch::tensor(samples, torch::kInt64);
  if (bytes()) {
    batch.scale = channel_scale.flatten().clone();
    batch.shift = channel_bias.flatten().clone();
  }
  return batch;
}

void ImageFolderLoader::Impl::report_epoch_end() {
  if (skipped_this_epoch == 0 || !options.report_to_stderr()) return;
  std::cerr << "splitshare: " << skipped_this_epoch << " unreadable image(s) skipped in epoch " << epoch << " of "
            << index.root << " (" << bad_samples.size() << " distinct file(s) so far";
  if (static_cast<int64_t>(bad_samples.size()) > static_cast<int64_t>(reports.size())) {
    std::cerr << ", only the first " << reports.size() << " listed";
  }
  std::cerr << "; --strict stops at the first)\n";
  skipped_this_epoch = 0;
}

ImageFolderLoader::ImageFolderLoader(ImageFolderIndex index, ImageFolderOptions options, LoaderOptions loader)
    : impl_(std::make_unique<Impl>(std::move(index), std::move(options), loader)) {}

ImageFolderLoader::~ImageFolderLoader() = default;

int64_t ImageFolderLoader::size() const { return impl_->per_rank; }

int64_t ImageFolderLoader::batches_per_epoch() const {
  const int64_t batch = impl_->loader.batch_size();
  return impl_->loader.drop_last() ? impl_->per_rank / batch : (impl_->per_rank + batch - 1) / batch;
}

void ImageFolderLoader::reset(int64_t epoch) { reset_at(epoch, 0); }

void ImageFolderLoader::reset_at(int64_t epoch, int64_t consumed) {
  TORCH_CHECK(epoch >= 0, "ImageFolderLoader::reset: epoch must be >= 0, got ", epoch);
  TORCH_CHECK(consumed >= 0, "ImageFolderLoader::reset_at: consumed must be >= 0, got ", consumed);
  impl_->start_epoch(epoch, consumed);
  impl_->work_ready.notify_all();
}

std::optional<Batch> ImageFolderLoader::next() {
  Impl& s = *impl_;
  TORCH_CHECK(s.epoch >= 0, "ImageFolderLoader::next called before reset(epoch)");
  while (true) {
    std::shared_ptr<PendingBatch> pending;
    if (s.threads.empty()) {
      if (s.consumed >= s.batches) break;
      {
        std::lock_guard<std::mutex> lock(s.mutex);
        pending = s.open_batch();
        s.window.clear();
      }
      for (int64_t slot = 0; slot < pending->count; ++slot) s.run_slot(s.inline_state, *pending, slot);
    } else {
      std::unique_lock<std::mutex> lock(s.mutex);
      if (s.consumed >= s.batches) break;
      if (s.window.empty()) s.open_batch();
      s.work_ready.notify_all();
      s.batch_ready.wait(lock, [&] { return s.window.front()->remaining == 0; });
      pending = s.window.front();
      s.window.pop_front();
      lock.unlock();
      s.work_ready.notify_all();
    }
    ++s.consumed;
    auto batch = s.finish(*pending);
    if (batch) return batch;
  }
  s.report_epoch_end();
  return std::nullopt;
}

int64_t ImageFolderLoader::batch_size() const { return impl_->loader.batch_size(); }

int64_t ImageFolderLoader::skipped() const { return static_cast<int64_t>(impl_->bad_samples.size()); }

std::vector<std::string> ImageFolderLoader::skipped_reports() const { return impl_->reports; }

const ImageFolderIndex& ImageFolderLoader::index() const { return impl_->index; }

std::unique_ptr<BatchStream> make_image_folder_loader(ImageFolderIndex index, ImageFolderOptions options,
                                                      LoaderOptions loader) {
  return std::make_unique<ImageFolderLoader>(std::move(index), std::move(options), loader);
}

}  // namespace splitshare::data
