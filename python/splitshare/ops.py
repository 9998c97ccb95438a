"""The SSM head as one torch operator: the fused CPU kernels splitshare's C++ library trains with,
with a hand-written backward, a fake kernel (torch.compile traces it without a graph break) and
autocast (the head runs in float32, as in the C++ library).

    logits, heads = splitshare.ops.ssm_head(x, weights, biases, gammas, betas, means, invstds)
"""
from typing import List, Sequence, Tuple

import torch

from . import _library

_library.load()

__all__ = ["ssm_head"]

_FORWARD = "splitshare::ssm_head_forward"
_BACKWARD = "splitshare::ssm_head_backward"


@torch.library.register_fake(_FORWARD)
def _forward_fake(x, means, invstds, gammas, betas, weights, biases, out_scale, batch_stats):
    n, k, w = x.shape[0], weights[0].shape[0], x.shape[1] // len(weights)
    heads = [x.new_empty((n, k)) for _ in weights]
    normed = [x.new_empty((n, (i + 1) * w)) for i in range(len(gammas))]
    return x.new_empty((n, k)), heads, normed


@torch.library.register_fake(_BACKWARD)
def _backward_fake(grad_logits, grad_heads, x, means, invstds, normed, gammas, weights, out_scale, batch_stats):
    return (torch.empty_like(x), [torch.empty_like(g) for g in gammas], [torch.empty_like(g) for g in gammas],
            [torch.empty_like(w) for w in weights], [w.new_empty(w.shape[0]) for w in weights])


def _setup_context(ctx, inputs, output):
    x, means, invstds, gammas, betas, weights, biases, out_scale, batch_stats = inputs
    _, _, normed = output
    ctx.save_for_backward(x, *means, *invstds, *normed, *gammas, *weights)
    ctx.mark_non_differentiable(*normed)
    # Heads that got no gradient arrive as None, not as zero tensors the backward would add up.
    ctx.set_materialize_grads(False)
    ctx.norms, ctx.splits = len(gammas), len(weights)
    ctx.out_scale, ctx.batch_stats = out_scale, batch_stats


def _backward(ctx, grad_logits, grad_heads, grad_normed):
    saved = list(ctx.saved_tensors)
    n, s = ctx.norms, ctx.splits
    x, rest = saved[0], saved[1:]
    means, invstds, normed, gammas, weights = (rest[:n], rest[n:2 * n], rest[2 * n:3 * n], rest[3 * n:4 * n],
                                               rest[4 * n:4 * n + s])
    gx, ggamma, gbeta, gweight, gbias = torch.ops.splitshare.ssm_head_backward(
        grad_logits, list(grad_heads), x, means, invstds, normed, gammas, weights, ctx.out_scale, ctx.batch_stats)
    # No gradient for the statistics: batch statistics are covered through x, running ones are constants.
    return gx, [None] * n, [None] * n, list(ggamma), list(gbeta), list(gweight), list(gbias), None, None


torch.library.register_autograd(_FORWARD, _backward, setup_context=_setup_context)
for _device in ("cpu", "cuda"):
    torch.library.register_autocast(_FORWARD, _device, torch.float32)


def ssm_head(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
             gammas: Sequence[torch.Tensor], betas: Sequence[torch.Tensor], means: Sequence[torch.Tensor],
             invstds: Sequence[torch.Tensor], out_scale: float = None,
             batch_stats: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The Split-and-Share head on pooled features x [N, C], S = len(weights) splits of C/S channels.

    Head i sees x[:, :(i+1)C/S] (all of x for a plain last head), through BatchNorm+ReLU with
    means[i], invstds[i], gammas[i], betas[i] (each [(i+1)C/S]) for the first len(gammas) heads
    (S-1: the paper's text; S: its Algorithm 1), then weights[i] [K, width] and biases[i] [K].
    Returns (logits [N, K] = out_scale (default 1/S) times the heads' sum, the S head logits
    [N, K]). batch_stats: means/invstds are x's own batch statistics (training: the gradient flows
    through them into x); else they are constants (running statistics).
    """
    scale = 1.0 / len(weights) if out_scale is None else float(out_scale)
    logits, heads, _ = torch.ops.splitshare.ssm_head_forward(x, list(means), list(invstds), list(gammas),
                                                             list(betas), list(weights), list(biases), scale,
                                                             batch_stats)
    return logits, list(heads)
