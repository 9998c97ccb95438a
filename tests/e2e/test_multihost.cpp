// Training across hosts: ranks in network namespaces of their own (tests/netns.h) with
// torchrun's environment, as on a cluster. Checks that ranks on different addresses find each
// other and train like one process on the global batch, that every fault (a rank killed, a
// host's link down, a rank stopped) ends every surviving rank within --dist-timeout plus a
// small margin with a message naming it, that the last checkpoint then resumes on the hosts
// left, and that rendezvous mistakes fail clearly within the timeout.
#include <splitshare/data/datasets.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <nlohmann/json.hpp>

#include "netns.h"
#include "support.h"

#include <algorithm>
#include <cstdio>

namespace tr = splitshare::train;
using splitshare::testing::read_file;
using splitshare::testing::run_command;
using splitshare::testing::TempDir;
using splitshare::testing::TestHosts;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kCli = SPLITSHARE_CLI;
// Seconds past --dist-timeout a surviving rank may take to exit: the step it was computing
// and the process's exit, on 2 cores shared by all ranks.
constexpr double kMargin = 4.0;

bool have_fashion_mnist() {
  return std::filesystem::exists(splitshare::data::default_fashion_mnist_dir());
}

std::vector<std::string> train_args(const std::string& out, int64_t batch, int64_t limit, int64_t epochs) {
  return {kCli, "train", "--limit-train", std::to_string(limit), "--limit-val", "64", "--batch-size",
          std::to_string(batch), "--epochs", std::to_string(epochs), "--width", "4", "--splits", "2", "--threads", "1",
          "--no-progress", "--seed", "5", "--sync-bn", "--out", out};
}

std::string joined(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// torchrun's variables for `rank` of `world` with `per_host` ranks on each host.
std::vector<std::string> rank_env(int rank, int world, int per_host, int port) {
  return {"RANK=" + std::to_string(rank), "WORLD_SIZE=" + std::to_string(world),
          "LOCAL_RANK=" + std::to_string(rank % per_host), "LOCAL_WORLD_SIZE=" + std::to_string(per_host),
          "MASTER_ADDR=" + TestHosts::address(0), "MASTER_PORT=" + std::to_string(port),
          // c10d warns that reverse DNS finds no name for the test addresses.
          "TORCH_CPP_LOG_LEVEL=ERROR"};
}

// Starts `world` ranks, `per_host` on each host, running `args` plus `extra`.
std::vector<size_t> start_job(TestHosts& hosts, int world, int per_host, int port, const std::vector<std::string>& args,
                              const TempDir& dir, const std::string& tag) {
  std::vector<size_t> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.push_back(hosts.start(r / per_host, rank_env(r, world, per_host, port), args,
                                dir.file(tag + "-rank" + std::to_string(r) + ".log")));
  }
  return ranks;
}

void expect_all_succeed(TestHosts& hosts, const std::vector<size_t>& ranks) {
  for (size_t r = 0; r < ranks.size(); ++r) {
    ASSERT_TRUE(hosts.wait(ranks[r], std::chrono::seconds(180))) << "rank " << r << " still running";
    EXPECT_EQ(hosts.process(ranks[r]).status, 0) << read_file(hosts.process(ranks[r]).log);
  }
}

void expect_same_weights(const std::string& a, const std::string& b) {
  auto x = tr::load_checkpoint(a), y = tr::load_checkpoint(b);
  auto px = x.model->named_parameters(), py = y.model->named_parameters();
  ASSERT_EQ(px.size(), py.size());
  double largest = 0;
  for (const auto& item : px) {
    const auto diff = (item.value() - py[item.key()]).abs().max().item<double>();
    largest = std::max(largest, diff);
    EXPECT_LT(diff, 3e-4) << item.key();  // measured 9e-5; the per-rank learning rate gave 3.6e-3
  }
  std::printf("largest weight difference from one process: %.2g\n", largest);
  // The runs did train: the weights moved from their initialisation.
  EXPECT_GT(x.metadata.epoch, 0);
}

}  // namespace

