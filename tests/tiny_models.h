#pragma once

// The tiny models, images and noise data of the Grad-CAM, figure, gradcam-command, fine-tuning
// and export tests.

#include <splitshare/data/loader.h>
#include <splitshare/data/datasets.h>
#include <splitshare/nn/classifier.h>

#include <torch/torch.h>

namespace splitshare::testing {

constexpr int64_t kSplits = 4;
constexpr int64_t kClasses = 3;

// 96 random 16 x 16 grey images in 3 classes named `classes`: enough for a few optimiser steps
// (batches of 16, shuffled; validation on the same images).
inline data::DataBundle noise_data(const std::vector<std::string>& classes = {"a", "b", "c"}) {
  torch::manual_seed(21);
  data::TensorDataset dataset;
  dataset.images = torch::randint(0, 256, {96, 1, 16, 16}, torch::kLong).to(torch::kUInt8);
  dataset.labels = torch::randint(0, 3, {96}, torch::kLong);
  dataset.classes = classes;
  data::DataBundle bundle;
  bundle.classes = dataset.classes;
  bundle.train = data::make_tensor_loader(dataset, {0.5}, {0.25},
                                          data::LoaderOptions().batch_size(16).shuffle(true).drop_last(true).seed(1));
  bundle.val = data::make_tensor_loader(dataset, {0.5}, {0.25}, data::LoaderOptions().batch_size(48));
  return bundle;
}

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
