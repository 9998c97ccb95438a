#include <splitshare/nn/split_and_share.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>

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

// One part of rows [0, n) per intra-op thread (at most n parts): column reductions keep
// one partial row per part and add them up at the end.
int64_t row_chunks(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
}

// fn(chunk, first_row, end_row) for each of `chunks` parts of rows [0, n), on the pool.
template <typename F>
void for_row_chunks(int64_t n, int64_t chunks, const F& fn) {
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) fn(chunk, chunk * n / chunks, (chunk + 1) * n / chunks);
  });
}

// Column sums of (x - mean)^2 for x [N, C]: one pass over x, without the two [N, C]
// temporaries of (x - mean).pow(2).sum(0).
torch::Tensor centered_square_sums(const torch::Tensor& x, const torch::Tensor& mean) {
  if (!(x.device().is_cpu() && x.is_contiguous() && mean.scalar_type() == x.scalar_type() &&
        (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble))) {
    const auto centered = x - mean;
    return centered.mul(centered).sum(0);
  }
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t chunks = row_chunks(n);
  auto partial = torch::zeros({chunks, c}, x.options());
  const auto m = mean.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "SplitAndShare variance", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* mp = m.data_ptr<scalar_t>();
    for_row_chunks(n, chunks, [&](int64_t chunk, int64_t r0, int64_t r1) {
      scalar_t* __restrict acc = partial[chunk].data_ptr<scalar_t>();
      for (int64_t b = r0; b < r1; ++b) {
        const scalar_t* __restrict xr = xp + b * c;
        for (int64_t j = 0; j < c; ++j) {
          const scalar_t d = xr[j] - mp[j];
          acc[j] += d * d;
        }
      }
    });
  });
  return partial.sum(0);
}

// One row of one split: relu(x * scale + shift). Separate pointers (restrict) so that
// the loop vectorises.
template <typename T>
inline void normalize_row(const T* __restrict x, const T* __restrict scale, const T* __restrict shift,
                          T* __restrict out, int64_t width) {
  for (int64_t j = 0; j < width; ++j) {
    const T v = x[j] * scale[j] + shift[j];
    out[j] = v < T(0) ? T(0) : v;  // as clamp_min: NaN stays NaN (the trainer's NaN check relies on it)
  }
}

// relu(x[:, :(i+1)w] * scales[i] + shifts[i]) of every normalised split in one pass over
// the rows of x [N, C], instead of two elementwise operations per split.
template <typename T>
variable_list normalize_kernel(const torch::Tensor& x, const std::vector<torch::Tensor>& scales,
                               const std::vector<torch::Tensor>& shifts, int64_t w) {
  const int64_t n = x.size(0), c = x.size(1), splits = static_cast<int64_t>(scales.size());
  variable_list out;
  std::vector<T*> out_ptr;
  for (int64_t i = 0; i < splits; ++i) {
    out.push_back(torch::empty({n, (i + 1) * w}, x.options()));
    out_ptr.push_back(out.back().template data_ptr<T>());
  }
  const T* xp = x.data_ptr<T>();
  at::parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t i = 0; i < splits; ++i) {
        const int64_t width = (i + 1) * w;
        normalize_row(xp + b * c, scales[i].template data_ptr<T>(), shifts[i].template data_ptr<T>(),
                      out_ptr[i] + b * width, width);
      }
    }
  });
  return out;
}

