#include "uint8_pool.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

namespace splitshare::nn::detail {
namespace {

// out[c] = max(out[c], in[c]) over one pixel's channels: a loop the compiler vectorises.
inline void max_into(uint8_t* out, const uint8_t* in, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c) out[c] = std::max(out[c], in[c]);
}

}  // namespace

torch::Tensor max_pool_uint8(const torch::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  TORCH_CHECK(x.scalar_type() == torch::kByte && x.dim() == 4, "max_pool_uint8: expected uint8 [N, C, H, W], got ",
              x.scalar_type(), " ", x.sizes());
  TORCH_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel, "max_pool_uint8: kernel ", kernel,
              ", stride ", stride, ", padding ", padding, " do not describe a pooling");
  const auto n = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const auto out_h = (height + 2 * padding - kernel) / stride + 1, out_w = (width + 2 * padding - kernel) / stride + 1;
  TORCH_CHECK(out_h >= 1 && out_w >= 1, "max_pool_uint8: a ", height, "x", width, " input is smaller than the window");
  const auto in = x.contiguous(torch::MemoryFormat::ChannelsLast);
  auto out = torch::empty({n, channels, out_h, out_w}, x.options().memory_format(torch::MemoryFormat::ChannelsLast));
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  at::parallel_for(0, n * out_h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t image = row / out_h, oh = row % out_h;
      const int64_t h0 = std::max<int64_t>(oh * stride - padding, 0);
      const int64_t h1 = std::min(oh * stride - padding + kernel, height);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * stride - padding, 0);
        const int64_t w1 = std::min(ow * stride - padding + kernel, width);
        uint8_t* o = dst + ((image * out_h + oh) * out_w + ow) * channels;
        std::memset(o, 0, static_cast<size_t>(channels));  // uint8's least value: the max of the window is at least it
        for (int64_t h = h0; h < h1; ++h) {
          for (int64_t w = w0; w < w1; ++w) max_into(o, src + ((image * height + h) * width + w) * channels, channels);
        }
      }
    }
  });
  return out;
}

}  // namespace splitshare::nn::detail
