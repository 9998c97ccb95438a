// The reference evaluator of detail::OnnxGraph: each operator onnx.cpp and onnx_int8.cpp write, run with
// the aten operator of the same meaning (ONNX operator semantics, opset 13 and later).
#include "onnx_graph.h"

#include <functional>

namespace splitshare::train::detail {
namespace {

using Values = std::map<std::string, torch::Tensor>;

const torch::Tensor& value(const Values& values, const OnnxNode& node, size_t i) {
  TORCH_CHECK(i < node.inputs.size(), "ONNX graph: node ", node.name, " (", node.op, ") has no input ", i);
  const auto it = values.find(node.inputs[i]);
  TORCH_CHECK(it != values.end(), "ONNX graph: node ", node.name, " reads ", node.inputs[i],
              ", which no earlier node, input or initializer defines");
  return it->second;
}

std::vector<int64_t> ints_of(const torch::Tensor& t) {
  const auto c = t.to(torch::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// ONNX pads are [begin_h, begin_w, end_h, end_w]; aten takes symmetric [h, w].
std::vector<int64_t> symmetric_pads(const OnnxNode& node) {
  const auto& pads = node.attribute("pads").ints;
  TORCH_CHECK(pads.size() == 4 && pads[0] == pads[2] && pads[1] == pads[3], "ONNX graph: node ", node.name,
              " has asymmetric pads");
  return {pads[0], pads[1]};
}

torch::Tensor conv(const Values& v, const OnnxNode& n) {
  const auto bias = n.inputs.size() > 2 ? value(v, n, 2) : torch::Tensor();
  return torch::conv2d(value(v, n, 0), value(v, n, 1), bias, n.attribute("strides").ints, symmetric_pads(n),
                       n.attribute("dilations").ints, n.int_or("group", 1));
}

torch::Tensor gemm(const Values& v, const OnnxNode& n) {
  TORCH_CHECK(n.int_or("transA", 0) == 0, "ONNX graph: node ", n.name, ": transA is not evaluated");
  auto b = value(v, n, 1);
  if (n.int_or("transB", 0)) b = b.t();
  auto out = torch::mm(value(v, n, 0), b);
  return n.inputs.size() > 2 ? out + value(v, n, 2) : out;
}

torch::Tensor slice(const Values& v, const OnnxNode& n) {
  const auto starts = ints_of(value(v, n, 1)), ends = ints_of(value(v, n, 2)), axes = ints_of(value(v, n, 3));
  auto out = value(v, n, 0);
  for (size_t i = 0; i < axes.size(); ++i) out = out.slice(axes[i], starts[i], ends[i]);
  return out;
}

torch::Tensor unsqueeze(const Values& v, const OnnxNode& n) {
  auto out = value(v, n, 0);
  for (const auto axis : ints_of(value(v, n, 1))) out = out.unsqueeze(axis);
  return out;
}

torch::Tensor concat(const Values& v, const OnnxNode& n) {
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < n.inputs.size(); ++i) parts.push_back(value(v, n, i));
  return torch::cat(parts, n.attribute("axis").i);
}

torch::Tensor reduce(const Values& v, const OnnxNode& n, bool mean) {
  const auto axes = ints_of(value(v, n, 1));
  const bool keep = n.int_or("keepdims", 1) != 0;
  return mean ? value(v, n, 0).mean(axes, keep) : value(v, n, 0).sum(axes, keep);
}

// Reshape: a 0 in the shape keeps that input dimension (allowzero = 0), -1 is inferred.
torch::Tensor reshape(const Values& v, const OnnxNode& n) {
  const auto& x = value(v, n, 0);
  auto shape = ints_of(value(v, n, 1));
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) shape[i] = x.size(static_cast<int64_t>(i));
  }
  return x.reshape(shape);
}

torch::Tensor arg_max(const Values& v, const OnnxNode& n) {
  TORCH_CHECK(n.int_or("select_last_index", 0) == 0, "ONNX graph: node ", n.name, ": select_last_index is not evaluated");
  return value(v, n, 0).argmax(n.int_or("axis", 0), n.int_or("keepdims", 1) != 0);
}

// OneHot(indices, depth, values = [off, on]) along the last axis.
torch::Tensor one_hot(const Values& v, const OnnxNode& n) {
  TORCH_CHECK(n.int_or("axis", -1) == -1, "ONNX graph: node ", n.name, ": only axis -1 is evaluated");
  const auto depth = ints_of(value(v, n, 1)).at(0);
  const auto& values = value(v, n, 2);
  const auto hot = torch::one_hot(value(v, n, 0).to(torch::kLong), depth).to(values.scalar_type());
  return values[0] + hot * (values[1] - values[0]);
}

// The scale or zero point of (De)QuantizeLinear shaped to broadcast along `axis` of x: a scalar
// (per tensor) as it is, a 1-D tensor (per axis) as [1, ..., C, ..., 1].
torch::Tensor along_axis(const torch::Tensor& p, const torch::Tensor& x, const OnnxNode& n) {
  if (p.dim() == 0 || p.numel() == 1) return p.reshape({});
  auto axis = n.int_or("axis", 1);
  if (axis < 0) axis += x.dim();
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[static_cast<size_t>(axis)] = p.numel();
  return p.reshape(shape);
}

// QuantizeLinear: saturate(round_half_even(x / scale) + zero_point) in the zero point's type.
torch::Tensor quantize_linear(const Values& v, const OnnxNode& n) {
  const auto& x = value(v, n, 0);
  const auto& zero = value(v, n, 2);
  const bool unsigned8 = zero.scalar_type() == torch::kByte;
  TORCH_CHECK(unsigned8 || zero.scalar_type() == torch::kChar, "ONNX graph: node ", n.name,
              ": only uint8 and int8 QuantizeLinear are evaluated");
  const auto scale = along_axis(value(v, n, 1), x, n);
  const auto q = torch::round(x / scale) + along_axis(zero, x, n).to(torch::kFloat);
  return q.clamp(unsigned8 ? 0 : -128, unsigned8 ? 255 : 127).to(zero.scalar_type());
}

// DequantizeLinear: (x - zero_point) * scale, float32.
torch::Tensor dequantize_linear(const Values& v, const OnnxNode& n) {
  const auto& x = value(v, n, 0);
  const auto zero = n.inputs.size() > 2 ? along_axis(value(v, n, 2), x, n).to(torch::kFloat) : torch::zeros({});
  return (x.to(torch::kFloat) - zero) * along_axis(value(v, n, 1), x, n);
}

torch::Tensor run(const Values& v, const OnnxNode& n) {
  using Op = std::function<torch::Tensor(const Values&, const OnnxNode&)>;
  const std::map<std::string, Op> ops = {
      {"Conv", conv},
      {"Gemm", gemm},
      {"Slice", slice},
      {"Unsqueeze", unsqueeze},
      {"Concat", concat},
      {"Reshape", reshape},
      {"ArgMax", arg_max},
      {"OneHot", one_hot},
      {"QuantizeLinear", quantize_linear},
      {"DequantizeLinear", dequantize_linear},
      {"Transpose", [](const Values& v, const OnnxNode& n) { return value(v, n, 0).permute(n.attribute("perm").ints); }},
      {"LogSoftmax",
       [](const Values& v, const OnnxNode& n) { return torch::log_softmax(value(v, n, 0), n.int_or("axis", -1)); }},
      {"ReduceSum", [](const Values& v, const OnnxNode& n) { return reduce(v, n, false); }},
      {"Relu", [](const Values& v, const OnnxNode& n) { return torch::relu(value(v, n, 0)); }},
      {"Add", [](const Values& v, const OnnxNode& n) { return value(v, n, 0) + value(v, n, 1); }},
      {"Mul", [](const Values& v, const OnnxNode& n) { return value(v, n, 0) * value(v, n, 1); }},
      {"Softmax", [](const Values& v, const OnnxNode& n) { return torch::softmax(value(v, n, 0), n.int_or("axis", -1)); }},
      {"Flatten", [](const Values& v, const OnnxNode& n) { return value(v, n, 0).flatten(n.int_or("axis", 1)); }},
      {"GlobalAveragePool", [](const Values& v, const OnnxNode& n) { return value(v, n, 0).mean({2, 3}, true); }},
      {"MaxPool",
       [](const Values& v, const OnnxNode& n) {
         return torch::max_pool2d(value(v, n, 0), n.attribute("kernel_shape").ints, n.attribute("strides").ints,
                                  symmetric_pads(n));
       }},
  };
  const auto it = ops.find(n.op);
  TORCH_CHECK(it != ops.end(), "ONNX graph: the evaluator does not know operator ", n.op, " (node ", n.name, ")");
  return it->second(v, n);
}

}  // namespace

std::map<std::string, torch::Tensor> evaluate(const OnnxGraph& graph, const std::map<std::string, torch::Tensor>& inputs) {
  torch::NoGradGuard no_grad;
  Values values(inputs.begin(), inputs.end());
  for (const auto& input : graph.inputs) {
    TORCH_CHECK(values.count(input.name), "ONNX graph: input ", input.name, " was not given");
  }
  for (const auto& [name, t] : graph.initializers) values[name] = t;
  for (const auto& node : graph.nodes) values[node.outputs.at(0)] = run(values, node);
  std::map<std::string, torch::Tensor> out;
  for (const auto& output : graph.outputs) {
    const auto it = values.find(output.name);
    TORCH_CHECK(it != values.end(), "ONNX graph: no node writes the output ", output.name);
    out[output.name] = it->second;
  }
  return out;
}

}  // namespace splitshare::train::detail
