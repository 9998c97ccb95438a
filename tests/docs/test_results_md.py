"""docs/results.md's statistics and its 1,000-class section (scripts/results_stats.py,
scripts/results_glyphs.py) on values whose answers are known.

    python3 tests/docs/test_results_md.py
"""
import json
import pathlib
import stat
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import results_glyphs  # noqa: E402
import results_stats as rs  # noqa: E402


class Statistics(unittest.TestCase):
    def test_t_quantiles_match_the_tables(self):
        # Student's t, 97.5 % quantiles, from any printed table.
        for df, expected in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423), (float("inf"), 1.9600)):
            self.assertAlmostEqual(rs.t_quantile(0.975, df), expected, places=3, msg=df)

    def test_welch_interval_by_hand(self):
        # Equal variances 0.01 over 3 values each: se = sqrt(2 * 0.01 / 3), df = 4.
        d, low, high, df = rs.welch([0.1, 0.2, 0.3], [0.0, 0.1, 0.2])
        self.assertAlmostEqual(d, 0.1)
        self.assertAlmostEqual(df, 4.0)
        half = 2.7764 * (2 * 0.01 / 3) ** 0.5
        self.assertAlmostEqual(low, 0.1 - half, places=4)
        self.assertAlmostEqual(high, 0.1 + half, places=4)

    def test_the_rule(self):
        self.assertEqual(rs.verdict(0.01, 0.5), "supported")
        self.assertEqual(rs.verdict(-0.5, -0.01), "contradicted")
        self.assertEqual(rs.verdict(-0.1, 0.1), "not shown")
        self.assertEqual(rs.interval_text([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]), "+10.00 [+10.00, +10.00]")
        with self.assertRaises(ValueError):
            rs.welch([0.5], [0.4, 0.6])


def summary(top1, heads, width, arch, seed, variant):
    oracle = max(heads) + 0.05 if len(heads) > 1 else top1
    return {"best_epoch": 6, "best_top1": top1, "build": {}, "head_params": 1000, "params": 100000, "seconds": 600,
            "final": {"epoch": 6, "val": {"top1": top1, "top5": top1 + 0.1, "samples": 10000, "oracle": oracle,
                                          "heads": [{"top1": h} for h in heads],
                                          "selection": {"most_confident": top1 - 0.01,
                                                        "confidence_weighted": top1 - 0.005}}},
            "model": {"arch": arch, "width": width, "stem": "small", "num_classes": 1000,
                      "preprocess": {"size": 32, "channels": 3}, "extra": {"config": {"seed": seed, "variant": variant}}}}


class GlyphSection(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="results-md-test-")
        root = pathlib.Path(self.scratch.name)
        # SSM clearly above linear at both widths; 3-FC equal to SSM within noise.
        base = {"linear": 0.60, "ssm": 0.70, "ssm-allnorm": 0.69, "kfc3": 0.70}
        noise = (0.0, 0.004, -0.004)
        self.folders = {}
        for name, arch, width in (("narrow", "resnet10", 16), ("wide", "resnet50", 16)):
            folder = root / name
            for variant, top in base.items():
                for seed, e in enumerate(noise):
                    t = top + e
                    heads = [t - 0.10, t - 0.02, t - 0.01, t - 0.30] if variant.startswith("ssm") else [t]
                    run = folder / variant / f"seed-{seed}"
                    run.mkdir(parents=True)
                    (run / "summary.json").write_text(json.dumps(summary(t, heads, width, arch, seed, variant)))
            self.folders[name] = folder
        manifest = {"seed": 0, "version": 1, "train_per_class": 30,
                    "faces": [{"split": "train", "family": "a"}, {"split": "train", "family": "b"},
                              {"split": "val", "family": "c"}]}
        self.manifest = root / "manifest.json"
        self.manifest.write_text(json.dumps(manifest))
        # A stand-in for `splitshare eval --json`: every ensemble of two gets 0.75.
        self.binary = root / "fake-splitshare"
        self.binary.write_text("#!/bin/sh\necho '{\"top1\": 0.75}'\n")
        self.binary.chmod(self.binary.stat().st_mode | stat.S_IEXEC)

    def tearDown(self):
        self.scratch.cleanup()

    def test_section_reads_the_runs_and_applies_the_rule(self):
        text = results_glyphs.section(self.folders, self.manifest, str(self.binary), "imagefolder:x", "abc1234")
        self.assertIn("1,000 classes (CJK ideographs", text)
        self.assertIn("30 training images per class (30,000)", text)
        self.assertIn("128 feature channels, 0.13 per class", text)   # resnet10, width 16
        self.assertIn("512 feature channels, 0.51 per class", text)   # resnet50, width 16
        table = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| Table")}
        self.assertRegex(table["Table 1: SSM beats the linear head (ssm − linear)"], r"supported: \+10\.00 \[")
        self.assertRegex(table["Table 4: SSM beats 3-FC (ssm − kfc3)"], r"not shown: \+0\.00 \[")
        self.assertRegex(table["Table 2: the last head is weak (FC3 − FC4)"], r"supported: \+29\.00")
        self.assertRegex(table["Table 2: averaged − best single head (FC3)"], r"supported: \+1\.00")
        # linear's members are 0.60-0.604: an ensemble at 0.75 gains in all three pairs.
        self.assertRegex(table["Table 3: linear gains from an ensemble of two seeds (over the better member)"],
                         r"supported: \+14\.60, \+15\.00, \+14\.60 \(three pairs\)")

    def test_missing_seeds_are_refused_by_name(self):
        for path in (self.folders["wide"] / "kfc3" / "seed-2").iterdir():
            path.unlink()
        (self.folders["wide"] / "kfc3" / "seed-2").rmdir()
        with self.assertRaises(SystemExit) as caught:
            results_glyphs.section(self.folders, self.manifest, str(self.binary), "imagefolder:x", "abc1234")
        self.assertIn("kfc3", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
