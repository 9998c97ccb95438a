#pragma once

#include <cstdint>
#include <string>

// Register-only multiply-add loops: the rate the cores can reach, which a matrix product from
// a library only approaches. Private to the bench (peak.h is the public face).
namespace splitshare::bench::kernels {

/// Independent accumulators per loop iteration: enough to cover the FMA latency on two ports.
inline constexpr int kChains = 12;

/// One microkernel: `iterations` rounds of kChains vector instructions; returns the sum of
/// every accumulator lane (so the work cannot be dropped, and tests can check it).
struct PeakKernel {
  std::string isa;                ///< the instruction, e.g. "avx512f vfmadd231ps zmm"; "" = none here
  double ops_per_instruction = 0;  ///< multiplies + adds (fp) or multiply-accumulate ops x 2 (int8)
  double (*run)(int64_t iterations) = nullptr;
};

/// The widest fp32 FMA this CPU runs (AVX-512, else AVX2 + FMA): acc = acc * 0.5 + 1, the
/// accumulators starting at 1, 2, ..., kChains in every lane.
PeakKernel fp32_fma();
/// The bf16 dot product (AVX512-BF16 vdpbf16ps: acc += a0 * b0 + a1 * b1 per fp32 lane) with
/// a = 1, b = 0.5, accumulators starting at 0; isa "" where the CPU has none.
PeakKernel bf16_dot();
/// The int8 dot product (AVX512-VNNI, else AVX-VNNI vpdpbusd: acc += four u8 x s8 products per
/// int32 lane) with u8 = 1, s8 = 2, accumulators starting at 0; isa "" where the CPU has none.
PeakKernel int8_dot();

}  // namespace splitshare::bench::kernels
