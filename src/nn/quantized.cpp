#include <splitshare/nn/quantized.h>

#include "kernels/uint8_pool.h"
#include "pack_cache.h"

#include <algorithm>

namespace splitshare::nn {
namespace {

torch::Tensor float_conv(const InferenceModel::Conv& c, const torch::Tensor& x) {
  return torch::conv2d(x, c.weight, c.bias, c.spec.stride, c.spec.padding, {1, 1}, c.spec.groups);
}

}  // namespace

struct QuantizedModel::PackCache : detail::ShapePacks {};

QuantizedModel::QuantizedModel(ClassifierImpl& model)
    : folded_(std::make_shared<InferenceModel>(model, InferenceOptions().mkldnn(false).channels_last(false))),
      cache_(std::make_shared<PackCache>()) {
  TORCH_CHECK(quantized_conv_available(), "QuantizedModel: this libtorch has no oneDNN int8 convolutions "
              "(onednn::qconv2d_pointwise)");
  if (int8_pairs_saturate()) {
    TORCH_WARN("int8 on this CPU: oneDNN's int8 convolutions add pairs of products in 16 bits (no VNNI); "
               "expect logits several percent from the float model's, not the same twice "
               "(docs/platform.md); use float32 or bfloat16 on such a CPU");
  }
}

size_t QuantizedModel::points() const {
  size_t count = 2;  // the input and the stem's output
  for (const auto& b : folded_->blocks()) count += (b.has_downsample ? 1 : 0) + 1 + (b.bottleneck ? 1 : 0) + 2;
  return count;
}

void QuantizedModel::widen(size_t& point, const torch::Tensor& values) {
  const double lo = values.min().item<double>(), hi = values.max().item<double>();
  if (observed_.size() <= point) observed_.emplace_back(lo, hi);
  observed_[point] = {std::min(observed_[point].first, lo), std::max(observed_[point].second, hi)};
  ++point;
}

torch::Tensor QuantizedModel::observe_conv(const InferenceModel::Conv& c, const torch::Tensor& x, bool relu,
                                           size_t& point) {
  auto y = float_conv(c, x);
  if (relu) y.relu_();
  widen(point, y);
  return y;
}

void QuantizedModel::observe(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.is_floating_point(), "QuantizedModel::observe: expected float images "
              "[N, C, H, W], got ", images.sizes(), " of ", images.scalar_type());
  torch::InferenceMode guard;
  auto x = images.to(torch::kFloat).contiguous();
  size_t point = 0;
  widen(point, x);
  x = observe_conv(folded_->stem(), x, true, point);
  if (folded_->imagenet_stem()) x = torch::max_pool2d(x, 3, 2, 1);
  for (const auto& b : folded_->blocks()) {
    auto residual = b.has_downsample ? observe_conv(b.downsample, x, false, point) : x;
    auto y = observe_conv(b.conv1, x, true, point);
    if (b.bottleneck) y = observe_conv(b.conv2, y, true, point);
    // int8 runs the last convolution, the sum and the ReLU as one kernel and needs only the
    // block's output range; a graph of separate operators (the QDQ ONNX export) also needs
    // the convolution's own.
    x = float_conv(b.bottleneck ? b.conv3 : b.conv2, y);
    widen(point, x);
    x.add_(residual).relu_();
    widen(point, x);
  }
}

size_t QuantizedModel::add_weight(const InferenceModel::Conv& c, const QuantParams& input) {
  weights_.push_back(quantize_conv_weight(c.weight, c.bias, c.spec, input));
  return weights_.size() - 1;
}

void QuantizedModel::quantize_block(const InferenceModel::Block& b, size_t& point, const QuantParams& input) {
  Int8Block q;
  if (b.has_downsample) {
    q.downsample = add_weight(b.downsample, input);
    q.downsample_out = point++;
  }
  q.conv1 = add_weight(b.conv1, input);
  q.conv1_out = point++;
  q.conv2 = add_weight(b.conv2, params_[q.conv1_out]);
  if (b.bottleneck) {
    q.conv2_out = point++;
    q.conv3 = add_weight(b.conv3, params_[q.conv2_out]);
  }
  q.last_out = point++;
  q.out = point++;
  blocks_.push_back(q);
}

