#pragma once

#include <torch/torch.h>

namespace splitshare::train {

/// A batch after mixup or CutMix.
struct MixedBatch {
  /// Same shape as the input images [N, C, H, W].
  torch::Tensor images;
  /// Soft targets, float32 [N, K]: lambda on each sample's label, 1 - lambda on its partner's.
  torch::Tensor targets;
  /// The share of each sample's own image (for CutMix: the area actually kept).
  double lambda = 1.0;
  bool cutmix = false;
};

/// Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) of `images` [N, C, H, W] with int64
/// `labels` [N], as timm's Mixup does it per batch: lambda ~ Beta(alpha, alpha), each sample
/// paired with the batch's reverse (sample N-1-i); CutMix pastes the partner's box of area
/// 1 - lambda (centre uniform, clipped at the border; lambda is corrected to the box kept).
/// `mixup_alpha` / `cutmix_alpha` 0 turn one off; with both, CutMix is chosen with probability
/// 1/2. Draws from torch's default CPU generator (checkpointed by the trainer, so resumed
/// runs draw the same). Both alphas 0: the images unchanged and one-hot targets.
MixedBatch mix_batch(const torch::Tensor& images, const torch::Tensor& labels, int64_t num_classes,
                     double mixup_alpha, double cutmix_alpha);

}  // namespace splitshare::train