// The forward shared by the autograd path and the no-grad path. means/invstds hold
// the statistics each normalised split uses (prefixes of one vector in training,
// each split's running statistics in evaluation). Returns the S head logits followed
// by the normalised prefixes (the inputs of the normalised heads' GEMMs).
std::pair<variable_list, variable_list> head_forward(const torch::Tensor& x, torch::TensorList means,
                                                     torch::TensorList invstds, torch::TensorList gammas,
                                                     torch::TensorList betas, torch::TensorList weights,
                                                     torch::TensorList biases) {
  const auto s = static_cast<int64_t>(weights.size());
  const auto nn = static_cast<int64_t>(gammas.size());
  const auto w = x.size(1) / s;
  std::vector<torch::Tensor> scales, shifts;
  for (int64_t i = 0; i < nn; ++i) {
    scales.push_back(gammas[i] * invstds[i]);
    shifts.push_back(betas[i] - means[i] * scales[i]);
  }
  variable_list normed;
  const bool kernel = !torch::GradMode::is_enabled() && x.device().is_cpu() && x.is_contiguous() &&
                      (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble);
  if (kernel && nn > 0) {
    for (int64_t i = 0; i < nn; ++i) {
      scales[i] = scales[i].to(x.scalar_type()).contiguous();
      shifts[i] = shifts[i].to(x.scalar_type()).contiguous();
    }
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "SplitAndShare normalize", [&] {
      normed = normalize_kernel<scalar_t>(x, scales, shifts, w);
    });
  } else {
    // Differentiable (Grad-CAM through an evaluation-mode head), or another device or type.
    for (int64_t i = 0; i < nn; ++i) {
      normed.push_back(torch::addcmul(shifts[i], x.narrow(1, 0, (i + 1) * w), scales[i]).clamp_min_(0));
    }
  }
  std::vector<torch::Tensor> inputs;
  for (int64_t i = 0; i < s; ++i) inputs.push_back(i < nn ? normed[i] : x);
  return {linear_many(inputs, weights.vec(), biases.vec()), normed};
}

torch::Tensor combine(const variable_list& heads, double out_scale) {
  auto logits = heads[0].clone();
  for (size_t i = 1; i < heads.size(); ++i) logits.add_(heads[i]);
  return out_scale == 1.0 ? logits : logits.mul_(out_scale);
}

// The BatchNorm+ReLU backward of all normalised splits at once, in two passes over
// [N, normed width] instead of five elementwise operations per split. grad_inputs[i] is
// the gradient w.r.t. split i's normalised input [N, (i+1)w] (undefined: the split got
// no gradient). Fills each split's gamma and beta gradient and returns the gradient
// w.r.t. x[:, :normed width], through the batch statistics.
// One row of one split: dy = the GEMM gradient through the ReLU; beta and gamma sums, and
// h += gamma * dy. Separate pointers (restrict) so that the loop vectorises.
template <typename T>
inline void split_row(const T* __restrict gi, const T* __restrict in, const T* __restrict gamma,
                      const T* __restrict xhat, T* __restrict beta_sum, T* __restrict gamma_sum, T* __restrict h,
                      int64_t width) {
  for (int64_t j = 0; j < width; ++j) {
    const T g = gi[j];
    const T dy = in[j] <= T(0) ? T(0) : g;  // as threshold_backward: a NaN input passes its gradient
    beta_sum[j] += dy;
    gamma_sum[j] += dy * xhat[j];
    h[j] += dy * gamma[j];
  }
}