void QuantizedModel::quantize(std::vector<Range> ranges) {
  TORCH_CHECK(ranges.size() == points(), "QuantizedModel::quantize: ", ranges.size(),
              " activation ranges for a model with ", points(), " quantization points");
  params_.clear();
  weights_.clear();
  blocks_.clear();
  cache_ = std::make_shared<PackCache>();
  for (const auto& [lo, hi] : ranges) params_.push_back(uint8_params(lo, hi));
  ranges_ = std::move(ranges);
  add_weight(folded_->stem(), params_[0]);
  size_t point = 2;
  for (const auto& b : folded_->blocks()) {
    const auto& input = blocks_.empty() ? params_[1] : params_[blocks_.back().out];
    quantize_block(b, point, input);
  }
}

const torch::Tensor& QuantizedModel::packed(size_t conv, const torch::Tensor& x, Packs& packs) const {
  auto& p = packs[conv];
  if (!p.defined()) p = pack_quantized_conv(weights_[conv], x.sizes());
  return p;
}

torch::Tensor QuantizedModel::int8_block(const InferenceModel::Block& b, const Int8Block& q, const torch::Tensor& x,
                                         const QuantParams& input, Packs& packs) const {
  const auto conv = [&](size_t index, const torch::Tensor& in, const QuantParams& in_params, size_t out, bool relu) {
    return quantized_conv(in, in_params, weights_[index], packed(index, in, packs), params_[out], relu);
  };
  // The fused sum writes into the shortcut: a tensor only this block reads from here on.
  auto residual = b.has_downsample ? conv(q.downsample, x, input, q.downsample_out, false) : x;
  const auto& residual_params = b.has_downsample ? params_[q.downsample_out] : input;
  auto y = conv(q.conv1, x, input, q.conv1_out, true);
  auto last = q.conv2;
  auto last_input = params_[q.conv1_out];
  if (b.bottleneck) {
    y = conv(q.conv2, y, params_[q.conv1_out], q.conv2_out, true);
    last = q.conv3;
    last_input = params_[q.conv2_out];
  }
  return quantized_conv_add_relu(y, last_input, weights_[last], packed(last, y, packs), residual, residual_params,
                                 params_[q.out]);
}

HeadOutput QuantizedModel::forward(const torch::Tensor& images) const {
  TORCH_CHECK(quantized(), "QuantizedModel::forward: not quantized yet (observe calibration images, then quantize)");
  TORCH_CHECK(images.dim() == 4 && images.size(1) == folded_->stem().weight.size(1) * folded_->stem().spec.groups,
              "QuantizedModel: expected images [N, ", folded_->stem().weight.size(1) * folded_->stem().spec.groups,
              ", H, W], got ", images.sizes());
  torch::InferenceMode guard;
  const auto sizes = images.sizes().vec();
  auto shared = cache_->find(sizes);
  auto packs = shared ? *shared : Packs(weights_.size());
  auto x = quantize_uint8(images, params_[0]);
  x = quantized_conv(x, params_[0], weights_[0], packed(0, x, packs), params_[1], true);
  // Max-pooling commutes with the monotone quantization, so it runs on the bytes.
  if (folded_->imagenet_stem()) x = detail::max_pool_uint8(x, 3, 2, 1);
  auto current = params_[1];
  for (size_t i = 0; i < blocks_.size(); ++i) {
    x = int8_block(folded_->blocks()[i], blocks_[i], x, current, packs);
    current = params_[blocks_[i].out];
  }
  if (!shared) cache_->store(sizes, std::make_shared<const Packs>(std::move(packs)));
  // The mean of the bytes, then their affine map: the same features, one pass fewer.
  const auto pooled = x.to(torch::kFloat).mean({2, 3});
  return folded_->head_forward((pooled - static_cast<double>(current.zero_point)) * current.scale);
}

}  // namespace splitshare::nn
