#include <splitshare/nn/inference.h>

namespace splitshare::nn {
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

InferenceModel::InferenceModel(ClassifierImpl& model, InferenceOptions options) : options_(std::move(options)) {
  torch::NoGradGuard no_grad;
  const auto device = model.backbone->conv1->weight.device();
  const auto dtype = model.backbone->conv1->weight.scalar_type();
  mkldnn_ = options_.mkldnn() && device.is_cpu() && dtype == torch::kFloat && at::hasMKLDNN();
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
}

InferenceModel::Conv InferenceModel::fold(torch::nn::Conv2dImpl& conv, BatchNormImpl& bn) const {
  const auto& o = conv.options;
  const auto dilation = to_vector(o.dilation());
  TORCH_CHECK(dilation[0] == 1 && dilation[1] == 1, "InferenceModel: dilated convolutions are not supported");
  auto [scale, shift] = bn_affine(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.options.eps());
  Conv c;
  c.stride = to_vector(o.stride());
  // Every convolution of our ResNets pads kernel/2 (as torchvision's); reading the padding
  // option would need c10::variant in libtorch 1.x and std::variant in 2.x.
  for (auto k : to_vector(o.kernel_size())) c.padding.push_back(k / 2);
  c.groups = o.groups();
  auto weight = conv.weight.detach() * scale.view({-1, 1, 1, 1});
  c.bias = conv.bias.defined() ? conv.bias.detach() * scale + shift : shift;
  if (mkldnn_) {
    c.weight = at::mkldnn_reorder_conv2d_weight(weight.contiguous().to_mkldnn(), c.padding, c.stride, {1, 1},
                                                c.groups);
  } else {
    c.weight = options_.channels_last() ? weight.contiguous(torch::MemoryFormat::ChannelsLast) : weight.contiguous();
  }
  return c;
}

torch::Tensor InferenceModel::conv(const Conv& c, const torch::Tensor& x) const {
  if (mkldnn_) return at::mkldnn_convolution(x, c.weight, c.bias, c.padding, c.stride, {1, 1}, c.groups);
  return torch::conv2d(x, c.weight, c.bias, c.stride, c.padding, {1, 1}, c.groups);
}

HeadOutput InferenceModel::forward(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == stem_.weight.size(1) * stem_.groups,
              "InferenceModel: expected images [N, ", stem_.weight.size(1) * stem_.groups, ", H, W], got ",
              images.sizes());
  torch::InferenceMode guard;
  torch::Tensor x;
  if (mkldnn_) {
    x = images.to(torch::kFloat).contiguous().to_mkldnn();
  } else {
    x = options_.channels_last() ? images.contiguous(torch::MemoryFormat::ChannelsLast) : images.contiguous();
  }
  x = conv(stem_, x).relu_();
  if (imagenet_stem_) x = mkldnn_ ? at::mkldnn_max_pool2d(x, {3, 3}, {2, 2}, {1, 1}) : torch::max_pool2d(x, 3, 2, 1);
  for (const auto& b : blocks_) {
    auto y = conv(b.conv1, x).relu_();
    y = conv(b.conv2, y);
    if (b.bottleneck) y = conv(b.conv3, y.relu_());
    y.add_(b.has_downsample ? conv(b.downsample, x) : x);
    x = y.relu_();
  }
  const auto features = mkldnn_ ? at::mkldnn_adaptive_avg_pool2d(x, {1, 1}).to_dense().flatten(1) : x.mean({2, 3});

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
  return out;
}

}  // namespace splitshare::nn
