#!/usr/bin/env python3
"""WebDataset interoperability with the `webdataset` package, for tests/data/test_pack.cpp.

  wds_interop.py read SHARDS FOLDER   reads SHARDS/*.tar (what `splitshare pack` wrote from the
      image folder FOLDER) with webdataset.WebDataset(...).decode("pil") and checks every sample
      against FOLDER: the image decodes to the same pixels as FOLDER/<path> with PIL, and the
      label is the class folder's index in dataset.json's class list. Prints "read N samples".
  wds_interop.py write FOLDER SHARDS  writes the class-per-folder images of FOLDER with
      webdataset.ShardWriter (at most 5 samples per shard) as SHARDS/train-%06d.tar: KEY.png
      (the file's bytes) + KEY.cls (the label: the class folder's sorted position), KEY =
      CLASS_STEM. Prints "wrote N samples"."""
import json
import pathlib
import sys

import numpy as np
import webdataset as wds
from PIL import Image


def read(shards, folder):
    shards, folder = pathlib.Path(shards), pathlib.Path(folder)
    classes = json.loads((shards / "dataset.json").read_text())["classes"]
    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    count = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil"):
        image = next(sample[k] for k in ("jpg", "png", "webp", "bmp", "pnm") if k in sample)
        meta, label = sample["json"], int(sample["cls"])
        split = "val" if pathlib.Path(sample["__url__"]).name.startswith("val") else "train"
        original = folder / split / meta["path"]
        assert original.parent.name == classes[label] == meta["label"], (sample["__key__"], original, label)
        expected = np.asarray(Image.open(original).convert("RGB"))
        got = np.asarray(image.convert("RGB"))
        assert got.shape == expected.shape and (got == expected).all(), f"pixels of {sample['__key__']} differ"
        count += 1
    print(f"read {count} samples")


def write(folder, shards):
    folder, shards = pathlib.Path(folder), pathlib.Path(shards)
    shards.mkdir(parents=True, exist_ok=True)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    count = 0
    with wds.ShardWriter(str(shards / "train-%06d.tar"), maxcount=5, verbose=0) as sink:
        for label, name in enumerate(classes):
            for path in sorted((folder / name).iterdir()):
                sink.write({"__key__": f"{name}_{path.stem}", "png": path.read_bytes(), "cls": label})
                count += 1
    print(f"wrote {count} samples")


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](*sys.argv[2:])
