#!/usr/bin/env python3
"""The peer of bench_image_pipeline.cpp: torchvision + PIL on the same files.

Training pipeline: PIL decode + RandomResizedCrop(224) + RandomHorizontalFlip +
ToTensor + Normalize(ImageNet); evaluation pipeline: PIL decode + Resize(256) +
CenterCrop(224) + ToTensor + Normalize. Both run through torch's DataLoader
(batch 64, drop_last as in training) with --workers worker processes
(0 = in the main process), over torchvision.datasets.ImageFolder.

Prints one line per pipeline (a JSON object per line with --json):
    peer <train|eval> workers=N images=M seconds=S images_per_s=R per_core=R/max(N,1) images_per_cpu_s=C
Time is wall-clock over --epochs epochs, after one warm-up epoch (workers started,
files in the page cache). images_per_cpu_s divides by the CPU time of the main
process and its worker processes (from /proc), which stays meaningful when other
processes share the cores.

Usage: .venv/bin/python bench/peer_image_pipeline.py FOLDER [--workers 1] [--epochs 2]
"""
import argparse
import json
import os
import time

import torch
import torchvision
from torchvision import transforms

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def pipeline(kind, size):
    if kind == "train":
        steps = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(int(size / 0.875)), transforms.CenterCrop(size)]
    return transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def cpu_seconds(pids):
    """User + system CPU time of the given processes (all their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run(folder, kind, workers, epochs, batch_size, size, as_json):
    torch.set_num_threads(1)
    dataset = torchvision.datasets.ImageFolder(folder, transform=pipeline(kind, size))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=(kind == "train"), drop_last=False,
        num_workers=workers, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0))
    for _ in loader:  # warm-up: workers started, files cached
        pass
    pids = [os.getpid()]
    if workers > 0:
        pids += [w.pid for w in loader._iterator._workers]  # persistent workers
    images = 0
    cpu_start = cpu_seconds(pids)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch, _ in loader:
            images += batch.shape[0]
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(pids) - cpu_start
    result = {"side": "peer", "pipeline": kind, "workers": workers, "images": images,
              "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1),
              "per_core": round(images / seconds / max(workers, 1), 1),
              "images_per_cpu_s": round(images / cpu, 1) if cpu > 0 else None}
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        print(" ".join(["peer", kind] + [f"{k}={result[k]}" for k in
                                         ("workers", "images", "seconds", "images_per_s", "per_core",
                                          "images_per_cpu_s")]), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="an ImageFolder root (one sub-folder per class)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--pipelines", default="train,eval")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    for kind in args.pipelines.split(","):
        run(args.folder, kind, args.workers, args.epochs, args.batch_size, args.size, args.json)


if __name__ == "__main__":
    main()
