"""splitshare.load / splitshare.save against the command-line tool, both ways: a checkpoint the tool
trained loads in Python and gives the tool's logits per head (predict --json); the model saved from
Python is accepted by the tool's eval and predict with the same figures; errors name the file.

    SPLITSHARE_CLI=build/splitshare SPLITSHARE_OPS_LIBRARY=build/python/splitshare/_ops.so \\
        PYTHONPATH=python .venv/bin/python tests/python/test_checkpoint.py
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy
import torch
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import splitshare  # noqa: E402
import splitshare_torch  # noqa: E402

CLI = os.environ.get("SPLITSHARE_CLI", str(ROOT / "build" / "splitshare"))


def tool(*args):
    run = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise AssertionError(f"splitshare {' '.join(map(str, args))} failed ({run.returncode}):\n{run.stderr}")
    return run.stdout


def image_folder(root):
    """Three classes of 20x20 colour images (a bright square at a class-specific place) in train/ and val/."""
    rng = numpy.random.default_rng(0)
    for split, count in (("train", 8), ("val", 3)):
        for c in range(3):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 80, (20, 20, 3), dtype=numpy.uint8)
                pixels[2 + 5 * c:8 + 5 * c, 4:14] = 230
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


class Checkpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="splitshare-checkpoint-test-")
        root = pathlib.Path(cls.scratch.name)
        cls.data = image_folder(root / "data")
        tool("train", "--data", f"imagefolder:{cls.data}", "--arch", "resnet10", "--width", "8", "--epochs", "2",
             "--batch-size", "6", "--amp", "fp32", "--no-progress", "--out", root / "run")
        cls.trained = root / "run" / "checkpoint.pt"
        cls.images = sorted((cls.data / "val").glob("*/*.png"))
        cls.root = root

    @classmethod
    def tearDownClass(cls):
        cls.scratch.cleanup()

    def predicted(self, checkpoint):
        out = json.loads(tool("predict", "--checkpoint", checkpoint, "--amp", "fp32", "--json", *self.images))["predictions"]
        return (torch.tensor([p["logits"] for p in out]),
                [torch.tensor([p["head_logits"][h] for p in out]) for h in range(len(out[0]["head_logits"]))])

    def python_logits(self, model, meta):
        x = torch.stack([splitshare_torch.load_image(p, meta) for p in self.images])
        with torch.no_grad():
            return model(x)

    def test_the_tools_checkpoint_gives_the_tools_logits(self):
        model, meta = splitshare.load(self.trained)
        self.assertIsInstance(model.head, splitshare.nn.SplitShareHead)
        self.assertEqual(meta["classes"], ["class0", "class1", "class2"])
        self.assertFalse(model.training)
        logits, heads = self.predicted(self.trained)
        out = self.python_logits(model, meta)
        torch.testing.assert_close(out.logits, logits.float(), rtol=1e-4, atol=1e-4)
        self.assertEqual(len(out.head_logits), 4)
        for mine, theirs in zip(out.head_logits, heads):
            torch.testing.assert_close(mine, theirs.float(), rtol=1e-4, atol=1e-4)

    def test_a_model_saved_from_python_is_read_by_the_tool(self):
        model, meta = splitshare.load(self.trained)
        with torch.no_grad():  # changed in Python, so that the tool must read the new weights
            model.fc[3].bias.add_(torch.tensor([5.0, 0.0, 0.0]))
        meta["classes"] = ["a", "b", "c"]
        saved = self.root / "from-python.pt"
        splitshare.save(model, saved, meta)
        info = tool("info", "--checkpoint", saved, "--json")
        self.assertIn('"a"', info)
        logits, heads = self.predicted(saved)
        out = self.python_logits(model, meta)
        torch.testing.assert_close(out.logits, logits.float(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out.head_logits[3], heads[3].float(), rtol=1e-4, atol=1e-4)
        self.assertIn("top1", json.loads(tool("eval", "--checkpoint", saved, "--data", f"imagefolder:{self.data}",
                                              "--json")))
        again, meta_again = splitshare.load(saved)
        for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
            torch.testing.assert_close(a, b, msg=name)
        self.assertEqual(meta_again["classes"], ["a", "b", "c"])

    def test_errors_name_the_file(self):
        bogus = self.root / "not-a-checkpoint.pt"
        bogus.write_bytes(b"hello")
        with self.assertRaisesRegex(ValueError, "not-a-checkpoint.pt: not a readable torch archive"):
            splitshare.load(bogus)
        model, meta = splitshare.load(self.trained)
        with self.assertRaisesRegex(ValueError, r"lists 2 class names for num_classes=3"):
            splitshare.save(model, self.root / "bad.pt", dict(meta, classes=["a", "b"]))
        with self.assertRaisesRegex(ValueError, r"lacks \['preprocess'\]"):
            splitshare.save(model, self.root / "bad.pt", {k: v for k, v in meta.items() if k != "preprocess"})


if __name__ == "__main__":
    unittest.main()
