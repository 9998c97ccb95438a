#pragma once

// The tiny model and images of the Grad-CAM, figure and gradcam-command tests.

#include <splitshare/nn/classifier.h>

#include <torch/torch.h>

namespace splitshare::testing {

constexpr int64_t kSplits = 4;
constexpr int64_t kClasses = 3;

// resnet10 of width 4: C = 32 feature channels, a 2x2 map for 12x12 inputs.
inline splitshare::nn::Classifier tiny_model(splitshare::nn::HeadOptions head, uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto model = splitshare::nn::make_classifier(splitshare::nn::ClassifierOptions()
                                                   .arch("resnet10")
                                                   .width(4)
                                                   .in_channels(1)
                                                   .stem(splitshare::nn::Stem::kSmall)
                                                   .num_classes(kClasses)
                                                   .head(head));
  model->eval();
  return model;
}

inline splitshare::nn::HeadOptions ssm_head() {
  return splitshare::nn::HeadOptions().kind(splitshare::nn::HeadKind::kSSM).splits(kSplits);
}

inline torch::Tensor tiny_images(int64_t n = 3, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randn({n, 1, 12, 12});
}

}  // namespace splitshare::testing
