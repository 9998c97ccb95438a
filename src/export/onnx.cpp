// ONNX export: the folded evaluation-mode model as a detail::OnnxGraph, checked with the
// reference evaluator and written with our own protobuf writer (onnx_graph.cpp).
#include <splitshare/export/export.h>

#include "export_detail.h"
#include "onnx_graph.h"
#include "onnx_int8.h"

#include <splitshare/util/build_info.h>
#include <splitshare/util/files.h>

#include <filesystem>
#include <optional>

namespace splitshare::train {
namespace {

using detail::OnnxAttribute;
using detail::OnnxGraph;

// The IR version that introduced each opset (onnx.helper.VERSION_TABLE): 17-18 -> 8,
// 19-20 -> 9, 21-22 -> 10, 23 -> 11, 24 -> 12.
int64_t ir_version(int64_t opset) {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return opset == 23 ? 11 : 12;
}

std::string conv(OnnxGraph& g, const std::string& name, const nn::InferenceModel::Conv& c, const std::string& input) {
  const auto& s = c.spec;
  const int64_t kh = c.weight.size(2), kw = c.weight.size(3);
  return g.add("Conv", name, {input, g.constant(name + ".weight", c.weight), g.constant(name + ".bias", c.bias)},
               {OnnxAttribute::integers("kernel_shape", {kh, kw}), OnnxAttribute::integers("strides", s.stride),
                OnnxAttribute::integers("pads", {s.padding[0], s.padding[1], s.padding[0], s.padding[1]}),
                OnnxAttribute::integers("dilations", {1, 1}), OnnxAttribute::integer("group", s.groups)});
}

// input [N, C, H, W] -> "features" [N, F].
std::string backbone(OnnxGraph& g, const nn::InferenceModel& folded, const nn::ResNetOptions& net) {
  auto x = g.add("Relu", "relu", {conv(g, "conv1", folded.stem(), "input")});
  if (folded.imagenet_stem()) {
    x = g.add("MaxPool", "maxpool", {x},
              {OnnxAttribute::integers("kernel_shape", {3, 3}), OnnxAttribute::integers("strides", {2, 2}),
               OnnxAttribute::integers("pads", {1, 1, 1, 1})});
  }
  const auto& blocks = folded.blocks();
  size_t index = 0;
  for (size_t stage = 0; stage < net.layers().size(); ++stage) {
    for (int64_t i = 0; i < net.layers()[stage]; ++i) {
      TORCH_CHECK(index < blocks.size(), "ONNX export: the folded model has fewer blocks than its options");
      const auto& b = blocks[index++];
      const auto name = "layer" + std::to_string(stage + 1) + "." + std::to_string(i);
      const auto residual = b.has_downsample ? conv(g, name + ".downsample.0", b.downsample, x) : x;
      auto y = g.add("Relu", name + ".relu1", {conv(g, name + ".conv1", b.conv1, x)});
      if (b.bottleneck) y = g.add("Relu", name + ".relu2", {conv(g, name + ".conv2", b.conv2, y)});
      const auto last = b.bottleneck ? conv(g, name + ".conv3", b.conv3, y) : conv(g, name + ".conv2", b.conv2, y);
      x = g.add("Relu", name, {g.add("Add", name + ".add", {last, residual})});
    }
  }
  TORCH_CHECK(index == blocks.size(), "ONNX export: the folded model has more blocks than its options");
  return g.add("Flatten", "features", {g.add("GlobalAveragePool", "avgpool", {x})},
               {OnnxAttribute::integer("axis", 1)});
}

torch::Tensor longs(std::vector<int64_t> values) { return torch::tensor(values, torch::kLong); }

// "features" [N, F] -> `combined` [N, K] (the heads' mean or sum), "head_logits" [S, N, K].
void head(OnnxGraph& g, const nn::InferenceModel& folded, bool linear_head, const std::string& features,
          int64_t feature_width, const std::string& combined) {
  const auto& parts = folded.head();
  const auto axis0 = g.constant("axes.0", longs({0}));
  std::vector<std::string> heads;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& p = parts[i];
    const auto fc = linear_head ? std::string("fc") : "fc." + std::to_string(i);
    const auto split = "split." + std::to_string(i);
    auto x = features;
    if (p.width < feature_width) {
      x = g.add("Slice", split, {x, g.constant(split + ".starts", longs({0})),
                                 g.constant(split + ".ends", longs({p.width})), g.constant(split + ".axes", longs({1}))});
    }
    if (p.scale.defined()) {
      const auto bn = "bn." + std::to_string(i);
      x = g.add("Mul", bn + ".mul", {x, g.constant(bn + ".scale", p.scale)});
      x = g.add("Relu", bn, {g.add("Add", bn + ".add", {x, g.constant(bn + ".shift", p.shift)})});
    }
    x = g.add("Gemm", fc, {x, g.constant(fc + ".weight", p.weight), g.constant(fc + ".bias", p.bias)},
              {OnnxAttribute::integer("transB", 1)});
    heads.push_back(g.add("Unsqueeze", fc + ".unsqueeze", {x, axis0}));
  }
  g.add("Concat", "head_logits", heads, {OnnxAttribute::integer("axis", 0)});
  if (folded.head_scale() == 1.0) {
    g.add("ReduceSum", combined, {"head_logits", axis0}, {OnnxAttribute::integer("keepdims", 0)});
    return;
  }
  const auto sum = g.add("ReduceSum", "head_sum", {"head_logits", axis0}, {OnnxAttribute::integer("keepdims", 0)});
  g.add("Mul", combined, {sum, g.constant("head_scale", torch::tensor({static_cast<float>(folded.head_scale())}))});
}

// The gate (nn::GateImpl::forward): "features" [N, F], "head_logits" [S, N, K] -> "logits" [N, K].
void gate(OnnxGraph& g, const nn::GateImpl& gate, const std::string& features) {
  const auto& o = gate.options;
  auto input = features;
  if (o.input() != nn::GateInput::kFeatures) {
    // [S, N, K] -> [N, S*K]: each head's log-probabilities side by side.
    auto x = g.add("LogSoftmax", "gate.log_softmax", {"head_logits"}, {OnnxAttribute::integer("axis", -1)});
    x = g.add("Transpose", "gate.transpose", {x}, {OnnxAttribute::integers("perm", {1, 0, 2})});
    x = g.add("Reshape", "gate.log_probs", {x, g.constant("gate.log_probs.shape", longs({0, -1}))});
    input = o.input() == nn::GateInput::kLogits
                ? x
                : g.add("Concat", "gate.input", {features, x}, {OnnxAttribute::integer("axis", 1)});
  }
  auto linear = [&](const std::string& name, const torch::nn::Linear& fc, const std::string& x) {
    return g.add("Gemm", name, {x, g.constant(name + ".weight", fc->weight), g.constant(name + ".bias", fc->bias)},
                 {OnnxAttribute::integer("transB", 1)});
  };
  auto scores = linear("gate.fc1", gate.fc1, input);
  if (o.hidden() > 0) scores = linear("gate.fc2", gate.fc2, g.add("Relu", "gate.relu", {scores}));
  auto weights = g.add("Softmax", "gate.softmax", {scores}, {OnnxAttribute::integer("axis", 1)});
  if (o.hard()) {
    const auto choice = g.add("ArgMax", "gate.choice", {weights},
                              {OnnxAttribute::integer("axis", 1), OnnxAttribute::integer("keepdims", 0)});
    weights = g.add("OneHot", "gate.one_hot",
                    {choice, g.constant("gate.heads", longs({o.heads()})),
                     g.constant("gate.off_on", torch::tensor({0.0f, 1.0f}))},
                    {OnnxAttribute::integer("axis", -1)});
  }
  // [N, S] -> [S, N, 1], times head_logits [S, N, K], summed over the heads.
  auto w = g.add("Transpose", "gate.weights", {weights}, {OnnxAttribute::integers("perm", {1, 0})});
  w = g.add("Unsqueeze", "gate.weights3", {w, g.constant("gate.axes.2", longs({2}))});
  g.add("ReduceSum", "logits", {g.add("Mul", "gate.weighted", {w, "head_logits"}), g.constant("gate.axes.0", longs({0}))},
        {OnnxAttribute::integer("keepdims", 0)});
}

// The float graph, or with `int8` the QDQ graph of its backbone (`folded` is then int8->folded()).
OnnxGraph build_graph(const nn::ClassifierImpl& model, const nn::InferenceModel& folded, const OnnxOptions& options,
                      const nn::QuantizedModel* int8 = nullptr) {
  OnnxGraph g;
  const auto& net = model.backbone->options;
  const auto features = int8 ? detail::int8_backbone(g, *int8, net) : backbone(g, folded, net);
  const auto& last = folded.blocks().back();
  const auto feature_width = (last.bottleneck ? last.conv3 : last.conv2).weight.size(0);
  const bool gated = folded.gate() != nullptr;
  head(g, folded, model.options.head().kind() == nn::HeadKind::kLinear, features, feature_width,
       gated ? "ungated" : "logits");
  if (gated) gate(g, *folded.gate(), features);
  detail::OnnxDim batch{options.fixed_batch(), options.fixed_batch() > 0 ? "" : "batch"};
  const auto channels = folded.stem().weight.size(1) * folded.stem().spec.groups;
  const auto classes = folded.head().front().weight.size(0);
  const auto splits = static_cast<int64_t>(folded.head().size());
  g.inputs = {{"input", {batch, {channels, ""}, {-1, "height"}, {-1, "width"}}}};
  g.outputs = {{"logits", {batch, {classes, ""}}}, {"head_logits", {{splits, ""}, batch, {classes, ""}}}};
  return g;
}

detail::OnnxModelInfo model_info(const CheckpointMetadata& metadata, const OnnxOptions& options,
                                 const std::optional<QuantizationRecord>& quantization = std::nullopt) {
  detail::OnnxModelInfo info;
  info.opset = options.opset();
  info.ir_version = ir_version(options.opset());
  info.producer_version = build_info().splitshare;
  info.doc = "splitshare " + metadata.model.arch() + " + " + nn::to_string(metadata.model.head().kind()) +
             " head: input [N, C, H, W] normalised as metadata 'preprocess'; outputs logits [N, K] and "
             "head_logits [S, N, K]";
  auto json = export_metadata(metadata, kOnnxFormat);
  nlohmann::json head_json;
  for (const auto* key : {"head", "splits", "k", "last_plain", "reduction"}) head_json[key] = json[key];
  info.metadata = {{"splitshare", json.dump()},
                   {"classes", json["classes"].dump()},
                   {"preprocess", json["preprocess"].dump()},
                   {"head", head_json.dump()},
                   {"outputs", json["outputs"].dump()}};
  if (quantization) {
    info.doc += "; int8 backbone as QuantizeLinear/DequantizeLinear pairs (metadata 'quantization')";
    info.metadata.emplace_back("quantization", to_json(*quantization).dump());
  }
  return info;
}

void check_options(const OnnxOptions& options) {
  TORCH_CHECK(options.opset() >= kOnnxMinOpset && options.opset() <= kOnnxMaxOpset, "ONNX export: --opset ",
              options.opset(), " is not supported (expected ", kOnnxMinOpset, " to ", kOnnxMaxOpset, ")");
  TORCH_CHECK(options.fixed_batch() >= 0, "ONNX export: --fixed-batch ", options.fixed_batch(),
              " must be a positive batch size (0 in OnnxOptions: a dynamic batch)");
}

}  // namespace

