#include <splitshare/nn/inference.h>

#include "pack_cache.h"

#include "kernels/matmul.h"

#include <utility>

namespace splitshare::nn {

struct InferenceModel::PackCache : detail::ShapePacks {};

namespace {

std::vector<int64_t> to_vector(at::IntArrayRef values) { return values.vec(); }

// BatchNorm in evaluation mode as y = x * scale + shift, per channel.
std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::Tensor& weight, const torch::Tensor& bias,
                                                  const torch::Tensor& running_mean, const torch::Tensor& running_var,
                                                  double eps) {
  auto scale = torch::rsqrt(running_var + eps);
  if (weight.defined()) scale = scale * weight;
  auto shift = -running_mean * scale;
  if (bias.defined()) shift = shift + bias;
  return {scale, shift};
}

std::vector<InferenceModel::HeadPart> fold_head(torch::nn::Module& head, double& head_scale) {
  std::vector<InferenceModel::HeadPart> parts;
  auto linear_part = [](torch::nn::LinearImpl& fc) {
    InferenceModel::HeadPart p;
    p.width = fc.weight.size(1);
    p.weight = fc.weight.detach().clone(torch::MemoryFormat::Contiguous);
    p.bias = fc.bias.detach().clone();
    return p;
  };
  if (auto* linear = head.as<LinearHeadImpl>()) {
    parts.push_back(linear_part(*linear->fc));
    head_scale = 1.0;
  } else if (auto* kfc = head.as<KFCHeadImpl>()) {
    for (const auto& m : *kfc->fc) parts.push_back(linear_part(*m->as<torch::nn::Linear>()));
    head_scale = 1.0 / static_cast<double>(parts.size());
  } else if (auto* ssm = head.as<SplitAndShareImpl>()) {
    const auto s = ssm->options.splits();
    for (int64_t i = 0; i < s; ++i) {
      auto p = linear_part(*ssm->fc[i]->as<torch::nn::Linear>());
      if (ssm->has_norm(i)) {
        auto* bn = &ssm->norm(i);
        std::tie(p.scale, p.shift) =
            bn_affine(bn->weight, bn->bias, bn->running_mean, bn->running_var, bn->options.eps());
      }
      parts.push_back(p);
    }
    head_scale = ssm->options.mean() ? 1.0 / static_cast<double>(s) : 1.0;
  } else {
    TORCH_CHECK(false, "InferenceModel: unsupported head module ", head.name());
  }
  return parts;
}

}  // namespace

InferenceModel::InferenceModel(ClassifierImpl& model, InferenceOptions options)
    : options_(std::move(options)), cache_(std::make_shared<PackCache>()) {
  torch::NoGradGuard no_grad;
  const auto device = model.backbone->conv1->weight.device();
  TORCH_CHECK(options_.dtype() == torch::kFloat || options_.dtype() == torch::kBFloat16,
              "InferenceModel: dtype must be float32 or bfloat16, got ", options_.dtype());
  TORCH_CHECK(model.backbone->conv1->weight.scalar_type() == torch::kFloat,
              "InferenceModel: expected a float32 model, got ", model.backbone->conv1->weight.scalar_type());
  mkldnn_ = options_.mkldnn() && device.is_cpu() && fused_conv_available(options_.dtype());
  auto& net = *model.backbone;
  imagenet_stem_ = net.options.stem() == Stem::kImageNet;
  stem_ = fold(*net.conv1, *net.bn1);
  for (auto* layer : {&net.layer1, &net.layer2, &net.layer3, &net.layer4}) {
    for (const auto& child : (*layer)->children()) {
      auto* block = child->as<ResidualBlockImpl>();
      TORCH_CHECK(block != nullptr, "InferenceModel: expected residual blocks in the backbone stages");
      Block b;
      b.bottleneck = block->options.bottleneck();
      b.conv1 = fold(*block->conv1, *block->bn1);
      b.conv2 = fold(*block->conv2, *block->bn2);
      if (b.bottleneck) b.conv3 = fold(*block->conv3, *block->bn3);
      if (block->downsample) {
        b.has_downsample = true;
        b.downsample = fold(*block->downsample->ptr(0)->as<torch::nn::Conv2dImpl>(),
                            *block->downsample->ptr(1)->as<BatchNormImpl>());
      }
      blocks_.push_back(std::move(b));
    }
  }
  head_ = fold_head(*model.head.ptr(), head_scale_);
  if (model.gate) {
    gate_ = std::dynamic_pointer_cast<GateImpl>(model.gate->clone());
    gate_->eval();
  }
}

