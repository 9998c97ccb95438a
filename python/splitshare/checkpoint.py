"""splitshare checkpoints in Python: `load` gives the model with the fused head and the metadata;
`save` writes a file the `splitshare` tool's eval, predict, export and info accept.

    model, meta = splitshare.load("runs/train/checkpoint.pt")     # eval mode, on the CPU
    splitshare.save(model, "tuned.pt", meta)

A checkpoint is a TorchScript archive: the model's parameters and buffers under torchvision's names
(the SSM head's as `fc.{i}.*`, `bn.{i}.*`) and the metadata `splitshare.json` (architecture, head,
classes, preprocessing). The model is python/splitshare_torch.py's Classifier (torchvision's ResNet
layout, the small-image stem and any width too) with splitshare.nn.SplitShareHead as its SSM head.
"""
import json
import pathlib
from typing import Any, Dict, Tuple

import torch
from torch import nn as torch_nn

import splitshare_torch

from .nn import SplitShareHead

__all__ = ["load", "save", "read_metadata"]

_METADATA = "splitshare.json"
_FORMAT = "splitshare-checkpoint"
# Fields the tool refuses a checkpoint without (checkpoint.cpp, metadata_from_json).
_REQUIRED = ("format", "version", "arch", "head", "splits", "k", "num_classes", "classes", "stem", "in_channels",
             "width", "preprocess")


def read_metadata(path) -> Dict[str, Any]:
    """The checkpoint's splitshare.json as a dict; ValueError naming the file when it is not one."""
    files = {_METADATA: ""}
    try:
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable torch archive ({e})") from None
    if not files[_METADATA]:
        raise ValueError(f"{path}: a torch archive without splitshare metadata ({_METADATA})")
    meta = json.loads(files[_METADATA])
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a splitshare checkpoint (format {meta.get('format')!r}, expected {_FORMAT!r})")
    return meta


def _fused(model, meta):
    """The reference model with its SSM head swapped for SplitShareHead (same parameter names)."""
    if meta["head"] != "ssm" or meta.get("reduction", "mean") != "mean":
        return model
    head = SplitShareHead(model.feature_dim, meta["num_classes"], meta["splits"],
                          "first" if meta.get("last_plain", False) else "all")
    model.head = head
    model.fc, model.bn = head.fc, head.bn
    return model


def load(path, device="cpu") -> Tuple[torch_nn.Module, Dict[str, Any]]:
    """(model in eval mode on `device`, metadata dict) from a splitshare checkpoint. The model's
    forward takes images [N, C, H, W] preprocessed as metadata["preprocess"] says and returns
    (logits [N, K], head_logits)."""
    meta = read_metadata(path)
    if meta.get("gate"):
        raise ValueError(f"{path}: a checkpoint with a head-selection gate; Python reads the model without "
                         "one only (use `splitshare export` for the gated model)")
    archive = torch.jit.load(str(path), map_location="cpu")
    model = _fused(splitshare_torch.build_model(meta), meta)
    try:
        model.load_state_dict(archive.state_dict())
    except KeyError as e:
        raise ValueError(f"{path}: tensors do not match the model its metadata describes: {e}") from None
    return model.eval().to(device), meta


def _tree(model):
    """A bare module tree holding the model's tensors under its state dict's names (CPU, contiguous)."""
    root = torch_nn.Module()
    params = {n for n, _ in model.named_parameters()}
    for name, tensor in model.state_dict().items():
        node = root
        *parents, leaf = name.split(".")
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, torch_nn.Module())
            node = getattr(node, part)
        value = tensor.detach().to("cpu").contiguous()
        if name in params:
            node.register_parameter(leaf, torch_nn.Parameter(value, requires_grad=False))
        else:
            node.register_buffer(leaf, value)
    return root


def save(model: torch_nn.Module, path, metadata: Dict[str, Any]) -> None:
    """Writes `model` (a model `load` gave, or python/splitshare_torch.py's Classifier) with `metadata`
    (load's dict, edited as needed) as a splitshare checkpoint at `path`, through a temporary file
    renamed into place. The metadata's `num_classes` and `classes` must agree with the model."""
    missing = [k for k in _REQUIRED if k not in metadata]
    if missing:
        raise ValueError(f"save: metadata lacks {missing} (start from the dict splitshare.load returns)")
    classes = metadata["classes"]
    if classes and len(classes) != metadata["num_classes"]:
        raise ValueError(f"save: metadata lists {len(classes)} class names for num_classes={metadata['num_classes']}")
    meta = dict(metadata)
    meta.pop("gate", None)
    meta["version"] = 1
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".tmp")
    torch.jit.save(torch.jit.script(_tree(model)), str(scratch), _extra_files={_METADATA: json.dumps(meta, indent=2)})
    scratch.replace(target)
