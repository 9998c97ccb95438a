#!/usr/bin/env python3
"""Builds an ImageNet-like JPEG corpus from the photos of Debian's mate-backgrounds.

Every output is a random crop of one source photo (random position, size and
aspect ratio, sometimes mirrored), resized so its longer side is 500 pixels
(ImageNet's typical 500x375 / 375x500 / 500x333), saved as a baseline JPEG at
quality 90 with 4:2:0 chroma subsampling (what most ImageNet files are).
Classes are the source photos, so the folder is also a valid `imagefolder:` input:

    bench/corpus/train/<photo>/<photo>_00000.JPEG
    bench/corpus/val/<photo>/<photo>_00000.JPEG

With --large it instead builds the corpus of full-size photos, bench/corpus-large: every
wallpaper of mate-backgrounds (/usr/share/backgrounds/mate/*/*.jpg: 1.3 to 18 megapixels,
some progressive) copied byte for byte, not re-encoded, --copies times into the training
split and --val-copies times into the validation split, one class per photo:

    bench/corpus-large/train/<photo>/<photo>_<k>.jpg    (16 photos x 8 copies = 128 files)
    bench/corpus-large/val/<photo>/<photo>_<k>.jpg      (16 photos x 1 copy)

The corpora are generated, never committed (bench/corpus/ and bench/corpus-large/ are
git-ignored). Deterministic for a given --seed.

Usage: .venv/bin/python bench/make_corpus.py [--out bench/corpus] [--train 1200] [--val 300]
       .venv/bin/python bench/make_corpus.py --large [--out bench/corpus-large] [--copies 8] [--val-copies 1]
"""
import argparse
import glob
import os
import random
import shutil
import sys

from PIL import Image

SOURCES = "/usr/share/backgrounds/mate/nature/*.jpg"
LARGE_SOURCES = "/usr/share/backgrounds/mate/*/*.jpg"
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


def make_large(out, copies, val_copies):
    """Copies every full-size wallpaper as it is (no decode, no re-encode)."""
    sources = sorted(glob.glob(LARGE_SOURCES))
    if not sources:
        sys.exit(f"make_corpus: no photos match {LARGE_SOURCES} (apt-get install mate-backgrounds)")
    names = [os.path.splitext(os.path.basename(path))[0].lower() for path in sources]
    if len(set(names)) != len(names):
        sys.exit(f"make_corpus: two photos under {LARGE_SOURCES} have the same name")
    total = 0
    size = 0
    for split, count in (("train", copies), ("val", val_copies)):
        for path, name in zip(sources, names):
            folder = os.path.join(out, split, name)
            os.makedirs(folder, exist_ok=True)
            for k in range(count):
                shutil.copyfile(path, os.path.join(folder, f"{name}_{k}.jpg"))
                total += 1
                size += os.path.getsize(path)
    print(f"make_corpus: copied {total} JPEGs ({copies * len(sources)} train, {val_copies * len(sources)} val, "
          f"{len(sources)} classes, {size / 2**20:.0f} MiB) under {out}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="output folder (default: bench/corpus, or bench/corpus-large with --large)")
    parser.add_argument("--train", type=int, default=1200, help="training images in all")
    parser.add_argument("--val", type=int, default=300, help="validation images in all")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large", action="store_true",
                        help="copy the full-size wallpapers as they are instead of making 500-pixel crops")
    parser.add_argument("--copies", type=int, default=8, help="with --large: training copies of each photo")
    parser.add_argument("--val-copies", type=int, default=1, help="with --large: validation copies of each photo")
    args = parser.parse_args()
    if args.large:
        make_large(args.out or os.path.join(here, "corpus-large"), args.copies, args.val_copies)
        return
    args.out = args.out or os.path.join(here, "corpus")

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
