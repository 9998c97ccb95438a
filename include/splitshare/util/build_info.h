#pragma once

#include <splitshare/util/cpu.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace splitshare::train {

/// What this build of splitshare runs on: printed by `splitshare version`, in the first line
/// of `train`'s log and in every summary.json, so each result says where it came from.
struct BuildInfo {
  std::string splitshare;           ///< our version, e.g. "0.1.0"
  std::string libtorch;             ///< libtorch's version, e.g. "2.14.1"
  std::optional<std::string> cuda;  ///< CUDA runtime libtorch was compiled with ("13.0"), or none
  std::optional<std::string> cudnn; ///< cuDNN libtorch was compiled with ("9.24.0"), or none
  bool nccl = false;                ///< the NCCL backend is compiled in (libtorch and splitshare)
  bool gloo = false;                ///< libtorch has the Gloo backend
  std::string blas;                 ///< the BLAS libtorch's matrix products use ("mkl", "open", …)
  std::string malloc;               ///< the process's malloc: "tcmalloc", "jemalloc" or "libc"
  int threads = 0;                  ///< libtorch's intra-op threads now (splitshare's default: all cores)
  util::CpuInfo cpu;                ///< the CPU model and its multiply-add extensions (util::cpu_info)
};

/// The build's facts; `threads` is read from libtorch at the time of the call.
BuildInfo build_info();

/// {"splitshare", "libtorch", "cuda", "cudnn", "nccl", "gloo", "blas", "malloc", "threads", "cpu":
/// util::to_json(CpuInfo)}; absent versions are null.
nlohmann::json to_json(const BuildInfo& info);

/// One line: "splitshare 0.1.0, libtorch 2.14.1, CUDA 13.0, cuDNN 9.24.0, NCCL, Gloo, BLAS mkl, tcmalloc, 2 threads,
/// CPU Intel(R) Xeon(R) Processor".
std::string to_string(const BuildInfo& info);

}  // namespace splitshare::train
