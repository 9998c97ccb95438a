#include <splitshare/data/loader.h>
#include <splitshare/util/device.h>

#include <torch/cuda.h>

namespace splitshare::data {

torch::TensorOptions batch_options(const LoaderOptions& options, torch::ScalarType dtype) {
  auto out = torch::TensorOptions().dtype(dtype).memory_format(options.channels_last() ? torch::MemoryFormat::ChannelsLast
                                                                                      : torch::MemoryFormat::Contiguous);
  // Page-locked memory comes from the CUDA host allocator: only where CUDA runs.
  if (options.pin_memory() && torch::cuda::is_available()) out = out.pinned_memory(true);
  return out;
}

torch::Tensor images_on(const Batch& batch, const torch::Device& device) {
  auto images = util::to_device(batch.images, device);
  if (images.scalar_type() != torch::kUInt8) return images;
  TORCH_CHECK(batch.scale.defined() && batch.shift.defined() && batch.scale.numel() == images.size(1) &&
                  batch.shift.numel() == images.size(1),
              "images_on: a uint8 batch of ", images.size(1), " channels needs a scale and shift per channel");
  const auto scale = util::to_device(batch.scale, device).view({1, -1, 1, 1});
  const auto shift = util::to_device(batch.shift, device).view({1, -1, 1, 1});
  // Two separate float operations, as the loaders' v * scale + shift: no fused multiply-add,
  // so the uint8 path gives the float path's values exactly.
  return images.to(torch::kFloat32).mul_(scale).add_(shift);
}

}  // namespace splitshare::data
