// Throughput of the image-folder pipeline on a folder of real JPEGs
// (bench/make_corpus.py), the C++ side of bench/image_pipeline.sh.
//
//   pipeline/train/workers:N  decode + RandomResizedCrop(224) + flip + normalise, batches of 64
//   pipeline/eval/workers:N   decode + resize(256) + centre crop(224) + normalise
//   stage/*                   single-thread pieces of the training pipeline (where the time goes)
//
// Each benchmark iteration is one epoch over the folder, after one warm-up epoch (threads
// started, files in the page cache). Counters: images_per_s (wall clock),
// per_core (images_per_s / max(workers, 1)) and images_per_cpu_s (images per second of
// process CPU time, all threads: robust when other processes share the cores).
//
// Usage: bench_image_pipeline [--corpus=bench/corpus/train] [--workers=1,2] [--epochs=3]
//                             [google-benchmark flags]
// --corpus=wds:DIR reads WebDataset shards (`splitshare pack`) instead of a folder (pipeline/* only).

#include <splitshare/data/image_folder.h>
#include <splitshare/data/webdataset.h>

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>
#include "data/resample.h"

namespace sd = splitshare::data;

namespace {

struct BenchOptions {
  std::string corpus = "bench/corpus/train";
  std::vector<int64_t> workers = {1, 2};
  int64_t epochs = 3;
  int64_t batch_size = 64;
};

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// The corpus as an index: a folder's files, or with "wds:DIR" the samples of DIR's shards.
sd::ImageFolderIndex corpus_index(const std::string& corpus) {
  if (corpus.rfind("wds:", 0) != 0) return sd::list_image_folder(corpus);
  const auto root = corpus.substr(4);
  return sd::index_shards(sd::expand_shards(root), root, sd::recorded_classes(root), /*strict=*/false).index;
}

void run_pipeline(benchmark::State& state, const BenchOptions& bench, bool train) {
  const int64_t workers = state.range(0);
  auto loader_options = sd::LoaderOptions()
                            .batch_size(bench.batch_size)
                            .workers(workers)
                            .shuffle(train)
                            .augment(train)
                            .seed(0);
  sd::ImageFolderLoader loader(corpus_index(bench.corpus), sd::ImageFolderOptions(), loader_options);
  auto epoch_images = [&](int64_t epoch) {
    int64_t images = 0;
    loader.reset(epoch);
    while (auto batch = loader.next()) {
      images += batch->images.size(0);
      benchmark::DoNotOptimize(batch->images.data_ptr());
    }
    return images;
  };
  epoch_images(0);
  int64_t images = 0;
  int64_t epoch = 1;
  const double cpu_start = process_cpu_seconds();
  for (auto _ : state) images += epoch_images(epoch++);
  const double cpu = process_cpu_seconds() - cpu_start;
  state.SetItemsProcessed(images);
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
  state.counters["per_core"] = benchmark::Counter(static_cast<double>(images) / static_cast<double>(std::max<int64_t>(workers, 1)),
                                                  benchmark::Counter::kIsRate);
  state.counters["images_per_cpu_s"] = static_cast<double>(images) / cpu;
  state.counters["workers"] = static_cast<double>(workers);
  state.counters["skipped"] = static_cast<double>(loader.skipped());
}

// The files of the corpus in memory, so that the stage benchmarks time no I/O.
struct Encoded {
  std::vector<std::vector<uint8_t>> files;
  std::vector<std::string> names;
};

Encoded load_corpus(const std::string& root) {
  Encoded encoded;
  auto index = sd::list_image_folder(root);
  for (const auto& path : index.paths) {
    encoded.files.emplace_back();
    sd::read_file_bytes(path, encoded.files.back());
    encoded.names.push_back(path);
  }
  return encoded;
}

// stage/decode_full: libjpeg-turbo decode of the whole image (what PIL does).
// stage/decode_train_crop: cropped decode of a RandomResizedCrop's source pixels.
// stage/train_transform: the cropped decode plus resample + flip + normalise (no I/O).
void run_stage(benchmark::State& state, const BenchOptions& bench, int stage) {
  static const Encoded encoded = load_corpus(bench.corpus);
  sd::ImageDecoder decoder;
  sd::Resampler resampler;
  sd::ChannelMap map = sd::normalization({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
  auto output = torch::empty({3, 224, 224});
  sd::OutputPlanes planes{output.data_ptr<float>(), 224 * 224, 224, 1};
  std::mt19937_64 rng(0);
  int64_t images = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < encoded.files.size(); ++i) {
      const auto& file = encoded.files[i];
      auto info = decoder.open(file.data(), file.size(), encoded.names[i]);
      if (stage == 0) {
        benchmark::DoNotOptimize(decoder.decode({}).pixels);
      } else {
        auto crop = sd::sample_random_resized_crop(info.width, info.height, {}, rng);
        auto spec = sd::crop_resample(crop, 224, sd::uniform01(rng) < 0.5);
        const auto& region = decoder.decode(sd::DecodeOptions()
                                                .crop(sd::source_rect(spec, info.width, info.height))
                                                .min_scale(sd::min_decode_scale(spec)));
        if (stage == 2) resampler.run(region, spec, map, planes);
        benchmark::DoNotOptimize(region.pixels);
      }
      ++images;
    }
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
}

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) values.push_back(std::stoll(item));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions bench;
  if (const char* corpus = std::getenv("SPLITSHARE_CORPUS")) bench.corpus = corpus;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& flag) { return arg.substr(flag.size()); };
    if (arg.rfind("--corpus=", 0) == 0) {
      bench.corpus = value("--corpus=");
    } else if (arg.rfind("--workers=", 0) == 0) {
      bench.workers = parse_list(value("--workers="));
    } else if (arg.rfind("--epochs=", 0) == 0) {
      bench.epochs = std::stoll(value("--epochs="));
    } else {
      rest.push_back(argv[i]);
    }
  }
  for (bool train : {true, false}) {
    auto* b = benchmark::RegisterBenchmark(train ? "pipeline/train" : "pipeline/eval",
                                           [bench, train](benchmark::State& state) { run_pipeline(state, bench, train); });
    for (int64_t workers : bench.workers) b->Arg(workers);
    b->ArgName("workers")->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(bench.epochs);
  }
  const char* stages[] = {"stage/decode_full", "stage/decode_train_crop", "stage/train_transform"};
  for (int stage = 0; stage < 3; ++stage) {
    benchmark::RegisterBenchmark(stages[stage], [bench, stage](benchmark::State& state) { run_stage(state, bench, stage); })
        ->Unit(benchmark::kMillisecond)
        ->Iterations(2);
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  try {
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& error) {
    std::cerr << "bench_image_pipeline: " << error.what() << "\n";
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
