#!/usr/bin/env python3
"""Writes a torchvision model with random weights and a reference input/output pair,
for the C++ parity tests. --format script (default) saves the scripted model as
`torch.jit.save` makes it; --format state_dict saves `torch.save(dict(model.state_dict()))`.

--extra FORMAT=PATH (repeatable) writes the same weights in another format too; ordered_dict
is `torch.save(model.state_dict())`, which libtorch cannot read (for the error tests).

usage: make_parity.py ARCH WEIGHTS.pt REFERENCE.pt [--size N] [--classes K] [--format F] [--extra F=PATH]"""
import argparse

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("arch")
p.add_argument("weights")
p.add_argument("reference")
p.add_argument("--size", type=int, default=64)
p.add_argument("--classes", type=int, default=1000)
FORMATS = ["script", "state_dict", "ordered_dict"]
p.add_argument("--format", choices=FORMATS, default="script")
p.add_argument("--extra", action="append", default=[], metavar="FORMAT=PATH")
a = p.parse_args()

torch.manual_seed(1234)
model = getattr(torchvision.models, a.arch)(num_classes=a.classes)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            # Non-trivial statistics and affine so a mis-mapped BN shows.
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
model.eval()
x = torch.randn(2, 3, a.size, a.size)
with torch.no_grad():
    y = model(x)


def save(fmt, path):
    if fmt == "script":
        torch.jit.script(model).save(path)
    elif fmt == "state_dict":
        torch.save(dict(model.state_dict()), path)
    elif fmt == "ordered_dict":
        torch.save(model.state_dict(), path)
    else:
        raise SystemExit(f"unknown format {fmt!r}, expected one of {FORMATS}")


save(a.format, a.weights)
for extra in a.extra:
    fmt, _, path = extra.partition("=")
    save(fmt, path)


class Reference(torch.nn.Module):
    def __init__(self, x, y):
        super().__init__()
        self.register_buffer("input", x)
        self.register_buffer("logits", y)


torch.jit.script(Reference(x, y)).save(a.reference)
