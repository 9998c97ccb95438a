#pragma once

#include <splitshare/nn/batch_norm.h>

#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::nn {

/// The first layers of the network.
enum class Stem {
  /// torchvision's: 7x7 stride-2 conv + 3x3 stride-2 max-pool (224x224 photos).
  kImageNet,
  /// 3x3 stride-1 conv, no max-pool (28x28 / 32x32 images).
  kSmall,
};

/// "imagenet", "small".
std::string to_string(Stem stem);
Stem parse_stem(const std::string& text);

/// One residual block: basic (two 3x3 convs) or bottleneck (1x1, grouped 3x3, 1x1).
struct ResidualBlockOptions {
  ResidualBlockOptions(int64_t in_planes, int64_t planes) : in_planes_(in_planes), planes_(planes) {}
  TORCH_ARG(int64_t, in_planes);
  TORCH_ARG(int64_t, planes);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(bool, bottleneck) = false;
  TORCH_ARG(int64_t, groups) = 1;
  /// Bottleneck inner width is planes * width_per_group / 64 * groups (torchvision's formula).
  TORCH_ARG(int64_t, width_per_group) = 64;
};

/// A residual block with torchvision's names: conv1, bn1, conv2, bn2, [conv3, bn3], [downsample.0, downsample.1].
class ResidualBlockImpl : public torch::nn::Cloneable<ResidualBlockImpl> {
 public:
  explicit ResidualBlockImpl(ResidualBlockOptions options);
  /// (Re)creates the layers from `options` (clone() calls it on the copy).
  void reset() override;
  /// x [N, in_planes, H, W] -> [N, planes*expansion, H/stride, W/stride].
  torch::Tensor forward(const torch::Tensor& x);
  /// 4 for bottleneck blocks, 1 for basic blocks.
  int64_t expansion() const { return options.bottleneck() ? 4 : 1; }

  ResidualBlockOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(ResidualBlock);

/// A ResNet / ResNeXt / Wide-ResNet backbone (no classifier).
///
/// ```
/// ResNet net(resnet_options("resnet50"));
/// auto features = net->forward(images);  // [N, 2048]
/// ```
struct ResNetOptions {
  /// Blocks per stage (4 stages).
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>{2, 2, 2, 2};
  TORCH_ARG(bool, bottleneck) = false;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(int64_t, width_per_group) = 64;
  /// Channels of stage 1 (stages double it); 64 reproduces torchvision.
  TORCH_ARG(int64_t, base_width) = 64;
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(Stem, stem) = Stem::kImageNet;
  /// Zero-init the last BN of each residual branch (Goyal et al., 2017), so every
  /// block starts as the identity; torchvision's option of the same name.
  TORCH_ARG(bool, zero_init_residual) = false;
};

/// The options torchvision uses for `arch` ("resnet18" … "wide_resnet101_2"), plus
/// "resnet10" (one block per stage, for quick small-image runs). Throws for unknown names.
ResNetOptions resnet_options(const std::string& arch);

/// Every name resnet_options accepts, sorted.
std::vector<std::string> resnet_architectures();

/// ResNet backbone with torchvision's parameter names (conv1, bn1, layer1.0.conv1, …).
class ResNetImpl : public torch::nn::Cloneable<ResNetImpl> {
 public:
  explicit ResNetImpl(ResNetOptions options);
  /// (Re)creates the layers from `options` (clone() calls it on the copy).
  void reset() override;

  /// images [N, in_channels, H, W] -> last feature map [N, C, H', W'] (before pooling; Grad-CAM uses it).
  torch::Tensor forward_features(const torch::Tensor& images);
  /// images [N, in_channels, H, W] -> pooled features [N, C].
  torch::Tensor forward(const torch::Tensor& images);
  /// C, the channel count of the last feature map.
  int64_t feature_dim() const;

  ResNetOptions options;
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace splitshare::nn
