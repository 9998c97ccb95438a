#include <splitshare/bench/throughput.h>

#include <splitshare/nn/inference.h>
#include <splitshare/train/trainer.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>

namespace splitshare::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string cell(const Timing& t, bool memory) {
  char text[64];
  if (memory) {
    std::snprintf(text, sizeof text, "%.0f MiB", t.peak_rss_mb);
  } else {
    std::snprintf(text, sizeof text, "%.1f / %.1f", t.min(), t.median());
  }
  return text;
}

// Ours over the peer for speed; the peer's peak memory over ours (above 1: we use less).
double ratio(const Timing& ours, const Timing& peer, bool memory) {
  if (memory) return peer.peak_rss_mb / std::max(1e-9, ours.peak_rss_mb);
  return ours.median() / std::max(1e-9, peer.median());
}

nlohmann::json timing_json(const Timing& t) {
  return {{"images_per_second", t.images_per_second}, {"median", t.median()}, {"min", t.min()},
          {"max", t.max()},                           {"peak_rss_mb", t.peak_rss_mb}};
}

const char* task_name(Task task) {
  switch (task) {
    case Task::kTrain: return "train";
    case Task::kInfer: return "infer";
    case Task::kHead: return "head";
    case Task::kHeadInfer: return "head-infer";
  }
  return "?";
}

}  // namespace

double Timing::median() const {
  if (images_per_second.empty()) return 0;
  auto v = images_per_second;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}
double Timing::max() const {
  return images_per_second.empty() ? 0 : *std::max_element(images_per_second.begin(), images_per_second.end());
}
double Timing::min() const {
  return images_per_second.empty() ? 0 : *std::min_element(images_per_second.begin(), images_per_second.end());
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

namespace {

// Everything one workload's step touches, built once; `step` runs one timed step.
struct Runner {
  explicit Runner(const Workload& w);
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  Workload w;
  nn::Classifier model{nullptr};
  torch::Tensor labels, features, images;
  std::optional<torch::optim::SGD> optimizer;
  std::optional<nn::InferenceModel> folded;
  train::GradScaler scaler;
  std::function<void()> step;

  // CUDA kernels run asynchronously: wait for them before reading the clock.
  void sync() const {
    if (w.device().is_cuda()) torch::cuda::synchronize();
  }
  // Items per second of one repeat of w.steps() steps.
  double time_repeat() {
    const auto start = Clock::now();
    for (int64_t i = 0; i < w.steps(); ++i) step();
    sync();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(w.batch() * w.steps()) / seconds;
  }
};

Runner::Runner(const Workload& workload)
    : w(workload), scaler(train::GradScalerOptions().enabled(workload.precision() == train::Precision::kFloat16)) {
  torch::manual_seed(0);
  model = nn::make_classifier(w.model());
  model->to(w.device());
  labels = torch::randint(0, w.model().num_classes(), {w.batch()}).to(w.device());
  switch (w.task()) {
    case Task::kHead: {
      model->train();
      features = torch::randn({w.batch(), model->feature_dim()}).to(w.device()).requires_grad_();
      step = [this] {
        // As a training step does (gradients set to none, not accumulated into).
        features.mutable_grad() = torch::Tensor();
        for (auto& p : model->head.ptr()->parameters()) p.mutable_grad() = torch::Tensor();
        auto output = model->head.forward<nn::HeadOutput>(features);
        torch::nn::functional::cross_entropy(output.logits, labels).backward();
      };
      break;
    }
    case Task::kHeadInfer: {
      model->eval();
      features = torch::randn({w.batch(), model->feature_dim()}).to(w.device());
      step = [this] {
        torch::InferenceMode guard;
        model->head.forward<nn::HeadOutput>(features);
      };
      break;
    }
    case Task::kInfer: {
      model->eval();
      images = torch::randn({w.batch(), w.model().in_channels(), w.image_size(), w.image_size()}).to(w.device());
      if (w.device().is_cpu() && w.precision() == train::Precision::kFloat32) {
        folded.emplace(*model);
        step = [this] { folded->forward(images); };
      } else {
        // The folded oneDNN model is CPU float32; elsewhere the module runs under InferenceMode.
        if (w.channels_last()) {
          train::to_channels_last(*model);
          images = images.contiguous(torch::MemoryFormat::ChannelsLast);
        }
        step = [this] {
          torch::InferenceMode guard;
          train::AutocastGuard autocast(w.device(), w.precision());
          model->forward(images);
        };
      }
      break;
    }
    case Task::kTrain: {
      model->train();
      const auto format = w.channels_last() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
      if (w.channels_last()) train::to_channels_last(*model);
      images = torch::randn({w.batch(), w.model().in_channels(), w.image_size(), w.image_size()})
                   .to(w.device())
                   .contiguous(format);
      optimizer.emplace(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
      step = [this] {
        torch::Tensor loss;
        {
          train::AutocastGuard autocast(w.device(), w.precision());
          loss = nn::head_loss(model->forward(images), labels, nn::LossKind::kJoint);
        }
        train::clear_gradients(*optimizer);
        scaler.scale(loss).backward();
        scaler.step(*optimizer);
        scaler.update();
      };
      break;
    }
  }
}

}  // namespace

Timing measure(const Workload& w) {
  return measure_interleaved({w}).front();
}

std::vector<Timing> measure_interleaved(const std::vector<Workload>& workloads) {
  std::vector<std::unique_ptr<Runner>> runners;
  int64_t repeats = 0;
  for (const auto& w : workloads) {
    runners.push_back(std::make_unique<Runner>(w));
    repeats = std::max(repeats, w.repeats());
  }
  for (auto& r : runners) {
    for (int64_t i = 0; i < r->w.warmup(); ++i) r->step();
    r->sync();
  }
  std::vector<Timing> timings(runners.size());
  for (int64_t repeat = 0; repeat < repeats; ++repeat) {
    for (size_t i = 0; i < runners.size(); ++i) {
      if (repeat < runners[i]->w.repeats()) timings[i].images_per_second.push_back(runners[i]->time_repeat());
    }
  }
  for (auto& t : timings) t.peak_rss_mb = peak_rss_mb();
  return timings;
}

nlohmann::json run_json_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  TORCH_CHECK(pipe != nullptr, "could not start: ", command);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  TORCH_CHECK(status == 0, "the benchmark command failed (", command, "):\n", output);
  // The last line that starts with '{' opens the object (pretty-printed ones span several lines).
  const auto brace = output.rfind("\n{");
  const auto json_text = output.substr(brace == std::string::npos ? 0 : brace + 1);
  try {
    return nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "could not read the JSON output of ", command, " (", e.what(), "):\n", output);
  }
}

