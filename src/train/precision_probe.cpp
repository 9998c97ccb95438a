#include <splitshare/train/precision_probe.h>

#include <splitshare/util/cpu.h>
#include <splitshare/util/files.h>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <vector>

namespace splitshare::train {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds of one call.
double seconds_of(const std::function<void()>& run) {
  const auto start = Clock::now();
  run();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The fastest of five calls of each operation (after one untimed call: oneDNN's first-call
// set-up), the operations taking turns so that a busy machine slows all four alike.
std::array<double, 4> probe_seconds() {
  std::vector<std::function<void()>> runs;
  for (const auto type : {torch::kFloat, torch::kBFloat16}) {
    const auto image = torch::randn({1, 64, 56, 56}).to(type).contiguous(torch::MemoryFormat::ChannelsLast);
    const auto kernel = torch::randn({64, 64, 3, 3}).to(type).contiguous(torch::MemoryFormat::ChannelsLast);
    const auto a = torch::randn({512, 512}).to(type), b = torch::randn({512, 512}).to(type);
    runs.push_back([image, kernel] { torch::conv2d(image, kernel, {}, 1, 1); });
    runs.push_back([a, b] { torch::mm(a, b); });
  }
  for (const auto& run : runs) run();
  std::array<double, 4> best;
  best.fill(1e30);
  for (int repeat = 0; repeat < 5; ++repeat) {
    for (size_t i = 0; i < runs.size(); ++i) best[i] = std::min(best[i], seconds_of(runs[i]));
  }
  return best;  // conv fp32, matmul fp32, conv bf16, matmul bf16
}

double seconds_at(const nlohmann::json& json, const char* op, const char* type) {
  TORCH_CHECK(json.contains(op) && json.at(op).is_object() && json.at(op).contains(type) &&
                  json.at(op).at(type).is_number() && json.at(op).at(type).get<double>() > 0,
              "precision probe: \"", op, "\".\"", type, "\" is not a positive number of seconds");
  return json.at(op).at(type).get<double>();
}

bool same_setting(const PrecisionProbe& a, const PrecisionProbe& b) {
  return a.cpu == b.cpu && a.libtorch == b.libtorch && a.threads == b.threads;
}

std::string ratio_text(double ratio) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2fx", ratio);
  return text;
}

}  // namespace

double PrecisionProbe::bf16_speedup() const {
  TORCH_CHECK(conv_bf16 > 0 && matmul_bf16 > 0, "precision probe: no bf16 timing");
  return std::sqrt(conv_fp32 / conv_bf16 * matmul_fp32 / matmul_bf16);
}

PrecisionProbe run_precision_probe() {
  torch::NoGradGuard no_grad;
  PrecisionProbe probe;
  probe.cpu = util::cpu_info().model;
  probe.libtorch = TORCH_VERSION;
  probe.threads = at::get_num_threads();
  const auto seconds = probe_seconds();
  probe.conv_fp32 = seconds[0];
  probe.matmul_fp32 = seconds[1];
  probe.conv_bf16 = seconds[2];
  probe.matmul_bf16 = seconds[3];
  return probe;
}

std::string default_probe_cache() {
  namespace fs = std::filesystem;
  for (const auto& [variable, below] : {std::pair<const char*, const char*>{"SPLITSHARE_CACHE_DIR", ""},
                                        {"XDG_CACHE_HOME", "splitshare"},
                                        {"HOME", ".cache/splitshare"}}) {
    const char* value = std::getenv(variable);
    if (value && *value) return (fs::path(value) / below / "precision-probe.json").lexically_normal().string();
  }
  return "";
}

PrecisionProbe cached_precision_probe(const std::string& cache_file) {
  if (cache_file.empty()) return run_precision_probe();
  PrecisionProbe here;
  here.cpu = util::cpu_info().model;
  here.libtorch = TORCH_VERSION;
  here.threads = at::get_num_threads();
  nlohmann::json entries = nlohmann::json::array();
  std::error_code error;
  if (std::filesystem::exists(cache_file, error)) {
    try {
      entries = nlohmann::json::parse(util::read_file(cache_file, "precision probe cache")).at("probes");
      for (const auto& entry : entries) {
        const auto probe = precision_probe_from_json(entry);
        if (same_setting(probe, here)) return probe;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: %s is not a precision probe cache (%s); probing again and replacing it\n",
                   cache_file.c_str(), e.what());
      entries = nlohmann::json::array();
    }
  }
  const auto probe = run_precision_probe();
  entries.push_back(to_json(probe));
  std::filesystem::create_directories(std::filesystem::path(cache_file).parent_path(), error);
  try {
    util::write_file_atomic(cache_file, nlohmann::json({{"probes", entries}}).dump(2) + "\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: cannot keep the precision probe in %s: %s\n", cache_file.c_str(), e.what());
  }
  return probe;
}

PrecisionChoice choose_precision(const torch::Device& device, const std::optional<PrecisionProbe>& probe) {
  if (device.is_cuda()) {
    return {Precision::kBFloat16, "auto: bf16 on CUDA (tensor cores run bf16 at several times fp32's rate; a GPU "
                                  "older than compute capability 8.0 lacks them: pass --amp fp16 there)"};
  }
  TORCH_CHECK(probe.has_value(), "choose_precision: a CPU needs a probe");
  const double speedup = probe->bf16_speedup();
  const std::string measured = "bf16 ran " + ratio_text(speedup) + " fp32's speed on " + probe->cpu + " (" +
                               std::to_string(probe->threads) + " threads; a convolution and a matrix product)";
  if (speedup >= kBf16MinSpeedup) return {Precision::kBFloat16, "auto: bf16: " + measured};
  return {Precision::kFloat32, "auto: fp32: " + measured + ", under the " + ratio_text(kBf16MinSpeedup) +
                                   " that pays for autocast's conversions"};
}

PrecisionChoice resolve_precision(const std::string& text, const torch::Device& device, const std::string& cache_file,
                                  std::string* warning) {
  if (text == "auto") {
    const char* forced = std::getenv("SPLITSHARE_AMP_AUTO");
    if (forced && *forced) {
      const std::string value = forced;
      TORCH_CHECK(value == "fp32" || value == "bf16", "SPLITSHARE_AMP_AUTO: expected fp32 or bf16, got '", value, "'");
      return {parse_precision(value), "auto: " + value + ", as SPLITSHARE_AMP_AUTO says"};
    }
    return choose_precision(device, device.is_cuda() ? std::nullopt
                                                     : std::optional<PrecisionProbe>(cached_precision_probe(cache_file)));
  }
  TORCH_CHECK(text == "fp32" || text == "off" || text == "bf16" || text == "fp16", "unknown precision '", text,
              "': expected auto, bf16, fp16 or fp32");
  const auto precision = parse_precision(text);
  if (precision == Precision::kBFloat16 && device.is_cpu() && warning) {
    const double speedup = cached_precision_probe(cache_file).bf16_speedup();
    if (speedup < 1.0) {
      *warning = "warning: --amp bf16 on this CPU runs at " + ratio_text(speedup) +
                 " fp32's speed (measured: a convolution and a matrix product); --amp auto picks the faster";
    }
  }
  return {precision, "as given"};
}

nlohmann::json to_json(const PrecisionProbe& probe) {
  return {{"cpu", probe.cpu},
          {"libtorch", probe.libtorch},
          {"threads", probe.threads},
          {"conv", {{"fp32", probe.conv_fp32}, {"bf16", probe.conv_bf16}}},
          {"matmul", {{"fp32", probe.matmul_fp32}, {"bf16", probe.matmul_bf16}}}};
}

PrecisionProbe precision_probe_from_json(const nlohmann::json& json) {
  TORCH_CHECK(json.is_object() && json.contains("cpu") && json.at("cpu").is_string() && json.contains("libtorch") &&
                  json.at("libtorch").is_string() && json.contains("threads") && json.at("threads").is_number_integer(),
              "precision probe: expected an object with \"cpu\", \"libtorch\" and \"threads\"");
  PrecisionProbe probe;
  probe.cpu = json.at("cpu").get<std::string>();
  probe.libtorch = json.at("libtorch").get<std::string>();
  probe.threads = json.at("threads").get<int>();
  probe.conv_fp32 = seconds_at(json, "conv", "fp32");
  probe.conv_bf16 = seconds_at(json, "conv", "bf16");
  probe.matmul_fp32 = seconds_at(json, "matmul", "fp32");
  probe.matmul_bf16 = seconds_at(json, "matmul", "bf16");
  return probe;
}

}  // namespace splitshare::train
