#include <splitshare/bench/suite.h>
#include <splitshare/util/build_info.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace splitshare::bench {

std::vector<std::pair<std::string, Workload>> standard_workloads() {
  auto fashion = nn::ClassifierOptions().arch("resnet10").width(16).stem(nn::Stem::kSmall).in_channels(1).num_classes(10);
  auto r50 = nn::ClassifierOptions().arch("resnet50").num_classes(1000);
  auto head = [&](nn::HeadOptions h) { return nn::ClassifierOptions(r50).head(h); };
  const auto ssm = nn::HeadOptions().kind(nn::HeadKind::kSSM);
  const auto bf16 = train::Precision::kBFloat16;
  return {
      {"fashion-train", Workload().name("default model train, b128 28x28").model(fashion).batch(128)
                            .image_size(28).steps(10).repeats(5)},
      {"fashion-train-bf16", Workload().name("default model train, b128 28x28").model(fashion).batch(128)
                                 .image_size(28).steps(10).repeats(5).precision(bf16)},
      {"resnet50-ssm-train", Workload().name("ResNet-50+SSM train, b16 224").model(r50).batch(16).warmup(1)
                                 .steps(3)},
      {"resnet50-ssm-train-bf16", Workload().name("ResNet-50+SSM train, b16 224").model(r50).batch(16).warmup(1)
                                      .steps(3).precision(bf16)},
      {"resnet50-ssm-train-memory", Workload().name("ResNet-50+SSM train b16, peak RSS").model(r50).batch(16)
                                        .memory(true).warmup(1).steps(1).repeats(1)},
      // The GPU recipe (scripts/gpu-smoke: --device cuda --amp bf16|fp16); not in the default list.
      {"resnet50-ssm-train-b256", Workload().name("ResNet-50+SSM train, b256 224").model(r50).batch(256)
                                      .warmup(5).steps(20).repeats(3)},
      // Batch 1 steps are short (20-30 ms) and their first repeats noisy: more warm-up, more repeats.
      {"resnet50-ssm-infer-b1", Workload().name("ResNet-50+SSM infer, b1 224").model(r50).batch(1)
                                    .task(Task::kInfer).warmup(5).steps(10).repeats(7)},
      {"resnet50-ssm-infer-b1-bf16", Workload().name("ResNet-50+SSM infer, b1 224").model(r50).batch(1)
                                         .task(Task::kInfer).warmup(5).steps(10).repeats(7).precision(bf16)},
      {"resnet50-ssm-infer-b64", Workload().name("ResNet-50+SSM infer, b64 224").model(r50).batch(64)
                                     .task(Task::kInfer).warmup(1).steps(2)},
      {"resnet50-ssm-infer-b64-bf16", Workload().name("ResNet-50+SSM infer, b64 224").model(r50).batch(64)
                                          .task(Task::kInfer).warmup(1).steps(2).precision(bf16)},
      {"head-ssm", Workload().name("SSM head fwd+bwd, b256 2048->1000").model(head(ssm)).batch(256)
                       .task(Task::kHead).steps(5).repeats(9)},
      {"head-ssm-reference", Workload().name("  same, straightforward (ours)").model(head(nn::HeadOptions(ssm)
                                 .fused(false))).batch(256).task(Task::kHead).steps(5).repeats(9)},
      {"head-linear", Workload().name("linear head fwd+bwd, b256").model(head(nn::HeadOptions()
                          .kind(nn::HeadKind::kLinear))).batch(256).task(Task::kHead).steps(10).repeats(9)},
      {"head-ssm-infer", Workload().name("SSM head inference, b256").model(head(ssm)).batch(256)
                             .task(Task::kHeadInfer).steps(10).repeats(9)},
      {"head-ssm-reference-infer", Workload().name("  same, straightforward (ours)")
                                       .model(head(nn::HeadOptions(ssm).fused(false))).batch(256)
                                       .task(Task::kHeadInfer).steps(10).repeats(9)},
  };
}

