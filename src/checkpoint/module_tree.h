#pragma once
// A TorchScript module whose submodules mirror dotted tensor names ("layer1.0.conv1.weight"
// lives in submodule layer1 -> 0 -> conv1), so Python's state_dict() gives exactly those names:
// what checkpoints (checkpoint.cpp) and TorchScript exports (export.cpp) are built from.
// Internal to src/train/.

#include <torch/script.h>

#include <map>
#include <memory>
#include <string>

namespace splitshare::train::detail {

struct ModuleTree {
  /// `root_class` / `node_class`: the TorchScript class names of the root and its submodules.
  ModuleTree(const std::string& root_class, const std::string& node_class);

  /// The submodule at dotted `prefix` ("" = the root), made on first use.
  torch::jit::Module& module_for(const std::string& prefix);
  /// Registers `tensor` as it is (callers choose device, type and layout) under its dotted `name`.
  void add(const std::string& name, const torch::Tensor& tensor, bool is_buffer);

  std::shared_ptr<torch::jit::CompilationUnit> unit;
  torch::jit::Module root;

 private:
  std::string node_class_;
  std::map<std::string, torch::jit::Module> children_;
};

}  // namespace splitshare::train::detail
