#pragma once

#include <torch/torch.h>

#include <string>

namespace splitshare::util {

/// "cpu", "cuda" or "cuda:N" -> the device. Throws naming the text when it is malformed,
/// when CUDA is asked for but this libtorch has no CUDA (or sees no GPU), and when N is
/// not below the number of visible GPUs.
torch::Device parse_device(const std::string& text);

/// The device of local rank `local_rank` in a data-parallel job on `device`: "cuda"
/// without an index becomes cuda:local_rank (one GPU per process, as torchrun does);
/// anything else is returned unchanged.
torch::Device device_for_rank(const torch::Device& device, int64_t local_rank);

/// `tensor` (a CPU batch) on `device`: for CUDA through page-locked memory with an
/// asynchronous copy (the next kernel on the stream waits for it); unchanged for the CPU.
torch::Tensor to_device(const torch::Tensor& tensor, const torch::Device& device);

}  // namespace splitshare::util
