#include <splitshare/bench/throughput.h>

#include <splitshare/nn/inference.h>
#include <splitshare/train/fit.h>
#include <splitshare/train/fused_optimizers.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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


}  // namespace

std::string to_string(Task task) {
  switch (task) {
    case Task::kTrain: return "train";
    case Task::kInfer: return "infer";
    case Task::kHead: return "head";
    case Task::kHeadInfer: return "head-infer";
  }
  return "?";
}

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

void add_round(Timing& pooled, const Timing& round) {
  if (pooled.round_medians.empty()) {
    pooled.flops_per_item = round.flops_per_item;
    pooled.compile_seconds = round.compile_seconds;
  }
  pooled.images_per_second.insert(pooled.images_per_second.end(), round.images_per_second.begin(),
                                  round.images_per_second.end());
  pooled.round_medians.push_back(round.median());
  pooled.peak_rss_mb = std::max(pooled.peak_rss_mb, round.peak_rss_mb);
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
  std::optional<train::FusedSGD> optimizer;
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
      if (w.device().is_cpu() && w.precision() != train::Precision::kFloat16) {
        folded.emplace(*model, nn::InferenceOptions().dtype(train::dtype_of(w.precision())));
        step = [this] { folded->forward(images); };
      } else {
        // The folded model is for CPUs; elsewhere the module runs under InferenceMode and autocast.
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

std::vector<std::string> peer_names() { return {"eager", "eager_tuned", "compile"}; }

std::string peer_command(const Workload& w, const std::string& python, const std::string& script, int threads,
                         const std::string& peer) {
  const auto names = peer_names();
  TORCH_CHECK(std::find(names.begin(), names.end(), peer) != names.end(), "unknown PyTorch peer '", peer, "'");
  TORCH_CHECK(w.precision() != train::Precision::kFloat16, "the PyTorch peers run fp32 or bf16 on the CPU, not fp16");
  const auto& m = w.model();
  std::ostringstream cmd;
  if (peer == "eager_tuned") {
    // PyTorch's CPU performance tuning guide: a preloaded jemalloc with its suggested
    // settings, and OpenMP threads pinned to cores (GNU OpenMP, as the wheel ships).
    const char* jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if (access(jemalloc, R_OK) == 0) {
      cmd << "LD_PRELOAD=" << jemalloc << " MALLOC_CONF=oversize_threshold:1,background_thread:true,"
          << "metadata_thp:auto,dirty_decay_ms:9000000000,muzzy_decay_ms:9000000000 ";
    }
    cmd << "OMP_NUM_THREADS=" << threads << " OMP_PROC_BIND=close OMP_PLACES=cores ";
  }
  cmd << shell_quote(python) << " " << shell_quote(script) << " --peer " << peer << " --arch " << m.arch()
      << " --head " << nn::to_string(m.head().kind()) << " --splits " << m.head().splits() << " --ssm-norm "
      << (m.head().last_plain() ? "first" : "all") << " --k " << m.head().k() << " --classes " << m.num_classes()
      << " --channels " << m.in_channels() << " --width " << m.width() << " --stem " << nn::to_string(m.stem())
      << " --batch " << w.batch() << " --size " << w.image_size() << " --mode " << to_string(w.task()) << " --amp "
      << (w.precision() == train::Precision::kBFloat16 ? "bf16" : "fp32") << " --warmup " << w.warmup()
      << " --steps " << w.steps() << " --repeats " << w.repeats() << " --threads " << threads;
  return cmd.str();
}

double measure_peak_gflops(torch::ScalarType type, int64_t n) {
  torch::NoGradGuard no_grad;
  // Two ways to the same n x n x n product: torch::mm (MKL for fp32, which on AMD CPUs takes a
  // slower path than oneDNN) and a channels-last 1x1 convolution (oneDNN, as the models' layers).
  const auto a = torch::randn({n, n}).to(type), b = torch::randn({n, n}).to(type);
  const auto side = static_cast<int64_t>(std::sqrt(static_cast<double>(n)));
  const auto image = torch::randn({1, n, side, side}).to(type).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto kernel = torch::randn({n, n, 1, 1}).to(type).contiguous(torch::MemoryFormat::ChannelsLast);
  const std::vector<std::pair<double, std::function<void()>>> ways = {
      {2.0 * static_cast<double>(n) * n * n, [&] { torch::mm(a, b); }},
      {2.0 * static_cast<double>(n) * n * side * side, [&] { torch::conv2d(image, kernel); }}};
  double best = 0;
  for (const auto& [flops, run] : ways) {
    run();  // warm-up (and oneDNN's first-call set-up)
    for (int repeat = 0; repeat < 5; ++repeat) {
      const auto start = Clock::now();
      run();
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      best = std::max(best, flops / seconds / 1e9);
    }
  }
  return best;
}

Timing timing_from_json(const nlohmann::json& json) {
  Timing timing;
  timing.images_per_second = json.at("images_per_second").get<std::vector<double>>();
  timing.peak_rss_mb = json.value("peak_rss_mb", 0.0);
  if (json.contains("flops_per_item") && json["flops_per_item"].is_number()) {
    timing.flops_per_item = json["flops_per_item"].get<double>();
  }
  if (json.contains("compile_seconds") && json["compile_seconds"].is_number()) {
    timing.compile_seconds = json["compile_seconds"].get<double>();
  }
  if (json.contains("round_medians")) timing.round_medians = json["round_medians"].get<std::vector<double>>();
  return timing;
}

Timing measure_peer(const Workload& w, const std::string& python, const std::string& script, int threads,
                    const std::string& peer) {
  const auto command = peer_command(w, python, script, threads, peer);
  const auto json = run_json_command(command);
  try {
    return timing_from_json(json);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "the PyTorch peer printed no timings (", e.what(), "): ", command);
  }
}

}  // namespace splitshare::bench
