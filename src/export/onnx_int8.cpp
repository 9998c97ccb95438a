#include "onnx_int8.h"

namespace splitshare::train::detail {
namespace {

// x -> QuantizeLinear -> DequantizeLinear with `p`: the value int8 operators see; returns the
// dequantized name.
std::string qdq(OnnxGraph& g, const std::string& name, const std::string& x, const nn::QuantParams& p) {
  const auto scale = g.constant(name + ".scale", torch::scalar_tensor(p.scale, torch::kFloat));
  const auto zero = g.constant(name + ".zero_point", torch::scalar_tensor(p.zero_point, torch::kByte));
  const auto q = g.add("QuantizeLinear", name + ".quantized", {x, scale, zero});
  return g.add("DequantizeLinear", name + ".dequantized", {q, scale, zero});
}

// Weight int8 and bias int32 per output channel, dequantized into a float Conv.
std::string conv(OnnxGraph& g, const std::string& name, const nn::QuantizedConvWeight& w, const std::string& x) {
  const auto channels = w.int8.size(0);
  const auto axis0 = OnnxAttribute::integer("axis", 0);
  const auto scales = w.scales.to(torch::kFloat);
  const auto weight = g.add("DequantizeLinear", name + ".weight",
                            {g.constant(name + ".weight_quantized", w.int8), g.constant(name + ".weight_scale", scales),
                             g.constant(name + ".weight_zero_point", torch::zeros({channels}, torch::kChar))},
                            {axis0});
  const auto bias_scale = scales * static_cast<float>(w.input.scale);
  const auto bias_q = torch::round(w.bias / bias_scale).clamp(-1073741824.0, 1073741824.0).to(torch::kInt);
  const auto bias = g.add("DequantizeLinear", name + ".bias",
                          {g.constant(name + ".bias_quantized", bias_q), g.constant(name + ".bias_scale", bias_scale),
                           g.constant(name + ".bias_zero_point", torch::zeros({channels}, torch::kInt))},
                          {axis0});
  const auto& s = w.spec;
  return g.add("Conv", name, {x, weight, bias},
               {OnnxAttribute::integers("kernel_shape", {w.int8.size(2), w.int8.size(3)}),
                OnnxAttribute::integers("strides", s.stride),
                OnnxAttribute::integers("pads", {s.padding[0], s.padding[1], s.padding[0], s.padding[1]}),
                OnnxAttribute::integers("dilations", {1, 1}), OnnxAttribute::integer("group", s.groups)});
}

// One residual block on x (dequantized with the block's input parameters) -> its output, dequantized.
std::string block(OnnxGraph& g, const std::string& name, const nn::QuantizedModel& m, size_t index,
                  const std::string& x) {
  const auto& b = m.folded().blocks()[index];
  const auto& q = m.int8_blocks()[index];
  const auto& w = m.weights();
  const auto& p = m.params();
  const auto residual =
      b.has_downsample ? qdq(g, name + ".downsample", conv(g, name + ".downsample.0", w[q.downsample], x),
                             p[q.downsample_out])
                       : x;
  auto y = qdq(g, name + ".relu1", g.add("Relu", name + ".relu1", {conv(g, name + ".conv1", w[q.conv1], x)}),
               p[q.conv1_out]);
  if (b.bottleneck) {
    y = qdq(g, name + ".relu2", g.add("Relu", name + ".relu2", {conv(g, name + ".conv2", w[q.conv2], y)}),
            p[q.conv2_out]);
  }
  const auto last = b.bottleneck ? conv(g, name + ".conv3", w[q.conv3], y) : conv(g, name + ".conv2", w[q.conv2], y);
  const auto sum = g.add("Add", name + ".add", {qdq(g, last, last, p[q.last_out]), residual});
  return qdq(g, name, g.add("Relu", name, {sum}), p[q.out]);
}

}  // namespace

std::string int8_backbone(OnnxGraph& g, const nn::QuantizedModel& m, const nn::ResNetOptions& net) {
  TORCH_CHECK(m.quantized(), "ONNX export: the int8 model is not quantized");
  const auto& p = m.params();
  const auto input = qdq(g, "input", "input", p[0]);
  auto x = qdq(g, "relu", g.add("Relu", "relu", {conv(g, "conv1", m.weights()[0], input)}), p[1]);
  if (m.folded().imagenet_stem()) {
    // Re-quantized with the same parameters: ONNX Runtime then runs the pool on the bytes.
    x = qdq(g, "maxpool",
            g.add("MaxPool", "maxpool", {x},
                  {OnnxAttribute::integers("kernel_shape", {3, 3}), OnnxAttribute::integers("strides", {2, 2}),
                   OnnxAttribute::integers("pads", {1, 1, 1, 1})}),
            p[1]);
  }
  size_t index = 0;
  for (size_t stage = 0; stage < net.layers().size(); ++stage) {
    for (int64_t i = 0; i < net.layers()[stage]; ++i) {
      TORCH_CHECK(index < m.int8_blocks().size(), "ONNX export: the int8 model has fewer blocks than its options");
      x = block(g, "layer" + std::to_string(stage + 1) + "." + std::to_string(i), m, index++, x);
    }
  }
  TORCH_CHECK(index == m.int8_blocks().size(), "ONNX export: the int8 model has more blocks than its options");
  return g.add("Flatten", "features", {g.add("GlobalAveragePool", "avgpool", {x})},
               {OnnxAttribute::integer("axis", 1)});
}

}  // namespace splitshare::train::detail
