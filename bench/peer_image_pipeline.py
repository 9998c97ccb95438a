#!/usr/bin/env python3
"""The peers of bench_image_pipeline.cpp: Python image pipelines on the same files.

--peer pil (the default): PIL decode + torchvision.transforms on PIL images.
  Training: RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor + Normalize(ImageNet);
  evaluation: Resize(256) + CenterCrop(224) + ToTensor + Normalize.
  Run with pillow-simd first on PYTHONPATH (bench/setup_pillow_simd.sh) and --label pil-simd,
  the same code measures pillow-simd.
--peer tvio: torchvision.io.decode_jpeg of the file's bytes (mode RGB, libjpeg-turbo, whole
  image) + torchvision.transforms.v2 on uint8 tensors.
  Training: RandomResizedCrop(224, antialias=True) + RandomHorizontalFlip +
  ToDtype(float32, scale=True) + Normalize(ImageNet); evaluation: Resize(256, antialias=True) +
  CenterCrop(224) + ToDtype + Normalize.

--peer wds: FOLDER holds WebDataset shards (*.tar, e.g. from `splitshare pack`), read by the
  `webdataset` package as its documentation shows: WebDataset(shards, shardshuffle) + a 1,000-sample
  shuffle buffer (training) + decode("pil") + the pil peer's transforms; shards are split between
  the DataLoader's workers.

--peer dali: FOLDER's shards through NVIDIA DALI's CPU pipeline (bench/setup_dali.sh installs it;
  run with its folder on PYTHONPATH): fn.readers.webdataset + fn.decoders.image (device cpu) +
  fn.random_resized_crop(224) + crop_mirror_normalize with a random mirror (training), or
  fn.resize(resize_shorter=256) + crop_mirror_normalize(crop 224) (evaluation), batches of 64
  with --workers DALI threads (at least 1), in this process; no DataLoader.

--peer splitshare: the Python package's loader (splitshare.data.ImageFolder, built by `pip install .`
  or found through SPLITSHARE_OPS_LIBRARY and PYTHONPATH=python) with torchvision's recipe (the
  same RandomResizedCrop(224) + flip / Resize(256) + CenterCrop(224) + Normalize), batches of 64,
  --workers decoding threads in this process (0 = on the thread that takes the batches). Training
  drops the last incomplete batch; the images delivered are counted.

The others run through torch's DataLoader (batch 64, default collate) with --workers worker
processes (0 = in the main process), over torchvision.datasets.ImageFolder (tvio: its
file list and classes, with the loader replaced by reading the bytes), or the shards (wds).

Prints one line per pipeline (a JSON object per line with --json):
    peer <train|eval> peer=P workers=N images=M seconds=S images_per_s=R per_core=R/max(N,1) images_per_cpu_s=C
Time is wall-clock over --epochs epochs, after one warm-up epoch (workers started,
files in the page cache). images_per_cpu_s divides by the CPU time of the main
process and its worker processes (from /proc), which stays meaningful when other
processes share the cores. The JSON record also names the PIL version in use.

Usage: .venv/bin/python bench/peer_image_pipeline.py FOLDER [--peer pil|tvio|wds|dali|splitshare] [--label NAME]
                                                     [--workers 1] [--epochs 2]
"""
import argparse
import json
import os
import time

import PIL
import torch
import torchvision
from torchvision import transforms

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def pipeline(kind, size):
    """peer pil: transforms on PIL images."""
    if kind == "train":
        steps = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(int(size / 0.875)), transforms.CenterCrop(size)]
    return transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


class TvioPipeline:
    """peer tvio: decode_jpeg (RGB) of the file's bytes + transforms.v2 on uint8 tensors.

    ImageFolder's loader is torchvision.io.read_file (the bytes as a uint8 tensor, not decoded);
    this transform decodes them. A class, not a closure, so it also pickles for spawned workers.
    """

    def __init__(self, kind, size):
        from torchvision.transforms import v2

        if kind == "train":
            steps = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
        else:
            steps = [v2.Resize(int(size / 0.875), antialias=True), v2.CenterCrop(size)]
        self.transform = v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def __call__(self, data):
        from torchvision.io import ImageReadMode, decode_jpeg

        return self.transform(decode_jpeg(data, mode=ImageReadMode.RGB))


def wds_dataset(folder, kind, size):
    """peer wds: the shards of `folder` through the webdataset package, decoded by PIL."""
    import glob

    import webdataset as wds

    shards = sorted(glob.glob(os.path.join(folder, "*.tar")))
    dataset = wds.WebDataset(shards, shardshuffle=len(shards) if kind == "train" else False,
                             nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, empty_check=False)
    if kind == "train":
        dataset = dataset.shuffle(1000)
    return dataset.decode("pil").to_tuple("jpg;jpeg;png;webp", "cls").map_tuple(pipeline(kind, size), int)


