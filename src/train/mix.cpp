#include <splitshare/train/mix.h>

#include <algorithm>
#include <cmath>

namespace splitshare::train {
namespace {

double uniform() { return torch::rand({}, torch::kFloat64).item<double>(); }

// Beta(alpha, alpha) from two Gamma(alpha) draws.
double beta_sample(double alpha) {
  const auto a = torch::full({2}, alpha, torch::kFloat64);
  const auto g = torch::_standard_gamma(a);
  const double x = g[0].item<double>(), y = g[1].item<double>();
  return x + y > 0 ? x / (x + y) : 0.5;
}

torch::Tensor one_hot_float(const torch::Tensor& labels, int64_t num_classes) {
  return torch::nn::functional::one_hot(labels.to(torch::kInt64), num_classes).to(torch::kFloat32);
}

}  // namespace

MixedBatch mix_batch(const torch::Tensor& images, const torch::Tensor& labels, int64_t num_classes,
                     double mixup_alpha, double cutmix_alpha) {
  TORCH_CHECK(mixup_alpha >= 0 && cutmix_alpha >= 0, "mixup and cutmix alphas must be >= 0, got ", mixup_alpha,
              " and ", cutmix_alpha);
  TORCH_CHECK(images.dim() == 4 && labels.dim() == 1 && images.size(0) == labels.size(0),
              "mix_batch: expected images [N, C, H, W] and labels [N], got ", images.sizes(), " and ",
              labels.sizes());
  MixedBatch out;
  const auto own = one_hot_float(labels, num_classes);
  if (mixup_alpha == 0 && cutmix_alpha == 0) {
    out.images = images;
    out.targets = own;
    return out;
  }
  out.cutmix = cutmix_alpha > 0 && (mixup_alpha == 0 || uniform() < 0.5);
  double lambda = beta_sample(out.cutmix ? cutmix_alpha : mixup_alpha);
  const auto partner = images.flip(0);
  if (out.cutmix) {
    const int64_t h = images.size(2), w = images.size(3);
    const double ratio = std::sqrt(1.0 - lambda);
    const auto cut_h = static_cast<int64_t>(static_cast<double>(h) * ratio);
    const auto cut_w = static_cast<int64_t>(static_cast<double>(w) * ratio);
    const auto cy = std::min<int64_t>(h - 1, static_cast<int64_t>(uniform() * static_cast<double>(h)));
    const auto cx = std::min<int64_t>(w - 1, static_cast<int64_t>(uniform() * static_cast<double>(w)));
    const int64_t y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, h), y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, h);
    const int64_t x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, w), x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, w);
    out.images = images.clone();
    using torch::indexing::Slice;
    out.images.index_put_({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)},
                          partner.index({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)}));
    lambda = 1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(h * w);
  } else {
    out.images = images * lambda + partner * (1.0 - lambda);
  }
  out.lambda = lambda;
  out.targets = own * lambda + own.flip(0) * (1.0 - lambda);
  return out;
}

}  // namespace splitshare::train