template <typename T>
torch::Tensor norm_backward_kernel(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
                                   const std::vector<torch::Tensor>& grad_inputs,
                                   const std::vector<torch::Tensor>& normed, const std::vector<torch::Tensor>& gammas,
                                   int64_t w, std::vector<torch::Tensor>& grad_gamma,
                                   std::vector<torch::Tensor>& grad_beta) {
  const int64_t n = x.size(0), c = x.size(1), splits = static_cast<int64_t>(normed.size()), nw = splits * w;
  // Per chunk of rows: [beta sums, gamma sums] of each split, then the column sums of h and h * xhat.
  std::vector<int64_t> offset(splits + 1, 0);
  for (int64_t i = 0; i < splits; ++i) offset[i + 1] = offset[i] + (grad_inputs[i].defined() ? 2 * (i + 1) * w : 0);
  const int64_t partial_len = offset[splits] + 2 * nw;
  const int64_t chunks = row_chunks(n);
  auto partial = torch::zeros({chunks, partial_len}, x.options());
  auto h = torch::empty({n, nw}, x.options());
  const T* xp = x.data_ptr<T>();
  const T* mp = mean.data_ptr<T>();
  const T* ip = invstd.data_ptr<T>();
  T* hp = h.data_ptr<T>();
  std::vector<const T*> gi_ptr(splits, nullptr), in_ptr(splits, nullptr), gam_ptr(splits, nullptr);
  for (int64_t i = 0; i < splits; ++i) {
    if (!grad_inputs[i].defined()) continue;
    gi_ptr[i] = grad_inputs[i].template data_ptr<T>();
    in_ptr[i] = normed[i].template data_ptr<T>();
    gam_ptr[i] = gammas[i].template data_ptr<T>();
  }

  for_row_chunks(n, chunks, [&](int64_t chunk, int64_t r0, int64_t r1) {
    std::vector<T> xhat(nw);
    T* acc = partial[chunk].template data_ptr<T>();
    T* __restrict sum_h = acc + offset[splits];
    T* __restrict sum_hx = sum_h + nw;
    for (int64_t b = r0; b < r1; ++b) {
      const T* __restrict xr = xp + b * c;
      T* __restrict xh = xhat.data();
      T* __restrict hr = hp + b * nw;
      for (int64_t j = 0; j < nw; ++j) {
        xh[j] = (xr[j] - mp[j]) * ip[j];
        hr[j] = 0;
      }
      for (int64_t i = 0; i < splits; ++i) {
        if (!grad_inputs[i].defined()) continue;
        const int64_t width = (i + 1) * w;
        split_row(gi_ptr[i] + b * width, in_ptr[i] + b * width, gam_ptr[i], xh, acc + offset[i],
                  acc + offset[i] + width, hr, width);
      }
      for (int64_t j = 0; j < nw; ++j) {
        sum_h[j] += hr[j];
        sum_hx[j] += hr[j] * xh[j];
      }
    }
  });
  const auto sums = partial.sum(0);
  for (int64_t i = 0; i < splits; ++i) {
    if (!grad_inputs[i].defined()) continue;
    const int64_t width = (i + 1) * w;
    grad_beta[i] = sums.narrow(0, offset[i], width).clone();
    grad_gamma[i] = sums.narrow(0, offset[i] + width, width).clone();
  }
  // dx = (h - mean(h) - xhat * mean(h * xhat)) * invstd, in place over h.
  const auto mean_h = sums.narrow(0, offset[splits], nw).div(static_cast<double>(n)).contiguous();
  const auto proj = sums.narrow(0, offset[splits] + nw, nw).div(static_cast<double>(n)).contiguous();
  const T* mh = mean_h.data_ptr<T>();
  const T* pj = proj.data_ptr<T>();
  at::parallel_for(0, n, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t b = r0; b < r1; ++b) {
      const T* __restrict xr = xp + b * c;
      T* __restrict hr = hp + b * nw;
      for (int64_t j = 0; j < nw; ++j) hr[j] = (hr[j] - mh[j] - (xr[j] - mp[j]) * ip[j] * pj[j]) * ip[j];
    }
  });
  return h;
}

