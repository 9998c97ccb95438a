#!/usr/bin/env python3
"""PyTorch-eager peer of `splitshare bench`: the same model (torchvision backbone +
splitshare head, python/splitshare_torch.py, i.e. the straightforward head), the same
synthetic input, the same steps, written as a Python user writes it: default memory
format unless --channels-last, torch.inference_mode for inference. --mode head times
the head alone (forward + backward on random features). Prints
{"images_per_second": [...], "peak_rss_mb": ...} as the last line."""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import splitshare_torch as ss  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet50")
p.add_argument("--head", default="ssm")
p.add_argument("--splits", type=int, default=4)
p.add_argument("--ssm-norm", choices=["first", "all"], default="first")
p.add_argument("--k", type=int, default=2)
p.add_argument("--classes", type=int, default=1000)
p.add_argument("--channels", type=int, default=3)
p.add_argument("--width", type=int, default=64)
p.add_argument("--stem", default="imagenet")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--size", type=int, default=224)
p.add_argument("--mode", choices=["train", "infer", "head", "head-infer"], default="train")
p.add_argument("--channels-last", action="store_true")
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()

if a.threads > 0:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = ss.Classifier(arch=a.arch, num_classes=a.classes, head=a.head, splits=a.splits, k=a.k, stem=a.stem,
                      in_channels=a.channels, width=a.width, last_plain=a.ssm_norm == "first")
y = torch.randint(0, a.classes, (a.batch,))
if a.mode in ("head", "head-infer"):
    head = model.head.train(a.mode == "head")
    fc = head.fc[-1] if isinstance(head.fc, torch.nn.ModuleList) else head.fc
    features = torch.randn(a.batch, fc.in_features, requires_grad=a.mode == "head")
else:
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def step():
    if a.mode == "head":
        features.grad = None
        head.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(head(features).logits, y)
        loss.backward()
    elif a.mode == "head-infer":
        with torch.inference_mode():
            head(features)
    elif a.mode == "train":
        loss = torch.nn.functional.cross_entropy(model(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    else:
        with torch.inference_mode():
            model(x)


model.train(a.mode in ("train", "head"))
for _ in range(a.warmup):
    step()
rates = []
for _ in range(a.repeats):
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    rates.append(a.batch * a.steps / (time.perf_counter() - t))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"images_per_second": rates, "peak_rss_mb": peak, "threads": torch.get_num_threads()}))
