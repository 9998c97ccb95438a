// int8 inference (nn::QuantizedModel) against the float folded model (nn::InferenceModel),
// ResNet-50 + SSM at 224 pixels, 1000 classes, calibrated on random images (speed only: the
// accuracy is the tests' and `quantize`'s business).
//
//   infer/fp32/batch:N   InferenceModel, fused oneDNN fp32 convolutions, packed per shape
//   infer/int8/batch:N   QuantizedModel, oneDNN int8 convolutions
//
// Counter images_per_s. Usage: bench_quantized [google-benchmark flags]

#include <splitshare/nn/quantized.h>

#include <benchmark/benchmark.h>

#include <memory>

namespace sn = splitshare::nn;

namespace {

sn::Classifier& model() {
  static sn::Classifier m = [] {
    torch::manual_seed(0);
    sn::Classifier c(sn::ClassifierOptions().arch("resnet50").num_classes(1000).head(sn::HeadOptions()));
    c->eval();
    return c;
  }();
  return m;
}

void fp32(benchmark::State& state) {
  const auto batch = state.range(0);
  const sn::InferenceModel folded(*model());
  const auto images = torch::randn({batch, 3, 224, 224});
  folded.forward(images);
  for (auto _ : state) benchmark::DoNotOptimize(folded.forward(images).logits);
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                      benchmark::Counter::kIsRate);
}

void int8(benchmark::State& state) {
  const auto batch = state.range(0);
  sn::QuantizedModel quantized(*model());
  quantized.observe(torch::randn({8, 3, 224, 224}));
  quantized.quantize(quantized.observed());
  const auto images = torch::randn({batch, 3, 224, 224});
  quantized.forward(images);
  for (auto _ : state) benchmark::DoNotOptimize(quantized.forward(images).logits);
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                      benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(fp32)->Name("infer/fp32")->ArgName("batch")->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(int8)->Name("infer/int8")->ArgName("batch")->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
