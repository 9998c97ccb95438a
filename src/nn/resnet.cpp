#include <splitshare/nn/resnet.h>

#include <algorithm>
#include <map>

namespace splitshare::nn {
namespace {

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1, int64_t groups = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).groups(groups).bias(false));
}

torch::nn::Conv2d conv1x1(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

// torchvision: kaiming_normal_(fan_out, relu) for convs, BN weight 1 and bias 0.
void init_like_torchvision(torch::nn::Module& module, bool zero_init_residual) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = m->as<BatchNormImpl>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
  if (!zero_init_residual) return;
  for (auto& m : module.modules(false)) {
    if (auto* block = m->as<ResidualBlockImpl>()) {
      auto& last = block->options.bottleneck() ? block->bn3 : block->bn2;
      torch::nn::init::zeros_(last->weight);
    }
  }
}

// oneDNN's AVX2 kernels get the weight gradient of a strided 1x1 convolution wrong when the input
// has fewer channels than their block of 8, and can write past their workspace (oneDNN issue 6035;
// channels-last, as we train: silently wrong gradients with two threads, a crash or a hang with
// one). Subsampling first and convolving at stride 1 is the same sum on a path without that bug;
// such narrow inputs are cheap to copy. Twice the block leaves room for wider blocks.
constexpr int64_t kNarrowStridedInput = 16;

torch::Tensor run_downsample(torch::nn::Sequential& downsample, const torch::Tensor& x) {
  auto& conv = *downsample->ptr(0)->as<torch::nn::Conv2dImpl>();
  const auto& o = conv.options;
  const int64_t sh = (*o.stride())[0], sw = (*o.stride())[1];
  if (o.in_channels() >= kNarrowStridedInput || (sh == 1 && sw == 1)) return downsample->forward(x);
  auto sub = x.slice(2, 0, c10::nullopt, sh).slice(3, 0, c10::nullopt, sw).contiguous(x.suggest_memory_format());
  return downsample->ptr(1)->as<BatchNormImpl>()->forward(torch::conv2d(sub, conv.weight));
}

}  // namespace

std::string to_string(Stem stem) { return stem == Stem::kImageNet ? "imagenet" : "small"; }

Stem parse_stem(const std::string& text) {
  if (text == "imagenet") return Stem::kImageNet;
  if (text == "small") return Stem::kSmall;
  TORCH_CHECK(false, "unknown stem '", text, "': expected imagenet or small");
}

ResidualBlockImpl::ResidualBlockImpl(ResidualBlockOptions options_) : options(std::move(options_)) { reset(); }

void ResidualBlockImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.groups() >= 1 && o.width_per_group() >= 1, "ResidualBlock: groups and width_per_group must be positive");
  const int64_t out = o.planes() * expansion();
  if (o.bottleneck()) {
    const auto width = static_cast<int64_t>(static_cast<double>(o.planes()) * (o.width_per_group() / 64.0)) * o.groups();
    conv1 = register_module("conv1", conv1x1(o.in_planes(), width));
    bn1 = register_module("bn1", BatchNorm(width));
    conv2 = register_module("conv2", conv3x3(width, width, o.stride(), o.groups()));
    bn2 = register_module("bn2", BatchNorm(width));
    conv3 = register_module("conv3", conv1x1(width, out));
    bn3 = register_module("bn3", BatchNorm(out));
  } else {
    TORCH_CHECK(o.groups() == 1 && o.width_per_group() == 64,
                "basic blocks support only groups=1 and width_per_group=64 (as torchvision), got groups=", o.groups(),
                " width_per_group=", o.width_per_group());
    conv1 = register_module("conv1", conv3x3(o.in_planes(), o.planes(), o.stride()));
    bn1 = register_module("bn1", BatchNorm(o.planes()));
    conv2 = register_module("conv2", conv3x3(o.planes(), o.planes()));
    bn2 = register_module("bn2", BatchNorm(o.planes()));
  }
  if (o.stride() != 1 || o.in_planes() != out) {
    downsample = register_module(
        "downsample", torch::nn::Sequential(conv1x1(o.in_planes(), out, o.stride()), BatchNorm(out)));
  }
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  auto y = bn1->forward(conv1->forward(x)).relu_();
  y = bn2->forward(conv2->forward(y));
  if (options.bottleneck()) y = bn3->forward(conv3->forward(y.relu_()));
  y += downsample ? run_downsample(downsample, x) : x;
  return y.relu_();
}