def dali_batches(folder, kind, size, workers, batch_size):
    """peer dali: an iterator over one epoch's batches of a DALI CPU pipeline on `folder`'s shards."""
    import glob

    from nvidia.dali import fn, pipeline_def, types

    shards = sorted(glob.glob(os.path.join(folder, "*.tar")))
    scale = dict(mean=[m * 255 for m in MEAN], std=[s * 255 for s in STD], dtype=types.FLOAT, output_layout="CHW")

    @pipeline_def(batch_size=batch_size, num_threads=max(workers, 1), device_id=None, seed=0)
    def pipeline():
        images, labels = fn.readers.webdataset(paths=shards, ext=["jpg;jpeg;png", "cls"], random_shuffle=kind == "train",
                                               name="reader", missing_component_behavior="error")
        images = fn.decoders.image(images, device="cpu", output_type=types.RGB)
        if kind == "train":
            images = fn.random_resized_crop(images, size=size)
            images = fn.crop_mirror_normalize(images, mirror=fn.random.coin_flip(), **scale)
        else:
            images = fn.resize(images, resize_shorter=int(size / 0.875))
            images = fn.crop_mirror_normalize(images, crop=(size, size), **scale)
        return images, labels

    pipe = pipeline()
    pipe.build()
    epoch_size = pipe.epoch_size("reader")

    def epoch():
        done = 0
        while done < epoch_size:
            images, _ = pipe.run()
            count = min(len(images), epoch_size - done)
            done += count
            yield count

    return epoch


def run_dali(folder, kind, workers, epochs, batch_size, size):
    """(images, seconds, cpu seconds) of `epochs` DALI epochs after a warm-up one."""
    epoch = dali_batches(folder, kind, size, workers, batch_size)
    for _ in epoch():
        pass
    images, cpu_start, start = 0, cpu_seconds([os.getpid()]), time.perf_counter()
    for _ in range(epochs):
        images += sum(epoch())
    return images, time.perf_counter() - start, cpu_seconds([os.getpid()]) - cpu_start


def run_splitshare(folder, kind, workers, epochs, batch_size, size):
    """(images, seconds, cpu seconds) of `epochs` epochs of splitshare.data.ImageFolder after a warm-up one."""
    import splitshare

    loader = splitshare.data.ImageFolder(folder, train=kind == "train", recipe="torchvision", image_size=size,
                                         batch_size=batch_size, workers=workers, seed=0)
    for _ in loader:
        pass
    images, cpu_start, start = 0, cpu_seconds([os.getpid()]), time.perf_counter()
    for _ in range(epochs):
        for batch, _ in loader:
            images += batch.shape[0]
    return images, time.perf_counter() - start, cpu_seconds([os.getpid()]) - cpu_start


def cpu_seconds(pids):
    """User + system CPU time of the given processes (all their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run(folder, peer, label, kind, workers, epochs, batch_size, size, as_json):
    torch.set_num_threads(1)
    if peer == "dali":
        return report(*run_dali(folder, kind, workers, epochs, batch_size, size), peer, label, kind, workers, as_json)
    if peer == "splitshare":
        return report(*run_splitshare(folder, kind, workers, epochs, batch_size, size), peer, label, kind, workers,
                      as_json)
    if peer == "wds":
        dataset = wds_dataset(folder, kind, size)
    elif peer == "tvio":
        dataset = torchvision.datasets.ImageFolder(folder, transform=TvioPipeline(kind, size),
                                                   loader=torchvision.io.read_file)
    else:
        dataset = torchvision.datasets.ImageFolder(folder, transform=pipeline(kind, size))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=(kind == "train" and peer != "wds"), drop_last=False,
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
    report(images, time.perf_counter() - start, cpu_seconds(pids) - cpu_start, peer, label, kind, workers, as_json)


def report(images, seconds, cpu, peer, label, kind, workers, as_json):
    result = {"side": "peer", "peer": label, "pipeline": kind, "workers": workers, "images": images,
              "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1),
              "per_core": round(images / seconds / max(workers, 1), 1),
              "images_per_cpu_s": round(images / cpu, 1) if cpu > 0 else None,
              "pil": PIL.__version__, "torchvision": torchvision.__version__}
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        print(" ".join(["peer", kind] + [f"{k}={result[k]}" for k in
                                         ("peer", "workers", "images", "seconds", "images_per_s", "per_core",
                                          "images_per_cpu_s")]), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="an ImageFolder root (one sub-folder per class)")
    parser.add_argument("--peer", choices=["pil", "tvio", "wds", "dali", "splitshare"], default="pil",
                        help="pil: PIL + torchvision.transforms; tvio: torchvision.io.decode_jpeg + transforms.v2; "
                             "wds: FOLDER's shards through the webdataset package + the pil transforms; "
                             "dali: FOLDER's shards through DALI's CPU pipeline; "
                             "splitshare: the Python package's splitshare.data.ImageFolder")
    parser.add_argument("--label", help="the peer's name in the output (default: --peer; e.g. pil-simd)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--pipelines", default="train,eval")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    for kind in args.pipelines.split(","):
        run(args.folder, args.peer, args.label or args.peer, kind, args.workers, args.epochs, args.batch_size,
            args.size, args.json)


if __name__ == "__main__":
    main()
