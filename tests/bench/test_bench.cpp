// `splitshare bench`: the peers' command lines, the table's ratios and JSON shape, the
// microkernel peaks and the CPU they ran on, and one real run against the eager peer.
#include <splitshare/bench/suite.h>

#include "bench/peak_kernels.h"

#include <nlohmann/json.hpp>

#include "support.h"

namespace sb = splitshare::bench;
namespace sn = splitshare::nn;

namespace {

sb::Workload default_model_workload() {
  return sb::standard_workloads().at(0).second;  // fashion-train: the default model
}

sb::Timing timing(std::vector<double> rates, double peak = 0, double flops = 0) {
  sb::Timing t;
  t.images_per_second = std::move(rates);
  t.peak_rss_mb = peak;
  t.flops_per_item = flops;
  return t;
}

}  // namespace

TEST(Bench, PeerCommandsFollowTheWorkloadAndTheTuningGuide) {
  auto w = default_model_workload();
  const auto eager = sb::peer_command(w, "py", "peer.py", 2, "eager");
  EXPECT_NE(eager.find("--peer eager "), std::string::npos) << eager;
  EXPECT_NE(eager.find("--amp fp32"), std::string::npos) << eager;
  EXPECT_NE(eager.find("--ssm-norm first"), std::string::npos) << eager;
  EXPECT_NE(eager.find("--threads 2"), std::string::npos) << eager;
  EXPECT_EQ(eager.find("OMP_NUM_THREADS"), std::string::npos) << eager;
  const auto tuned = sb::peer_command(w.precision(splitshare::train::Precision::kBFloat16), "py", "peer.py", 2,
                                      "eager_tuned");
  EXPECT_NE(tuned.find("OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores"), std::string::npos) << tuned;
  EXPECT_NE(tuned.find("--amp bf16"), std::string::npos) << tuned;
  EXPECT_EQ(sb::peer_names(), (std::vector<std::string>{"eager", "eager_tuned", "compile"}));
  EXPECT_THROW(sb::peer_command(w, "py", "peer.py", 2, "jit"), c10::Error);
  EXPECT_THROW(sb::peer_command(w.precision(splitshare::train::Precision::kFloat16), "py", "peer.py", 2, "eager"),
               c10::Error);
}

