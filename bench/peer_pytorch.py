#!/usr/bin/env python3
"""The PyTorch peers of `splitshare bench`: the same model (torchvision backbone + splitshare
head, python/splitshare_torch.py, i.e. the straightforward head), the same synthetic input,
the same steps, in one of three ways (--peer):

  eager        as a Python user writes it: default memory format, torch.inference_mode;
  eager_tuned  PyTorch's CPU performance tuning guide: channels-last, the fused SGD kernel
               (fused=True), and for inference a traced, frozen TorchScript module (oneDNN
               fusion); the caller also preloads jemalloc and sets the OpenMP variables (see
               src/bench/throughput.cpp);
  compile      torch.compile (inductor, default mode); compilation happens in the warm-up
               steps and is reported apart as compile_seconds.

--amp bf16 runs the forward under torch.autocast("cpu", torch.bfloat16). --mode head times
the head alone (forward + backward on random features). Prints {"images_per_second": [...],
"peak_rss_mb", "flops_per_item", "compile_seconds", "threads"} as the last line."""
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
p.add_argument("--peer", choices=["eager", "eager_tuned", "compile"], default="eager")
p.add_argument("--channels-last", action="store_true", help="same as --peer eager with channels-last tensors")
p.add_argument("--amp", choices=["fp32", "bf16"], default="fp32")
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
channels_last = a.channels_last or a.peer in ("eager_tuned", "compile")
if a.mode in ("head", "head-infer"):
    head = model.head.train(a.mode == "head")
    fc = head.fc[-1] if isinstance(head.fc, torch.nn.ModuleList) else head.fc
    features = torch.randn(a.batch, fc.in_features, requires_grad=a.mode == "head")
    net, data = head, features
else:
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    # The tuned peer uses PyTorch's fused SGD kernel, as splitshare's training does.
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, fused=a.peer == "eager_tuned")
    net, data = model, x
net.train(a.mode in ("train", "head"))


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16", cache_enabled=a.peer != "eager_tuned")


def logits_of(out):
    return out.logits if hasattr(out, "logits") else out[0]


run = net
if a.peer == "compile":
    run = torch.compile(net)
elif a.peer == "eager_tuned" and a.mode in ("infer", "head-infer"):
    # The tuning guide's inference path: oneDNN Graph fusion on a traced, frozen module (the
    # autocast cache must be off while tracing).
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit is deprecated, still the guide's advice
    torch.jit.enable_onednn_fusion(True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16", cache_enabled=False):
        run = torch.jit.freeze(torch.jit.trace(net, data, strict=False, check_trace=False))


def step():
    if a.mode in ("head", "train"):
        with autocast():
            loss = torch.nn.functional.cross_entropy(logits_of(run(data)), y)
        if a.mode == "head":
            features.grad = None
            head.zero_grad(set_to_none=True)
            loss.backward()
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        with torch.inference_mode() if a.peer != "eager_tuned" else torch.no_grad(), autocast():
            run(data)


def flops_per_item():
    """FLOPs of one step (forward, and backward when training) per item, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        if a.mode in ("head", "train"):
            loss = torch.nn.functional.cross_entropy(logits_of(net(data)), y)
            loss.backward()
            net.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                net(data)
    return counter.get_total_flops() / a.batch


flops = flops_per_item() if a.peer == "eager" else None
t0 = time.perf_counter()
for i in range(max(a.warmup, 1 if a.peer == "compile" else 0)):
    step()
compile_seconds = time.perf_counter() - t0 if a.peer == "compile" else None
rates = []
for _ in range(a.repeats):
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    rates.append(a.batch * a.steps / (time.perf_counter() - t))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"images_per_second": rates, "peak_rss_mb": peak, "threads": torch.get_num_threads(),
                  "flops_per_item": flops, "compile_seconds": compile_seconds}))
