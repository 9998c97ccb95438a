#include <splitshare/export/export.h>

#include "export_detail.h"
#include "../checkpoint/module_tree.h"

#include <splitshare/nn/inference.h>
#include <splitshare/util/files.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <map>
#include <sstream>
#include <vector>

namespace splitshare::train {
namespace {

using detail::ModuleTree;

// Plain float32 NCHW copies: the export owns its tensors and runs with standard aten ops.
torch::Tensor plain(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat).contiguous().clone(); }

// TorchScript for the module at dotted `path` ("layer1.0.conv1" ->
// getattr(self.layer1, "0").conv1): numeric names are not identifiers.
std::string access(const std::string& path) {
  std::string out = "self";
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '.')) {
    if (std::isdigit(static_cast<unsigned char>(part[0]))) {
      out = "getattr(" + out + ", \"" + part + "\")";
    } else {
      out += "." + part;
    }
  }
  return out;
}

std::string ints(const std::vector<int64_t>& values) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << "]";
  return out.str();
}

// Registers a folded convolution as `name`.weight / .bias and returns the aten call on `input`.
std::string conv(ModuleTree& tree, const std::string& name, const nn::InferenceModel::Conv& c,
                 const std::string& input) {
  tree.add(name + ".weight", plain(c.weight), false);
  tree.add(name + ".bias", plain(c.bias), false);
  const auto m = access(name);
  return "torch.conv2d(" + input + ", " + m + ".weight, " + m + ".bias, " + ints(c.spec.stride) + ", " +
         ints(c.spec.padding) + ", [1, 1], " + std::to_string(c.spec.groups) + ")";
}

// The backbone's lines of forward: x [N, C, H, W] -> f [N, F].
void write_backbone(ModuleTree& tree, const nn::InferenceModel& folded, const nn::ResNetOptions& net,
                    std::ostream& src) {
  src << "    x = torch.relu(" << conv(tree, "conv1", folded.stem(), "x") << ")\n";
  if (folded.imagenet_stem()) src << "    x = torch.max_pool2d(x, [3, 3], [2, 2], [1, 1])\n";
  const auto& blocks = folded.blocks();
  size_t index = 0;
  for (size_t stage = 0; stage < net.layers().size(); ++stage) {
    for (int64_t i = 0; i < net.layers()[stage]; ++i) {
      TORCH_CHECK(index < blocks.size(), "torchscript export: the folded model has fewer blocks than its options");
      const auto& b = blocks[index++];
      const auto name = "layer" + std::to_string(stage + 1) + "." + std::to_string(i);
      src << "    r = " << (b.has_downsample ? conv(tree, name + ".downsample.0", b.downsample, "x") : "x") << "\n";
      src << "    y = torch.relu(" << conv(tree, name + ".conv1", b.conv1, "x") << ")\n";
      if (b.bottleneck) src << "    y = torch.relu(" << conv(tree, name + ".conv2", b.conv2, "y") << ")\n";
      const auto last = b.bottleneck ? conv(tree, name + ".conv3", b.conv3, "y") : conv(tree, name + ".conv2", b.conv2, "y");
      src << "    x = torch.relu(" << last << " + r)\n";
    }
  }
  TORCH_CHECK(index == blocks.size(), "torchscript export: the folded model has more blocks than its options");
  src << "    f = x.mean([2, 3])\n";
}

