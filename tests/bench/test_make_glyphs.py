"""bench/make_glyphs.py: the same seed gives the same bytes whatever the number of workers, another
seed other bytes, and train and test images come from disjoint font files and design families.

    .venv/bin/python tests/bench/test_make_glyphs.py     (needs the fonts scripts/setup installs)
"""
import csv
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "make_glyphs.py"
SIZES = ["--classes", "6", "--train", "4", "--test", "3"]


def make(out, *args):
    run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *SIZES, *args], capture_output=True,
                         text=True, timeout=600)
    if run.returncode != 0:
        raise AssertionError(f"make_glyphs failed ({run.returncode}):\n{run.stderr}")


def digest(folder):
    """sha256 of every file under `folder` (path and bytes), in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in pathlib.Path(folder).rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class MakeGlyphs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="make-glyphs-test-")
        base = pathlib.Path(cls.scratch.name)
        cls.a, cls.b, cls.other = base / "a", base / "b", base / "other"
        make(cls.a, "--seed", "3", "--workers", "1")
        make(cls.b, "--seed", "3", "--workers", "2")
        make(cls.other, "--seed", "4", "--workers", "2")
        cls.manifest = json.loads((cls.a / "manifest.json").read_text(encoding="utf-8"))

    @classmethod
    def tearDownClass(cls):
        cls.scratch.cleanup()

    def test_same_seed_same_bytes_for_any_worker_count(self):
        self.assertEqual(digest(self.a), digest(self.b))

    def test_another_seed_gives_other_characters_and_images(self):
        other = json.loads((self.other / "manifest.json").read_text(encoding="utf-8"))
        self.assertNotEqual(self.manifest["characters"], other["characters"])
        self.assertNotEqual(digest(self.a), digest(self.other))

    def test_folders_hold_the_sizes_asked_for(self):
        classes = (self.a / "classes.tsv").read_text(encoding="utf-8").splitlines()
        self.assertEqual(len(classes), 6)
        for split, count in (("train", 4), ("val", 3)):
            folders = sorted(p.name for p in (self.a / split).iterdir())
            self.assertEqual(folders, [line.split("\t")[0] for line in classes])
            for folder in folders:
                self.assertEqual(len(list((self.a / split / folder).glob("*.png"))), count)

    def test_train_and_test_faces_are_disjoint_by_file_and_family(self):
        faces = self.manifest["faces"]
        train = [f for f in faces if f["split"] == "train"]
        test = [f for f in faces if f["split"] == "val"]
        self.assertTrue(train and test)
        self.assertFalse({f["file"] for f in train} & {f["file"] for f in test})
        self.assertFalse({f["family"] for f in train} & {f["family"] for f in test})
        # Every image was drawn with a face of its own split.
        face_split = {f"{f['file']}:{f['index']}": f["split"] for f in faces}
        with open(self.a / "images.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 6 * (4 + 3))
        for row in rows:
            self.assertEqual(face_split[row["face"]], row["split"], row)
            self.assertTrue((self.a / row["file"]).is_file(), row)

    def test_the_manifest_records_fonts_and_rendering(self):
        for face in self.manifest["faces"]:
            self.assertRegex(face["sha256"], r"^[0-9a-f]{64}$")
            self.assertTrue(face["package"].startswith("fonts-"), face)
        self.assertEqual(self.manifest["seed"], 3)
        self.assertEqual(len(self.manifest["characters"]), 6)
        self.assertIn("rotate_deg", self.manifest["transform"])


if __name__ == "__main__":
    os.chdir(ROOT)
    unittest.main()
