#pragma once

// The architectures, heads and randomised weights of the TorchScript and ONNX export tests.

#include <splitshare/nn/classifier.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/fit.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>

#include "support.h"
#include "tiny_models.h"

namespace splitshare::testing {

namespace sn = splitshare::nn;
namespace tr = splitshare::train;

// Absolute, float32: the brief's bound on logits of the exported file against the model's.
constexpr double kTolerance = 1e-4;

struct Case {
  std::string arch;
  sn::HeadOptions head;
  sn::Stem stem;
  int64_t width, size;
  std::string name() const {
    const auto& h = head;
    std::string kind = sn::to_string(h.kind());
    if (h.kind() == sn::HeadKind::kSSM) kind += h.last_plain() ? "-first" : "-all";
    return arch + "-" + kind;
  }
};

inline std::vector<sn::HeadOptions> heads() {
  const auto ssm = sn::HeadOptions().kind(sn::HeadKind::kSSM).splits(4);
  return {sn::HeadOptions().kind(sn::HeadKind::kLinear), sn::HeadOptions(ssm).last_plain(true),
          sn::HeadOptions(ssm).last_plain(false), sn::HeadOptions().kind(sn::HeadKind::kKFC).k(3)};
}

// Every architecture the brief names with every head; tiny widths and images.
inline std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto& head : heads()) {
    out.push_back({"resnet10", head, sn::Stem::kSmall, 8, 8});
    out.push_back({"resnet18", head, sn::Stem::kImageNet, 4, 32});
    out.push_back({"resnet50", head, sn::Stem::kSmall, 4, 8});
    out.push_back({"resnext50_32x4d", head, sn::Stem::kSmall, 16, 8});  // 32 groups of 1 channel
  }
  return out;
}

// Random weights, and BatchNorm statistics and affines far from the identity, so an unfolded
// or wrongly folded BatchNorm (backbone or SSM head) shows in the logits.
inline sn::Classifier randomised(const Case& c, uint64_t seed) {
  torch::manual_seed(seed);
  auto model = sn::make_classifier(
      sn::ClassifierOptions().arch(c.arch).num_classes(5).in_channels(3).stem(c.stem).width(c.width).head(c.head));
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.5, 0.5);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
  }
  for (auto& item : model->named_parameters()) {
    const auto& key = item.key();
    if (key.find("bn") == std::string::npos && key.find("downsample.1") == std::string::npos) continue;
    if (key.find("bias") != std::string::npos) {
      item.value().uniform_(-0.2, 0.2);
    } else {
      item.value().uniform_(0.5, 1.5);
    }
  }
  model->eval();
  return model;
}

// A gate with random, clearly non-zero weights for `model` (an untrained gate is the plain
// mean, which would hide a gate the export left out).
inline sn::Gate random_gate(const sn::ClassifierImpl& model, sn::GateInput input, int64_t hidden, bool hard,
                            uint64_t seed) {
  torch::manual_seed(seed);
  sn::Gate gate(sn::GateOptions(sn::head_count(model.options.head()), model.feature_dim(), model.options.num_classes())
                    .input(input)
                    .hidden(hidden)
                    .hard(hard));
  torch::NoGradGuard no_grad;
  // Scores of order 1: weights far from the mean, yet not so sharp that float rounding of the
  // features decides between heads.
  for (auto* fc : {gate->fc1.get(), gate->fc2.is_empty() ? nullptr : gate->fc2.get()}) {
    if (fc == nullptr) continue;
    fc->weight.normal_(0, 2.0 / std::sqrt(static_cast<double>(fc->weight.size(1))));
    fc->bias.normal_(0, 0.5);
  }
  return gate;
}

// A model case with a gate of each input, linear and with a hidden layer, soft and hard.
struct GateCase {
  Case model;
  sn::GateInput input;
  int64_t hidden;
  bool hard;
  std::string name() const {
    return model.name() + "-gate-" + sn::to_string(input) + (hidden ? "-mlp" : "-linear") + (hard ? "-hard" : "");
  }
};