// SLURM's variables for the same rank (srun sets them; MASTER_ADDR/PORT from the batch script).
std::vector<std::string> slurm_env(int rank, int world, int per_host, int port) {
  return {"SLURM_PROCID=" + std::to_string(rank), "SLURM_NTASKS=" + std::to_string(world),
          "SLURM_LOCALID=" + std::to_string(rank % per_host), "SLURM_NTASKS_PER_NODE=" + std::to_string(per_host),
          "MASTER_ADDR=" + TestHosts::address(0), "MASTER_PORT=" + std::to_string(port), "TORCH_CPP_LOG_LEVEL=ERROR"};
}

TEST(MultiHost, HostsTrainLikeOneProcessOnTheGlobalBatch) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TestHosts hosts(2);
  if (!hosts.available()) GTEST_SKIP() << hosts.reason();
  TempDir dir;
  std::string log;
  ASSERT_EQ(run_command(joined(train_args(dir.file("one"), 32, 256, 1)), &log), 0) << log;
  // 2 hosts x 1 rank (batch 16 each) started by torchrun as the README does, and 2 hosts x 2
  // ranks (batch 8 each) with SLURM's variables: a global batch of 32 either way.
  const auto torchrun = std::filesystem::path(splitshare::testing::python()).parent_path() / "torchrun";
  for (const int per_host : {1, 2}) {
    SCOPED_TRACE(std::to_string(per_host) + " rank(s) per host");
    const int world = 2 * per_host, port = 29600 + world;
    const auto out = dir.file("hosts-" + std::to_string(world));
    const auto args = train_args(out, 32 / world, 256, 1);
    std::vector<size_t> ranks;
    if (per_host == 1 && std::filesystem::exists(torchrun)) {
      for (int node = 0; node < 2; ++node) {
        std::vector<std::string> command = {torchrun.string(), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
                                            std::to_string(node), "--master-addr", TestHosts::address(0),
                                            "--master-port", std::to_string(port), "--no-python"};
        command.insert(command.end(), args.begin(), args.end());
        ranks.push_back(hosts.start(node, {"TORCH_CPP_LOG_LEVEL=ERROR", "OMP_NUM_THREADS=1"}, command,
                                    dir.file("torchrun" + std::to_string(node) + ".log")));
      }
    } else {
      for (int r = 0; r < world; ++r) {
        ranks.push_back(hosts.start(r / per_host, slurm_env(r, world, per_host, port), args,
                                    dir.file("slurm" + std::to_string(r) + ".log")));
      }
    }
    expect_all_succeed(hosts, ranks);
    const auto log0 = read_file(hosts.process(ranks[0]).log);
    EXPECT_NE(log0.find("rank 0 of " + std::to_string(world)), std::string::npos) << log0;
    // The default rate follows the global batch: that of one process on 32 samples.
    EXPECT_NE(log0.find("sgd lr 0.0125"), std::string::npos) << log0;
    expect_same_weights(out + "/checkpoint.pt", dir.file("one/checkpoint.pt"));
  }
}

