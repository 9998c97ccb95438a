// `--amp auto`: the probe of bf16 against fp32, its cache, the choice it makes, the warning for
// an explicit bf16 that is slower here, and what `train` logs and records.
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/precision_probe.h>
#include <splitshare/util/cpu.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "support.h"

namespace fs = std::filesystem;
namespace st = splitshare::testing;
namespace tr = splitshare::train;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// A probe of this machine's setting whose bf16 runs `speedup` times fp32's speed.
tr::PrecisionProbe probe_with(double speedup) {
  auto probe = tr::run_precision_probe();
  probe.conv_fp32 = probe.matmul_fp32 = 1.0;
  probe.conv_bf16 = probe.matmul_bf16 = 1.0 / speedup;
  return probe;
}

void write_cache(const std::string& file, double speedup) {
  fs::create_directories(fs::path(file).parent_path());
  st::write_file(file, nlohmann::json({{"probes", {tr::to_json(probe_with(speedup))}}}).dump());
}

// Sets (or, with nullopt, unsets) an environment variable for the scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? setenv(name, value->c_str(), 1) : unsetenv(name);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST(PrecisionProbe, AutoTakesBf16OnlyWhereItIsClearlyFasterAndSaysWhy) {
  const torch::Device cpu(torch::kCPU);
  const auto fast = tr::choose_precision(cpu, probe_with(1.6));
  EXPECT_EQ(fast.precision, tr::Precision::kBFloat16);
  EXPECT_NE(fast.reason.find("bf16 ran 1.60x fp32's speed on " + splitshare::util::cpu_info().model),
            std::string::npos) << fast.reason;
  const auto slow = tr::choose_precision(cpu, probe_with(0.7));
  EXPECT_EQ(slow.precision, tr::Precision::kFloat32);
  EXPECT_NE(slow.reason.find("0.70x"), std::string::npos) << slow.reason;
  EXPECT_EQ(tr::choose_precision(cpu, probe_with(1.05)).precision, tr::Precision::kFloat32);  // under 1.1x
  EXPECT_EQ(tr::choose_precision(torch::Device(torch::kCUDA), std::nullopt).precision, tr::Precision::kBFloat16);
  EXPECT_THROW(tr::choose_precision(cpu, std::nullopt), c10::Error);
}

TEST(PrecisionProbe, TheProbeRunsOnceAndIsReadBackFromItsCache) {
  st::TempDir dir;
  const auto cache = dir.file("deep/er/precision-probe.json");
  const auto measured = tr::cached_precision_probe(cache);
  EXPECT_GT(measured.conv_fp32, 0.0);
  EXPECT_GT(measured.matmul_bf16, 0.0);
  EXPECT_GT(measured.bf16_speedup(), 0.0);
  ASSERT_TRUE(fs::exists(cache));
  // Edited figures come back: the second call reads the cache instead of measuring.
  auto json = nlohmann::json::parse(st::read_file(cache));
  ASSERT_EQ(json["probes"].size(), 1u);
  json["probes"][0]["conv"]["bf16"] = 0.125 * json["probes"][0]["conv"]["fp32"].get<double>();
  json["probes"][0]["matmul"]["bf16"] = 0.5 * json["probes"][0]["matmul"]["fp32"].get<double>();
  st::write_file(cache, json.dump());
  EXPECT_DOUBLE_EQ(tr::cached_precision_probe(cache).bf16_speedup(), 4.0);  // sqrt(8 x 2)
  // Another thread count is another setting: measured and added beside it.
  json["probes"][0]["threads"] = 977;
  st::write_file(cache, json.dump());
  tr::cached_precision_probe(cache);
  EXPECT_EQ(nlohmann::json::parse(st::read_file(cache))["probes"].size(), 2u);
  // A cache that is not one is replaced by a good one.
  st::write_file(cache, "{not json");
  EXPECT_GT(tr::cached_precision_probe(cache).conv_fp32, 0.0);
  EXPECT_EQ(nlohmann::json::parse(st::read_file(cache))["probes"].size(), 1u);
  const auto bad = st::expect_error([] { tr::precision_probe_from_json({{"cpu", "x"}, {"libtorch", "y"}, {"threads", 2}}); });
  EXPECT_NE(bad.find("\"conv\".\"fp32\" is not a positive number"), std::string::npos) << bad;
}

