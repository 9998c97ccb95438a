#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace splitshare::bench {

/// The multiply-add rate the cores reach in registers, per precision: the limit a model's
/// throughput is a fraction of (a library's matrix product only approaches it).
struct MachinePeak {
  /// fp32 FMA (AVX-512 or AVX2), GFLOP/s; 0 when the CPU has neither.
  double fp32_gflops = 0;
  /// bf16 dot product (AVX512-BF16), GFLOP/s; 0 when the CPU has none (bf16 is then emulated).
  double bf16_gflops = 0;
  /// int8 dot product (AVX512-VNNI or AVX-VNNI), tera-ops/s (a multiply and an add count two).
  double int8_tops = 0;
  /// The instruction each figure comes from ("" = none on this CPU).
  std::string fp32_isa, bf16_isa, int8_isa;
  int threads = 0;
};

/// Runs each microkernel on `threads` threads at once, about `seconds` per try, best of three.
/// AMX tile instructions are not among them: on a CPU with usable AMX (util::CpuInfo) oneDNN's
/// bf16 and int8 products can pass these figures.
MachinePeak measure_machine_peak(int threads, double seconds = 0.2);

/// {"threads", "fp32_gflops", "bf16_gflops", "int8_tops", "isa": {"fp32", "bf16", "int8"}};
/// a precision the CPU lacks is null.
nlohmann::json to_json(const MachinePeak& peak);

}  // namespace splitshare::bench
