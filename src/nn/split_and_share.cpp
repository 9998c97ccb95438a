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
    auto* layer = fc[i]->as<torch::nn::Linear>();
    out.head_logits.push_back(linear(x, layer->weight, layer->bias));
  }
  out.logits = torch::stack(out.head_logits).sum(0);
  if (options.mean()) out.logits = out.logits / static_cast<double>(s);
  return out;
}

// Every split that contains channel c normalises it with the same batch statistics,
// so they are computed once over all C channels; each split then applies only its
// own affine (folded, with the statistics, into one scale and shift per column).
// The backward is written by hand (FusedHead below): autograd through the same ops
// would materialise a zero-filled [N, width] gradient per narrow and several
// elementwise passes per split, which costs as much as a GEMM at batch 256.
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The forward shared by the autograd path and the no-grad path. means/invstds hold
// the statistics each normalised split uses (prefixes of one vector in training,
// each split's running statistics in evaluation). Returns the S head logits followed
// by the normalised prefixes (the inputs of the normalised heads' GEMMs).
std::pair<variable_list, variable_list> head_forward(const torch::Tensor& x, torch::TensorList means,
                                                     torch::TensorList invstds, torch::TensorList gammas,
                                                     torch::TensorList betas, torch::TensorList weights,
                                                     torch::TensorList biases) {
  const auto s = static_cast<int64_t>(weights.size());
  const auto w = x.size(1) / s;
  variable_list heads, normed;
  for (int64_t i = 0; i < s; ++i) {
    auto input = x.narrow(1, 0, (i + 1) * w);
    if (i < static_cast<int64_t>(gammas.size())) {
      const auto scale = gammas[i] * invstds[i];
      const auto shift = betas[i] - means[i] * scale;
      input = torch::addcmul(shift, input, scale).clamp_min_(0);
      normed.push_back(input);
    }
    heads.push_back(linear(input, weights[i], biases[i]));
  }
  return {heads, normed};
}

torch::Tensor combine(const variable_list& heads, double out_scale) {
  auto logits = heads[0].clone();
  for (size_t i = 1; i < heads.size(); ++i) logits.add_(heads[i]);
  return out_scale == 1.0 ? logits : logits.mul_(out_scale);
}

// Training with batch statistics. Outputs: combined logits, then the S head logits.
// means/invstds are the batch statistics' prefixes (constants here); their gradient
// with respect to x is part of the hand-written backward.
struct FusedHead : public torch::autograd::Function<FusedHead> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, double out_scale,
                               torch::TensorList means, torch::TensorList invstds, torch::TensorList gammas,
                               torch::TensorList betas, torch::TensorList weights, torch::TensorList biases) {
    ctx->set_materialize_grads(false);
    auto [heads, normed] = head_forward(x, means, invstds, gammas, betas, weights, biases);
    variable_list saved = {x};
    const auto nn = static_cast<int64_t>(gammas.size());
    if (nn > 0) {
      saved.push_back(means[nn - 1]);
      saved.push_back(invstds[nn - 1]);
    }
    saved.insert(saved.end(), normed.begin(), normed.end());
    saved.insert(saved.end(), gammas.begin(), gammas.end());
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["out_scale"] = out_scale;
    ctx->saved_data["norms"] = nn;
    ctx->saved_data["splits"] = static_cast<int64_t>(weights.size());
    variable_list out = {combine(heads, out_scale)};
    out.insert(out.end(), heads.begin(), heads.end());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const double out_scale = ctx->saved_data["out_scale"].toDouble();
    const int64_t nn = ctx->saved_data["norms"].toInt();
    const int64_t s = ctx->saved_data["splits"].toInt();
    const auto& x = saved[0];
    const int64_t stats = nn > 0 ? 2 : 0;
    auto normed = [&](int64_t i) { return saved[1 + stats + i]; };
    auto gamma = [&](int64_t i) { return saved[1 + stats + nn + i]; };
    auto weight = [&](int64_t i) { return saved[1 + stats + 2 * nn + i]; };
    const int64_t w = x.size(1) / s;
    const int64_t normed_width = nn * w;

    // In forward-input order: x, out_scale, means, invstds, gammas, betas, weights, biases.
    variable_list grads(2 + 4 * nn + 2 * s);
    const int64_t g_gamma = 2 + 2 * nn, g_beta = g_gamma + nn, g_weight = g_beta + nn, g_bias = g_weight + s;
    torch::Tensor g_mean;
    if (grad_outputs[0].defined()) g_mean = out_scale == 1.0 ? grad_outputs[0] : grad_outputs[0] * out_scale;

    torch::Tensor xhat, h, grad_x;  // h: the summed gradient w.r.t. xhat over the normalised channels
    if (nn > 0) xhat = (x.narrow(1, 0, normed_width) - saved[1]) * saved[2];
    for (int64_t i = s - 1; i >= 0; --i) {
      auto g = g_mean;
      if (grad_outputs[1 + i].defined()) g = g.defined() ? g + grad_outputs[1 + i] : grad_outputs[1 + i];
      if (!g.defined()) continue;
      // Under autocast the logits (and so their gradients) are reduced precision; the
      // weights and saved activations are not.
      if (g.scalar_type() != weight(i).scalar_type()) g = g.to(weight(i).scalar_type());
      const int64_t width = (i + 1) * w;
      const auto input = i < nn ? normed(i) : x;  // only the last split can be plain, and it sees all of x
      grads[g_bias + i] = g.sum(0);
      grads[g_weight + i] = parallel_mm(g.t(), input);
      auto grad_input = parallel_mm(g, weight(i));
      if (i >= nn) {
        grad_x = grad_input;
        continue;
      }
      auto dy = torch::threshold_backward(grad_input, input, 0);
      grads[g_beta + i] = dy.sum(0);
      grads[g_gamma + i] = (dy * xhat.narrow(1, 0, width)).sum(0);
      if (!h.defined() && width == normed_width) {
        h = dy.mul_(gamma(i));
      } else {
        if (!h.defined()) h = torch::zeros_like(xhat);
        h.narrow(1, 0, width).addcmul_(dy, gamma(i));
      }
    }
    if (h.defined()) {
      // BatchNorm's backward through the batch statistics, once for all splits.
      const auto proj = (h * xhat).mean(0);
      auto dx = h.sub_(h.mean(0)).sub_(xhat.mul_(proj)).mul_(saved[2]);
      if (grad_x.defined()) {
        grad_x.narrow(1, 0, normed_width).add_(dx);
      } else if (normed_width == x.size(1)) {
        grad_x = dx;
      } else {
        grad_x = torch::zeros_like(x);
        grad_x.narrow(1, 0, normed_width).copy_(dx);
      }
    }
    grads[0] = grad_x;
    return grads;
  }
};

}  // namespace

