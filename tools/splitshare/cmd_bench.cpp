#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/bench/throughput.h>
#include <splitshare/util/device.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

namespace splitshare::cli {
namespace {

// In table order; the default runs them all.
std::vector<std::pair<std::string, bench::Workload>> workloads() {
  using bench::Task;
  auto fashion = nn::ClassifierOptions().arch("resnet10").width(16).stem(nn::Stem::kSmall).in_channels(1).num_classes(10);
  auto r50 = nn::ClassifierOptions().arch("resnet50").num_classes(1000);
  auto head = [&](nn::HeadOptions h) { return nn::ClassifierOptions(r50).head(h); };
  const auto ssm = nn::HeadOptions().kind(nn::HeadKind::kSSM);
  return {
      {"fashion-train", bench::Workload().name("default model train, b128 28x28").model(fashion).batch(128)
                            .image_size(28).steps(10).repeats(5)},
      {"resnet50-ssm-train", bench::Workload().name("ResNet-50+SSM train, b16 224").model(r50).batch(16).warmup(1)
                                 .steps(3)},
      {"resnet50-ssm-train-memory", bench::Workload().name("ResNet-50+SSM train b16, peak RSS").model(r50).batch(16)
                                        .memory(true).warmup(1).steps(1).repeats(1)},
      // The GPU recipe (scripts/gpu-smoke: --device cuda --amp bf16|fp16); not in the default list.
      {"resnet50-ssm-train-b256", bench::Workload().name("ResNet-50+SSM train, b256 224").model(r50).batch(256)
                                      .warmup(5).steps(20).repeats(3)},
      {"resnet50-ssm-infer-b1", bench::Workload().name("ResNet-50+SSM infer, b1 224").model(r50).batch(1)
                                    .task(Task::kInfer).steps(10)},
      {"resnet50-ssm-infer-b64", bench::Workload().name("ResNet-50+SSM infer, b64 224").model(r50).batch(64)
                                     .task(Task::kInfer).warmup(1).steps(2)},
      {"head-ssm", bench::Workload().name("SSM head fwd+bwd, b256 2048->1000").model(head(ssm)).batch(256)
                       .task(Task::kHead).steps(5).repeats(9)},
      {"head-ssm-reference", bench::Workload().name("  same, straightforward (ours)").model(head(nn::HeadOptions(ssm)
                                 .fused(false))).batch(256).task(Task::kHead).steps(5).repeats(9)},
      {"head-linear", bench::Workload().name("linear head fwd+bwd, b256").model(head(nn::HeadOptions()
                          .kind(nn::HeadKind::kLinear))).batch(256).task(Task::kHead).steps(10).repeats(9)},
      {"head-ssm-infer", bench::Workload().name("SSM head inference, b256").model(head(ssm)).batch(256)
                             .task(Task::kHeadInfer).steps(10).repeats(9)},
      {"head-ssm-reference-infer", bench::Workload().name("  same, straightforward (ours)")
                                       .model(head(nn::HeadOptions(ssm).fused(false))).batch(256)
                                       .task(Task::kHeadInfer).steps(10).repeats(9)},
  };
}

std::string default_peer_script() {
  for (const std::string& candidate : {std::string(SPLITSHARE_SOURCE_DIR) + "/bench/peer_pytorch.py",
                                       std::string(SPLITSHARE_INSTALL_DATADIR) + "/bench/peer_pytorch.py"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return "bench/peer_pytorch.py";
}

// Peak memory of our side, from a fresh `splitshare bench` process running the
// training workload once (this process has run other workloads already).
bench::Timing measure_memory_in_child(const std::string& training_workload, int threads) {
  std::ostringstream cmd;
  // Resolved here: inside popen's shell, /proc/self/exe would be the shell.
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  cmd << "'" << self << "' bench --no-peer --json --workloads " << training_workload
      << " --warmup 1 --steps 1 --repeats 1 --threads " << threads;
  const auto json = bench::run_json_command(cmd.str());
  return bench::timing_from_json(json.at("rows").at(0).at("ours"));
}

}  // namespace

int run_bench(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Training/inference speed and memory of splitshare next to PyTorch eager, "
                                    "same threads; one table");
  std::string names, all;
  for (const auto& [name, _] : workloads()) {
    names += (names.empty() ? "" : ", ") + name;
    if (name != "resnet50-ssm-train-b256") all += (all.empty() ? "" : ",") + name;
  }
  options.add_options()
      ("workloads", "comma-separated, from: " + names, cxxopts::value<std::vector<std::string>>()->default_value(all))
      ("repeats", "timed repeats per workload (0 = workload default)", cxxopts::value<int64_t>()->default_value("0"))
      ("steps", "timed steps per repeat (0 = workload default)", cxxopts::value<int64_t>()->default_value("0"))
      ("warmup", "untimed steps first (-1 = workload default)", cxxopts::value<int64_t>()->default_value("-1"))
      ("no-peer", "skip the PyTorch eager peers")
      ("python", "Python with torch + torchvision", cxxopts::value<std::string>()->default_value(SPLITSHARE_PYTHON))
      ("peer-script", "the peer script", cxxopts::value<std::string>()->default_value(default_peer_script()))
      ("nchw", "train our side in NCHW layout (default: channels-last)")
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
  const auto python = (*args)["python"].as<std::string>();
  const auto script = (*args)["peer-script"].as<std::string>();
  const bool peers = args->count("no-peer") == 0;
  std::vector<bench::Row> rows;
  std::map<std::string, double> head_medians;
  std::vector<std::pair<std::string, bench::Workload>> selected;
  for (const auto& name : (*args)["workloads"].as<std::vector<std::string>>()) {
    auto it = std::find_if(table.begin(), table.end(), [&](const auto& entry) { return entry.first == name; });
    TORCH_CHECK(it != table.end(), "unknown workload '", name, "': expected one of ", names);
    auto w = it->second;
    if ((*args)["repeats"].as<int64_t>() > 0) w.repeats((*args)["repeats"].as<int64_t>());
    if ((*args)["steps"].as<int64_t>() > 0) w.steps((*args)["steps"].as<int64_t>());
    if ((*args)["warmup"].as<int64_t>() >= 0) w.warmup((*args)["warmup"].as<int64_t>());
    w.channels_last(args->count("nchw") == 0).device(device).precision(precision);
    selected.emplace_back(name, w);
  }
  // The head workloads of one task are timed in turn, repeat by repeat: their ratios
  // (SSM over linear, fused over straightforward) then compare the same moments.
  std::map<std::string, bench::Timing> interleaved;
  for (const auto task : {bench::Task::kHead, bench::Task::kHeadInfer}) {
    std::vector<std::string> group_names;
    std::vector<bench::Workload> group;
    for (const auto& [name, w] : selected) {
      if (w.task() != task) continue;
      group_names.push_back(name);
      group.push_back(w);
    }
    if (group.empty()) continue;
    std::string joined;
    for (const auto& name : group_names) joined += (joined.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "bench %s: splitshare, in turn...\n", joined.c_str());
    const auto timings = bench::measure_interleaved(group);
    for (size_t i = 0; i < group.size(); ++i) interleaved[group_names[i]] = timings[i];
  }
  for (const auto& [name, w] : selected) {
    bench::Row row;
    row.workload = w;
    if (interleaved.count(name)) {
      row.ours = interleaved[name];
    } else if (w.memory()) {
      std::fprintf(stderr, "bench %s: splitshare...\n", name.c_str());
      const std::string training = name.substr(0, name.rfind("-memory"));
      row.ours = measure_memory_in_child(training, threads);
    } else {
      std::fprintf(stderr, "bench %s: splitshare...\n", name.c_str());
      row.ours = bench::measure(w);
    }
    if (peers) {
      std::fprintf(stderr, "bench %s: PyTorch eager...\n", name.c_str());
      row.peer = bench::measure_peer(w, python, script, threads, /*channels_last=*/false);
      row.has_peer = true;
      if (w.task() != bench::Task::kHead && w.task() != bench::Task::kHeadInfer) {
        std::fprintf(stderr, "bench %s: PyTorch eager, channels-last...\n", name.c_str());
        row.peer_channels_last = bench::measure_peer(w, python, script, threads, /*channels_last=*/true);
        row.has_peer_channels_last = true;
      }
    }
    if (w.task() == bench::Task::kHead || w.task() == bench::Task::kHeadInfer) head_medians[name] = row.ours.median();
    rows.push_back(row);
  }
  // Time per sample of our SSM heads relative to our linear head (the FLOP ratio is 2.5).
  nlohmann::json head_ratios = nlohmann::json::object();
  if (head_medians.count("head-linear")) {
    for (const char* name : {"head-ssm", "head-ssm-reference"}) {
      if (head_medians.count(name)) head_ratios[name] = head_medians["head-linear"] / head_medians[name];
    }
  }
  // How much faster the fused SSM head is than the straightforward one, per task.
  nlohmann::json fused_speedups = nlohmann::json::object();
  for (const std::string task : {"", "-infer"}) {
    const auto fused = "head-ssm" + task, reference = "head-ssm-reference" + task;
    if (head_medians.count(fused) && head_medians.count(reference)) {
      fused_speedups[task.empty() ? "train" : "inference"] = head_medians[fused] / head_medians[reference];
    }
  }
  if (args->count("json")) {
    nlohmann::json out = {{"threads", threads}, {"rows", bench::to_json(rows)}};
    if (!head_ratios.empty()) out["head_time_over_linear"] = head_ratios;
    if (!fused_speedups.empty()) out["fused_head_speedup_over_straightforward"] = fused_speedups;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("threads: %d, device %s, %s; ratio = ours / eager (default NCHW, as a Python user writes it), "
                "vs CL = ours / eager channels-last; memory rows: eager's peak / ours\n%s",
                threads, device.str().c_str(), train::to_string(precision).c_str(), bench::format_table(rows).c_str());
    for (const auto& [name, value] : head_ratios.items()) {
      std::printf("%s time / linear head time: %.2fx\n", name.c_str(), value.get<double>());
    }
    for (const auto& [task, value] : fused_speedups.items()) {
      std::printf("fused SSM head / straightforward, %s: %.2fx faster\n", task.c_str(), value.get<double>());
    }
  }
  return 0;
}

}  // namespace splitshare::cli
