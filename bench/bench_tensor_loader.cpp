// Throughput of the in-memory loader: Fashion-MNIST-sized (60000 x 1 x 28 x 28)
// and CIFAR-sized (50000 x 3 x 32 x 32) training batches, augmented as in training.
// Reports images/s (items_per_second). Arguments: batch size, intra-op threads.

#include <splitshare/data/loader.h>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

namespace {

using splitshare::data::LoaderOptions;

splitshare::data::TensorDataset synthetic(int64_t n, int64_t channels, int64_t side) {
  torch::manual_seed(0);
  splitshare::data::TensorDataset d;
  d.images = torch::randint(0, 256, {n, channels, side, side}, torch::kInt64).to(torch::kUInt8);
  d.labels = torch::randint(0, 10, {n}, torch::kInt64);
  return d;
}

void run(benchmark::State& state, int64_t n, int64_t channels, int64_t side, LoaderOptions options) {
  const int threads = at::get_num_threads();
  at::set_num_threads(static_cast<int>(state.range(1)));
  const std::vector<double> mean(static_cast<size_t>(channels), 0.3), std(static_cast<size_t>(channels), 0.35);
  auto stream = splitshare::data::make_tensor_loader(synthetic(n, channels, side), mean, std,
                                                     options.batch_size(state.range(0)));
  int64_t epoch = 0, images = 0;
  stream->reset(epoch);
  for (auto _ : state) {
    auto batch = stream->next();
    if (!batch) {
      state.PauseTiming();  // the per-epoch shuffle is not part of the batch cost
      stream->reset(++epoch);
      state.ResumeTiming();
      batch = stream->next();
    }
    benchmark::DoNotOptimize(batch->images.data_ptr<float>());
    images += batch->images.size(0);
  }
  state.SetItemsProcessed(images);
  at::set_num_threads(threads);
}

void FashionMnistAugmented(benchmark::State& state) {
  run(state, 60000, 1, 28, LoaderOptions().shuffle(true).drop_last(true).augment(true).pad(2));
}
void FashionMnistPlain(benchmark::State& state) {
  run(state, 60000, 1, 28, LoaderOptions().shuffle(true).drop_last(true));
}
void CifarAugmentedChannelsLast(benchmark::State& state) {
  run(state, 50000, 3, 32, LoaderOptions().shuffle(true).drop_last(true).augment(true).pad(4).channels_last(true));
}
void CifarAugmented(benchmark::State& state) {
  run(state, 50000, 3, 32, LoaderOptions().shuffle(true).drop_last(true).augment(true).pad(4));
}

void Epoch(benchmark::State& state) {
  auto stream = splitshare::data::make_tensor_loader(synthetic(60000, 1, 28), {0.3}, {0.35},
                                                     LoaderOptions().shuffle(true).augment(true).pad(2));
  int64_t epoch = 0;
  for (auto _ : state) stream->reset(epoch++);
  state.SetItemsProcessed(state.iterations() * 60000);
}

}  // namespace

BENCHMARK(FashionMnistAugmented)->ArgsProduct({{128, 512}, {1, 2}})->UseRealTime();
BENCHMARK(FashionMnistPlain)->Args({128, 1})->Args({128, 2})->UseRealTime();
BENCHMARK(CifarAugmented)->Args({128, 1})->Args({128, 2})->UseRealTime();
BENCHMARK(CifarAugmentedChannelsLast)->Args({128, 1})->Args({128, 2})->UseRealTime();
BENCHMARK(Epoch)->Unit(benchmark::kMillisecond);  // reset(): shuffle + augmentation draws

BENCHMARK_MAIN();
