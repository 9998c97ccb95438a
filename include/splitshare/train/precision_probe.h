#pragma once

#include <splitshare/train/amp.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>
#include <string>

namespace splitshare::train {

/// bf16 over fp32 speed below which `--amp auto` keeps fp32 on a CPU: autocast's conversions
/// and the fp32 parts of a model eat part of a product's gain.
inline constexpr double kBf16MinSpeedup = 1.1;

/// A short measurement of one CPU's arithmetic: seconds per call of a ResNet 3x3 convolution
/// (64 -> 64 channels, 56 x 56, channels-last) and of a 512 x 512 matrix product, in fp32 and
/// in bf16, at the process's thread count. About 0.2 s in all.
struct PrecisionProbe {
  std::string cpu;       ///< util::CpuInfo::model
  std::string libtorch;  ///< the version the kernels came from
  int threads = 0;
  double conv_fp32 = 0, conv_bf16 = 0, matmul_fp32 = 0, matmul_bf16 = 0;

  /// bf16's speed over fp32's: the geometric mean of the two operations' ratios.
  double bf16_speedup() const;
};

/// Runs the probe here and now.
PrecisionProbe run_precision_probe();

/// The probe for this CPU, libtorch and thread count: read from `cache_file` when it holds
/// one, else run and added to it (written whole; an unreadable cache is replaced, with a
/// warning). `cache_file` "" = run without a cache.
PrecisionProbe cached_precision_probe(const std::string& cache_file);

/// Where the probe's figures are kept: $SPLITSHARE_CACHE_DIR, else $XDG_CACHE_HOME/splitshare,
/// else ~/.cache/splitshare, then /precision-probe.json; "" when none of them is set.
std::string default_probe_cache();

/// The precision `--amp auto` resolves to, and why (one line for the log).
struct PrecisionChoice {
  Precision precision = Precision::kFloat32;
  std::string reason;
};

/// CUDA: bf16 (tensor cores run it at several times fp32's rate on every GPU that has it;
/// fp32 where the device lacks bf16). CPU: bf16 when `probe` shows it at least
/// kBf16MinSpeedup times as fast as fp32, else fp32.
PrecisionChoice choose_precision(const torch::Device& device, const std::optional<PrecisionProbe>& probe);

/// Resolves a user's `--amp` value: "auto" through choose_precision (probing the CPU, with
/// `cache_file`; the environment variable SPLITSHARE_AMP_AUTO=fp32|bf16 fixes the choice
/// instead, for tests and pipelines that must not depend on the machine), anything else
/// through parse_precision. An explicit bf16 on a CPU where the
/// probe shows it slower than fp32 still runs, and `warning` is set to a line that says so
/// with the measured ratio.
PrecisionChoice resolve_precision(const std::string& text, const torch::Device& device, const std::string& cache_file,
                                  std::string* warning = nullptr);

/// {"cpu", "libtorch", "threads", "conv": {"fp32", "bf16"}, "matmul": {"fp32", "bf16"}} (seconds).
nlohmann::json to_json(const PrecisionProbe& probe);
/// The inverse of to_json; throws naming the missing or mistyped field.
PrecisionProbe precision_probe_from_json(const nlohmann::json& json);

}  // namespace splitshare::train
