#include <splitshare/nn/classifier.h>

#include <sstream>

namespace splitshare::nn {

ClassifierImpl::ClassifierImpl(ClassifierOptions options_) : options(std::move(options_)) { reset(); }

void ClassifierImpl::reset() {
  TORCH_CHECK(options.num_classes() >= 1, "num_classes must be positive, got ", options.num_classes());
  auto backbone_options = resnet_options(options.arch())
                              .in_channels(options.in_channels())
                              .stem(options.stem())
                              .base_width(options.width())
                              .zero_init_residual(options.zero_init_residual());
  backbone = register_module("backbone", ResNet(backbone_options));
  head = make_head(backbone->feature_dim(), options.num_classes(), options.head());
  register_module("head", head.ptr());
  gate = nullptr;
  if (options.gate()) set_gate(Gate(*options.gate()));
}

void ClassifierImpl::set_gate(Gate new_gate) {
  TORCH_CHECK(new_gate, "set_gate: no gate given");
  const auto& g = new_gate->options;
  TORCH_CHECK(g.heads() == head_count(options.head()) && g.features() == feature_dim() &&
                  g.classes() == options.num_classes(),
              "gate built for ", g.heads(), " heads, ", g.features(), " features and ", g.classes(),
              " classes; the model has ", head_count(options.head()), " heads (", to_string(options.head().kind()),
              " head), ", feature_dim(), " features and ", options.num_classes(), " classes");
  options.gate(g);
  gate = named_children().contains("gate") ? replace_module("gate", new_gate) : register_module("gate", new_gate);
}

HeadOutput ClassifierImpl::run_head(const torch::Tensor& features) {
  auto out = head.forward<HeadOutput>(features);
  if (gate) {
    out.ungated = out.logits;
    out.logits = gate->forward(features, torch::stack(out.head_logits));
  }
  return out;
}

HeadOutput ClassifierImpl::forward(const torch::Tensor& images) { return run_head(backbone->forward(images)); }

torch::Tensor ClassifierImpl::forward_features(const torch::Tensor& images) {
  return backbone->forward_features(images);
}

HeadOutput ClassifierImpl::forward_head(const torch::Tensor& feature_map) {
  TORCH_CHECK(feature_map.dim() == 4, "forward_head: expected a feature map [N, C, H, W], got ", feature_map.sizes());
  return run_head(feature_map.mean({2, 3}));
}

int64_t head_count(const HeadOptions& options) {
  switch (options.kind()) {
    case HeadKind::kLinear: return 1;
    case HeadKind::kSSM: return options.splits();
    case HeadKind::kKFC: return options.k();
  }
  return 1;
}

Classifier make_classifier(const ClassifierOptions& options) { return Classifier(options); }

std::string export_name(const std::string& name) {
  for (const char* prefix : {"backbone.", "head."}) {
    const std::string p(prefix);
    if (name.compare(0, p.size(), p) == 0) return name.substr(p.size());
  }
  return name;
}

std::vector<std::pair<std::string, torch::Tensor>> named_state(ClassifierImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model.named_parameters()) out.emplace_back(export_name(item.key()), item.value());
  for (const auto& item : model.named_buffers()) out.emplace_back(export_name(item.key()), item.value());
  return out;
}

std::string StateMismatch::describe() const {
  std::ostringstream out;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    out << what << " (" << names.size() << "):";
    for (const auto& n : names) out << "\n  " << n;
    out << "\n";
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("shape or element type mismatches", wrong_shape);
  return out.str();
}

namespace {

// The element types a stored tensor may have: what copy_ converts to the model's own.
bool loadable(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: case torch::kDouble: case torch::kHalf: case torch::kBFloat16:
    case torch::kLong: case torch::kInt: case torch::kShort: case torch::kChar: case torch::kByte:
      return true;
    default:
      return false;
  }
}

}  // namespace

StateMismatch load_state(ClassifierImpl& model, const std::map<std::string, torch::Tensor>& state) {
  StateMismatch result;
  torch::NoGradGuard no_grad;
  std::map<std::string, bool> seen;
  for (auto& [name, tensor] : named_state(model)) {
    auto it = state.find(name);
    if (it == state.end()) {
      result.missing.push_back(name);
      continue;
    }
    seen[name] = true;
    if (it->second.sizes() != tensor.sizes()) {
      std::ostringstream msg;
      msg << name << ": expected " << tensor.sizes() << ", got " << it->second.sizes();
      result.wrong_shape.push_back(msg.str());
      continue;
    }
    if (!loadable(it->second.scalar_type())) {
      // An edited or corrupt archive: copy_ would fail without naming the tensor.
      result.wrong_shape.push_back(name + ": element type " + std::string(c10::toString(it->second.scalar_type())) +
                                   " is not a number type a model holds");
      continue;
    }
    tensor.copy_(it->second);
  }
  for (const auto& [name, _] : state) {
    if (!seen.count(name)) result.unexpected.push_back(name);
  }
  return result;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace splitshare::nn
