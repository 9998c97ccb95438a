#include "module_tree.h"

namespace splitshare::train::detail {

ModuleTree::ModuleTree(const std::string& root_class, const std::string& node_class)
    : unit(std::make_shared<torch::jit::CompilationUnit>()),
      root(c10::QualifiedName(root_class), unit, true),
      node_class_(node_class) {}

torch::jit::Module& ModuleTree::module_for(const std::string& prefix) {
  if (prefix.empty()) return root;
  auto it = children_.find(prefix);
  if (it != children_.end()) return it->second;
  const auto dot = prefix.rfind('.');
  auto& parent = module_for(dot == std::string::npos ? "" : prefix.substr(0, dot));
  const std::string leaf = dot == std::string::npos ? prefix : prefix.substr(dot + 1);
  torch::jit::Module child(c10::QualifiedName(node_class_), unit, true);
  parent.register_module(leaf, child);
  return children_.emplace(prefix, child).first->second;
}

void ModuleTree::add(const std::string& name, const torch::Tensor& tensor, bool is_buffer) {
  const auto dot = name.rfind('.');
  auto& owner = module_for(dot == std::string::npos ? "" : name.substr(0, dot));
  owner.register_parameter(dot == std::string::npos ? name : name.substr(dot + 1), tensor, is_buffer);
}

}  // namespace splitshare::train::detail