std::vector<std::string> default_workload_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : standard_workloads()) {
    // The GPU recipe (scripts/gpu-smoke) is asked for by name.
    if (name != "resnet50-ssm-train-b256") names.push_back(name);
  }
  return names;
}

namespace {

// Peak memory of our side, from a fresh `splitshare bench` process running the
// training workload once (this process has run other workloads already).
Timing measure_memory_in_child(const std::string& program, const std::string& training_workload, int threads) {
  std::ostringstream cmd;
  cmd << "'" << program << "' bench --no-peer --json --workloads " << training_workload
      << " --warmup 1 --steps 1 --repeats 1 --threads " << threads;
  const auto json = run_json_command(cmd.str());
  return timing_from_json(json.at("rows").at(0).at("ours"));
}

bool head_task(const Workload& w) { return w.task() == Task::kHead || w.task() == Task::kHeadInfer; }

// The head workloads of one task, timed in turn, repeat by repeat: their ratios (SSM over
// linear, fused over straightforward) then compare the same moments.
std::map<std::string, Timing> measure_heads_in_turn(const std::vector<std::pair<std::string, Workload>>& selected) {
  std::map<std::string, Timing> interleaved;
  for (const auto task : {Task::kHead, Task::kHeadInfer}) {
    std::vector<std::string> group_names;
    std::vector<Workload> group;
    for (const auto& [name, w] : selected) {
      if (w.task() != task) continue;
      group_names.push_back(name);
      group.push_back(w);
    }
    if (group.empty()) continue;
    std::string joined;
    for (const auto& name : group_names) joined += (joined.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "bench %s: splitshare, in turn...\n", joined.c_str());
    const auto timings = measure_interleaved(group);
    for (size_t i = 0; i < group.size(); ++i) interleaved[group_names[i]] = timings[i];
  }
  return interleaved;
}

Timing measure_ours(const std::string& name, const Workload& w, const SuiteOptions& options) {
  if (!w.memory()) return measure(w);
  const std::string training = name.substr(0, name.rfind("-memory"));
  return measure_memory_in_child(options.program(), training, options.threads());
}

// Ours and then each peer, options.rounds() times in turn (once for memory rows), pooled.
Row measure_row(const std::string& name, const Workload& w, const std::map<std::string, Timing>& interleaved,
                const SuiteOptions& options) {
  TORCH_CHECK(options.rounds() >= 1, "bench: rounds must be at least 1, got ", options.rounds());
  Row row;
  row.key = name;
  row.workload = w;
  const int rounds = w.memory() ? 1 : options.rounds();
  for (int round = 0; round < rounds; ++round) {
    char of[48] = "";
    if (rounds > 1) std::snprintf(of, sizeof of, " (round %d of %d)", round + 1, rounds);
    if (round == 0 && interleaved.count(name)) {
      add_round(row.ours, interleaved.at(name));
    } else {
      std::fprintf(stderr, "bench %s: splitshare%s...\n", name.c_str(), of);
      add_round(row.ours, measure_ours(name, w, options));
    }
    if (!options.peers()) continue;
    for (const auto& peer : options.peer_kinds()) {
      if (head_task(w) && peer != "eager") continue;  // the head rows compare with our linear head
      std::fprintf(stderr, "bench %s: PyTorch %s%s...\n", name.c_str(), peer.c_str(), of);
      add_round(row.peers[peer], measure_peer(w, options.python(), options.peer_script(), options.threads(), peer));
    }
  }
  return row;
}

}  // namespace

