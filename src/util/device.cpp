#include <splitshare/util/device.h>

namespace splitshare::util {

torch::Device parse_device(const std::string& text) {
  if (text == "cpu") return torch::kCPU;
  TORCH_CHECK(text == "cuda" || text.rfind("cuda:", 0) == 0, "unknown device '", text,
              "': expected cpu, cuda or cuda:N");
  int64_t index = -1;
  if (text.size() > 5) {
    const auto digits = text.substr(5);
    TORCH_CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos && digits.size() < 6,
                "device '", text, "': the GPU index after 'cuda:' must be a number");
    index = std::stoll(digits);
  } else {
    TORCH_CHECK(text == "cuda", "device '", text, "': the GPU index after 'cuda:' is missing");
  }
  TORCH_CHECK(torch::cuda::is_available(), "device '", text,
              "': cuda requested but this libtorch has no CUDA support or sees no GPU (a CPU-only build, or "
              "CUDA_VISIBLE_DEVICES hides them); use --device cpu or a CUDA build of libtorch");
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  TORCH_CHECK(index < count, "device '", text, "': only ", count, " GPU(s) visible (cuda:0..cuda:", count - 1, ")");
  return index < 0 ? torch::Device(torch::kCUDA) : torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::Device device_for_rank(const torch::Device& device, int64_t local_rank) {
  if (!device.is_cuda() || device.has_index()) return device;
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  TORCH_CHECK(local_rank < count, "local rank ", local_rank, " needs cuda:", local_rank, " but only ", count,
              " GPU(s) are visible; start at most ", count, " processes per machine");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

torch::Tensor to_device(const torch::Tensor& tensor, const torch::Device& device) {
  if (!device.is_cuda() || tensor.device() == device) return tensor;
  auto source = tensor.device().is_cpu() && !tensor.is_pinned() ? tensor.pin_memory() : tensor;
  return source.to(device, /*non_blocking=*/true);
}

}  // namespace splitshare::util
