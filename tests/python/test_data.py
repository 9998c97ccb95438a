"""splitshare.data against the tool and torchvision: an evaluation batch from Python holds the
pixels the tool's predict feeds its model (predict --dump-inputs); every training image is a crop
(or its mirror) of torchvision's resize of its file; batches depend only on (seed, epoch), not on
the number of workers; sharded ranks cover every sample once; uint8 batches normalised equal the
float ones; bad options are refused by name.

    SPLITSHARE_CLI=build/splitshare SPLITSHARE_OPS_LIBRARY=build/python/splitshare/_ops.so \\
        PYTHONPATH=python .venv/bin/python tests/python/test_data.py
"""
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy
import torch
import torchvision.transforms.functional as TF
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import splitshare  # noqa: E402

CLI = os.environ.get("SPLITSHARE_CLI", str(ROOT / "build" / "splitshare"))
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def tool(*args):
    run = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise AssertionError(f"splitshare {' '.join(map(str, args))} failed ({run.returncode}):\n{run.stderr}")
    return run.stdout


def photo_folder(root, per_class=7, classes=3):
    """PNG photos of several sizes and aspect ratios (smooth gradients + noise), `classes` classes."""
    rng = numpy.random.default_rng(1)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = int(rng.integers(40, 70)), int(rng.integers(40, 70))
            y, x = numpy.mgrid[0:h, 0:w]
            pixels = numpy.stack([(x * 255 // w), (y * 255 // h), numpy.full_like(x, 60 * c)], axis=-1)
            pixels = (pixels + rng.integers(0, 40, (h, w, 3))).clip(0, 255).astype(numpy.uint8)
            Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return root


def epoch(loader):
    """One epoch as (images, labels, indices), concatenated."""
    parts = list(loader.batches())
    return tuple(torch.cat([p[k] for p in parts]) for k in range(3))


class ImageFolderLoader(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="splitshare-data-test-")
        cls.root = photo_folder(pathlib.Path(cls.scratch.name) / "photos")
        cls.files = sorted(cls.root.glob("*/*.png"))

    def test_evaluation_batch_is_what_predict_feeds_the_model(self):
        run = pathlib.Path(self.scratch.name) / "run"
        tool("train", "--data", f"imagefolder:{self.root},{self.root}", "--image-size", "24", "--arch", "resnet10",
             "--width", "4", "--epochs", "1", "--batch-size", "7", "--amp", "fp32", "--no-progress", "--out", run)
        dump = pathlib.Path(self.scratch.name) / "inputs.pt"
        tool("predict", "--checkpoint", run / "checkpoint.pt", "--amp", "fp32", "--dump-inputs", dump,
             "--no-progress", *self.files)
        expected = torch.load(dump)
        loader = splitshare.data.ImageFolder(self.root, train=False, image_size=24, batch_size=5, workers=2)
        images, labels, indices = epoch(loader)
        self.assertEqual(images.shape, (len(self.files), 3, 24, 24))
        self.assertTrue(torch.equal(indices, torch.arange(len(self.files))))
        self.assertEqual(labels.tolist(), [int(f.parent.name[-1]) for f in self.files])
        torch.testing.assert_close(images, expected, atol=1e-5, rtol=0)

    def test_training_images_are_crops_of_torchvision_resize(self):
        loader = splitshare.data.ImageFolder(self.root, image_size=24, batch_size=4, workers=2, seed=3)
        self.assertEqual(len(loader), len(self.files) // 4)
        images, labels, indices = epoch(loader)
        self.assertEqual(images.shape[0], len(loader) * 4)
        resize = int(24 / 0.875)  # the paper's recipe: the whole image to resize x resize, then a crop
        flips = 0
        for image, index in zip(images, indices.tolist()):
            full = TF.resize(TF.pil_to_tensor(Image.open(self.files[index])), [resize, resize], antialias=True)
            full = (full.float() / 255 - MEAN) / STD
            best, flipped = min(((image - view[:, y:y + 24, x:x + 24]).abs().max().item(), f)
                                for f, view in enumerate((full, full.flip(-1)))
                                for y in range(resize - 23) for x in range(resize - 23))
            self.assertLess(best, 0.05, f"training image of {self.files[index]} is no crop of its resize")
            flips += flipped
        self.assertTrue(0 < flips < len(images), f"{flips} of {len(images)} images mirrored")

    def test_batches_depend_only_on_seed_and_epoch(self):
        def run(workers, seed, at):
            loader = splitshare.data.ImageFolder(self.root, image_size=16, batch_size=4, workers=workers, seed=seed)
            loader.set_epoch(at)
            return epoch(loader)

        first = run(0, 5, 1)
        for other in (run(2, 5, 1), run(1, 5, 1)):
            for a, b in zip(first, other):
                self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(first[2], run(0, 5, 2)[2]), "epoch 2 kept epoch 1's order")
        self.assertFalse(torch.equal(first[0], run(0, 6, 1)[0]), "another seed gave the same batches")

    def test_iteration_advances_the_epoch(self):
        loader = splitshare.data.ImageFolder(self.root, image_size=16, batch_size=4, seed=5)
        orders = [torch.cat([loader.last_indices for _ in loader]) for _ in range(2)]
        self.assertFalse(torch.equal(orders[0], orders[1]), "a loop without set_epoch reshuffled nothing")

    def test_ranks_cover_every_sample_once(self):
        seen = []
        for rank in range(2):
            loader = splitshare.data.ImageFolder(self.root, train=False, image_size=16, batch_size=4, rank=rank,
                                                 world_size=2)
            seen += epoch(loader)[2].tolist()
        self.assertEqual(sorted(seen), list(range(len(self.files))))
        train = [epoch(splitshare.data.ImageFolder(self.root, image_size=16, batch_size=3, seed=2, rank=r,
                                                   world_size=3))[2].tolist() for r in range(3)]
        self.assertEqual(len({len(t) for t in train}), 1, "ranks ran different numbers of samples")
        self.assertEqual(len(set(sum(train, []))), sum(map(len, train)), "a sample went to two ranks")

    def test_uint8_batches_normalised_equal_float_batches(self):
        kwargs = dict(image_size=16, batch_size=4, seed=9)
        raw = splitshare.data.ImageFolder(self.root, uint8=True, **kwargs)
        images, _, _ = next(raw.batches())
        self.assertEqual(images.dtype, torch.uint8)
        floats, _, _ = next(splitshare.data.ImageFolder(self.root, **kwargs).batches())
        # uint8 photos are rounded to whole grey levels after resampling: half a level apart at most.
        torch.testing.assert_close(raw.normalize(images), floats, atol=0.5 / 255 / 0.224 + 1e-5, rtol=0)

    def test_bad_options_are_refused_by_name(self):
        cases = [(dict(batch_size=0), ValueError, "batch_size"), (dict(batch_size=2.5), ValueError, "batch_size"),
                 (dict(recipe="fast"), RuntimeError, "fast"), (dict(rank=2, world_size=2), ValueError, "rank"),
                 (dict(random_erase=2.0), ValueError, "random_erase"), (dict(crop_scale=[0.1]), ValueError,
                                                                         "crop_scale")]
        for kwargs, error, name in cases:
            with self.subTest(kwargs=kwargs):
                with self.assertRaisesRegex(error, name):
                    splitshare.data.ImageFolder(self.root, **kwargs)
        with self.assertRaisesRegex(RuntimeError, "nowhere"):
            splitshare.data.ImageFolder(pathlib.Path(self.scratch.name) / "nowhere")


class OpenData(unittest.TestCase):
    def test_fashion_mnist_as_the_tool_reads_it(self):
        data = splitshare.data.open("fashion-mnist", batch_size=64, limit_train=256, limit_val=100, seed=1)
        self.assertEqual(len(data.classes), 10)
        self.assertTrue(data.small_images)
        self.assertEqual(len(data.train), 4)
        images, labels = next(iter(data.train))
        self.assertEqual(images.shape, (64, 1, 28, 28))
        self.assertEqual(images.dtype, torch.float32)
        self.assertEqual(len(data.preprocess["mean"]), 1)
        val = epoch(data.val)
        self.assertEqual(val[0].shape[0], 100)
        self.assertTrue(torch.equal(val[2], torch.arange(100)))

    def test_uint8_in_memory_batches_normalised_equal_float_batches(self):
        kwargs = dict(batch_size=32, limit_train=64, limit_val=10, seed=4)
        raw = splitshare.data.open("fashion-mnist", uint8=True, **kwargs).train
        images, _, _ = next(raw.batches())
        floats, _, _ = next(splitshare.data.open("fashion-mnist", **kwargs).train.batches())
        self.assertEqual(images.dtype, torch.uint8)
        self.assertTrue(torch.equal(raw.normalize(images), floats))

    def test_unknown_options_and_specs_are_refused(self):
        with self.assertRaisesRegex(RuntimeError, "nosuch"):
            splitshare.data.open("nosuch:/tmp")
        with self.assertRaisesRegex(ValueError, "workers"):
            splitshare.data.open("fashion-mnist", workers=-1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