namespace {

enum class Fault { kKill, kLinkDown, kStop };

const char* name(Fault f) {
  switch (f) {
    case Fault::kKill: return "SIGKILL";
    case Fault::kLinkDown: return "link down";
    case Fault::kStop: return "SIGSTOP";
  }
  return "?";
}

struct FaultResult {
  std::vector<double> seconds;  // fault to exit, surviving ranks
  std::vector<std::string> logs;
  std::vector<int> status;
};

bool wait_for_file(const std::string& path, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!std::filesystem::exists(path)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

bool wait_for_text(const std::string& path, const std::string& text, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (read_file(path).find(text) == std::string::npos) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// 3 hosts x 1 rank train with a checkpoint every 10 steps; once one is written, `fault` hits
// rank 2's host mid-epoch. Returns how long ranks 0 and 1 took to exit after it.
FaultResult run_fault(TestHosts& hosts, const TempDir& dir, Fault fault, int timeout, int port) {
  auto args = train_args(dir.file("run"), 16, 4800, 2);
  for (const auto& a : {"--checkpoint-every", "10", "--dist-timeout"}) args.emplace_back(a);
  args.push_back(std::to_string(timeout));
  const auto ranks = start_job(hosts, 3, 1, port, args, dir, "fault");
  FaultResult result;
  if (!wait_for_file(dir.file("run/checkpoint.pt"), std::chrono::seconds(120))) {
    ADD_FAILURE() << "no checkpoint written: " << read_file(hosts.process(ranks[0]).log);
    return result;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  if (fault == Fault::kKill) hosts.signal(ranks[2], SIGKILL);
  if (fault == Fault::kStop) hosts.signal(ranks[2], SIGSTOP);
  if (fault == Fault::kLinkDown) EXPECT_TRUE(hosts.link(2, false));
  const auto start = Clock::now();
  for (int r = 0; r < 2; ++r) {
    const bool ended = hosts.wait(ranks[r], std::chrono::seconds(timeout + 60));
    result.seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    EXPECT_TRUE(ended) << "rank " << r << " still running " << timeout + 60 << " s after the fault";
    result.logs.push_back(read_file(hosts.process(ranks[r]).log));
    result.status.push_back(hosts.process(ranks[r]).status);
    std::printf("%s on rank 2: rank %d exited with status %d after %.2f s (--dist-timeout %d)\n", name(fault), r,
                result.status.back(), result.seconds.back(), timeout);
  }
  if (fault == Fault::kStop) hosts.signal(ranks[2], SIGKILL);
  hosts.wait(ranks[2], std::chrono::seconds(timeout + 60));
  if (fault == Fault::kLinkDown) hosts.link(2, true);
  return result;
}

// Every survivor failed, in time, saying what it saw; the checkpoint loads; 2 hosts finish the run.
void expect_clean_stop_and_resume(TestHosts& hosts, const TempDir& dir, const FaultResult& r, int timeout,
                                  const std::vector<std::string>& words, bool resume = true) {
  ASSERT_EQ(r.seconds.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    EXPECT_NE(r.status[rank], 0);
    EXPECT_LT(r.seconds[rank], timeout + kMargin);
    const auto& log = r.logs[rank];
    EXPECT_NE(log.find("rank " + std::to_string(rank) + " (" + TestHosts::address(rank) + ")"), std::string::npos) << log;
    for (const auto& w : words) EXPECT_NE(log.find(w), std::string::npos) << "'" << w << "' not in: " << log;
    EXPECT_NE(log.find("splitshare train --resume " + dir.file("run")), std::string::npos) << log;
  }
  EXPECT_NO_THROW(tr::load_checkpoint(dir.file("run/checkpoint.pt")));
  if (!resume) return;
  const auto ranks = start_job(hosts, 2, 1, 29690, {kCli, "train", "--resume", dir.file("run"), "--dist-timeout", "30"},
                               dir, "resume");
  expect_all_succeed(hosts, ranks);
  // Both epochs are in the metrics, and the run's summary exists.
  const auto metrics = read_file(dir.file("run/metrics.jsonl"));
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 2) << metrics;
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/summary.json")));
  const auto log = read_file(hosts.process(ranks[0]).log);
  EXPECT_NE(log.find("rank 0 of 2"), std::string::npos) << log;
}

}  // namespace

TEST(MultiHost, KilledRankEndsTheOthersAtOnceAndTheRunResumesOnTwoHosts) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TestHosts hosts(3);
  if (!hosts.available()) GTEST_SKIP() << hosts.reason();
  TempDir dir;
  const auto r = run_fault(hosts, dir, Fault::kKill, 5, 29610);
  // A killed process's connections close: no need to wait for the timeout.
  for (const double s : r.seconds) EXPECT_LT(s, 3.0);
  expect_clean_stop_and_resume(hosts, dir, r, 5, {"a peer closed its connection", "peer " + TestHosts::address(2) + " (rank 2)"});
}

TEST(MultiHost, LinkDownEndsTheOthersWithinTheTimeoutNamingTheSilentHost) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TestHosts hosts(3);
  if (!hosts.available()) GTEST_SKIP() << hosts.reason();
  TempDir dir;
  const auto r = run_fault(hosts, dir, Fault::kLinkDown, 5, 29620);
  expect_clean_stop_and_resume(hosts, dir, r, 5,
                               {"no answer within --dist-timeout 5 s", "rank 2 (" + TestHosts::address(2) + ") silent for"});
}

