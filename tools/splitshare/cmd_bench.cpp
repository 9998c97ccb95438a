#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/bench/throughput.h>
#include <splitshare/util/device.h>

#include <cstdio>
#include <filesystem>
#include <map>

namespace splitshare::cli {
namespace {

std::map<std::string, bench::Workload> workloads() {
  auto fashion = nn::ClassifierOptions().arch("resnet10").width(16).stem(nn::Stem::kSmall).in_channels(1).num_classes(10);
  auto r50 = nn::ClassifierOptions().arch("resnet50").num_classes(1000);
  return {
      {"fashion-train", bench::Workload().name("default model train, b128 28x28").model(fashion).batch(128)
                            .image_size(28).steps(10).repeats(5)},
      {"resnet50-ssm-train", bench::Workload().name("ResNet-50+SSM train, b16 224").model(r50).batch(16)},
      // The GPU recipe (scripts/gpu-smoke): run with --device cuda --amp bf16|fp16.
      {"resnet50-ssm-train-b256", bench::Workload().name("ResNet-50+SSM train, b256 224").model(r50).batch(256)
                                      .warmup(5).steps(20).repeats(3)},
      {"resnet50-ssm-infer-b1", bench::Workload().name("ResNet-50+SSM infer, b1 224").model(r50).batch(1)
                                    .training(false).steps(10)},
      {"resnet50-ssm-infer-b64", bench::Workload().name("ResNet-50+SSM infer, b64 224").model(r50).batch(64)
                                     .training(false).steps(2)},
  };
}

std::string default_peer_script() {
  for (const std::string& candidate : {std::string(SPLITSHARE_SOURCE_DIR) + "/bench/peer_pytorch.py",
                                       std::string(SPLITSHARE_INSTALL_DATADIR) + "/bench/peer_pytorch.py"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return "bench/peer_pytorch.py";
}

}  // namespace

int run_bench(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Training/inference images/s of splitshare next to PyTorch eager, same threads");
  std::string names;
  for (const auto& [name, _] : workloads()) names += (names.empty() ? "" : ", ") + name;
  options.add_options()
      ("workloads", "comma-separated, from: " + names,
       cxxopts::value<std::vector<std::string>>()->default_value("fashion-train,resnet50-ssm-train"))
      ("repeats", "timed repeats per workload (0 = workload default)", cxxopts::value<int64_t>()->default_value("0"))
      ("no-peer", "skip the PyTorch eager peer")
      ("python", "Python with torch + torchvision", cxxopts::value<std::string>()->default_value("/usr/bin/python3"))
      ("peer-script", "the peer script", cxxopts::value<std::string>()->default_value(default_peer_script()))
      ("nchw", "NCHW layout for both (default: channels-last for both)")
      ("device", "cpu | cuda | cuda:N (the PyTorch peer needs cpu; use --no-peer otherwise)",
       cxxopts::value<std::string>()->default_value("cpu"))
      ("amp", "bf16 | fp16 | fp32 autocast of our side (--amp alone = bf16; the peer stays fp32, use --no-peer)",
       cxxopts::value<std::string>()->default_value("fp32")->implicit_value("bf16"))
      ("json", "print JSON");
  add_thread_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  const int threads = configure_threads(*args);
  const auto device = util::parse_device((*args)["device"].as<std::string>());
  const auto precision = train::parse_precision((*args)["amp"].as<std::string>());
  TORCH_CHECK(args->count("no-peer") || (device.is_cpu() && precision == train::Precision::kFloat32),
              "the PyTorch peer measures fp32 on the CPU only; add --no-peer with --device cuda or --amp");
  const auto table = workloads();
  std::vector<bench::Row> rows;
  for (const auto& name : (*args)["workloads"].as<std::vector<std::string>>()) {
    auto it = table.find(name);
    TORCH_CHECK(it != table.end(), "unknown workload '", name, "': expected one of ", names);
    auto w = it->second;
    if ((*args)["repeats"].as<int64_t>() > 0) w.repeats((*args)["repeats"].as<int64_t>());
    w.channels_last(args->count("nchw") == 0).device(device).precision(precision);
    bench::Row row;
    row.workload = w;
    std::fprintf(stderr, "bench %s: splitshare...\n", name.c_str());
    row.ours = bench::measure(w);
    if (!args->count("no-peer")) {
      std::fprintf(stderr, "bench %s: PyTorch eager...\n", name.c_str());
      row.peer = bench::measure_peer(w, (*args)["python"].as<std::string>(), (*args)["peer-script"].as<std::string>(),
                                     threads);
      row.has_peer = true;
    }
    rows.push_back(row);
  }
  if (args->count("json")) {
    std::printf("%s\n", nlohmann::json({{"threads", threads}, {"rows", bench::to_json(rows)}}).dump(2).c_str());
  } else {
    std::printf("threads: %d, device %s, %s\n%s", threads, device.str().c_str(), train::to_string(precision).c_str(),
                bench::format_table(rows).c_str());
  }
  return 0;
}

}  // namespace splitshare::cli
