// Adding the Split-and-Share head to your own libtorch model.
//
//   cmake -S examples/custom_model -B build-example -DCMAKE_PREFIX_PATH=<splitshare install prefix>
//   cmake --build build-example && ./build-example/custom_model
#include <splitshare/splitshare.h>

#include <torch/torch.h>

#include <iostream>

/// A tiny convolutional feature extractor with an SSM classifier on top.
struct MyNetImpl : torch::nn::Module {
  MyNetImpl(int64_t classes) {
    features = register_module("features", torch::nn::Sequential(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)), torch::nn::ReLU(),
        torch::nn::MaxPool2d(2),
        torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)), torch::nn::ReLU(),
        torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten()));
    // 64 features, 4 sub-classifiers seeing 16, 32, 48 and 64 of them.
    head = register_module("head", splitshare::nn::SplitAndShare(
        splitshare::nn::SplitAndShareOptions(64, classes).splits(4)));
  }
  splitshare::nn::HeadOutput forward(const torch::Tensor& x) { return head->forward(features->forward(x)); }

  torch::nn::Sequential features{nullptr};
  splitshare::nn::SplitAndShare head{nullptr};
};
TORCH_MODULE(MyNet);

int main() {
  torch::manual_seed(0);
  MyNet net(10);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  // A toy task: the class is the quadrant holding the brightest pixel (4 classes of 10 used).
  auto make_batch = [](int64_t n) {
    auto x = torch::randn({n, 1, 16, 16}) * 0.1;
    auto y = torch::randint(0, 4, {n});
    for (int64_t i = 0; i < n; ++i) {
      const auto q = y[i].item<int64_t>();
      x[i][0][(q / 2) * 8 + 4][(q % 2) * 8 + 4] = 5.0;
    }
    return std::make_pair(x, y);
  };
  for (int step = 0; step < 150; ++step) {
    auto [x, y] = make_batch(64);
    auto out = net->forward(x);
    auto loss = splitshare::nn::head_loss(out, y, splitshare::nn::LossKind::kJoint);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  net->eval();
  auto [x, y] = make_batch(512);
  auto out = net->forward(x);
  const double acc = out.logits.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
  std::cout << "accuracy " << acc << ", per head:";
  for (const auto& h : out.head_logits) std::cout << " " << h.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
  std::cout << std::endl;
  return acc > 0.9 ? 0 : 1;
}