inline std::vector<GateCase> gate_cases() {
  const auto h = heads();
  return {{{"resnet10", h[1], sn::Stem::kSmall, 8, 8}, sn::GateInput::kBoth, 0, false},
          {{"resnet18", h[2], sn::Stem::kImageNet, 4, 32}, sn::GateInput::kLogits, 16, true},
          {{"resnet50", h[3], sn::Stem::kSmall, 4, 8}, sn::GateInput::kFeatures, 8, false},
          {{"resnext50_32x4d", h[1], sn::Stem::kSmall, 16, 8}, sn::GateInput::kBoth, 0, true}};
}

inline sn::Classifier gated(const GateCase& c, uint64_t seed) {
  auto model = randomised(c.model, seed);
  model->set_gate(random_gate(*model, c.input, c.hidden, c.hard, seed + 100));
  model->eval();
  return model;
}

inline tr::CheckpointMetadata metadata_of(const sn::ClassifierOptions& options, int64_t size) {
  tr::CheckpointMetadata meta;
  meta.model = options;
  for (int64_t i = 0; i < options.num_classes(); ++i) meta.classes.push_back("class " + std::to_string(i));
  meta.preprocess.channels = options.in_channels();
  meta.preprocess.size = size;
  meta.preprocess.mean.assign(options.in_channels(), 0.5);
  meta.preprocess.std.assign(options.in_channels(), 0.25);
  return meta;
}

inline sn::HeadOutput eval_forward(sn::ClassifierImpl& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return model.forward(x);
}

inline void expect_matches(const torch::Tensor& logits, const torch::Tensor& head_logits, const sn::HeadOutput& want) {
  expect_close(logits, want.logits, kTolerance);
  expect_close(head_logits, torch::stack(want.head_logits), kTolerance);
}

// Whether the venv has onnx and onnxruntime (a failure where the build requires the venv).
inline bool have_onnx() {
  if (!have_python_torch()) return false;
  std::string output;
  const bool ok = run_command(std::string(python()) + " -c 'import onnx, onnxruntime'", &output) == 0;
  if (!ok && SPLITSHARE_PYTHON_REQUIRED) ADD_FAILURE() << "the venv has no onnx/onnxruntime (scripts/setup): " << output;
  return ok;
}

inline void write_floats(const std::string& path, const torch::Tensor& x) {
  const auto c = x.contiguous();
  write_file(path, std::string(static_cast<const char*>(c.data_ptr()), c.numel() * sizeof(float)));
}

inline torch::Tensor from_json(const nlohmann::json& values, const nlohmann::json& shape) {
  return torch::tensor(values.get<std::vector<float>>()).reshape(shape.get<std::vector<int64_t>>());
}

// Writes `specs` to DIR/NAME.json and `script` to DIR/NAME.py, runs the script with the
// project's Python on them and returns the JSON it prints after "RESULT " ({} after a
// reported failure).
inline nlohmann::json run_python_specs(const TempDir& dir, const std::string& name, const std::string& script,
                                       const nlohmann::json& specs) {
  write_file(dir.file(name + ".json"), specs.dump());
  write_file(dir.file(name + ".py"), script);
  std::string output;
  const int status = run_command(std::string(python()) + " " + dir.file(name + ".py") + " " + dir.file(name + ".json"),
                                 &output);
  EXPECT_EQ(status, 0) << output;
  const auto at = output.find("RESULT ");
  if (at == std::string::npos) {
    ADD_FAILURE() << output;
    return nlohmann::json::object();
  }
  return nlohmann::json::parse(output.substr(at + 7));
}

// resnet10 + SSM (1 channel, 16 px) trained 2 epochs on noise data in classes ant, bee, cat,
// into DIR/checkpoint.pt and DIR/best.pt; returns the class names.
inline std::vector<std::string> train_tiny_run(const TempDir& dir) {
  auto data = noise_data({"ant", "bee", "cat"});
  torch::manual_seed(4);
  auto model = sn::make_classifier(sn::ClassifierOptions().arch("resnet10").width(8).in_channels(1).stem(sn::Stem::kSmall)
                                       .num_classes(3).head(sn::HeadOptions().kind(sn::HeadKind::kSSM)));
  auto meta = metadata_of(model->options, 16);
  meta.classes = data.classes;
  tr::fit(model, data, tr::TrainOptions().epochs(2).batch_size(16).lr(0.1),
          tr::RunContext().out_dir(dir.path().string()).observer({}), meta);
  return data.classes;
}

}  // namespace splitshare::testing
