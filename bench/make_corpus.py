#!/usr/bin/env python3
"""Builds an ImageNet-like JPEG corpus from the photos of Debian's mate-backgrounds.

Every output is a random crop of one source photo (random position, size and
aspect ratio, sometimes mirrored), resized so its longer side is 500 pixels
(ImageNet's typical 500x375 / 375x500 / 500x333), saved as a baseline JPEG at
quality 90 with 4:2:0 chroma subsampling (what most ImageNet files are).
Classes are the source photos, so the folder is also a valid `imagefolder:` input:

    bench/corpus/train/<photo>/<photo>_00000.JPEG
    bench/corpus/val/<photo>/<photo>_00000.JPEG

The corpus is generated, never committed (bench/corpus/ is git-ignored).
Deterministic for a given --seed.

Usage: .venv/bin/python bench/make_corpus.py [--out bench/corpus] [--train 1200] [--val 300]
"""
import argparse
import glob
import os
import random
import sys

from PIL import Image

SOURCES = "/usr/share/backgrounds/mate/nature/*.jpg"
LONG_SIDE = 500
ASPECTS = [(4, 3), (4, 3), (4, 3), (3, 2), (3, 4), (1, 1), (16, 9)]


def cut(photo, rng):
    width, height = photo.size
    aw, ah = rng.choice(ASPECTS)
    # Crop between 35% and 100% of the largest window with that aspect ratio.
    max_w = min(width, height * aw / ah)
    frac = rng.uniform(0.35, 1.0)
    cw = max(64, int(max_w * frac))
    ch = max(64, int(cw * ah / aw))
    x = rng.randint(0, width - cw)
    y = rng.randint(0, height - ch)
    region = photo.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        region = region.transpose(Image.FLIP_LEFT_RIGHT)
    scale = LONG_SIDE / max(cw, ch)
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return region.resize(size, Image.BILINEAR, reducing_gap=None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    parser.add_argument("--train", type=int, default=1200, help="training images in all")
    parser.add_argument("--val", type=int, default=300, help="validation images in all")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sources = sorted(glob.glob(SOURCES))
    if not sources:
        sys.exit(f"make_corpus: no photos match {SOURCES} (apt-get install mate-backgrounds)")
    rng = random.Random(args.seed)
    photos = []
    for path in sources:
        with Image.open(path) as im:
            photos.append((os.path.splitext(os.path.basename(path))[0].lower(), im.convert("RGB")))

    total = 0
    for split, count in (("train", args.train), ("val", args.val)):
        for i in range(count):
            name, photo = photos[i % len(photos)]
            folder = os.path.join(args.out, split, name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{name}_{i // len(photos):05d}.JPEG")
            cut(photo, rng).save(path, "JPEG", quality=args.quality, subsampling="4:2:0")
            total += 1
    print(f"make_corpus: wrote {total} JPEGs ({args.train} train, {args.val} val, "
          f"{len(photos)} classes) under {args.out}")


if __name__ == "__main__":
    main()
