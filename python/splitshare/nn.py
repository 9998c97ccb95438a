"""splitshare's SSM head as a torch.nn.Module on the fused operator (splitshare.ops.ssm_head).

    head = splitshare.nn.SplitShareHead(2048, 1000)          # splits=4, norm="first"
    logits, head_logits = head(features)                      # [N, 1000], 4 x [N, 1000]

Its state dict names are splitshare checkpoints' (`bn.{i}.*`, `fc.{i}.*`), so a head trained by the
C++ tool loads with load_state_dict, and the other way round.
"""
import torch
from torch import nn

# One HeadOutput for both heads: the plain reference's (logits [N, K], head_logits S x [N, K]).
from splitshare_torch import HeadOutput

from . import ops

__all__ = ["HeadOutput", "SplitShareHead", "replace_classifier"]


class SplitShareHead(nn.Module):
    """The Split-and-Share Module: sub-classifier i sees the first i+1 of `splits` equal splits of the
    feature vector, through BatchNorm1d + ReLU (the first splits-1 with norm="first", the paper's
    Section 3 text and splitshare's default; all with norm="all", its Algorithm 1) and a Linear layer;
    the output is their mean. features [N, in_features] -> HeadOutput."""

    def __init__(self, in_features: int, num_classes: int, splits: int = 4, norm: str = "first",
                 eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if splits < 1 or in_features % splits:
            raise ValueError(f"SplitShareHead: in_features ({in_features}) must split into splits ({splits}) "
                             "equal parts")
        if norm not in ("first", "all"):
            raise ValueError(f"SplitShareHead: norm must be 'first' (splits 1..S-1) or 'all', got {norm!r}")
        self.in_features, self.num_classes, self.splits, self.norm = in_features, num_classes, splits, norm
        self.width = in_features // splits
        norms = splits if norm == "all" else splits - 1
        self.bn = nn.ModuleList(nn.BatchNorm1d(self.width * (i + 1), eps=eps, momentum=momentum)
                                for i in range(norms))
        self.fc = nn.ModuleList(nn.Linear(self.width * (i + 1), num_classes) for i in range(splits))

    def extra_repr(self):
        return f"{self.in_features}, {self.num_classes}, splits={self.splits}, norm={self.norm!r}"

    def _statistics(self, x):
        """(means, invstds, batch_stats): the batch's (updating the running statistics) in training,
        else the running ones."""
        if not self.bn:
            return [], [], False
        if self.training:
            if x.shape[0] < 2:
                raise ValueError(f"SplitShareHead: BatchNorm needs more than 1 sample per batch in training, "
                                 f"got {x.shape[0]}")
            with torch.no_grad():
                widest = x[:, : len(self.bn) * self.width].to(self.fc[0].weight.dtype)
                var, mean = torch.var_mean(widest, dim=0, correction=0)
                invstd = torch.rsqrt(var + self.bn[0].eps)
                unbiased = var * (x.shape[0] / (x.shape[0] - 1))
                for i, bn in enumerate(self.bn):
                    w = (i + 1) * self.width
                    bn.running_mean.lerp_(mean[:w], bn.momentum)
                    bn.running_var.lerp_(unbiased[:w], bn.momentum)
                    bn.num_batches_tracked.add_(1)
            return [mean[: (i + 1) * self.width] for i in range(len(self.bn))], \
                [invstd[: (i + 1) * self.width] for i in range(len(self.bn))], True
        return [bn.running_mean for bn in self.bn], [torch.rsqrt(bn.running_var + bn.eps) for bn in self.bn], False

    def forward(self, features: torch.Tensor) -> HeadOutput:
        x = features.to(self.fc[0].weight.dtype) if not torch.is_autocast_enabled(features.device.type) \
            else features
        means, invstds, batch_stats = self._statistics(x)
        logits, heads = ops.ssm_head(x, [fc.weight for fc in self.fc], [fc.bias for fc in self.fc],
                                     [bn.weight for bn in self.bn], [bn.bias for bn in self.bn], means, invstds,
                                     batch_stats=batch_stats)
        return HeadOutput(logits, heads)


def replace_classifier(model: nn.Module, num_classes: int = None, splits: int = 4, norm: str = "first",
                       attribute: str = None) -> nn.Module:
    """Swaps a model's final Linear classifier for a SplitShareHead on the same features, in place,
    and returns the model: torchvision's `fc`, timm's `get_classifier()`/`reset_classifier` models
    (the classifier's name is found, or given as `attribute`). The model's forward then returns a
    HeadOutput where it returned logits."""
    name = attribute or getattr(model, "default_cfg", {}).get("classifier") or "fc"
    old = getattr(model, name, None)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"replace_classifier: model.{name} is {type(old).__name__}, not the nn.Linear "
                         "classifier expected; pass attribute= the classifier's name")
    setattr(model, name, SplitShareHead(old.in_features, num_classes or old.out_features, splits, norm))
    return model
