#include "peak_kernels.h"

#include <immintrin.h>

namespace splitshare::bench::kernels {
namespace {

__attribute__((target("avx512f"))) double fma_avx512(int64_t iterations) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j + 1));
  const __m512 a = _mm512_set1_ps(0.5f), b = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  alignas(64) float lanes[16];
  double sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm512_store_ps(lanes, acc[j]);
    for (float lane : lanes) sum += lane;
  }
  return sum;
}

__attribute__((target("avx2,fma"))) double fma_avx2(int64_t iterations) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j + 1));
  const __m256 a = _mm256_set1_ps(0.5f), b = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  alignas(32) float lanes[8];
  double sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm256_store_ps(lanes, acc[j]);
    for (float lane : lanes) sum += lane;
  }
  return sum;
}

__attribute__((target("avx512f,avx512bf16"))) double dot_bf16_avx512(int64_t iterations) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_setzero_ps();
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  alignas(64) float lanes[16];
  double sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm512_store_ps(lanes, acc[j]);
    for (float lane : lanes) sum += lane;
  }
  return sum;
}

__attribute__((target("avx512f,avx512vnni"))) double dot_int8_avx512(int64_t iterations) {
  __m512i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_setzero_si512();
  const __m512i u = _mm512_set1_epi8(1), s = _mm512_set1_epi8(2);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], u, s);
  }
  alignas(64) int32_t lanes[16];
  double sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm512_store_si512(lanes, acc[j]);
    for (int32_t lane : lanes) sum += lane;
  }
  return sum;
}

__attribute__((target("avx2,avxvnni"))) double dot_int8_avxvnni(int64_t iterations) {
  __m256i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_setzero_si256();
  const __m256i u = _mm256_set1_epi8(1), s = _mm256_set1_epi8(2);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_dpbusd_avx_epi32(acc[j], u, s);
  }
  alignas(32) int32_t lanes[8];
  double sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[j]);
    for (int32_t lane : lanes) sum += lane;
  }
  return sum;
}

}  // namespace

PeakKernel fp32_fma() {
  if (__builtin_cpu_supports("avx512f")) return {"avx512f vfmadd231ps zmm", 2.0 * 16, fma_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {"avx2 vfmadd231ps ymm", 2.0 * 8, fma_avx2};
  }
  return {};
}

PeakKernel bf16_dot() {
  if (__builtin_cpu_supports("avx512bf16")) return {"avx512_bf16 vdpbf16ps zmm", 4.0 * 16, dot_bf16_avx512};
  return {};
}

PeakKernel int8_dot() {
  if (__builtin_cpu_supports("avx512vnni")) return {"avx512_vnni vpdpbusd zmm", 8.0 * 16, dot_int8_avx512};
  if (__builtin_cpu_supports("avxvnni")) return {"avx_vnni vpdpbusd ymm", 8.0 * 8, dot_int8_avxvnni};
  return {};
}

}  // namespace splitshare::bench::kernels
