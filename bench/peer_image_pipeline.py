#!/usr/bin/python3
"""The peer of bench_image_pipeline.cpp: torchvision + PIL on the same files.

Training pipeline: PIL decode + RandomResizedCrop(224) + RandomHorizontalFlip +
ToTensor + Normalize(ImageNet); evaluation pipeline: PIL decode + Resize(256) +
CenterCrop(224) + ToTensor + Normalize. Both run through torch's DataLoader
(batch 64, drop_last as in training) with --workers worker processes
(0 = in the main process), over torchvision.datasets.ImageFolder.

Prints one line per pipeline:
    peer <train|eval> workers=N images=M seconds=S images_per_s=R
Time is wall-clock from the first batch request to the last batch, after one
warm-up pass over the folder (so the files are in the page cache for both sides).

Usage: /usr/bin/python3 bench/peer_image_pipeline.py FOLDER [--workers 1] [--epochs 2]
"""
import argparse
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


def run(folder, kind, workers, epochs, batch_size, size):
    torch.set_num_threads(1)
    dataset = torchvision.datasets.ImageFolder(folder, transform=pipeline(kind, size))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=(kind == "train"), drop_last=False,
        num_workers=workers, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0))
    for _ in loader:  # warm-up: workers started, files cached
        pass
    images = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch, _ in loader:
            images += batch.shape[0]
    seconds = time.perf_counter() - start
    print(f"peer {kind} workers={workers} images={images} seconds={seconds:.3f} "
          f"images_per_s={images / seconds:.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="an ImageFolder root (one sub-folder per class)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--pipelines", default="train,eval")
    args = parser.parse_args()
    for kind in args.pipelines.split(","):
        run(args.folder, kind, args.workers, args.epochs, args.batch_size, args.size)


if __name__ == "__main__":
    main()
