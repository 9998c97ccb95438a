#include <splitshare/bench/peak.h>

#include "peak_kernels.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace splitshare::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds for `threads` threads each running `iterations` of `kernel`, started together.
double timed_run(const kernels::PeakKernel& kernel, int threads, int64_t iterations) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> sums(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      sums[static_cast<size_t>(t)] = kernel.run(iterations);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto start = Clock::now();
  go.store(true);
  for (auto& thread : pool) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  TORCH_CHECK(std::all_of(sums.begin(), sums.end(), [](double s) { return s > 0; }), "peak kernel ", kernel.isa,
              " computed nothing");
  return seconds;
}

// Operations per second of `kernel` on `threads` threads (0 when the CPU lacks it).
double ops_per_second(const kernels::PeakKernel& kernel, int threads, double seconds) {
  if (!kernel.run) return 0;
  int64_t iterations = 1 << 16;
  double taken = timed_run(kernel, threads, iterations);
  while (taken < seconds / 8) {
    iterations *= 4;
    taken = timed_run(kernel, threads, iterations);
  }
  iterations = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(iterations) * seconds / taken));
  double best = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const double ops = static_cast<double>(iterations) * kernels::kChains * kernel.ops_per_instruction * threads;
    best = std::max(best, ops / timed_run(kernel, threads, iterations));
  }
  return best;
}

nlohmann::json figure(double value, const std::string& isa) {
  return isa.empty() ? nlohmann::json(nullptr) : nlohmann::json(value);
}

}  // namespace

MachinePeak measure_machine_peak(int threads, double seconds) {
  TORCH_CHECK(threads >= 1, "measure_machine_peak: threads must be >= 1, got ", threads);
  TORCH_CHECK(seconds > 0, "measure_machine_peak: seconds must be positive, got ", seconds);
  const auto fp32 = kernels::fp32_fma(), bf16 = kernels::bf16_dot(), int8 = kernels::int8_dot();
  MachinePeak peak;
  peak.threads = threads;
  peak.fp32_isa = fp32.isa;
  peak.bf16_isa = bf16.isa;
  peak.int8_isa = int8.isa;
  peak.fp32_gflops = ops_per_second(fp32, threads, seconds) / 1e9;
  peak.bf16_gflops = ops_per_second(bf16, threads, seconds) / 1e9;
  peak.int8_tops = ops_per_second(int8, threads, seconds) / 1e12;
  return peak;
}

nlohmann::json to_json(const MachinePeak& peak) {
  return {{"threads", peak.threads},
          {"fp32_gflops", figure(peak.fp32_gflops, peak.fp32_isa)},
          {"bf16_gflops", figure(peak.bf16_gflops, peak.bf16_isa)},
          {"int8_tops", figure(peak.int8_tops, peak.int8_isa)},
          {"isa", {{"fp32", peak.fp32_isa}, {"bf16", peak.bf16_isa}, {"int8", peak.int8_isa}}}};
}

}  // namespace splitshare::bench
