"""The splitshare models in plain PyTorch, and a loader for splitshare checkpoints.

    import splitshare_torch as ss
    model, meta = ss.load_checkpoint("runs/a/checkpoint.pt")
    logits = model(images).logits          # combined, [N, K]
    heads = model(images).head_logits      # per sub-classifier
    x = ss.load_image("cat.jpg", meta)     # the checkpoint's preprocessing, [C, H, W]

Needs only torch; torchvision for the backbones (Classifier, build_model, load_checkpoint) and PIL
for load_image, both imported where used, so the heads work with torch alone. Parameter names
match splitshare's checkpoints (torchvision's backbone names; fc.{i}.*, bn.{i}.* for the SSM head).
"""
import json
from typing import List, NamedTuple

import torch
import torch.nn as nn

__all__ = ["SplitAndShare", "ParallelLinear", "Classifier", "build_model", "load_checkpoint", "read_metadata",
           "load_image"]


class HeadOutput(NamedTuple):
    logits: torch.Tensor
    head_logits: List[torch.Tensor]


class SplitAndShare(nn.Module):
    """SSM: head i sees features[:, :(i+1)*C/S], BatchNorm1d + ReLU (the first S-1 heads; all S with
    last_plain=False, as Algorithm 1) + Linear; mean of heads."""

    def __init__(self, in_features, num_classes, splits=4, last_plain=True, reduction="mean"):
        super().__init__()
        if in_features % splits:
            raise ValueError(f"in_features ({in_features}) must be divisible by splits ({splits})")
        self.width = in_features // splits
        self.splits = splits
        self.last_plain = last_plain
        self.reduction = reduction
        norms = splits - 1 if last_plain else splits
        self.bn = nn.ModuleList([nn.BatchNorm1d(self.width * (i + 1)) for i in range(norms)])
        self.fc = nn.ModuleList([nn.Linear(self.width * (i + 1), num_classes) for i in range(splits)])

    def forward(self, x):
        heads = []
        for i, fc in enumerate(self.fc):
            p = x[:, : self.width * (i + 1)]
            if i < len(self.bn):
                p = torch.relu(self.bn[i](p))
            heads.append(fc(p))
        out = torch.stack(heads).sum(0)
        return HeadOutput(out / self.splits if self.reduction == "mean" else out, heads)


class ParallelLinear(nn.Module):
    """k parallel Linear(C, K) on the full feature, averaged (the paper's 2FC/3FC)."""

    def __init__(self, in_features, num_classes, k):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(in_features, num_classes) for _ in range(k)])

    def forward(self, x):
        heads = [fc(x) for fc in self.fc]
        return HeadOutput(torch.stack(heads).mean(0), heads)


