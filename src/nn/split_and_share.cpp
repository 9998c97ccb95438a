#include <splitshare/nn/split_and_share.h>

#include "kernels/matmul.h"
#include "kernels/split_and_share_kernels.h"

namespace splitshare::nn {

SplitAndShareImpl::SplitAndShareImpl(SplitAndShareOptions options_) : options(std::move(options_)) {
  reset();
}

void SplitAndShareImpl::reset() {
  const auto c = options.in_features();
  const auto s = options.splits();
  TORCH_CHECK(s >= 1, "SplitAndShare: splits must be at least 1, got ", s);
  TORCH_CHECK(c >= 1, "SplitAndShare: in_features must be positive, got ", c);
  TORCH_CHECK(c % s == 0, "SplitAndShare: in_features (", c, ") must be divisible by splits (", s,
              "); choose splits among the divisors of ", c);
  TORCH_CHECK(options.num_classes() >= 1, "SplitAndShare: num_classes must be positive, got ",
              options.num_classes());
  bn = register_module("bn", torch::nn::ModuleList());
  fc = register_module("fc", torch::nn::ModuleList());
  for (int64_t i = 0; i < s; ++i) {
    const int64_t width = (i + 1) * split_width();
    if (has_norm(i)) {
      bn->push_back(BatchNorm(torch::nn::BatchNormOptions(width).eps(options.eps()).momentum(options.momentum())));
    }
    fc->push_back(torch::nn::Linear(width, options.num_classes()));
  }
}

HeadOutput SplitAndShareImpl::forward(const torch::Tensor& features) {
  TORCH_CHECK(features.dim() == 2 && features.size(1) == options.in_features(),
              "SplitAndShare: expected features [N, ", options.in_features(), "], got ", features.sizes());
  return options.fused() ? forward_fused(features) : forward_reference(features);
}

HeadOutput SplitAndShareImpl::forward_reference(const torch::Tensor& features) {
  HeadOutput out;
  const int64_t s = options.splits();
  for (int64_t i = 0; i < s; ++i) {
    auto x = features.narrow(1, 0, (i + 1) * split_width());
    if (has_norm(i)) {
      x = torch::relu(norm(i).forward(x));
    }
    auto* layer = fc[i]->as<torch::nn::Linear>();
    out.head_logits.push_back(linear(x, layer->weight, layer->bias));
  }
  out.logits = torch::stack(out.head_logits).sum(0);
  if (options.mean()) out.logits = out.logits / static_cast<double>(s);
  return out;
}

HeadOutput SplitAndShareImpl::forward_fused(const torch::Tensor& features) {
  const int64_t s = options.splits();
  const int64_t w = split_width();
  // Under autocast the features arrive in bf16/fp16; the head's statistics and products run in
  // its parameters' type (a plain last split would otherwise meet float weights with bf16 input).
  const auto param_type = fc[0]->as<torch::nn::Linear>()->weight.scalar_type();
  const auto x = (features.scalar_type() == param_type ? features : features.to(param_type)).contiguous();

  std::vector<torch::Tensor> means, invstds, gammas, betas, weights, biases;
  torch::Tensor batch_mean, batch_invstd;
  // --sync-bn: statistics of the global batch through a differentiable all-reduce; the
  // hand-written backward below assumes local statistics, so autograd takes over then.
  // The splits' norms share one set of statistics, so the first layer's collective serves all.
  const std::shared_ptr<const AllReduceSum> collective = has_norm(0) ? norm(0).collective : nullptr;
  const bool synced = collective && *collective;
  if (is_training()) {
    torch::Tensor var;
    double n = static_cast<double>(x.size(0));
    if (synced) {
      auto moments = global_moments(x, collective);
      batch_mean = moments.mean;
      var = moments.var;
      n = moments.count;
    } else {
      torch::NoGradGuard no_grad;
      // Column sums of the row-major [N, C] input are much cheaper than var_mean over dim 0.
      batch_mean = x.detach().sum(0).div_(n);
      var = detail::centered_square_sums(x.detach(), batch_mean).div_(n);
    }
    TORCH_CHECK(n > 1, "SplitAndShare: BatchNorm needs more than 1 sample per batch in training, got ", n);
    batch_invstd = torch::rsqrt(var + options.eps());
    torch::NoGradGuard no_grad;
    const auto unbiased = var.detach() * (n / (n - 1.0));
    const auto m = options.momentum();
    for (int64_t i = 0; i < s; ++i) {
      if (!has_norm(i)) continue;
      auto& layer = norm(i);
      const int64_t width = (i + 1) * w;
      layer.running_mean.mul_(1.0 - m).add_(batch_mean.detach().narrow(0, 0, width), m);
      layer.running_var.mul_(1.0 - m).add_(unbiased.narrow(0, 0, width), m);
      layer.num_batches_tracked.add_(1);
    }
  }
  for (int64_t i = 0; i < s; ++i) {
    auto* linear = fc[i]->as<torch::nn::Linear>();
    weights.push_back(linear->weight);
    biases.push_back(linear->bias);
    if (!has_norm(i)) continue;
    auto& layer = norm(i);
    const int64_t width = (i + 1) * w;
    if (is_training()) {
      means.push_back(batch_mean.narrow(0, 0, width));
      invstds.push_back(batch_invstd.narrow(0, 0, width));
    } else {
      torch::NoGradGuard no_grad;
      means.push_back(layer.running_mean);
      invstds.push_back(torch::rsqrt(layer.running_var + options.eps()));
    }
    gammas.push_back(layer.weight);
    betas.push_back(layer.bias);
  }
  const double out_scale = options.mean() ? 1.0 / static_cast<double>(s) : 1.0;

  HeadOutput out;
  // In evaluation the statistics are constants and autograd through head_forward is exact
  // (Grad-CAM); in training the hand-written backward also covers the batch statistics.
  if (torch::GradMode::is_enabled() && is_training() && !synced) {
    auto result = detail::fused_head_train(x, out_scale, means, invstds, gammas, betas, weights, biases);
    out.logits = result[0];
    out.head_logits.assign(result.begin() + 1, result.end());
  } else {
    out.head_logits = detail::head_forward(x, means, invstds, gammas, betas, weights, biases).first;
    out.logits = detail::combine(out.head_logits, out_scale);
  }
  return out;
}

}  // namespace splitshare::nn
