#pragma once

#include <splitshare/nn/classifier.h>
#include <splitshare/train/amp.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace splitshare::bench {

/// What a workload times.
enum class Task {
  /// Forward + backward + SGD step in training mode (the trainer's step).
  kTrain,
  /// Inference as `eval`/`predict` run it (ours: nn::InferenceModel; peer: torch.inference_mode).
  kInfer,
  /// The head alone, forward + backward of cross-entropy on random features [batch, C] in training mode.
  kHead,
  /// The head alone in evaluation mode under InferenceMode: forward on random features [batch, C].
  kHeadInfer,
};

/// "train", "infer", "head", "head-infer" (the peer script's --mode).
std::string to_string(Task task);

/// One workload: a model, an input shape, and what to time.
struct Workload {
  /// Short name shown in the table.
  TORCH_ARG(std::string, name) = "";
  TORCH_ARG(nn::ClassifierOptions, model) = nn::ClassifierOptions();
  TORCH_ARG(int64_t, batch) = 16;
  TORCH_ARG(int64_t, image_size) = 224;
  TORCH_ARG(Task, task) = Task::kTrain;
  /// Our layout for training (inference picks its own, see nn::InferenceModel).
  TORCH_ARG(bool, channels_last) = true;
  /// Report the peak resident memory of a fresh process running the workload instead of its speed.
  TORCH_ARG(bool, memory) = false;
  TORCH_ARG(int64_t, warmup) = 2;
  /// Timed steps per repeat.
  TORCH_ARG(int64_t, steps) = 5;
  TORCH_ARG(int64_t, repeats) = 3;
  /// Where it runs (the PyTorch peer runs on the CPU only).
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Forward arithmetic (autocast; fp16 with loss scaling, as train::fit).
  TORCH_ARG(train::Precision, precision) = train::Precision::kFloat32;
};

/// Items (images, or feature vectors for head workloads) per second of each repeat,
/// and the measuring process's peak resident memory.
struct Timing {
  std::vector<double> images_per_second;
  double peak_rss_mb = 0;
  /// Floating-point operations per item (forward, and backward when training), as PyTorch's
  /// FlopCounterMode counts them in the eager peer; 0 = not counted.
  double flops_per_item = 0;
  /// torch.compile's peer: seconds of its first (compiling) steps; 0 otherwise.
  double compile_seconds = 0;
  /// The median of each round when the suite measured in rounds (SuiteOptions::rounds), in
  /// order; one entry after one round, empty for a timing not made by add_round.
  std::vector<double> round_medians;
  double median() const;
  double max() const;
  double min() const;
};

/// Pools one round of a measurement into `pooled`: the round's repeats join the pooled ones
/// (so median() is over every round's repeats), its median joins round_medians, the peak memory
/// is the larger, the FLOP count and the compile time are the first round's.
void add_round(Timing& pooled, const Timing& round);

/// Times our implementation of `workload` in this process (synthetic data, fixed seed).
Timing measure(const Workload& workload);

/// Times several workloads repeat by repeat in turn (repeat 1 of each, then repeat 2 of
/// each, ...), so that their ratios see the same machine: on a shared or throttled machine
/// the speed drifts by tens of percent within a minute. Peak memory is the process's.
std::vector<Timing> measure_interleaved(const std::vector<Workload>& workloads);

/// The process's peak resident set size so far, MiB.
double peak_rss_mb();

/// Runs `command` (a shell command line whose last output line is a JSON object) and
/// returns that object; throws with the command's output when it fails.
nlohmann::json run_json_command(const std::string& command);

/// The PyTorch peers, in table order: "eager" (as a user writes it), "eager_tuned" (PyTorch's
/// CPU tuning guide: jemalloc, OpenMP settings, channels-last, oneDNN-fused TorchScript for
/// inference) and "compile" (torch.compile, inductor).
std::vector<std::string> peer_names();

/// The command line that times `workload` with PyTorch peer `peer` (one of peer_names())
/// through `python` running `script` (bench/peer_pytorch.py), with the same thread count
/// and precision (fp32 or bf16 autocast). The tuned peer's environment is part of the line.
std::string peer_command(const Workload& workload, const std::string& python, const std::string& script, int threads,
                         const std::string& peer);

/// Times the peer (peer_command through run_json_command).
Timing measure_peer(const Workload& workload, const std::string& python, const std::string& script, int threads,
                    const std::string& peer);

/// GFLOP/s of a large matrix product through libtorch (n x n x n, fp32 or bf16) with the
/// current threads: the best of torch::mm and of the same product as a channels-last 1x1
/// convolution (oneDNN), a few runs each; the peak the rows' GFLOP/s are compared with.
double measure_peak_gflops(torch::ScalarType type, int64_t n = 2048);

/// A row of the table: ours against each peer measured.
struct Row {
  /// The workload's key in standard_workloads() ("resnet50-ssm-train", …).
  std::string key;
  Workload workload;
  Timing ours;
  /// By peer name (peer_names()); empty with --no-peer.
  std::map<std::string, Timing> peers;
  /// The matrix-product peak of the row's precision (measure_peak_gflops); 0 = not measured.
  double peak_gflops = 0;
  /// The microkernel peak of the row's precision (MachinePeak: fp32 FMA, bf16 dot product);
  /// 0 = not measured or no such instruction.
  double machine_peak_gflops = 0;
};

/// Ours over the peer for speed; the peer's peak memory over ours for memory rows: above 1
/// always means we win.
double ratio(const Timing& ours, const Timing& peer, bool memory);
/// The peer with the highest throughput (or the lowest peak memory); empty without peers.
std::string best_peer(const Row& row);
/// Achieved GFLOP/s of our side (flops counted by the eager peer); 0 when not counted.
double achieved_gflops(const Row& row);

/// Workload | ours | each peer (min / median) | ours over the best peer | GFLOP/s | % of the
/// matrix-product peak | % of the microkernel peak.
std::string format_table(const std::vector<Row>& rows);
/// [{"workload", "key", "unit", "precision", "ours", "peers", "best_peer", "ratio_vs_best_peer",
///   "gflops", "peak_fraction", "machine_peak_fraction"}, …]; "ours" and each peer: {"min", "median", "max",
///   "images_per_second", "peak_rss_mb"}, and "round_medians" after several rounds, when the row
///   also has "ratio_by_round" (ours over the best peer in each round).
nlohmann::json to_json(const std::vector<Row>& rows);
/// A row from its to_json form (what a child `splitshare bench --json` prints).
Timing timing_from_json(const nlohmann::json& json);

}  // namespace splitshare::bench
