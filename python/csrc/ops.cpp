// The SSM head's fused CPU kernels as torch operators (`torch.ops.splitshare.*`), for the Python
// package: the same kernels `nn::SplitAndShare` runs, registered with the dispatcher instead of
// wrapped in a C++ autograd function, so that Python registers the autograd formula, the fake
// kernel and autocast around them (python/splitshare/ops.py) and torch.compile traces the head
// as one operator.

#include "nn/kernels/split_and_share_kernels.h"

#include <torch/library.h>
#include <torch/torch.h>

#include <optional>
#include <tuple>
#include <vector>

namespace {

using TensorList = std::vector<at::Tensor>;

void check_head(const at::Tensor& x, at::TensorList means, at::TensorList invstds, at::TensorList gammas,
                at::TensorList betas, at::TensorList weights, at::TensorList biases) {
  TORCH_CHECK(x.dim() == 2, "splitshare.ops.ssm_head: x must be [N, C], got ", x.sizes());
  const auto s = static_cast<int64_t>(weights.size());
  TORCH_CHECK(s >= 1 && static_cast<int64_t>(biases.size()) == s,
              "splitshare.ops.ssm_head: one weight and one bias per split, got ", weights.size(), " weights and ",
              biases.size(), " biases");
  TORCH_CHECK(x.size(1) % s == 0, "splitshare.ops.ssm_head: x's ", x.size(1), " channels do not split into ", s,
              " equal splits");
  const auto norms = static_cast<int64_t>(gammas.size());
  TORCH_CHECK(norms == s || norms == s - 1,
              "splitshare.ops.ssm_head: BatchNorm on all splits or on all but the last, got ", norms,
              " norms for ", s, " splits");
  TORCH_CHECK(static_cast<int64_t>(betas.size()) == norms && static_cast<int64_t>(means.size()) == norms &&
                  static_cast<int64_t>(invstds.size()) == norms,
              "splitshare.ops.ssm_head: gammas, betas, means and invstds must have one entry per norm (", norms,
              "), got ", betas.size(), ", ", means.size(), ", ", invstds.size());
  const int64_t w = x.size(1) / s;
  for (int64_t i = 0; i < s; ++i) {
    const int64_t width = i < norms ? (i + 1) * w : x.size(1);
    TORCH_CHECK(weights[i].dim() == 2 && weights[i].size(1) == width && biases[i].dim() == 1 &&
                    biases[i].size(0) == weights[i].size(0) && weights[i].size(0) == weights[0].size(0),
                "splitshare.ops.ssm_head: split ", i, " needs a weight [K, ", width, "] and a bias [K], got ",
                weights[i].sizes(), " and ", biases[i].sizes());
    if (i >= norms) continue;
    for (const auto* t : {&means[i], &invstds[i], &gammas[i], &betas[i]}) {
      TORCH_CHECK(t->dim() == 1 && t->size(0) == width, "splitshare.ops.ssm_head: split ", i,
                  "'s statistics and affine parameters must be [", width, "], got ", t->sizes());
    }
  }
}

std::tuple<at::Tensor, TensorList, TensorList> ssm_head_forward(const at::Tensor& x, at::TensorList means,
                                                                 at::TensorList invstds, at::TensorList gammas,
                                                                 at::TensorList betas, at::TensorList weights,
                                                                 at::TensorList biases, double out_scale,
                                                                 bool batch_stats) {
  (void)batch_stats;  // for the backward: recorded by the autograd formula (python/splitshare/ops.py)
  check_head(x, means, invstds, gammas, betas, weights, biases);
  // Below autograd here; the fused kernels are taken only outside grad mode.
  torch::NoGradGuard no_grad;
  auto [heads, normed] = splitshare::nn::detail::head_forward(x.contiguous(), means, invstds, gammas, betas,
                                                               weights, biases);
  auto logits = splitshare::nn::detail::combine(heads, out_scale);
  return {logits, heads, normed};
}

std::tuple<at::Tensor, TensorList, TensorList, TensorList, TensorList> ssm_head_backward(
    const std::optional<at::Tensor>& grad_logits, const c10::List<std::optional<at::Tensor>>& grad_heads,
    const at::Tensor& x, at::TensorList means, at::TensorList invstds, at::TensorList normed, at::TensorList gammas,
    at::TensorList weights, double out_scale, bool batch_stats) {
  TORCH_CHECK(static_cast<size_t>(grad_heads.size()) == weights.size(),
              "splitshare.ops.ssm_head_backward: one gradient per head expected, got ", grad_heads.size(), " for ",
              weights.size(), " heads");
  torch::NoGradGuard no_grad;
  TensorList heads;
  for (size_t i = 0; i < grad_heads.size(); ++i) {
    const std::optional<at::Tensor> g = grad_heads.get(i);
    heads.push_back(g.has_value() && g->defined() ? g->contiguous() : at::Tensor());
  }
  auto grads = splitshare::nn::detail::head_backward(grad_logits && grad_logits->defined() ? grad_logits->contiguous() : at::Tensor(), heads,
                                                      x.contiguous(), means, invstds, normed, gammas, weights,
                                                      out_scale, batch_stats);
  return {grads.x, grads.gammas, grads.betas, grads.weights, grads.biases};
}

}  // namespace

TORCH_LIBRARY(splitshare, m) {
  m.def("ssm_head_forward(Tensor x, Tensor[] means, Tensor[] invstds, Tensor[] gammas, Tensor[] betas, "
        "Tensor[] weights, Tensor[] biases, float out_scale, bool batch_stats) -> (Tensor, Tensor[], Tensor[])");
  m.def("ssm_head_backward(Tensor? grad_logits, Tensor?[] grad_heads, Tensor x, Tensor[] means, "
        "Tensor[] invstds, Tensor[] normed, Tensor[] gammas, Tensor[] weights, float out_scale, "
        "bool batch_stats) -> (Tensor, Tensor[], Tensor[], Tensor[], Tensor[])");
}

// The kernels take the fast path on CPU float32/float64 and fall back to torch operations
// elsewhere (CUDA, reduced precision), so one implementation serves both devices.
TORCH_LIBRARY_IMPL(splitshare, CPU, m) {
  m.impl("ssm_head_forward", &ssm_head_forward);
  m.impl("ssm_head_backward", &ssm_head_backward);
}

TORCH_LIBRARY_IMPL(splitshare, CUDA, m) {
  m.impl("ssm_head_forward", &ssm_head_forward);
  m.impl("ssm_head_backward", &ssm_head_backward);
}