// The gate's lines (nn::GateImpl::forward): f [N, F], head_logits [S, N, K] -> logits [N, K].
void write_gate(ModuleTree& tree, const nn::GateImpl& gate, std::ostream& src) {
  const auto& o = gate.options;
  const std::string log_probs = "torch.log_softmax(head_logits, -1).permute([1, 0, 2]).reshape([f.size(0), -1])";
  const std::string input = o.input() == nn::GateInput::kFeatures ? "f"
                            : o.input() == nn::GateInput::kLogits ? log_probs
                                                                  : "torch.cat([f, " + log_probs + "], 1)";
  auto linear = [&](const std::string& name, const torch::nn::Linear& fc, const std::string& x) {
    tree.add(name + ".weight", plain(fc->weight), false);
    tree.add(name + ".bias", plain(fc->bias), false);
    return "torch.addmm(self." + name + ".bias, " + x + ", self." + name + ".weight.t())";
  };
  src << "    s = " << linear("gate.fc1", gate.fc1, input) << "\n";
  if (o.hidden() > 0) src << "    s = " << linear("gate.fc2", gate.fc2, "torch.relu(s)") << "\n";
  src << "    w = torch.softmax(s, 1)\n";
  if (o.hard()) src << "    w = torch.zeros_like(w).scatter_(1, w.argmax(1, keepdim=True), 1.0)\n";
  src << "    logits = (w.t().unsqueeze(-1) * head_logits).sum(0)\n";
}

// The head's lines: f [N, F] -> return (logits [N, K], head_logits [S, N, K]).
void write_head(ModuleTree& tree, const nn::InferenceModel& folded, bool linear_head, std::ostream& src) {
  const auto& parts = folded.head();
  std::string heads;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& p = parts[i];
    const auto fc = linear_head ? std::string("fc") : "fc." + std::to_string(i);
    tree.add(fc + ".weight", plain(p.weight), false);
    tree.add(fc + ".bias", plain(p.bias), false);
    std::string input = "f.narrow(1, 0, " + std::to_string(p.width) + ")";
    if (p.scale.defined()) {
      const auto bn = "bn." + std::to_string(i);
      tree.add(bn + ".scale", plain(p.scale), true);
      tree.add(bn + ".shift", plain(p.shift), true);
      input = "torch.relu(torch.addcmul(" + access(bn) + ".shift, " + input + ", " + access(bn) + ".scale))";
    }
    src << "    h" << i << " = torch.addmm(" << access(fc) << ".bias, " << input << ", " << access(fc) << ".weight.t())\n";
    heads += (i ? ", h" : "h") + std::to_string(i);
  }
  src << "    head_logits = torch.stack([" << heads << "])\n";
  src << "    logits = head_logits.sum(0)\n";
  if (folded.head_scale() != 1.0) {
    src << "    logits = logits * " << std::setprecision(std::numeric_limits<double>::max_digits10)
        << folded.head_scale() << "\n";
  }
  if (folded.gate()) write_gate(tree, *folded.gate(), src);
  src << "    return logits, head_logits\n";
}

torch::jit::Module build_module(const nn::ClassifierImpl& model, const nn::InferenceModel& folded,
                                const CheckpointMetadata& metadata) {
  ModuleTree tree("__torch__.splitshare.Export", "__torch__.splitshare.ExportNode");
  std::ostringstream src;
  src << "def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:\n";
  write_backbone(tree, folded, model.backbone->options, src);
  write_head(tree, folded, model.options.head().kind() == nn::HeadKind::kLinear, src);
  c10::List<std::string> classes;
  for (const auto& name : metadata.classes) classes.push_back(name);
  tree.root.register_attribute("classes", c10::ListType::ofStrings(), classes);
  tree.root.define(src.str());
  return tree.root;
}

// Runs the module and the folded model on the same random images; returns the largest difference.
double check_module(torch::jit::Module& module, const nn::InferenceModel& folded, const CheckpointMetadata& metadata,
                    const ExportOptions& options) {
  const auto images = detail::verify_images(folded, metadata, options.seed());
  torch::NoGradGuard no_grad;
  auto got = module.forward({images}).toTuple();
  return detail::difference_from_folded(folded, images, got->elements()[0].toTensor(), got->elements()[1].toTensor(),
                                        "torchscript export: the exported module");
}

}  // namespace

nlohmann::json export_metadata(const CheckpointMetadata& metadata, const std::string& format) {
  auto json = to_json(metadata);
  json["format"] = format;
  json["outputs"] = {{"logits", metadata.model.gate() ? "[N, K] gated logits (the head-selection gate), as predict"
                                                     : "[N, K] combined logits, as predict"},
                     {"head_logits", "[S, N, K] logits of each sub-classifier (S = 1 for a linear head)"}};
  json["folded_batch_norm"] = true;
  return json;
}

