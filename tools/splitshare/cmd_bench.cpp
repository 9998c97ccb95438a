#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/bench/suite.h>
#include <splitshare/train/precision_probe.h>
#include <splitshare/util/device.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace splitshare::cli {
namespace {

std::string default_peer_script() {
  for (const std::string& candidate : {std::string(SPLITSHARE_SOURCE_DIR) + "/bench/peer_pytorch.py",
                                       std::string(SPLITSHARE_INSTALL_DATADIR) + "/bench/peer_pytorch.py"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return "bench/peer_pytorch.py";
}

// "fashion-train, fashion-train-bf16, …": every workload the bench knows.
std::string workload_names() {
  std::string names;
  for (const auto& [name, _] : bench::standard_workloads()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

// The workloads named by --workloads, with the command line's counts, layout, device and precision.
std::vector<std::pair<std::string, bench::Workload>> selected_workloads(const cxxopts::ParseResult& args,
                                                                      const torch::Device& device, bool amp,
                                                                      train::Precision precision) {
  const auto table = bench::standard_workloads();
  const auto repeats = args["repeats"].as<int64_t>(), steps = args["steps"].as<int64_t>();
  const auto warmup = args["warmup"].as<int64_t>();
  TORCH_CHECK(repeats >= 0 && steps >= 0 && warmup >= -1,
              "--repeats and --steps must be >= 0 (0 = the workload's) and --warmup >= -1 (-1 = the workload's)");
  std::vector<std::pair<std::string, bench::Workload>> selected;
  for (const auto& name : args["workloads"].as<std::vector<std::string>>()) {
    auto it = std::find_if(table.begin(), table.end(), [&](const auto& entry) { return entry.first == name; });
    TORCH_CHECK(it != table.end(), "unknown workload '", name, "': expected one of ", workload_names());
    auto w = it->second;
    if (repeats > 0) w.repeats(repeats);
    if (steps > 0) w.steps(steps);
    if (warmup >= 0) w.warmup(warmup);
    w.channels_last(args.count("nchw") == 0).device(device);
    if (amp) w.precision(precision);
    selected.emplace_back(name, w);
  }
  return selected;
}

}  // namespace

int run_bench(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Training/inference speed and memory of splitshare next to the venv's PyTorch "
                                    "(eager, tuned eager, torch.compile), same threads and precision; one table");
  std::string all;
  for (const auto& name : bench::default_workload_names()) all += (all.empty() ? "" : ",") + name;
  options.add_options()
      ("workloads", "comma-separated, from: " + workload_names(), cxxopts::value<std::vector<std::string>>()->default_value(all))
      ("repeats", "timed repeats per workload (0 = workload default)", number<int64_t>()->default_value("0"))
      ("steps", "timed steps per repeat (0 = workload default)", number<int64_t>()->default_value("0"))
      ("warmup", "untimed steps first (-1 = workload default)", number<int64_t>()->default_value("-1"))
      ("rounds", "measure each speed row N times, ours then the peers in turn, and pool the repeats "
                 "(for machines whose speed changes in steps)",
       number<int>()->default_value("1"))
      ("no-peer", "skip the PyTorch peers")
      ("peers", "comma-separated, from: eager, eager_tuned, compile",
       cxxopts::value<std::vector<std::string>>()->default_value("eager,eager_tuned,compile"))
      ("python", "Python with torch + torchvision", cxxopts::value<std::string>()->default_value(SPLITSHARE_PYTHON))
      ("peer-script", "the peer script", cxxopts::value<std::string>()->default_value(default_peer_script()))
      ("nchw", "train our side in NCHW layout (default: channels-last)")
      ("device", "cpu | cuda | cuda:N (the PyTorch peer needs cpu; use --no-peer otherwise)",
       cxxopts::value<std::string>()->default_value("cpu"))
      ("amp", "auto | bf16 | fp16 | fp32 autocast for every workload chosen, ours and the peers' (default: "
              "each workload's own, the table measures both; auto: what train would pick here; fp16 needs "
              "--device cuda --no-peer)",
       cxxopts::value<std::string>()->implicit_value("bf16"))
      ("json", "print JSON");
  add_thread_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  const int threads = configure_threads(*args);
  const auto device = util::parse_device((*args)["device"].as<std::string>());
  const bool amp = args->count("amp") > 0;
  const auto precision =
      amp ? train::resolve_precision((*args)["amp"].as<std::string>(), device, train::default_probe_cache()).precision
          : train::Precision::kFloat32;
  TORCH_CHECK(args->count("no-peer") || (device.is_cpu() && precision != train::Precision::kFloat16),
              "the PyTorch peers run on the CPU in fp32 or bf16; add --no-peer with --device cuda or --amp fp16");
  const auto peers = (*args)["peers"].as<std::vector<std::string>>();
  for (const auto& peer : peers) {
    const auto known = bench::peer_names();
    TORCH_CHECK(std::find(known.begin(), known.end(), peer) != known.end(), "--peers: unknown peer '", peer,
                "'; expected eager, eager_tuned or compile");
  }
  const auto rounds = (*args)["rounds"].as<int>();
  TORCH_CHECK(rounds >= 1, "--rounds must be at least 1, got ", rounds);
  const auto selected = selected_workloads(*args, device, amp, precision);
  // Resolved here: inside popen's shell, /proc/self/exe would be the shell.
  const auto result = bench::run_suite(selected, bench::SuiteOptions()
                                                     .peers(args->count("no-peer") == 0)
                                                     .peer_kinds(peers)
                                                     .python((*args)["python"].as<std::string>())
                                                     .peer_script((*args)["peer-script"].as<std::string>())
                                                     .threads(threads)
                                                     .rounds(rounds)
                                                     .program(std::filesystem::read_symlink("/proc/self/exe")));
  if (args->count("json")) {
    std::printf("%s\n", bench::to_json(result, threads).dump(2).c_str());
  } else {
    char header[256];
    std::snprintf(header, sizeof header,
                  "threads: %d, device %s; ratio = ours / the best peer (memory rows: its peak / ours): above 1 "
                  "we win; GFLOP/s from the eager peer's FLOP count, %%peak of a large matrix product\n",
                  threads, device.str().c_str());
    std::printf("%s", bench::format_suite(result, header).c_str());
  }
  return 0;
}

}  // namespace splitshare::cli
