#include "split_and_share_kernels.h"

#include "matmul.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>

namespace splitshare::nn::detail {

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

}  // namespace

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

namespace {

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

}  // namespace

// The forward shared by the autograd path and the no-grad path. means/invstds hold
// the statistics each normalised split uses (prefixes of one vector in training,
// each split's running statistics in evaluation). Returns the S head logits followed
// by the normalised prefixes (the inputs of the normalised heads' GEMMs).
std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> head_forward(const torch::Tensor& x, torch::TensorList means,
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

torch::Tensor combine(const std::vector<torch::Tensor>& heads, double out_scale) {
  auto logits = heads[0].clone();
  for (size_t i = 1; i < heads.size(); ++i) logits.add_(heads[i]);
  return out_scale == 1.0 ? logits : logits.mul_(out_scale);
}

namespace {

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

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs);
};

// What FusedHead::forward saved, by name, and where each input's gradient goes.
struct Saved {
  torch::Tensor x, mean, invstd;  // mean/invstd: the widest normalised split's statistics
  std::vector<torch::Tensor> normed, gammas, weights;
  double out_scale = 1.0;
  int64_t norms = 0, splits = 0, width = 0;
  // In forward-input order: x, out_scale, means, invstds, gammas, betas, weights, biases.
  int64_t grad_count() const { return 2 + 4 * norms + 2 * splits; }
  int64_t grad_gamma(int64_t i) const { return 2 + 2 * norms + i; }
  int64_t grad_beta(int64_t i) const { return 2 + 3 * norms + i; }
  int64_t grad_weight(int64_t i) const { return 2 + 4 * norms + i; }
  int64_t grad_bias(int64_t i) const { return 2 + 4 * norms + splits + i; }
};

Saved unpack(AutogradContext* ctx) {
  const auto tensors = ctx->get_saved_variables();
  Saved s;
  s.out_scale = ctx->saved_data["out_scale"].toDouble();
  s.norms = ctx->saved_data["norms"].toInt();
  s.splits = ctx->saved_data["splits"].toInt();
  s.x = tensors[0];
  s.width = s.x.size(1) / s.splits;
  const int64_t stats = s.norms > 0 ? 2 : 0;
  if (stats) {
    s.mean = tensors[1];
    s.invstd = tensors[2];
  }
  auto at = tensors.begin() + 1 + stats;
  s.normed.assign(at, at + s.norms);
  s.gammas.assign(at + s.norms, at + 2 * s.norms);
  s.weights.assign(at + 2 * s.norms, at + 2 * s.norms + s.splits);
  return s;
}

// The GEMM half: every split's bias, weight and input gradient, the products spread over
// the threads at once. Fills grads' bias and weight entries and grad_inputs[i] (the gradient
// w.r.t. normalised split i's input; undefined: no gradient); returns the gradient w.r.t. x
// through the plain last split (undefined when there is none or it got no gradient).
torch::Tensor linear_backward(const Saved& saved, const variable_list& grad_outputs, variable_list& grads,
                              std::vector<torch::Tensor>& grad_inputs) {
  torch::Tensor g_mean;
  if (grad_outputs[0].defined()) g_mean = saved.out_scale == 1.0 ? grad_outputs[0] : grad_outputs[0] * saved.out_scale;
  torch::Tensor shared_bias_grad;  // the combined logits' gradient alone: the same for every split
  std::vector<int64_t> with_grad;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> products;
  for (int64_t i = saved.splits - 1; i >= 0; --i) {
    auto g = g_mean;
    const bool own = grad_outputs[1 + i].defined();
    if (own) g = g.defined() ? g + grad_outputs[1 + i] : grad_outputs[1 + i];
    if (!g.defined()) continue;
    const auto& weight = saved.weights[i];
    // Under autocast the logits (and so their gradients) are reduced precision; the
    // weights and saved activations are not.
    if (g.scalar_type() != weight.scalar_type()) g = g.to(weight.scalar_type());
    if (own) {
      grads[saved.grad_bias(i)] = g.sum(0);
    } else {
      if (!shared_bias_grad.defined()) shared_bias_grad = g.sum(0);
      grads[saved.grad_bias(i)] = shared_bias_grad.clone();
    }
    with_grad.push_back(i);
    // Only the last split can be plain, and it sees all of x.
    products.emplace_back(g.t(), i < saved.norms ? saved.normed[i] : saved.x);
    products.emplace_back(g, weight);
  }
  const auto results = parallel_mm_many(products);
  torch::Tensor grad_x;
  for (size_t k = 0; k < with_grad.size(); ++k) {
    const int64_t i = with_grad[k];
    grads[saved.grad_weight(i)] = results[2 * k];
    if (i >= saved.norms) {
      grad_x = results[2 * k + 1];
    } else {
      grad_inputs[i] = results[2 * k + 1].contiguous();
    }
  }
  return grad_x;
}