SuiteResult run_suite(const std::vector<std::pair<std::string, Workload>>& selected, const SuiteOptions& options) {
  const auto interleaved = measure_heads_in_turn(selected);
  SuiteResult result;
  result.cpu = util::cpu_info();
  const bool compute_rows = std::any_of(selected.begin(), selected.end(), [](const auto& entry) {
    return !entry.second.memory() && entry.second.device().is_cpu();
  });
  if (compute_rows) {
    std::fprintf(stderr, "bench: matrix-product peaks (fp32, bf16)...\n");
    result.peak_fp32_gflops = measure_peak_gflops(torch::kFloat);
    result.peak_bf16_gflops = measure_peak_gflops(torch::kBFloat16);
    std::fprintf(stderr, "bench: microkernel peaks (fp32 FMA, bf16 and int8 dot products)...\n");
    result.machine_peak = measure_machine_peak(options.threads());
  }
  std::map<std::string, double> head_medians;
  for (const auto& [name, w] : selected) {
    result.rows.push_back(measure_row(name, w, interleaved, options));
    if (w.device().is_cpu()) {
      const bool bf16 = w.precision() == train::Precision::kBFloat16;
      result.rows.back().peak_gflops = bf16 ? result.peak_bf16_gflops : result.peak_fp32_gflops;
      result.rows.back().machine_peak_gflops = bf16 ? result.machine_peak.bf16_gflops : result.machine_peak.fp32_gflops;
    }
    if (head_task(w)) head_medians[name] = result.rows.back().ours.median();
  }
  if (head_medians.count("head-linear")) {
    for (const char* name : {"head-ssm", "head-ssm-reference"}) {
      if (head_medians.count(name)) result.head_time_over_linear[name] = head_medians["head-linear"] / head_medians[name];
    }
  }
  for (const std::string task : {"", "-infer"}) {
    const auto fused = "head-ssm" + task, reference = "head-ssm-reference" + task;
    if (head_medians.count(fused) && head_medians.count(reference)) {
      result.fused_speedup[task.empty() ? "train" : "inference"] = head_medians[fused] / head_medians[reference];
    }
  }
  return result;
}

nlohmann::json to_json(const SuiteResult& result, int threads) {
  nlohmann::json out = {{"threads", threads},
                        {"libtorch", train::build_info().libtorch},
                        {"cpu", util::to_json(result.cpu)},
                        {"peak_gflops", {{"fp32", result.peak_fp32_gflops}, {"bf16", result.peak_bf16_gflops}}},
                        {"machine_peak", to_json(result.machine_peak)},
                        {"rows", to_json(result.rows)}};
  if (!result.head_time_over_linear.empty()) out["head_time_over_linear"] = result.head_time_over_linear;
  if (!result.fused_speedup.empty()) out["fused_head_speedup_over_straightforward"] = result.fused_speedup;
  return out;
}

std::string format_suite(const SuiteResult& result, const std::string& header) {
  std::string out = header + "CPU: " + result.cpu.model + " (";
  for (size_t i = 0; i < result.cpu.isa.size(); ++i) out += (i ? " " : "") + result.cpu.isa[i];
  out += std::string(result.cpu.amx_usable ? "; AMX usable" : "; no usable AMX") + ")\n";
  out += format_table(result.rows);
  char line[240];
  if (result.peak_fp32_gflops > 0) {
    std::snprintf(line, sizeof line, "matrix-product peak (n=2048): fp32 %.0f GFLOP/s, bf16 %.0f GFLOP/s\n",
                  result.peak_fp32_gflops, result.peak_bf16_gflops);
    out += line;
  }
  const auto& m = result.machine_peak;
  if (m.fp32_gflops > 0) {
    std::snprintf(line, sizeof line, "microkernel peak (%d threads): fp32 %.0f GFLOP/s (%s), bf16 %.0f GFLOP/s (%s), "
                  "int8 %.2f TOPS (%s)\n", m.threads, m.fp32_gflops, m.fp32_isa.c_str(), m.bf16_gflops,
                  m.bf16_isa.empty() ? "none" : m.bf16_isa.c_str(), m.int8_tops,
                  m.int8_isa.empty() ? "none" : m.int8_isa.c_str());
    out += line;
  }
  for (const auto& [name, value] : result.head_time_over_linear.items()) {
    std::snprintf(line, sizeof line, "%s time / linear head time: %.2fx\n", name.c_str(), value.get<double>());
    out += line;
  }
  for (const auto& [task, value] : result.fused_speedup.items()) {
    std::snprintf(line, sizeof line, "fused SSM head / straightforward, %s: %.2fx faster\n", task.c_str(),
                  value.get<double>());
    out += line;
  }
  return out;
}

}  // namespace splitshare::bench