// The same as norm_backward_kernel with torch operations, for other devices (CUDA) and
// types (bfloat16, half): five elementwise operations per split.
torch::Tensor norm_backward_ops(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
                                const std::vector<torch::Tensor>& grad_inputs, const std::vector<torch::Tensor>& normed,
                                const std::vector<torch::Tensor>& gammas, int64_t w,
                                std::vector<torch::Tensor>& grad_gamma, std::vector<torch::Tensor>& grad_beta) {
  const int64_t splits = static_cast<int64_t>(normed.size()), nw = splits * w;
  auto xhat = (x.narrow(1, 0, nw) - mean) * invstd;
  auto h = torch::zeros_like(xhat);
  for (int64_t i = 0; i < splits; ++i) {
    if (!grad_inputs[i].defined()) continue;
    const int64_t width = (i + 1) * w;
    const auto dy = torch::threshold_backward(grad_inputs[i], normed[i], 0);
    grad_beta[i] = dy.sum(0);
    grad_gamma[i] = (dy * xhat.narrow(1, 0, width)).sum(0);
    h.narrow(1, 0, width).addcmul_(dy, gammas[i]);
  }
  const auto proj = (h * xhat).mean(0);
  return h.sub_(h.mean(0)).sub_(xhat.mul_(proj)).mul_(invstd);
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

    torch::Tensor grad_x;
    std::vector<torch::Tensor> grad_inputs(nn), normed_inputs(nn), gammas(nn), grad_gamma(nn), grad_beta(nn);
    torch::Tensor shared_bias_grad;  // the combined logits' gradient alone: the same for every split
    std::vector<int64_t> with_grad;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> products;
    for (int64_t i = s - 1; i >= 0; --i) {
      auto g = g_mean;
      const bool own = grad_outputs[1 + i].defined();
      if (own) g = g.defined() ? g + grad_outputs[1 + i] : grad_outputs[1 + i];
      if (!g.defined()) continue;
      // Under autocast the logits (and so their gradients) are reduced precision; the
      // weights and saved activations are not.
      if (g.scalar_type() != weight(i).scalar_type()) g = g.to(weight(i).scalar_type());
      const auto input = i < nn ? normed(i) : x;  // only the last split can be plain, and it sees all of x
      if (own) {
        grads[g_bias + i] = g.sum(0);
      } else {
        if (!shared_bias_grad.defined()) shared_bias_grad = g.sum(0);
        grads[g_bias + i] = shared_bias_grad.clone();
      }
      with_grad.push_back(i);
      products.emplace_back(g.t(), input);
      products.emplace_back(g, weight(i));
    }
    // The weight and input gradients of every split, spread over the threads at once.
    const auto results = parallel_mm_many(products);
    for (size_t k = 0; k < with_grad.size(); ++k) {
      const int64_t i = with_grad[k];
      grads[g_weight + i] = results[2 * k];
      const auto& grad_input = results[2 * k + 1];
      if (i >= nn) {
        grad_x = grad_input;
        continue;
      }
      grad_inputs[i] = grad_input.contiguous();
      normed_inputs[i] = normed(i).contiguous();
      gammas[i] = gamma(i).to(normed(i).scalar_type()).contiguous();
    }
    const bool any_normed = std::any_of(grad_inputs.begin(), grad_inputs.end(), [](const auto& t) { return t.defined(); });
    if (any_normed) {
      // BatchNorm's backward through the batch statistics, once for all splits.
      // Splits without a gradient are skipped by both implementations.
      const auto type =
          std::find_if(normed_inputs.begin(), normed_inputs.end(), [](const auto& t) { return t.defined(); })
              ->scalar_type();
      const auto xs = x.to(type).contiguous();
      const auto mean = saved[1].to(type).contiguous(), invstd = saved[2].to(type).contiguous();
      torch::Tensor dx;
      if (xs.device().is_cpu() && (type == torch::kFloat || type == torch::kDouble)) {
        AT_DISPATCH_FLOATING_TYPES(type, "SplitAndShare norm backward", [&] {
          dx = norm_backward_kernel<scalar_t>(xs, mean, invstd, grad_inputs, normed_inputs, gammas, w, grad_gamma,
                                              grad_beta);
        });
      } else {
        dx = norm_backward_ops(xs, mean, invstd, grad_inputs, normed_inputs, gammas, w, grad_gamma, grad_beta);
      }
      for (int64_t i = 0; i < nn; ++i) {
        if (!grad_inputs[i].defined()) continue;
        grads[g_gamma + i] = grad_gamma[i].to(gamma(i).scalar_type());
        grads[g_beta + i] = grad_beta[i].to(gamma(i).scalar_type());
      }
      dx = dx.to(x.scalar_type());
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
      var = centered_square_sums(x.detach(), batch_mean).div_(n);
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
