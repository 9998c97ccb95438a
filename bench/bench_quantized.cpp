// int8 inference (nn::QuantizedModel) against the float folded model (nn::InferenceModel),
// ResNet-50 + SSM at 224 pixels. Without --checkpoint: 1000 classes, random weights,
// calibrated on random images (speed only: the accuracy is the tests' and `quantize`'s
// business). With --checkpoint CK (a checkpoint `splitshare quantize` wrote): CK's model, in
// float and in int8 with its recorded ranges (what bench/int8_peers.py compares with ONNX
// Runtime).
//
//   infer/fp32/batch:N   InferenceModel, fused oneDNN fp32 convolutions, packed per shape
//   infer/int8/batch:N   QuantizedModel, oneDNN int8 convolutions
//
// Counter images_per_s. Usage: bench_quantized [--checkpoint CK] [google-benchmark flags]

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/nn/quantized.h>

#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

namespace sn = splitshare::nn;
namespace tr = splitshare::train;

namespace {

// The float and int8 models the benchmarks run (set up in main before any runs).
struct Models {
  std::unique_ptr<sn::Predictor> fp32, int8;
  int64_t channels = 3;
};

Models& models() {
  static Models m;
  return m;
}

void random_models() {
  torch::manual_seed(0);
  sn::Classifier c(sn::ClassifierOptions().arch("resnet50").num_classes(1000).head(sn::HeadOptions()));
  c->eval();
  auto quantized = std::make_unique<sn::QuantizedModel>(*c);
  quantized->observe(torch::randn({8, 3, 224, 224}));
  quantized->quantize(quantized->observed());
  models().fp32 = std::make_unique<sn::InferenceModel>(*c);
  models().int8 = std::move(quantized);
}

void checkpoint_models(const std::string& path) {
  const auto loaded = tr::load_checkpoint(path);
  TORCH_CHECK(loaded.quantization, path, " has no int8 record: write one with `splitshare quantize`");
  models().fp32 = std::make_unique<sn::InferenceModel>(*loaded.model.ptr());
  models().int8 = tr::make_predictor(loaded);
  models().channels = loaded.metadata.preprocess.channels;
}

void infer(benchmark::State& state, const sn::Predictor& model) {
  const auto batch = state.range(0);
  const auto images = torch::randn({batch, models().channels, 224, 224});
  model.forward(images);
  for (auto _ : state) benchmark::DoNotOptimize(model.forward(images).logits);
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                      benchmark::Counter::kIsRate);
}

void fp32(benchmark::State& state) { infer(state, *models().fp32); }
void int8(benchmark::State& state) { infer(state, *models().int8); }

}  // namespace

BENCHMARK(fp32)->Name("infer/fp32")->ArgName("batch")->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(int8)->Name("infer/int8")->ArgName("batch")->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  std::optional<std::string> checkpoint;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--checkpoint") && i + 1 < argc) {
      checkpoint = argv[++i];
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  try {
    checkpoint ? checkpoint_models(*checkpoint) : random_models();
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "bench_quantized: %s\n", e.what_without_backtrace());
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
