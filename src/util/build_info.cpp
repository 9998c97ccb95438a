#include <splitshare/util/build_info.h>

#include <splitshare/util/runtime.h>


#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

namespace splitshare::train {
namespace {

// A "KEY=value" entry of libtorch's build settings (at::show_config), or "".
std::string build_setting(const std::string& config, const std::string& key) {
  const auto at = config.find(key + "=");
  if (at == std::string::npos) return "";
  const auto begin = at + key.size() + 1;
  const auto end = config.find_first_of(", \n", begin);
  return config.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

bool setting_on(const std::string& value) { return value == "ON" || value == "1" || value == "TRUE"; }

// CUDA and cuDNN versions libtorch was compiled with. A CPU-only libtorch has no CUDA hooks,
// and the stand-in throws.
std::optional<std::string> cuda_version() {
  try {
    const long v = at::detail::getCUDAHooks().versionCUDART();
    return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
  } catch (const c10::Error&) {
    return std::nullopt;
  }
}

std::optional<std::string> cudnn_version() {
  try {
    const auto& hooks = at::detail::getCUDAHooks();
    if (!hooks.compiledWithCuDNN()) return std::nullopt;
    const long v = hooks.versionCuDNN();
    return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
  } catch (const c10::Error&) {
    return std::nullopt;
  }
}

}  // namespace

BuildInfo build_info() {
  const auto config = at::show_config();
  BuildInfo info;
  info.splitshare = SPLITSHARE_VERSION;
  info.libtorch = TORCH_VERSION;
  info.cuda = cuda_version();
  info.cudnn = cudnn_version();
  // SPLITSHARE_NCCL_COMPILED: CMake compiled the NCCL backend (src/distributed/backend_nccl_cuda.cpp).
  info.nccl = SPLITSHARE_NCCL_COMPILED && setting_on(build_setting(config, "USE_NCCL"));
  info.gloo = setting_on(build_setting(config, "USE_GLOO"));
  info.blas = build_setting(config, "BLAS_INFO");
  info.malloc = util::malloc_name();
  info.threads = at::get_num_threads();
  info.cpu = util::cpu_info();
  return info;
}

nlohmann::json to_json(const BuildInfo& info) {
  auto optional = [](const std::optional<std::string>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  return {{"splitshare", info.splitshare}, {"libtorch", info.libtorch}, {"cuda", optional(info.cuda)},
          {"cudnn", optional(info.cudnn)},   {"nccl", info.nccl},         {"gloo", info.gloo},
          {"blas", info.blas},               {"malloc", info.malloc},
          {"threads", info.threads},         {"cpu", util::to_json(info.cpu)}};
}

std::string to_string(const BuildInfo& info) {
  std::string line = "splitshare " + info.splitshare + ", libtorch " + info.libtorch;
  line += info.cuda ? ", CUDA " + *info.cuda : ", no CUDA";
  if (info.cudnn) line += ", cuDNN " + *info.cudnn;
  if (info.nccl) line += ", NCCL";
  if (info.gloo) line += ", Gloo";
  line += ", BLAS " + (info.blas.empty() ? std::string("unknown") : info.blas);
  return line + ", " + info.malloc + ", " + std::to_string(info.threads) + " threads, CPU " + info.cpu.model;
}

}  // namespace splitshare::train