TEST(PrecisionProbe, ResolvingTheFlagHonoursTheForcedChoiceAndWarnsAboutASlowBf16) {
  st::TempDir dir;
  const torch::Device cpu(torch::kCPU);
  const auto cache = dir.file("probe.json");
  {
    ScopedEnv unforced("SPLITSHARE_AMP_AUTO", std::nullopt);
    write_cache(cache, 2.0);
    EXPECT_EQ(tr::resolve_precision("auto", cpu, cache).precision, tr::Precision::kBFloat16);
    write_cache(cache, 0.6);
    EXPECT_EQ(tr::resolve_precision("auto", cpu, cache).precision, tr::Precision::kFloat32);
    std::string warning;
    EXPECT_EQ(tr::resolve_precision("bf16", cpu, cache, &warning).precision, tr::Precision::kBFloat16);
    EXPECT_NE(warning.find("--amp bf16 on this CPU runs at 0.60x fp32's speed"), std::string::npos) << warning;
    write_cache(cache, 1.3);
    warning.clear();
    tr::resolve_precision("bf16", cpu, cache, &warning);
    EXPECT_EQ(warning, "");
  }
  {
    ScopedEnv forced("SPLITSHARE_AMP_AUTO", std::string("bf16"));
    write_cache(cache, 0.5);
    const auto choice = tr::resolve_precision("auto", cpu, cache);
    EXPECT_EQ(choice.precision, tr::Precision::kBFloat16);
    EXPECT_NE(choice.reason.find("SPLITSHARE_AMP_AUTO"), std::string::npos);
    EXPECT_EQ(tr::resolve_precision("fp32", cpu, cache).precision, tr::Precision::kFloat32);
  }
  {
    ScopedEnv wrong("SPLITSHARE_AMP_AUTO", std::string("fast"));
    const auto message = st::expect_error([&] { tr::resolve_precision("auto", cpu, cache); });
    EXPECT_NE(message.find("SPLITSHARE_AMP_AUTO: expected fp32 or bf16, got 'fast'"), std::string::npos) << message;
  }
  const auto unknown = st::expect_error([&] { tr::resolve_precision("fp8", cpu, cache); });
  EXPECT_NE(unknown.find("unknown precision 'fp8': expected auto, bf16, fp16 or fp32"), std::string::npos) << unknown;
}

TEST(PrecisionProbeCli, TrainLogsAndRecordsThePrecisionAutoPicked) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  st::TempDir dir;
  write_cache(dir.file("cache/precision-probe.json"), 1.8);
  std::string log;
  const auto out = dir.file("run");
  // --threads 2: the cached probe was measured at the thread count this process has.
  ASSERT_EQ(st::run_command("env -u SPLITSHARE_AMP_AUTO SPLITSHARE_CACHE_DIR=" + dir.file("cache") + " " +
                                std::string(SPLITSHARE_CLI) + " train --epochs 1 --limit-train 128 --limit-val 64 "
                                "--width 4 --batch-size 64 --no-progress --threads " +
                                std::to_string(at::get_num_threads()) + " --out " + out,
                            &log),
            0)
      << log;
  EXPECT_NE(log.find("splitshare train: precision: auto: bf16: bf16 ran 1.80x fp32's speed"), std::string::npos)
      << log;
  const auto config = tr::read_checkpoint_metadata(out + "/checkpoint.pt").extra.at("config");
  EXPECT_EQ(config.at("precision"), "bf16") << config.dump();
}
