#pragma once
// An ONNX graph as plain data, its protobuf serialisation and a reference evaluator on aten
// operators. libtorch has no ONNX exporter and we need only a dozen operators, so we write
// the protobuf wire format ourselves (onnx.proto's field numbers) rather than depend on
// protobuf. Internal to src/train/: export_onnx.cpp builds graphs, the evaluator checks them
// before they are written.

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace splitshare::train::detail {

/// A node attribute: an int, a list of ints or a float.
struct OnnxAttribute {
  enum class Kind { kInt, kInts, kFloat };
  std::string name;
  Kind kind = Kind::kInt;
  int64_t i = 0;
  std::vector<int64_t> ints;
  float f = 0;
  static OnnxAttribute integer(std::string name, int64_t value);
  static OnnxAttribute integers(std::string name, std::vector<int64_t> values);
  static OnnxAttribute real(std::string name, float value);
};

/// One operator of the default domain ("" = ai.onnx).
struct OnnxNode {
  std::string op, name;
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxAttribute> attributes;
  /// The attribute `name`; throws naming the node when it is missing.
  const OnnxAttribute& attribute(const std::string& name) const;
  /// The int attribute `name`, or `fallback` when absent.
  int64_t int_or(const std::string& name, int64_t fallback) const;
};

/// A dimension of a graph input or output: a fixed size, or a named symbol (`param`).
struct OnnxDim {
  int64_t value = -1;
  std::string param;
};

/// A float32 graph input or output.
struct OnnxValue {
  std::string name;
  std::vector<OnnxDim> dims;
};

/// Nodes in topological order, initializers (float32, int64, int32, int8 or uint8 CPU tensors) and the
/// graph's inputs and outputs.
struct OnnxGraph {
  std::string name = "splitshare";
  std::vector<OnnxNode> nodes;
  std::vector<std::pair<std::string, torch::Tensor>> initializers;
  std::vector<OnnxValue> inputs, outputs;

  /// Adds an initializer (copied to a contiguous CPU tensor) and returns its name.
  const std::string& constant(const std::string& name, const torch::Tensor& value);
  /// Appends node `op` named `output` with that single output; returns `output`.
  std::string add(const std::string& op, const std::string& output, std::vector<std::string> inputs,
                  std::vector<OnnxAttribute> attributes = {});
};

/// ModelProto fields around the graph.
struct OnnxModelInfo {
  int64_t opset = 17;
  int64_t ir_version = 8;
  std::string producer_name = "splitshare", producer_version, doc;
  std::vector<std::pair<std::string, std::string>> metadata;
};

/// The serialised ModelProto (what a .onnx file holds).
std::string serialize(const OnnxGraph& graph, const OnnxModelInfo& info);

/// Runs the graph with aten operators: graph inputs by name -> graph outputs by name.
/// Throws naming the operator for one it does not know.
std::map<std::string, torch::Tensor> evaluate(const OnnxGraph& graph, const std::map<std::string, torch::Tensor>& inputs);

}  // namespace splitshare::train::detail