TEST(Bench, RatiosAreAgainstTheBestPeerAndAboveOneMeansWeWin) {
  sb::Row speed;
  speed.key = "fashion-train";
  speed.workload = default_model_workload();
  speed.ours = timing({90, 100, 110});
  speed.peers["eager"] = timing({40, 50, 60}, 0, 2e9);
  speed.peers["compile"] = timing({70, 80, 90});
  speed.peak_gflops = 400;
  speed.machine_peak_gflops = 800;
  EXPECT_EQ(sb::best_peer(speed), "compile");
  EXPECT_DOUBLE_EQ(sb::ratio(speed.ours, speed.peers["compile"], false), 100.0 / 80.0);
  EXPECT_DOUBLE_EQ(sb::achieved_gflops(speed), 200.0);  // 2 GFLOP per image x 100 images/s

  sb::Row memory;
  memory.workload = sb::Workload().memory(true);
  memory.ours = timing({1}, 3000);
  memory.peers["eager"] = timing({1}, 3600);
  memory.peers["eager_tuned"] = timing({1}, 3300);
  EXPECT_EQ(sb::best_peer(memory), "eager_tuned");  // the least memory
  EXPECT_DOUBLE_EQ(sb::ratio(memory.ours, memory.peers["eager_tuned"], true), 1.1);

  const auto rows = sb::to_json({speed, memory});
  EXPECT_EQ(rows[0]["best_peer"], "compile");
  EXPECT_DOUBLE_EQ(rows[0]["ratio_vs_best_peer"].get<double>(), 1.25);
  EXPECT_DOUBLE_EQ(rows[0]["gflops"].get<double>(), 200.0);
  EXPECT_DOUBLE_EQ(rows[0]["peak_fraction"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rows[0]["machine_peak_fraction"].get<double>(), 0.25);
  EXPECT_TRUE(rows[1]["machine_peak_fraction"].is_null());
  EXPECT_EQ(rows[0]["unit"], "images/s");
  EXPECT_EQ(rows[0]["precision"], "fp32");
  EXPECT_EQ(rows[0]["peers"].size(), 2u);
  EXPECT_EQ(rows[1]["unit"], "MiB");
  EXPECT_TRUE(rows[1]["gflops"].is_null());
  const auto table = sb::format_table({speed, memory});
  EXPECT_NE(table.find("1.25x"), std::string::npos) << table;
  EXPECT_NE(table.find("50%   25%"), std::string::npos) << table;
}

TEST(Bench, RoundsPoolTheRepeatsAndGiveTheRatioOfEachRound) {
  sb::Row row;
  row.key = "fashion-train";
  row.workload = default_model_workload();
  sb::add_round(row.ours, timing({90, 100, 110}, 500, 0));
  sb::add_round(row.ours, timing({190, 200, 210}, 700, 0));
  auto first = timing({70, 80}, 900, 2e9);
  first.compile_seconds = 12;
  sb::add_round(row.peers["compile"], first);
  sb::add_round(row.peers["compile"], timing({150, 160}, 800, 3e9));
  EXPECT_EQ(row.ours.images_per_second, (std::vector<double>{90, 100, 110, 190, 200, 210}));
  EXPECT_EQ(row.ours.round_medians, (std::vector<double>{100, 200}));
  EXPECT_DOUBLE_EQ(row.ours.median(), 150.0);  // over every round's repeats
  EXPECT_DOUBLE_EQ(row.ours.peak_rss_mb, 700.0);
  const auto& peer = row.peers["compile"];
  EXPECT_DOUBLE_EQ(peer.flops_per_item, 2e9);  // the first round's
  EXPECT_DOUBLE_EQ(peer.compile_seconds, 12.0);
  const auto j = sb::to_json({row})[0];
  EXPECT_EQ(j["ours"]["round_medians"].get<std::vector<double>>(), (std::vector<double>{100, 200}));
  const auto by_round = j["ratio_by_round"].get<std::vector<double>>();
  ASSERT_EQ(by_round.size(), 2u);
  EXPECT_DOUBLE_EQ(by_round[0], 100.0 / 75.0);
  EXPECT_DOUBLE_EQ(by_round[1], 200.0 / 155.0);
  EXPECT_DOUBLE_EQ(j["ratio_vs_best_peer"].get<double>(), 150.0 / 115.0);
  EXPECT_EQ(sb::timing_from_json(j["ours"]).round_medians, row.ours.round_medians);

  sb::Row once;  // one round: no per-round fields
  once.workload = row.workload;
  sb::add_round(once.ours, timing({1, 2, 3}));
  sb::add_round(once.peers["eager"], timing({1, 2, 3}));
  const auto j1 = sb::to_json({once})[0];
  EXPECT_FALSE(j1.contains("ratio_by_round"));
  EXPECT_FALSE(j1["ours"].contains("round_medians"));
}

TEST(Bench, MatrixProductPeakIsPositiveAndBf16Runs) {
  EXPECT_GT(sb::measure_peak_gflops(torch::kFloat, 256), 0.0);
  EXPECT_GT(sb::measure_peak_gflops(torch::kBFloat16, 256), 0.0);
}

TEST(Bench, PeakMicrokernelsComputeWhatTheySayOnTheWidestInstructionsHere) {
  namespace sk = splitshare::bench::kernels;
  const auto cpu = splitshare::util::cpu_info();
  // acc = acc * 0.5 + 1 three times from 1..12: per lane 0.125 j + 1.75, summed over 12 chains.
  const auto fp32 = sk::fp32_fma();
  ASSERT_NE(fp32.run, nullptr) << "no AVX2 + FMA on " << cpu.model;
  const double lanes = fp32.ops_per_instruction / 2;
  EXPECT_DOUBLE_EQ(fp32.run(3), lanes * (0.125 * 78 + 1.75 * 12));
  EXPECT_EQ(fp32.isa.rfind(cpu.has("avx512f") ? "avx512f" : "avx2", 0), 0u) << fp32.isa;
  const auto bf16 = sk::bf16_dot();
  EXPECT_EQ(bf16.run != nullptr, cpu.has("avx512_bf16"));
  if (bf16.run) EXPECT_DOUBLE_EQ(bf16.run(3), 16 * 12 * 3.0);  // 1 x 0.5 + 1 x 0.5 per lane and step
  const auto int8 = sk::int8_dot();
  EXPECT_EQ(int8.run != nullptr, cpu.has("avx512_vnni") || cpu.has("avx_vnni"));
  if (int8.run) EXPECT_DOUBLE_EQ(int8.run(3), int8.ops_per_instruction / 8 * 12 * 3 * 8);  // 4 x (1 x 2) per lane

  const auto peak = sb::measure_machine_peak(1, 0.01);
  EXPECT_GT(peak.fp32_gflops, 0.0);
  EXPECT_EQ(peak.bf16_gflops > 0, !peak.bf16_isa.empty());
  const auto json = sb::to_json(peak);
  EXPECT_EQ(json["isa"]["fp32"], fp32.isa);
  EXPECT_EQ(json["bf16_gflops"].is_null(), bf16.isa.empty());
  EXPECT_THROW(sb::measure_machine_peak(0), c10::Error);
}

TEST(Bench, CpuInfoNamesTheModelAndTheExtensionsThatSetTheRate) {
  const auto info = splitshare::util::parse_cpuinfo(
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
      "flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni amx_tile avx512_fp16\n\n"
      "processor\t: 1\nmodel name\t: Other\nflags\t\t: avx_vnni\n");
  EXPECT_EQ(info.model, "Intel(R) Xeon(R) Processor");
  EXPECT_EQ(info.isa, (std::vector<std::string>{"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16",
                                                "avx512_vnni", "amx_tile"}));
  EXPECT_FALSE(info.amx_usable);  // only cpu_info() asks the kernel
  EXPECT_EQ(splitshare::util::parse_cpuinfo("").model, "unknown");
  const auto here = splitshare::util::cpu_info();
  EXPECT_NE(here.model, "unknown");
  EXPECT_EQ(splitshare::util::to_json(here)["amx_usable"], here.amx_usable);
}

TEST(BenchCli, JsonHasThePeersTheBestRatioAndThePeaks) {
  if (!splitshare::testing::have_python_torch()) GTEST_SKIP() << "no Python with torch (scripts/setup)";
  std::string out;
  ASSERT_EQ(splitshare::testing::run_command(std::string(SPLITSHARE_CLI) +
                                                 " bench --workloads head-linear --peers eager --repeats 2 --steps 1 "
                                                 "--warmup 0 --threads 1 --rounds 2 --json 2>/dev/null",
                                             &out),
            0)
      << out;
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j["threads"], 1);
  EXPECT_FALSE(j["libtorch"].get<std::string>().empty());
  EXPECT_GT(j["peak_gflops"]["fp32"].get<double>(), 0.0);
  EXPECT_GT(j["machine_peak"]["fp32_gflops"].get<double>(), 0.0);
  EXPECT_EQ(j["cpu"]["model"], splitshare::util::cpu_info().model);
  ASSERT_EQ(j["rows"].size(), 1u);
  const auto& row = j["rows"][0];
  EXPECT_EQ(row["key"], "head-linear");
  EXPECT_EQ(row["unit"], "feature vectors/s");
  EXPECT_EQ(row["best_peer"], "eager");
  const double ours = row["ours"]["median"].get<double>(), eager = row["peers"]["eager"]["median"].get<double>();
  EXPECT_GT(eager, 0.0);
  EXPECT_NEAR(row["ratio_vs_best_peer"].get<double>(), ours / eager, 1e-9);
  EXPECT_GT(row["gflops"].get<double>(), 0.0);  // the eager peer counts the head's FLOPs
  EXPECT_EQ(row["ours"]["images_per_second"].size(), 4u);  // 2 repeats in each of 2 rounds
  EXPECT_EQ(row["ours"]["round_medians"].size(), 2u);
  EXPECT_EQ(row["peers"]["eager"]["round_medians"].size(), 2u);
  EXPECT_EQ(row["ratio_by_round"].size(), 2u);
  std::string log;
  EXPECT_NE(splitshare::testing::run_command(std::string(SPLITSHARE_CLI) + " bench --peers jit 2>&1", &log), 0);
  EXPECT_NE(log.find("unknown peer 'jit'"), std::string::npos) << log;
  EXPECT_NE(splitshare::testing::run_command(std::string(SPLITSHARE_CLI) + " bench --rounds 0 2>&1", &log), 0);
  EXPECT_NE(log.find("--rounds must be at least 1, got 0"), std::string::npos) << log;
}
