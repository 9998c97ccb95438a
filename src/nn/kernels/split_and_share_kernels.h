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

}  // namespace splitshare::nn::detail