torch::jit::Module torchscript_module(nn::ClassifierImpl& model, const CheckpointMetadata& metadata) {
  return build_module(model, detail::dense_fold(model), metadata);
}

ExportSummary export_torchscript(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const std::string& out,
                                 const ExportOptions& options) {
  const auto folded = detail::dense_fold(model);
  auto module = build_module(model, folded, metadata);
  ExportSummary summary;
  summary.tensors = static_cast<int64_t>(module.named_parameters(true).size() + module.named_buffers(true).size());
  if (options.verify()) {
    summary.max_difference = check_module(module, folded, metadata, options);
    summary.image_size = detail::verify_side(metadata);
  }
  const std::filesystem::path target(out);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  torch::jit::ExtraFilesMap extra{{kExportMetadataFile, export_metadata(metadata).dump(2)}};
  std::ostringstream archive;
  module.save(archive, extra);
  util::write_file_atomic(out, archive.str());
  return summary;
}

ExportSummary export_torchscript(const std::string& checkpoint, const std::string& out, const ExportOptions& options) {
  auto loaded = detail::load_for_export(checkpoint, out, "torchscript export");
  TORCH_CHECK(!loaded.quantization, "torchscript export: ", checkpoint, " is an int8 checkpoint (splitshare quantize) "
              "and TorchScript export writes float models: export it as ONNX (--out FILE.onnx) for its int8 form, "
              "or export the float checkpoint it was quantized from");
  return export_torchscript(*loaded.model, loaded.metadata, out, options);
}

namespace detail {

nn::InferenceModel dense_fold(nn::ClassifierImpl& model) {
  torch::NoGradGuard no_grad;
  return nn::InferenceModel(model, nn::InferenceOptions().mkldnn(false).channels_last(false));
}

int64_t verify_side(const CheckpointMetadata& metadata) {
  const auto& p = metadata.preprocess;
  if (p.crop) return *p.crop;
  if (p.size) return *p.size;
  return metadata.model.stem() == nn::Stem::kImageNet ? 224 : 32;
}

torch::Tensor verify_images(const nn::InferenceModel& folded, const CheckpointMetadata& metadata, uint64_t seed) {
  const auto side = verify_side(metadata);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto channels = folded.stem().weight.size(1) * folded.stem().spec.groups;
  return torch::randn({2, channels, side, side}, generator, torch::TensorOptions());
}

double difference_from_folded(const nn::Predictor& folded, const torch::Tensor& images, const torch::Tensor& logits,
                              const torch::Tensor& head_logits, const std::string& what, double tolerance) {
  torch::NoGradGuard no_grad;
  const auto expected = folded.forward(images);
  const auto expected_heads = torch::stack(expected.head_logits).to(torch::kCPU);
  TORCH_CHECK(head_logits.sizes() == expected_heads.sizes(), what, " gives head_logits of shape ", head_logits.sizes(),
              ", expected ", expected_heads.sizes());
  const auto expected_logits = expected.logits.to(torch::kCPU);
  const double diff = std::max((logits - expected_logits).abs().max().item<double>(),
                               (head_logits - expected_heads).abs().max().item<double>());
  const double scale = std::max(1.0, expected_heads.abs().max().item<double>());
  TORCH_CHECK(diff <= tolerance * scale, what, "'s logits differ from the model's by ", diff, " on random ",
              images.size(2), "x", images.size(3), " images (a bug: please report it)");
  return diff;
}

LoadedCheckpoint load_for_export(const std::string& checkpoint, const std::string& out, const std::string& what) {
  TORCH_CHECK(!out.empty(), what, ": the output path is empty");
  std::error_code ec;
  TORCH_CHECK(!std::filesystem::equivalent(checkpoint, out, ec), what, ": the output ", out, " is the checkpoint ",
              checkpoint, " itself; choose another file");
  auto loaded = load_checkpoint(checkpoint);
  loaded.model->eval();
  return loaded;
}

}  // namespace detail

}  // namespace splitshare::train