std::string onnx_model(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const OnnxOptions& options) {
  check_options(options);
  const auto folded = detail::dense_fold(model);
  return detail::serialize(build_graph(model, folded, options), model_info(metadata, options));
}

namespace {

// Checks `graph` against `reference` (the float or the int8 model) and writes it.
ExportSummary write_checked(const OnnxGraph& graph, const nn::InferenceModel& folded, const nn::Predictor& reference,
                            double tolerance, const detail::OnnxModelInfo& info, const CheckpointMetadata& metadata,
                            const std::string& out, const OnnxOptions& options) {
  ExportSummary summary;
  summary.tensors = static_cast<int64_t>(graph.initializers.size());
  if (options.verify()) {
    auto images = detail::verify_images(folded, metadata, options.seed());
    if (options.fixed_batch() > 0) images = images.narrow(0, 0, 1).expand({options.fixed_batch(), -1, -1, -1}).contiguous();
    const auto got = detail::evaluate(graph, {{"input", images}});
    summary.max_difference = detail::difference_from_folded(reference, images, got.at("logits"), got.at("head_logits"),
                                                            "ONNX export: the graph", tolerance);
    summary.image_size = images.size(2);
  }
  const std::filesystem::path target(out);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  util::write_file_atomic(out, detail::serialize(graph, info));
  return summary;
}

}  // namespace

