#pragma once
// The int8 backbone of a quantized checkpoint as ONNX QuantizeLinear/DequantizeLinear (QDQ)
// operators around float ones, the form ONNX Runtime fuses into its int8 kernels (QLinearConv,
// QLinearAdd, uint8 MaxPool). Internal to src/export/: onnx.cpp builds the rest of the graph.

#include "onnx_graph.h"

#include <splitshare/nn/quantized.h>
#include <splitshare/nn/resnet.h>

#include <string>

namespace splitshare::train::detail {

/// Adds the int8 backbone of `model` (quantized) reading graph input "input" [N, C, H, W]
/// float32; returns the name of the pooled features [N, F] float32. Every activation is
/// quantized (uint8, per tensor) and dequantized where nn::QuantizedModel quantizes it; weights
/// are int8 per output channel (axis 0) and biases int32 with scale input scale x weight scale,
/// as ONNX Runtime's quantize_static writes them.
std::string int8_backbone(OnnxGraph& graph, const nn::QuantizedModel& model, const nn::ResNetOptions& net);

}  // namespace splitshare::train::detail
