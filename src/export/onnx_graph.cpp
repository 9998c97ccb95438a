#include "onnx_graph.h"

#include <cstring>

namespace splitshare::train::detail {
namespace {

// onnx.proto's TensorProto.DataType and AttributeProto.AttributeType values we write.
constexpr int64_t kFloat = 1, kUInt8 = 2, kInt8 = 3, kInt32 = 6, kInt64 = 7;

int64_t data_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return kFloat;
    case torch::kByte:
      return kUInt8;
    case torch::kChar:
      return kInt8;
    case torch::kInt:
      return kInt32;
    case torch::kLong:
      return kInt64;
    default:
      TORCH_CHECK(false, "ONNX graph: no ONNX element type for ", type);
  }
}
constexpr int64_t kAttrFloat = 1, kAttrInt = 2, kAttrInts = 7;

// A protobuf message being written: fields appended in the wire format
// (tag = field << 3 | wire type; 0 = varint, 2 = length-delimited, 5 = 32-bit).
class Message {
 public:
  Message& varint(int field, int64_t value) {
    tag(field, 0);
    raw_varint(static_cast<uint64_t>(value));
    return *this;
  }
  Message& fixed32(int field, float value) {
    tag(field, 5);
    char bytes[4];
    std::memcpy(bytes, &value, 4);
    out_.append(bytes, 4);
    return *this;
  }
  Message& bytes(int field, const char* data, size_t size) {
    tag(field, 2);
    raw_varint(size);
    out_.append(data, size);
    return *this;
  }
  Message& text(int field, const std::string& value) { return bytes(field, value.data(), value.size()); }
  Message& message(int field, const Message& m) { return text(field, m.out_); }
  const std::string& data() const { return out_; }

 private:
  void tag(int field, int wire) { raw_varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

bool little_endian() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

Message tensor_proto(const std::string& name, const torch::Tensor& t) {
  Message m;
  for (const auto d : t.sizes()) m.varint(1, d);
  m.varint(2, data_type(t.scalar_type()));
  m.text(8, name);
  m.bytes(9, static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return m;
}

Message attribute_proto(const OnnxAttribute& a) {
  Message m;
  m.text(1, a.name);
  switch (a.kind) {
    case OnnxAttribute::Kind::kInt:
      m.varint(3, a.i).varint(20, kAttrInt);
      break;
    case OnnxAttribute::Kind::kInts:
      for (const auto v : a.ints) m.varint(8, v);
      m.varint(20, kAttrInts);
      break;
    case OnnxAttribute::Kind::kFloat:
      m.fixed32(2, a.f).varint(20, kAttrFloat);
      break;
  }
  return m;
}

Message node_proto(const OnnxNode& n) {
  Message m;
  for (const auto& i : n.inputs) m.text(1, i);
  for (const auto& o : n.outputs) m.text(2, o);
  m.text(3, n.name).text(4, n.op);
  for (const auto& a : n.attributes) m.message(5, attribute_proto(a));
  return m;
}

// ValueInfoProto { name, TypeProto { tensor_type { elem_type, shape { dim... } } } }.
Message value_proto(const OnnxValue& v) {
  Message shape;
  for (const auto& d : v.dims) {
    Message dim;
    if (d.param.empty()) {
      dim.varint(1, d.value);
    } else {
      dim.text(2, d.param);
    }
    shape.message(1, dim);
  }
  Message tensor;
  tensor.varint(1, kFloat).message(2, shape);
  Message type;
  type.message(1, tensor);
  Message m;
  m.text(1, v.name).message(2, type);
  return m;
}

Message graph_proto(const OnnxGraph& g) {
  Message m;
  for (const auto& n : g.nodes) m.message(1, node_proto(n));
  m.text(2, g.name);
  for (const auto& [name, t] : g.initializers) m.message(5, tensor_proto(name, t));
  for (const auto& v : g.inputs) m.message(11, value_proto(v));
  for (const auto& v : g.outputs) m.message(12, value_proto(v));
  return m;
}

}  // namespace

OnnxAttribute OnnxAttribute::integer(std::string name, int64_t value) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.i = value;
  return a;
}

OnnxAttribute OnnxAttribute::integers(std::string name, std::vector<int64_t> values) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.kind = Kind::kInts;
  a.ints = std::move(values);
  return a;
}

OnnxAttribute OnnxAttribute::real(std::string name, float value) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.kind = Kind::kFloat;
  a.f = value;
  return a;
}

const OnnxAttribute& OnnxNode::attribute(const std::string& key) const {
  for (const auto& a : attributes) {
    if (a.name == key) return a;
  }
  TORCH_CHECK(false, "ONNX graph: node ", name, " (", op, ") has no attribute ", key);
}

int64_t OnnxNode::int_or(const std::string& key, int64_t fallback) const {
  for (const auto& a : attributes) {
    if (a.name == key) return a.i;
  }
  return fallback;
}

const std::string& OnnxGraph::constant(const std::string& name, const torch::Tensor& value) {
  const auto type = value.scalar_type();
  TORCH_CHECK(type == torch::kFloat || type == torch::kLong || type == torch::kInt || type == torch::kChar ||
                  type == torch::kByte,
              "ONNX graph: initializer ", name, " has type ", type, " (float32, int64, int32, int8 or uint8 expected)");
  initializers.emplace_back(name, value.detach().to(torch::kCPU).contiguous().clone());
  return initializers.back().first;
}

std::string OnnxGraph::add(const std::string& op, const std::string& output, std::vector<std::string> node_inputs,
                           std::vector<OnnxAttribute> attributes) {
  OnnxNode node;
  node.op = op;
  node.name = output;
  node.inputs = std::move(node_inputs);
  node.outputs = {output};
  node.attributes = std::move(attributes);
  nodes.push_back(std::move(node));
  return output;
}

std::string serialize(const OnnxGraph& graph, const OnnxModelInfo& info) {
  TORCH_CHECK(little_endian(), "ONNX export: raw tensor data must be little-endian and this machine is not");
  Message opset;
  opset.text(1, "").varint(2, info.opset);
  Message model;
  model.varint(1, info.ir_version).text(2, info.producer_name).text(3, info.producer_version);
  if (!info.doc.empty()) model.text(6, info.doc);
  model.message(7, graph_proto(graph)).message(8, opset);
  for (const auto& [key, value] : info.metadata) {
    Message entry;
    entry.text(1, key).text(2, value);
    model.message(14, entry);
  }
  return model.data();
}

}  // namespace splitshare::train::detail