ExportSummary export_onnx(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const std::string& out,
                          const OnnxOptions& options) {
  check_options(options);
  const auto folded = detail::dense_fold(model);
  return write_checked(build_graph(model, folded, options), folded, folded, 1e-3, model_info(metadata, options),
                       metadata, out, options);
}

ExportSummary export_onnx(const std::string& checkpoint, const std::string& out, const OnnxOptions& options) {
  check_options(options);
  auto loaded = detail::load_for_export(checkpoint, out, "ONNX export");
  if (!loaded.quantization) return export_onnx(*loaded.model, loaded.metadata, out, options);
  const auto predictor = make_predictor(loaded);
  const auto& int8 = dynamic_cast<const nn::QuantizedModel&>(*predictor);
  // The graph rounds each block's last convolution to uint8 before the sum (ONNX Runtime's
  // int8 Add takes uint8 inputs) where oneDNN sums in int32: one more rounding per block,
  // 1-4 % of the largest logit on the tests' random models; a wiring error gives ~100 %.
  constexpr double kInt8Tolerance = 0.1;
  return write_checked(build_graph(*loaded.model, int8.folded(), options, &int8), int8.folded(), int8,
                       kInt8Tolerance, model_info(loaded.metadata, options, loaded.quantization), loaded.metadata,
                       out, options);
}

}  // namespace splitshare::train