std::string peer_command(const Workload& w, const std::string& python, const std::string& script, int threads,
                         bool channels_last) {
  const auto& m = w.model();
  std::ostringstream cmd;
  cmd << shell_quote(python) << " " << shell_quote(script) << " --arch " << m.arch() << " --head "
      << nn::to_string(m.head().kind()) << " --splits " << m.head().splits()
      << " --ssm-norm " << (m.head().last_plain() ? "first" : "all") << " --k " << m.head().k()
      << " --classes " << m.num_classes() << " --channels " << m.in_channels() << " --width " << m.width()
      << " --stem " << nn::to_string(m.stem()) << " --batch " << w.batch() << " --size " << w.image_size()
      << " --mode " << task_name(w.task()) << (channels_last ? " --channels-last" : "") << " --warmup " << w.warmup()
      << " --steps " << w.steps() << " --repeats " << w.repeats() << " --threads " << threads;
  return cmd.str();
}

Timing timing_from_json(const nlohmann::json& json) {
  Timing timing;
  timing.images_per_second = json.at("images_per_second").get<std::vector<double>>();
  timing.peak_rss_mb = json.value("peak_rss_mb", 0.0);
  return timing;
}

Timing measure_peer(const Workload& w, const std::string& python, const std::string& script, int threads,
                    bool channels_last) {
  const auto command = peer_command(w, python, script, threads, channels_last);
  const auto json = run_json_command(command);
  try {
    return timing_from_json(json);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "the PyTorch peer printed no timings (", e.what(), "): ", command);
  }
}

std::string format_table(const std::vector<Row>& rows) {
  std::ostringstream out;
  char line[320];
  const char* format = "%-38s %18s %18s %18s %7s %7s\n";
  std::snprintf(line, sizeof line, format, "workload (items/s: min / median)", "splitshare", "eager", "eager+CL", "ratio",
                "vs CL");
  out << line;
  for (const auto& r : rows) {
    const bool memory = r.workload.memory();
    std::string peer = "-", peer_cl = "-";
    char ratio_text[32] = "-", ratio_cl[32] = "-";
    if (r.has_peer) {
      peer = cell(r.peer, memory);
      std::snprintf(ratio_text, sizeof ratio_text, "%.2fx", ratio(r.ours, r.peer, memory));
    }
    if (r.has_peer_channels_last) {
      peer_cl = cell(r.peer_channels_last, memory);
      std::snprintf(ratio_cl, sizeof ratio_cl, "%.2fx", ratio(r.ours, r.peer_channels_last, memory));
    }
    std::snprintf(line, sizeof line, format, r.workload.name().c_str(), cell(r.ours, memory).c_str(), peer.c_str(),
                  peer_cl.c_str(), ratio_text, ratio_cl);
    out << line;
  }
  return out.str();
}

nlohmann::json to_json(const std::vector<Row>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    const bool memory = r.workload.memory();
    nlohmann::json row = {{"workload", r.workload.name()},
                          {"task", task_name(r.workload.task())},
                          {"memory", memory},
                          {"batch", r.workload.batch()},
                          {"image_size", r.workload.image_size()},
                          {"ours", timing_json(r.ours)}};
    if (r.has_peer) {
      row["pytorch_eager"] = timing_json(r.peer);
      row["ratio"] = ratio(r.ours, r.peer, memory);
    }
    if (r.has_peer_channels_last) {
      row["pytorch_eager_channels_last"] = timing_json(r.peer_channels_last);
      row["ratio_channels_last"] = ratio(r.ours, r.peer_channels_last, memory);
    }
    out.push_back(row);
  }
  return out;
}

}  // namespace splitshare::bench
