#include <splitshare/bench/throughput.h>

#include <splitshare/train/trainer.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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

Timing measure(const Workload& w) {
  torch::manual_seed(0);
  auto model = nn::make_classifier(w.model());
  const auto format = w.channels_last() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  model->to(w.device());
  if (w.channels_last()) train::to_channels_last(*model);
  auto images = torch::randn({w.batch(), w.model().in_channels(), w.image_size(), w.image_size()})
                    .to(w.device())
                    .contiguous(format);
  auto labels = torch::randint(0, w.model().num_classes(), {w.batch()}).to(w.device());
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  train::GradScaler scaler(train::GradScalerOptions().enabled(w.precision() == train::Precision::kFloat16));
  auto step = [&] {
    if (w.training()) {
      torch::Tensor loss;
      {
        train::AutocastGuard autocast(w.device(), w.precision());
        loss = nn::head_loss(model->forward(images), labels, nn::LossKind::kJoint);
      }
      optimizer.zero_grad();
      scaler.scale(loss).backward();
      scaler.step(optimizer);
      scaler.update();
    } else {
      torch::InferenceMode guard;
      train::AutocastGuard autocast(w.device(), w.precision());
      model->forward(images);
    }
  };
  // CUDA kernels run asynchronously: wait for them before reading the clock.
  auto sync = [&] {
    if (w.device().is_cuda()) torch::cuda::synchronize();
  };
  model->train(w.training());
  for (int64_t i = 0; i < w.warmup(); ++i) step();
  sync();
  Timing timing;
  for (int64_t r = 0; r < w.repeats(); ++r) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < w.steps(); ++i) step();
    sync();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    timing.images_per_second.push_back(static_cast<double>(w.batch() * w.steps()) / seconds);
  }
  return timing;
}

std::string peer_command(const Workload& w, const std::string& python, const std::string& script, int threads) {
  const auto& m = w.model();
  std::ostringstream cmd;
  cmd << shell_quote(python) << " " << shell_quote(script) << " --arch " << m.arch() << " --head "
      << nn::to_string(m.head().kind()) << " --splits " << m.head().splits() << " --k " << m.head().k()
      << " --classes " << m.num_classes() << " --channels " << m.in_channels() << " --width " << m.width()
      << " --stem " << nn::to_string(m.stem()) << " --batch " << w.batch() << " --size " << w.image_size()
      << " --mode " << (w.training() ? "train" : "infer") << (w.channels_last() ? " --channels-last" : "")
      << " --warmup " << w.warmup() << " --steps " << w.steps() << " --repeats " << w.repeats() << " --threads "
      << threads;
  return cmd.str();
}

Timing measure_peer(const Workload& w, const std::string& python, const std::string& script, int threads) {
  const auto command = peer_command(w, python, script, threads) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  TORCH_CHECK(pipe != nullptr, "could not start the PyTorch peer: ", command);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  TORCH_CHECK(status == 0, "the PyTorch peer failed (", command, "):\n", output);
  const auto brace = output.rfind("\n{");
  const auto json_text = output.substr(brace == std::string::npos ? 0 : brace + 1);
  Timing timing;
  try {
    timing.images_per_second = nlohmann::json::parse(json_text).at("images_per_second").get<std::vector<double>>();
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "could not read the PyTorch peer's output (", e.what(), "):\n", output);
  }
  return timing;
}

std::string format_table(const std::vector<Row>& rows) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-34s %16s %16s %8s\n", "workload (images/s, median [max])", "splitshare",
                "PyTorch eager", "ratio");
  out << line;
  for (const auto& r : rows) {
    char ours[64], peer[64] = "-", ratio[32] = "-";
    std::snprintf(ours, sizeof ours, "%.1f [%.1f]", r.ours.median(), r.ours.max());
    if (r.has_peer) {
      std::snprintf(peer, sizeof peer, "%.1f [%.1f]", r.peer.median(), r.peer.max());
      std::snprintf(ratio, sizeof ratio, "%.2fx", r.ours.median() / std::max(1e-9, r.peer.median()));
    }
    std::snprintf(line, sizeof line, "%-34s %16s %16s %8s\n", r.workload.name().c_str(), ours, peer, ratio);
    out << line;
  }
  return out.str();
}

nlohmann::json to_json(const std::vector<Row>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json row = {{"workload", r.workload.name()},
                          {"batch", r.workload.batch()},
                          {"image_size", r.workload.image_size()},
                          {"training", r.workload.training()},
                          {"ours", {{"images_per_second", r.ours.images_per_second},
                                    {"median", r.ours.median()}, {"min", r.ours.min()}, {"max", r.ours.max()}}}};
    if (r.has_peer) {
      row["pytorch_eager"] = {{"images_per_second", r.peer.images_per_second},
                              {"median", r.peer.median()}, {"min", r.peer.min()}, {"max", r.peer.max()}};
      row["ratio"] = r.ours.median() / std::max(1e-9, r.peer.median());
    }
    out.push_back(row);
  }
  return out;
}

}  // namespace splitshare::bench
