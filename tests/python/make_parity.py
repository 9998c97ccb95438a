#!/usr/bin/env python3
"""Writes a torchvision model with random weights (scripted, as `torch.jit.save`
makes it) and a reference input/output pair, for the C++ parity tests.

usage: make_parity.py ARCH WEIGHTS.pt REFERENCE.pt [--size N] [--classes K]"""
import argparse

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("arch")
p.add_argument("weights")
p.add_argument("reference")
p.add_argument("--size", type=int, default=64)
p.add_argument("--classes", type=int, default=1000)
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
torch.jit.script(model).save(a.weights)


class Reference(torch.nn.Module):
    def __init__(self, x, y):
        super().__init__()
        self.register_buffer("input", x)
        self.register_buffer("logits", y)


torch.jit.script(Reference(x, y)).save(a.reference)
