#include <splitshare/util/cpu.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <set>
#include <sstream>

#include <sys/syscall.h>
#include <unistd.h>

namespace splitshare::util {
namespace {

constexpr std::array<const char*, 10> kExtensions = {"avx2",        "fma",         "avx512f",  "avx512_bf16",
                                                     "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_tile",
                                                     "amx_bf16",    "amx_int8"};

std::string trimmed(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") + 1 - begin);
}

// Linux grants AMX tile data only on request (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
bool request_amx() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr long kReqXcompPerm = 0x1023;
  constexpr long kXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#else
  return false;
#endif
}

}  // namespace

bool CpuInfo::has(const std::string& extension) const {
  return std::find(isa.begin(), isa.end(), extension) != isa.end();
}

CpuInfo parse_cpuinfo(const std::string& text) {
  CpuInfo info;
  std::istringstream lines(text);
  std::string line;
  std::set<std::string> flags;
  bool model_seen = false, flags_seen = false;
  while (std::getline(lines, line) && !(model_seen && flags_seen)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto key = trimmed(line.substr(0, colon));
    const auto value = trimmed(line.substr(colon + 1));
    if (key == "model name" && !model_seen) {
      info.model = value.empty() ? info.model : value;
      model_seen = true;
    } else if (key == "flags" && !flags_seen) {
      std::istringstream words(value);
      std::string word;
      while (words >> word) flags.insert(word);
      flags_seen = true;
    }
  }
  for (const char* extension : kExtensions) {
    if (flags.count(extension)) info.isa.push_back(extension);
  }
  return info;
}

CpuInfo cpu_info() {
  std::ifstream in("/proc/cpuinfo");
  std::ostringstream text;
  text << in.rdbuf();
  auto info = parse_cpuinfo(text.str());
  info.amx_usable = info.has("amx_tile") && request_amx();
  return info;
}

nlohmann::json to_json(const CpuInfo& info) {
  return {{"model", info.model}, {"isa", info.isa}, {"amx_usable", info.amx_usable}};
}

}  // namespace splitshare::util