// The BatchNorm half: through every normalised split's ReLU, affine and the shared batch
// statistics at once. Fills grads' gamma and beta entries; returns the gradient w.r.t.
// x[:, :norms * width] (undefined when no normalised split got a gradient).
torch::Tensor norm_backward(const Saved& saved, const std::vector<torch::Tensor>& grad_inputs, variable_list& grads) {
  const int64_t nn = saved.norms;
  std::vector<torch::Tensor> normed_inputs(nn), gammas(nn), grad_gamma(nn), grad_beta(nn);
  std::optional<torch::ScalarType> type;
  for (int64_t i = 0; i < nn; ++i) {
    if (!grad_inputs[i].defined()) continue;  // skipped by both implementations
    normed_inputs[i] = saved.normed[i].contiguous();
    gammas[i] = saved.gammas[i].to(saved.normed[i].scalar_type()).contiguous();
    if (!type) type = saved.normed[i].scalar_type();
  }
  if (!type) return {};
  const auto xs = saved.x.to(*type).contiguous();
  const auto mean = saved.mean.to(*type).contiguous(), invstd = saved.invstd.to(*type).contiguous();
  torch::Tensor dx;
  if (xs.device().is_cpu() && (*type == torch::kFloat || *type == torch::kDouble)) {
    AT_DISPATCH_FLOATING_TYPES(*type, "SplitAndShare norm backward", [&] {
      dx = norm_backward_kernel<scalar_t>(xs, mean, invstd, grad_inputs, normed_inputs, gammas, saved.width,
                                          grad_gamma, grad_beta);
    });
  } else {
    dx = norm_backward_ops(xs, mean, invstd, grad_inputs, normed_inputs, gammas, saved.width, grad_gamma, grad_beta);
  }
  for (int64_t i = 0; i < nn; ++i) {
    if (!grad_inputs[i].defined()) continue;
    grads[saved.grad_gamma(i)] = grad_gamma[i].to(saved.gammas[i].scalar_type());
    grads[saved.grad_beta(i)] = grad_beta[i].to(saved.gammas[i].scalar_type());
  }
  return dx.to(saved.x.scalar_type());
}

// Gradients in Saved::grad_count() order; grad_outputs: the combined logits', then each head's
// (undefined: none). With constant statistics (batch_stats false: evaluation) each normalised
// split's BatchNorm is an affine map with its own means/invstds.
variable_list head_backward(const Saved& saved, const variable_list& grad_outputs, bool batch_stats,
                            torch::TensorList means, torch::TensorList invstds) {
  variable_list grads(saved.grad_count());
  std::vector<torch::Tensor> grad_inputs(saved.norms);
  auto grad_x = linear_backward(saved, grad_outputs, grads, grad_inputs);
  if (!grad_x.defined()) grad_x = torch::zeros_like(saved.x);
  if (batch_stats) {
    const auto dx = norm_backward(saved, grad_inputs, grads);
    if (dx.defined()) grad_x.narrow(1, 0, saved.norms * saved.width).add_(dx);
  } else {
    for (int64_t i = 0; i < saved.norms; ++i) {
      if (!grad_inputs[i].defined()) continue;
      const int64_t width = (i + 1) * saved.width;
      const auto dy = torch::threshold_backward(grad_inputs[i], saved.normed[i], 0);
      const auto xhat = (saved.x.narrow(1, 0, width) - means[i]) * invstds[i];
      grads[saved.grad_beta(i)] = dy.sum(0);
      grads[saved.grad_gamma(i)] = (dy * xhat).sum(0);
      grad_x.narrow(1, 0, width).addcmul_(dy, saved.gammas[i] * invstds[i]);
    }
  }
  grads[0] = grad_x;
  return grads;
}

variable_list FusedHead::backward(AutogradContext* ctx, variable_list grad_outputs) {
  return head_backward(unpack(ctx), grad_outputs, /*batch_stats=*/true, {}, {});
}

}  // namespace

std::vector<torch::Tensor> fused_head_train(const torch::Tensor& x, double out_scale, torch::TensorList means,
                                            torch::TensorList invstds, torch::TensorList gammas,
                                            torch::TensorList betas, torch::TensorList weights,
                                            torch::TensorList biases) {
  return FusedHead::apply(x, out_scale, means, invstds, gammas, betas, weights, biases);
}

HeadGradients head_backward(const torch::Tensor& grad_logits, const std::vector<torch::Tensor>& grad_heads,
                            const torch::Tensor& x, torch::TensorList means, torch::TensorList invstds,
                            torch::TensorList normed, torch::TensorList gammas, torch::TensorList weights,
                            double out_scale, bool batch_stats) {
  Saved saved;
  saved.x = x;
  saved.norms = static_cast<int64_t>(gammas.size());
  saved.splits = static_cast<int64_t>(weights.size());
  saved.width = x.size(1) / saved.splits;
  saved.out_scale = out_scale;
  if (saved.norms > 0) {
    saved.mean = means.back();
    saved.invstd = invstds.back();
  }
  saved.normed = normed.vec();
  saved.gammas = gammas.vec();
  saved.weights = weights.vec();
  variable_list outputs = {grad_logits};
  outputs.insert(outputs.end(), grad_heads.begin(), grad_heads.end());
  const auto grads = head_backward(saved, outputs, batch_stats, means, invstds);
  HeadGradients out{grads[0], {}, {}, {}, {}};
  const auto or_zeros = [](const torch::Tensor& g, const torch::Tensor& like) {
    return g.defined() ? g : torch::zeros_like(like);
  };
  for (int64_t i = 0; i < saved.norms; ++i) {
    out.gammas.push_back(or_zeros(grads[saved.grad_gamma(i)], gammas[i]));
    out.betas.push_back(or_zeros(grads[saved.grad_beta(i)], gammas[i]));
  }
  for (int64_t i = 0; i < saved.splits; ++i) {
    out.weights.push_back(or_zeros(grads[saved.grad_weight(i)], weights[i]));
    out.biases.push_back(or_zeros(grads[saved.grad_bias(i)], weights[i].select(1, 0)));
  }
  return out;
}

}  // namespace splitshare::nn::detail
