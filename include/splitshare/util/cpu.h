#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace splitshare::util {

/// The CPU a figure was measured on: every benchmark table and `bench --json` carry it, since
/// figures compare only on the same CPU model.
struct CpuInfo {
  /// /proc/cpuinfo's "model name" ("Intel(R) Xeon(R) Processor"); "unknown" when absent.
  std::string model = "unknown";
  /// The vector and matrix extensions that set the multiply-add rate, as the kernel names them
  /// (avx2, fma, avx512f, avx512_bf16, avx512_fp16, avx512_vnni, avx_vnni, amx_tile, amx_bf16,
  /// amx_int8), in that order, those the CPU reports.
  std::vector<std::string> isa;
  /// The CPU reports AMX and the kernel granted this process its tile data (Linux's
  /// ARCH_REQ_XCOMP_PERM): oneDNN's AMX kernels can run.
  bool amx_usable = false;

  bool has(const std::string& extension) const;
};

/// CpuInfo from the text of /proc/cpuinfo (its first processor); amx_usable stays false.
CpuInfo parse_cpuinfo(const std::string& text);

/// This machine's CpuInfo (/proc/cpuinfo, and the AMX permission asked of the kernel).
CpuInfo cpu_info();

/// {"model", "isa": [...], "amx_usable"}.
nlohmann::json to_json(const CpuInfo& info);

}  // namespace splitshare::util
