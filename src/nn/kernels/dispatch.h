#pragma once

// Calls into PyTorch's operator registry by schema name, for the oneDNN kernels inductor uses
// (fused_conv.cpp, quantized_conv.cpp). Boxed calls: the operators' unboxed C++ signatures are
// internal to PyTorch and have changed between releases; their schemas are what inductor
// relies on.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <optional>

namespace splitshare::nn::dispatch {

/// The operator `name`.`overload` ("" = the default overload), or nullopt when this libtorch
/// does not register it.
inline std::optional<c10::OperatorHandle> find_op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchema({name, overload});
}

/// Calls `op` with `stack` (its arguments in schema order); returns its first result.
inline torch::Tensor call(const c10::OperatorHandle& op, torch::jit::Stack stack) {
  op.callBoxed(&stack);
  return stack.front().toTensor();
}

/// An empty `Scalar?[]` argument.
inline c10::IValue no_scalars() { return c10::IValue(c10::List<std::optional<c10::Scalar>>()); }

}  // namespace splitshare::nn::dispatch