InferenceModel::Conv InferenceModel::fold(torch::nn::Conv2dImpl& conv, BatchNormImpl& bn) {
  const auto& o = conv.options;
  const auto dilation = to_vector(o.dilation());
  TORCH_CHECK(dilation[0] == 1 && dilation[1] == 1, "InferenceModel: dilated convolutions are not supported");
  auto [scale, shift] = bn_affine(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.options.eps());
  Conv c;
  c.index = convs_++;
  c.spec.stride = to_vector(o.stride());
  // Every convolution of our ResNets pads kernel/2 (as torchvision's); reading the padding
  // option would need c10::variant in libtorch 1.x and std::variant in 2.x.
  for (auto k : to_vector(o.kernel_size())) c.spec.padding.push_back(k / 2);
  c.spec.groups = o.groups();
  const auto weight = (conv.weight.detach() * scale.view({-1, 1, 1, 1})).to(options_.dtype());
  c.bias = (conv.bias.defined() ? conv.bias.detach() * scale + shift : shift).to(options_.dtype());
  const bool nhwc = mkldnn_ || options_.channels_last();
  c.weight = weight.contiguous(nhwc ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous);
  return c;
}

size_t InferenceModel::packed_shapes() const {
  return cache_->size();
}

const torch::Tensor& InferenceModel::packed(const Conv& c, const torch::Tensor& x, Packs& packs) const {
  auto& p = packs[c.index];
  if (!p.defined()) p = pack_conv_weight(c.weight, c.spec, x.sizes());
  return p;
}

torch::Tensor InferenceModel::conv(const Conv& c, const torch::Tensor& x, Packs& packs, bool relu) const {
  if (mkldnn_) return fused_conv(x, packed(c, x, packs), c.bias, c.spec, relu);
  auto y = torch::conv2d(x, c.weight, c.bias, c.spec.stride, c.spec.padding, {1, 1}, c.spec.groups);
  return relu ? y.relu_() : y;
}

torch::Tensor InferenceModel::conv_add_relu(const Conv& c, const torch::Tensor& x, torch::Tensor residual,
                                            Packs& packs) const {
  if (mkldnn_) return fused_conv_add_relu_(residual, x, packed(c, x, packs), c.bias, c.spec);
  return conv(c, x, packs, false).add_(residual).relu_();
}

// x [N, C, H, W] in the compute dtype and layout -> features [N, F] float32.
torch::Tensor InferenceModel::backbone(torch::Tensor x, Packs& packs) const {
  x = conv(stem_, x, packs, true);
  if (imagenet_stem_) x = torch::max_pool2d(x, 3, 2, 1);
  for (const auto& b : blocks_) {
    // The fused sum writes into the residual: the block's input when there is no
    // downsample, which nothing reads afterwards.
    auto residual = b.has_downsample ? conv(b.downsample, x, packs, false) : x;
    auto y = conv(b.conv1, x, packs, true);
    if (b.bottleneck) y = conv(b.conv2, y, packs, true);
    x = conv_add_relu(b.bottleneck ? b.conv3 : b.conv2, y, std::move(residual), packs);
  }
  return x.mean({2, 3}).to(torch::kFloat);
}

HeadOutput InferenceModel::forward(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == stem_.weight.size(1) * stem_.spec.groups,
              "InferenceModel: expected images [N, ", stem_.weight.size(1) * stem_.spec.groups, ", H, W], got ",
              images.sizes());
  torch::InferenceMode guard;
  const bool nhwc = mkldnn_ || options_.channels_last();
  // The fused sums write only into tensors the backbone made, never into the images.
  auto x = images.to(options_.dtype())
               .contiguous(nhwc ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous);
  const auto sizes = images.sizes().vec();
  auto shared = mkldnn_ ? cache_->find(sizes) : nullptr;
  auto packs = shared ? *shared : Packs(convs_);
  const auto features = backbone(std::move(x), packs);
  if (mkldnn_ && !shared) cache_->store(sizes, std::make_shared<const Packs>(std::move(packs)));
  return head_forward(features);
}

HeadOutput InferenceModel::head_forward(const torch::Tensor& features) const {
  HeadOutput out;
  std::vector<torch::Tensor> inputs, weights, biases;
  for (const auto& p : head_) {
    auto input = features.narrow(1, 0, p.width);
    if (p.scale.defined()) input = torch::addcmul(p.shift, input, p.scale).clamp_min_(0);
    inputs.push_back(input);
    weights.push_back(p.weight);
    biases.push_back(p.bias);
  }
  out.head_logits = linear_many(inputs, weights, biases);
  out.logits = out.head_logits[0].clone();
  for (size_t i = 1; i < out.head_logits.size(); ++i) out.logits.add_(out.head_logits[i]);
  if (head_scale_ != 1.0) out.logits.mul_(head_scale_);
  if (gate_) {
    out.ungated = out.logits;
    out.logits = gate_->forward(features, torch::stack(out.head_logits));
  }
  return out;
}

}  // namespace splitshare::nn