class LinearHead(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        y = self.fc(x)
        return HeadOutput(y, [y])


# Blocks, layers, groups and width per group of torchvision's ResNets.
_ARCHS = {
    "resnet10": ("BasicBlock", [1, 1, 1, 1], 1, 64),
    "resnet18": ("BasicBlock", [2, 2, 2, 2], 1, 64),
    "resnet34": ("BasicBlock", [3, 4, 6, 3], 1, 64),
    "resnet50": ("Bottleneck", [3, 4, 6, 3], 1, 64),
    "resnet101": ("Bottleneck", [3, 4, 23, 3], 1, 64),
    "resnet152": ("Bottleneck", [3, 8, 36, 3], 1, 64),
    "resnext50_32x4d": ("Bottleneck", [3, 4, 6, 3], 32, 4),
    "resnext101_32x4d": ("Bottleneck", [3, 4, 23, 3], 32, 4),
    "resnext101_32x8d": ("Bottleneck", [3, 4, 23, 3], 32, 8),
    "wide_resnet50_2": ("Bottleneck", [3, 4, 6, 3], 1, 128),
    "wide_resnet101_2": ("Bottleneck", [3, 4, 23, 3], 1, 128),
}


class Classifier(nn.Module):
    """torchvision's ResNet layout (conv1, bn1, layer1..4) with a splitshare head.

    The head's parameters sit at the top level (fc.*, bn.*) like in the checkpoints."""

    def __init__(self, arch="resnet50", num_classes=1000, head="ssm", splits=4, k=2, last_plain=True,
                 reduction="mean", stem="imagenet", in_channels=3, width=64):
        super().__init__()
        import torchvision.models.resnet as tvr

        block_name, layers, groups, width_per_group = _ARCHS[arch]
        block = getattr(tvr, block_name)
        self.stem = stem
        self.inplanes = width
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self._norm_layer = nn.BatchNorm2d
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        make = tvr.ResNet._make_layer
        self.layer1 = make(self, block, width, layers[0])
        self.layer2 = make(self, block, width * 2, layers[1], stride=2)
        self.layer3 = make(self, block, width * 4, layers[2], stride=2)
        self.layer4 = make(self, block, width * 8, layers[3], stride=2)
        features = width * 8 * block.expansion
        self.feature_dim = features
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if head == "linear":
            self.head = LinearHead(features, num_classes)
        elif head == "kfc":
            self.head = ParallelLinear(features, num_classes, k)
        elif head == "ssm":
            self.head = SplitAndShare(features, num_classes, splits, last_plain, reduction)
        else:
            raise ValueError(f"unknown head {head!r}")
        # Register the head's children at the top level so names are fc.*, bn.*.
        for name, child in self.head.named_children():
            self.add_module(name, child)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.forward_features(x), 1), 1))

    def state_dict(self, *args, **kwargs):
        sd = super().state_dict(*args, **kwargs)
        return type(sd)((k, v) for k, v in sd.items() if not k.startswith("head."))

    def load_state_dict(self, state_dict, strict=True):
        own = set(self.state_dict().keys())
        missing = sorted(own - set(state_dict))
        unexpected = sorted(set(state_dict) - own)
        if strict and (missing or unexpected):
            raise KeyError(f"missing keys {missing}, unexpected keys {unexpected}")
        full = dict(state_dict)
        for k, v in state_dict.items():
            if k.startswith(("fc.", "bn.")):
                full["head." + k] = v
        return super().load_state_dict(full, strict=False)


def build_model(meta):
    """The model a checkpoint's metadata (its splitshare.json) describes."""
    return Classifier(arch=meta["arch"], num_classes=meta["num_classes"], head=meta["head"],
                      splits=meta.get("splits", 4), k=meta.get("k", 2), last_plain=meta.get("last_plain", False),
                      reduction=meta.get("reduction", "mean"), stem=meta["stem"],
                      in_channels=meta["in_channels"], width=meta["width"])


def read_metadata(path):
    files = {"splitshare.json": ""}
    torch.jit.load(path, map_location="cpu", _extra_files=files)
    return json.loads(files["splitshare.json"])


def load_checkpoint(path):
    """(model in eval mode, metadata dict) from a splitshare checkpoint."""
    files = {"splitshare.json": ""}
    archive = torch.jit.load(path, map_location="cpu", _extra_files=files)
    meta = json.loads(files["splitshare.json"])
    model = build_model(meta)
    model.load_state_dict(archive.state_dict())
    return model.eval(), meta


def load_image(path, meta):
    """An image file preprocessed as the checkpoint says (what `splitshare predict` does): float [C, H, W].

    Decoded to meta["preprocess"]["channels"] channels (PIL's convert("L") / convert("RGB")); with
    resize/crop, torchvision's Resize(resize) + CenterCrop(crop) on the tensor (antialiased bilinear);
    otherwise the whole image resized to size x size; then (x / 255 - mean) / std."""
    import numpy
    from PIL import Image
    import torchvision.transforms.functional as TF

    p = meta["preprocess"]
    with Image.open(path) as image:
        pixels = numpy.asarray(image.convert("L" if p["channels"] == 1 else "RGB"), dtype=numpy.uint8)
    x = torch.from_numpy(pixels.copy())
    x = (x[None] if x.dim() == 2 else x.permute(2, 0, 1)).float()
    if p.get("resize") or p.get("crop"):
        crop = p.get("crop") or p["resize"]
        x = TF.center_crop(TF.resize(x, p.get("resize") or crop, antialias=True), crop)
    else:
        size = p.get("size")
        if not size:
            raise ValueError("the checkpoint's preprocessing records no resize, crop or size")
        x = nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False,
                                      antialias=True)[0]
    mean = torch.tensor(p["mean"], dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(p["std"], dtype=torch.float32).view(-1, 1, 1)
    return (x / 255 - mean) / std
