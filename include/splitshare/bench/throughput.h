#pragma once

#include <splitshare/nn/classifier.h>
#include <splitshare/train/amp.h>

#include <nlohmann/json.hpp>

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
  double median() const;
  double max() const;
  double min() const;
};

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

/// The command line that times `workload` in PyTorch eager through `python` running
/// `script` (bench/peer_pytorch.py) with the same thread count; `channels_last` picks
/// the peer's memory format.
std::string peer_command(const Workload& workload, const std::string& python, const std::string& script, int threads,
                         bool channels_last);

/// Times the peer (peer_command through run_json_command).
Timing measure_peer(const Workload& workload, const std::string& python, const std::string& script, int threads,
                    bool channels_last);

/// A row of the table: ours vs. PyTorch eager as written by default (NCHW) and with channels-last.
struct Row {
  Workload workload;
  Timing ours;
  Timing peer;
  Timing peer_channels_last;
  bool has_peer = false;
  bool has_peer_channels_last = false;
};

/// Workload | ours min/median | eager min/median | eager channels-last min/median | ratio of
/// medians (ours over eager; for memory rows, eager's peak over ours: above 1 means we use less).
std::string format_table(const std::vector<Row>& rows);
nlohmann::json to_json(const std::vector<Row>& rows);
/// A row from its to_json form (what a child `splitshare bench --json` prints).
Timing timing_from_json(const nlohmann::json& json);

}  // namespace splitshare::bench