HeadOutput SplitAndShareImpl::forward_fused(const torch::Tensor& features) {
  const int64_t s = options.splits();
  const int64_t w = split_width();
  const auto x = features.contiguous();

  std::vector<torch::Tensor> means, invstds, gammas, betas, weights, biases;
  torch::Tensor batch_mean, batch_invstd;
  // --sync-bn: statistics of the global batch through a differentiable all-reduce; the
  // hand-written backward below assumes local statistics, so autograd takes over then.
  const bool synced = batch_norm_all_reduce && *batch_norm_all_reduce;
  if (is_training()) {
    torch::Tensor var;
    double n = static_cast<double>(x.size(0));
    if (synced) {
      auto moments = global_moments(x, batch_norm_all_reduce);
      batch_mean = moments.mean;
      var = moments.var;
      n = moments.count;
    } else {
      torch::NoGradGuard no_grad;
      // Column sums of the row-major [N, C] input are much cheaper than var_mean over dim 0.
      batch_mean = x.detach().sum(0).div_(n);
      const auto centered = x.detach() - batch_mean;
      var = centered.mul(centered).sum(0).div_(n);
    }
    TORCH_CHECK(n > 1, "SplitAndShare: BatchNorm needs more than 1 sample per batch in training, got ", n);
    batch_invstd = torch::rsqrt(var + options.eps());
    torch::NoGradGuard no_grad;
    const auto unbiased = var.detach() * (n / (n - 1.0));
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
  for (int64_t i = 0; i < s; ++i) {
    auto* linear = fc[i]->as<torch::nn::Linear>();
    weights.push_back(linear->weight);
    biases.push_back(linear->bias);
    if (!has_norm(i)) continue;
    auto* norm = bn[i]->as<torch::nn::BatchNorm1d>();
    const int64_t width = (i + 1) * w;
    if (is_training()) {
      means.push_back(batch_mean.narrow(0, 0, width));
      invstds.push_back(batch_invstd.narrow(0, 0, width));
    } else {
      torch::NoGradGuard no_grad;
      means.push_back(norm->running_mean);
      invstds.push_back(torch::rsqrt(norm->running_var + options.eps()));
    }
    gammas.push_back(norm->weight);
    betas.push_back(norm->bias);
  }
  const double out_scale = options.mean() ? 1.0 / static_cast<double>(s) : 1.0;

  HeadOutput out;
  // In evaluation the statistics are constants and autograd through head_forward is exact
  // (Grad-CAM); in training the hand-written backward also covers the batch statistics.
  if (torch::GradMode::is_enabled() && is_training() && !synced) {
    auto result = FusedHead::apply(x, out_scale, torch::TensorList(means), torch::TensorList(invstds),
                                   torch::TensorList(gammas), torch::TensorList(betas), torch::TensorList(weights),
                                   torch::TensorList(biases));
    out.logits = result[0];
    out.head_logits.assign(result.begin() + 1, result.end());
  } else {
    out.head_logits = head_forward(x, means, invstds, gammas, betas, weights, biases).first;
    out.logits = combine(out.head_logits, out_scale);
  }
  return out;
}

}  // namespace splitshare::nn
