#include <splitshare/nn/split_and_share.h>

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
      bn->push_back(torch::nn::BatchNorm1d(
          torch::nn::BatchNorm1dOptions(width).eps(options.eps()).momentum(options.momentum())));
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
      x = torch::relu(bn[i]->as<torch::nn::BatchNorm1d>()->forward(x));
    }
    out.head_logits.push_back(fc[i]->as<torch::nn::Linear>()->forward(x));
  }
  out.logits = torch::stack(out.head_logits).sum(0);
  if (options.mean()) out.logits = out.logits / static_cast<double>(s);
  return out;
}

// Every split that contains channel c normalises it with the same batch statistics,
// so they are computed once over all C channels; each split then applies only its
// own affine (folded, with the statistics, into one scale and shift per column).
// All normalised prefixes are laid side by side in one [N, C*(S+1)/2] tensor so that
// the scale, shift and ReLU run as one elementwise pass instead of S.
HeadOutput SplitAndShareImpl::forward_fused(const torch::Tensor& features) {
  const int64_t s = options.splits();
  const int64_t w = split_width();
  const auto x = features.contiguous();

  torch::Tensor batch_mean, batch_invstd;
  if (is_training()) {
    torch::Tensor batch_var;
    double n = static_cast<double>(x.size(0));
    if (batch_norm_all_reduce && *batch_norm_all_reduce) {
      auto moments = global_moments(x, batch_norm_all_reduce);
      batch_mean = moments.mean;
      batch_var = moments.var;
      n = moments.count;
    } else {
      auto var_mean = torch::var_mean(x, {0}, /*unbiased=*/false);
      batch_mean = std::get<1>(var_mean);
      batch_var = std::get<0>(var_mean);
    }
    TORCH_CHECK(n > 1, "SplitAndShare: BatchNorm needs more than 1 sample per batch in training, got ", n);
    batch_invstd = torch::rsqrt(batch_var + options.eps());
    torch::NoGradGuard no_grad;
    const auto unbiased = batch_var.detach() * (n / (n - 1.0));
    const auto m = options.momentum();
    for (int64_t i = 0; i < s; ++i) {
      if (!has_norm(i)) continue;
      auto* norm = bn[i]->as<torch::nn::BatchNorm1d>();
      const int64_t width = (i + 1) * w;
      norm->running_mean.mul_(1.0 - m).add_(batch_mean.detach().narrow(0, 0, width), m);
      norm->running_var.mul_(1.0 - m).add_(unbiased.narrow(0, 0, width), m);
      norm->num_batches_tracked.add_(1);
    }
  }

  std::vector<torch::Tensor> scales, shifts;
  int64_t normed_width = 0;
  for (int64_t i = 0; i < s; ++i) {
    if (!has_norm(i)) continue;
    auto* norm = bn[i]->as<torch::nn::BatchNorm1d>();
    const int64_t width = (i + 1) * w;
    torch::Tensor mean, invstd;
    if (is_training()) {
      mean = batch_mean.narrow(0, 0, width);
      invstd = batch_invstd.narrow(0, 0, width);
    } else {
      mean = norm->running_mean;
      invstd = torch::rsqrt(norm->running_var + options.eps());
    }
    auto scale = norm->weight * invstd;
    scales.push_back(scale);
    shifts.push_back(norm->bias - mean * scale);
    normed_width += width;
  }

  torch::Tensor normed;
  if (normed_width > 0) {
    // Columns of the concatenated prefixes: [0, w), [0, 2w), ...
    auto index = torch::cat([&] {
      std::vector<torch::Tensor> parts;
      for (int64_t i = 0; i < s; ++i) {
        if (has_norm(i)) parts.push_back(torch::arange((i + 1) * w, torch::TensorOptions().dtype(torch::kLong).device(x.device())));
      }
      return parts;
    }());
    normed = torch::relu(torch::addcmul(torch::cat(shifts), x.index_select(1, index), torch::cat(scales)));
  }

  HeadOutput out;
  int64_t offset = 0;
  for (int64_t i = 0; i < s; ++i) {
    const int64_t width = (i + 1) * w;
    auto* linear = fc[i]->as<torch::nn::Linear>();
    torch::Tensor input;
    if (has_norm(i)) {
      input = normed.narrow(1, offset, width);
      offset += width;
    } else {
      input = x.narrow(1, 0, width);
    }
    out.head_logits.push_back(torch::addmm(linear->bias, input, linear->weight.t()));
  }
  out.logits = out.head_logits[0];
  for (int64_t i = 1; i < s; ++i) out.logits = out.logits + out.head_logits[i];
  if (options.mean()) out.logits = out.logits / static_cast<double>(s);
  return out;
}

}  // namespace splitshare::nn
