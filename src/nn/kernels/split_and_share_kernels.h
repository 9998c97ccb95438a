#pragma once

// The SSM head's fused path apart from the module (as PyTorch keeps native/cpu kernels apart
// from nn/modules): CPU kernels for the batch statistics, BatchNorm+ReLU of every split and
// its backward, and the autograd function whose backward they form. Internal to src/nn/.

#include <torch/torch.h>

#include <utility>
#include <vector>

namespace splitshare::nn::detail {

/// Column sums of (x - mean)^2: x [N, C], mean [C] -> [C], in one pass over x.
torch::Tensor centered_square_sums(const torch::Tensor& x, const torch::Tensor& mean);

/// The head's forward: x [N, C]; for each normalised split i, means/invstds/gammas/betas [(i+1)C/S];
/// weights[i] [K, width of split i's input], biases[i] [K]. Returns the S head logits [N, K]
/// and the normalised prefixes [N, (i+1)C/S]. Differentiable when grad mode is on.
std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> head_forward(
    const torch::Tensor& x, torch::TensorList means, torch::TensorList invstds, torch::TensorList gammas,
    torch::TensorList betas, torch::TensorList weights, torch::TensorList biases);

/// The combined logits: (sum of `heads`) * out_scale, [N, K].
torch::Tensor combine(const std::vector<torch::Tensor>& heads, double out_scale);

/// head_forward in training with the hand-written backward, which also covers the batch
/// statistics in means/invstds (prefixes of one vector). Returns the combined logits, then
/// the S head logits.
std::vector<torch::Tensor> fused_head_train(const torch::Tensor& x, double out_scale, torch::TensorList means,
                                            torch::TensorList invstds, torch::TensorList gammas,
                                            torch::TensorList betas, torch::TensorList weights,
                                            torch::TensorList biases);

/// Gradients of head_forward's inputs; an input that got no gradient has zeros.
struct HeadGradients {
  torch::Tensor x;                                       ///< [N, C]
  std::vector<torch::Tensor> gammas, betas, weights, biases;  ///< shaped as the inputs
};

/// head_forward's backward without autograd (for the Python op): grad_logits [N, K] of the
/// combined logits and grad_heads S × [N, K] (either may be undefined), the forward's inputs and
/// its normalised prefixes. batch_stats: means/invstds are prefixes of x's batch statistics (the
/// gradient flows through them, as in training); else constants (evaluation).
HeadGradients head_backward(const torch::Tensor& grad_logits, const std::vector<torch::Tensor>& grad_heads,
                            const torch::Tensor& x, torch::TensorList means, torch::TensorList invstds,
                            torch::TensorList normed, torch::TensorList gammas, torch::TensorList weights,
                            double out_scale, bool batch_stats);

}  // namespace splitshare::nn::detail
