#pragma once

#include <splitshare/bench/peak.h>
#include <splitshare/bench/throughput.h>
#include <splitshare/util/cpu.h>

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace splitshare::bench {

/// The workloads `splitshare bench` knows, by name, in table order.
std::vector<std::pair<std::string, Workload>> standard_workloads();

/// The names a plain `splitshare bench` runs: every standard workload but the GPU recipe.
std::vector<std::string> default_workload_names();

/// How a suite is measured.
struct SuiteOptions {
  /// Compare with the PyTorch peers.
  TORCH_ARG(bool, peers) = true;
  /// Which peers (peer_names()); the head rows use eager only.
  TORCH_ARG(std::vector<std::string>, peer_kinds) = peer_names();
  TORCH_ARG(std::string, python) = "python3";
  TORCH_ARG(std::string, peer_script) = "bench/peer_pytorch.py";
  TORCH_ARG(int, threads) = 1;
  /// Measures each speed row this many times, ours and then each peer in turn, and pools the
  /// repeats: a virtual machine's speed can change in steps of a third for minutes, and a peer
  /// timed minutes after us would see another machine. Memory rows are measured once.
  TORCH_ARG(int, rounds) = 1;
  /// The splitshare executable: memory rows run `PROGRAM bench` in a fresh process.
  TORCH_ARG(std::string, program) = "splitshare";
};

/// A measured suite: one row per workload, and the head rows' ratios.
struct SuiteResult {
  std::vector<Row> rows;
  /// measure_peak_gflops in fp32 and bf16 (0 when no compute row was measured).
  double peak_fp32_gflops = 0, peak_bf16_gflops = 0;
  /// The microkernel peaks at the suite's thread count (zeros when no compute row was measured).
  MachinePeak machine_peak;
  /// The CPU the suite ran on.
  util::CpuInfo cpu;
  /// Our SSM heads' time per sample over our linear head's ({"head-ssm": 2.5, …}; the FLOP ratio is 2.5).
  nlohmann::json head_time_over_linear = nlohmann::json::object();
  /// The fused SSM head's speed over the straightforward one ({"train": …, "inference": …}).
  nlohmann::json fused_speedup = nlohmann::json::object();
};

/// Measures `selected` (name, workload) in order. The head workloads of one task are timed
/// in turn, repeat by repeat, so their ratios compare the same moments of a drifting machine.
/// Progress goes to stderr.
SuiteResult run_suite(const std::vector<std::pair<std::string, Workload>>& selected, const SuiteOptions& options);

/// {"threads", "libtorch", "cpu": util::to_json, "peak_gflops": {"fp32", "bf16"},
/// "machine_peak": to_json(MachinePeak), "rows", "head_time_over_linear"?,
/// "fused_head_speedup_over_straightforward"?}.
nlohmann::json to_json(const SuiteResult& result, int threads);

/// The table and the ratio lines, after `header`.
std::string format_suite(const SuiteResult& result, const std::string& header);

}  // namespace splitshare::bench
