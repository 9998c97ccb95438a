#pragma once

// The c10d backends behind train::Distributed. The NCCL one needs libtorch's CUDA headers:
// it lives in backend_nccl_cuda.cpp, compiled only against a CUDA libtorch (and always in
// CI); backend_nccl_nocuda.cpp stands in for it in a CPU-only build and refuses clearly.

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstdint>

namespace splitshare::train::detail {

/// True in a build with backend_nccl_cuda.cpp.
bool nccl_backend_compiled();

/// A ProcessGroupNCCL over `store` whose collectives give up after `timeout`.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                                    int64_t world_size, std::chrono::milliseconds timeout);

}  // namespace splitshare::train::detail