TEST(MultiHost, StoppedRankEndsTheOthersWithinTheTimeoutItIsGiven) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TestHosts hosts(3);
  if (!hosts.available()) GTEST_SKIP() << hosts.reason();
  // Two timeouts: the exit follows --dist-timeout, so the flag reaches the collectives (were it
  // lost, the 300 s default would hold the ranks past both bounds).
  for (const int timeout : {4, 9}) {
    SCOPED_TRACE("--dist-timeout " + std::to_string(timeout));
    TempDir dir;
    const auto r = run_fault(hosts, dir, Fault::kStop, timeout, 29630 + timeout);
    for (const double s : r.seconds) EXPECT_GT(s, timeout - 1.0);
    expect_clean_stop_and_resume(hosts, dir, r, timeout,
                                 {"no answer within --dist-timeout " + std::to_string(timeout) + " s",
                                  "rank 2 (" + TestHosts::address(2) + ") silent for"},
                                 /*resume=*/timeout == 4);
  }
}

TEST(MultiHost, RendezvousMistakesFailClearlyWithinTheTimeout) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TestHosts hosts(3);
  if (!hosts.available()) GTEST_SKIP() << hosts.reason();
  TempDir dir;
  const int timeout = 4;
  auto args = train_args(dir.file("x"), 16, 6400, 2);
  args.insert(args.end(), {"--dist-timeout", std::to_string(timeout)});
  const auto timed = [&](size_t i) {
    const auto start = Clock::now();
    EXPECT_TRUE(hosts.wait(i, std::chrono::seconds(timeout + 30)));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_NE(hosts.process(i).status, 0);
    EXPECT_LT(s, timeout + kMargin);
    return read_file(hosts.process(i).log);
  };
  // A MASTER_ADDR where nothing listens, and the right host with a wrong port.
  auto env = rank_env(1, 2, 1, 29640);
  env[4] = "MASTER_ADDR=10.231.0.99";
  auto log = timed(hosts.start(1, env, args, dir.file("addr.log")));
  EXPECT_NE(log.find("rank 1: could not reach the rendezvous at 10.231.0.99:29640 within --dist-timeout 4 s"),
            std::string::npos) << log;
  log = timed(hosts.start(1, rank_env(1, 2, 1, 29641), args, dir.file("port.log")));
  EXPECT_NE(log.find("could not reach the rendezvous at 10.231.0.1:29641"), std::string::npos) << log;
  // A world size that never fills: rank 0 names the missing rank.
  const auto r0 = hosts.start(0, rank_env(0, 3, 1, 29642), args, dir.file("fill0.log"));
  const auto r1 = hosts.start(1, rank_env(1, 3, 1, 29642), args, dir.file("fill1.log"));
  log = timed(r0);
  EXPECT_NE(log.find("rank(s) 2 of 3 did not join the rendezvous at 10.231.0.1:29642 within --dist-timeout 4 s"),
            std::string::npos) << log;
  log = timed(r1);
  EXPECT_NE(log.find("rank 1: "), std::string::npos) << log;
  // Two jobs on one port: the second one's ranks say so; the first one trains on.
  const auto first = start_job(hosts, 2, 1, 29643, args, dir, "first");
  ASSERT_TRUE(wait_for_text(hosts.process(first[0]).log, "rank 0 of 2", std::chrono::seconds(60)));
  auto second_args = args;
  second_args[second_args.size() - 3] = dir.file("y");  // its own --out
  const auto second = start_job(hosts, 2, 1, 29643, second_args, dir, "second");
  log = timed(second[0]);
  EXPECT_NE(log.find("rank 0: cannot host the rendezvous on port 29643"), std::string::npos) << log;
  log = timed(second[1]);
  EXPECT_NE(log.find("rank 1: the rendezvous at 10.231.0.1:29643 already has a rank 1"), std::string::npos) << log;
  expect_all_succeed(hosts, first);
}