ResNetOptions resnet_options(const std::string& arch) {
  auto basic = [](std::vector<int64_t> layers) { return ResNetOptions().layers(std::move(layers)); };
  auto bottleneck = [](std::vector<int64_t> layers, int64_t groups = 1, int64_t width_per_group = 64) {
    return ResNetOptions().layers(std::move(layers)).bottleneck(true).groups(groups).width_per_group(width_per_group);
  };
  const std::map<std::string, ResNetOptions> zoo = {
      {"resnet10", basic({1, 1, 1, 1})},
      {"resnet18", basic({2, 2, 2, 2})},
      {"resnet34", basic({3, 4, 6, 3})},
      {"resnet50", bottleneck({3, 4, 6, 3})},
      {"resnet101", bottleneck({3, 4, 23, 3})},
      {"resnet152", bottleneck({3, 8, 36, 3})},
      {"resnext50_32x4d", bottleneck({3, 4, 6, 3}, 32, 4)},
      {"resnext101_32x4d", bottleneck({3, 4, 23, 3}, 32, 4)},
      {"resnext101_32x8d", bottleneck({3, 4, 23, 3}, 32, 8)},
      {"wide_resnet50_2", bottleneck({3, 4, 6, 3}, 1, 128)},
      {"wide_resnet101_2", bottleneck({3, 4, 23, 3}, 1, 128)},
  };
  auto it = zoo.find(arch);
  if (it == zoo.end()) {
    std::string names;
    for (const auto& [name, _] : zoo) names += (names.empty() ? "" : ", ") + name;
    TORCH_CHECK(false, "unknown architecture '", arch, "': expected one of ", names);
  }
  return it->second;
}

std::vector<std::string> resnet_architectures() {
  std::vector<std::string> names = {"resnet10",        "resnet18",         "resnet34",         "resnet50",
                                    "resnet101",       "resnet152",        "resnext50_32x4d",  "resnext101_32x4d",
                                    "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2"};
  std::sort(names.begin(), names.end());
  return names;
}

ResNetImpl::ResNetImpl(ResNetOptions options_) : options(std::move(options_)) { reset(); }

void ResNetImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.layers().size() == 4, "ResNet: expected 4 stages in layers, got ", o.layers().size());
  TORCH_CHECK(o.in_channels() >= 1, "ResNet: in_channels must be positive, got ", o.in_channels());
  TORCH_CHECK(o.base_width() >= 1, "ResNet: base_width must be positive, got ", o.base_width());
  const int64_t width = o.base_width();
  if (o.stem() == Stem::kImageNet) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels(), width, 7)
                                                           .stride(2).padding(3).bias(false)));
  } else {
    conv1 = register_module("conv1", conv3x3(o.in_channels(), width));
  }
  bn1 = register_module("bn1", BatchNorm(width));

  int64_t in_planes = width;
  auto make_stage = [&](int64_t planes, int64_t blocks, int64_t stride) {
    TORCH_CHECK(blocks >= 1, "ResNet: every stage needs at least one block, got ", blocks);
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < blocks; ++b) {
      auto block = ResidualBlock(ResidualBlockOptions(in_planes, planes)
                                     .stride(b == 0 ? stride : 1)
                                     .bottleneck(o.bottleneck())
                                     .groups(o.groups())
                                     .width_per_group(o.bottleneck() ? o.width_per_group() : 64));
      in_planes = planes * block->expansion();
      stage->push_back(block);
    }
    return stage;
  };
  layer1 = register_module("layer1", make_stage(width, o.layers()[0], 1));
  layer2 = register_module("layer2", make_stage(width * 2, o.layers()[1], 2));
  layer3 = register_module("layer3", make_stage(width * 4, o.layers()[2], 2));
  layer4 = register_module("layer4", make_stage(width * 8, o.layers()[3], 2));
  init_like_torchvision(*this, o.zero_init_residual());
}

torch::Tensor ResNetImpl::forward_features(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options.in_channels(), "ResNet: expected images [N, ",
              options.in_channels(), ", H, W], got ", images.sizes());
  auto x = bn1->forward(conv1->forward(images)).relu_();
  if (options.stem() == Stem::kImageNet) x = torch::max_pool2d(x, 3, 2, 1);
  x = layer1->forward(x);
  x = layer2->forward(x);
  x = layer3->forward(x);
  return layer4->forward(x);
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& images) {
  return forward_features(images).mean({2, 3});
}

int64_t ResNetImpl::feature_dim() const { return options.base_width() * 8 * (options.bottleneck() ? 4 : 1); }

}  // namespace splitshare::nn
