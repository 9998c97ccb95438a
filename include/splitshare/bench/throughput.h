#pragma once

#include <splitshare/nn/classifier.h>
#include <splitshare/train/amp.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace splitshare::bench {

/// One workload: a model, an input shape, and what to time.
struct Workload {
  /// Short name shown in the table.
  TORCH_ARG(std::string, name) = "";
  TORCH_ARG(nn::ClassifierOptions, model) = nn::ClassifierOptions();
  TORCH_ARG(int64_t, batch) = 16;
  TORCH_ARG(int64_t, image_size) = 224;
  /// true: forward + backward + SGD step in training mode; false: inference.
  TORCH_ARG(bool, training) = true;
  TORCH_ARG(bool, channels_last) = true;
  TORCH_ARG(int64_t, warmup) = 2;
  /// Timed steps per repeat.
  TORCH_ARG(int64_t, steps) = 5;
  TORCH_ARG(int64_t, repeats) = 3;
  /// Where it runs (the PyTorch peer runs on the CPU only).
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Forward arithmetic (autocast; fp16 with loss scaling, as train::fit).
  TORCH_ARG(train::Precision, precision) = train::Precision::kFloat32;
};

/// Images per second of each repeat.
struct Timing {
  std::vector<double> images_per_second;
  double median() const;
  double max() const;
  double min() const;
};

/// Times our implementation of `workload` (synthetic data, fixed seed).
Timing measure(const Workload& workload);

/// Times the same workload in PyTorch eager through `python` running `script`
/// (bench/peer_pytorch.py), with the same thread count. Throws with the peer's
/// output when it fails.
Timing measure_peer(const Workload& workload, const std::string& python, const std::string& script, int threads);

/// The command line measure_peer runs (for the README).
std::string peer_command(const Workload& workload, const std::string& python, const std::string& script, int threads);

/// A row of the table: ours vs. the peer.
struct Row {
  Workload workload;
  Timing ours;
  Timing peer;
  bool has_peer = false;
};

/// Workload | ours img/s (median, max) | PyTorch eager | ratio of medians.
std::string format_table(const std::vector<Row>& rows);
nlohmann::json to_json(const std::vector<Row>& rows);

}  // namespace splitshare::bench
