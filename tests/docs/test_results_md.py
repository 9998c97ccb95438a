"""docs/results.md's statistics and its 1,000-class section (scripts/results_stats.py,
scripts/results_glyphs.py) on values whose answers are known.

    python3 tests/docs/test_results_md.py
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import results_fashion  # noqa: E402
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
        self.assertEqual(rs.cell([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]), "supported: +10.00 [+10.00, +10.00]")
        self.assertEqual(rs.cell([0.4, 0.5, 0.6], [0.5, 0.5, 0.5]), "not shown: +0.00 [-24.84, +24.84]")
        with self.assertRaises(ValueError):
            rs.welch([0.5], [0.4, 0.6])

    def test_one_sample_interval_by_hand(self):
        # mean 0.2, sd 0.1, n 3: half-width t(0.975, 2) * 0.1 / sqrt(3).
        mean, low, high = rs.one_sample([0.1, 0.2, 0.3])
        half = 4.3027 * 0.1 / 3 ** 0.5
        self.assertAlmostEqual(mean, 0.2)
        self.assertAlmostEqual(low, 0.2 - half, places=4)
        self.assertAlmostEqual(high, 0.2 + half, places=4)


def summary(top1, heads, width, arch, seed, variant):
    oracle = max(heads) + 0.05 if len(heads) > 1 else top1
    return {"best_epoch": 6, "best_top1": top1, "build": {}, "head_params": 1000, "params": 100000, "seconds": 600,
            "final": {"epoch": 6, "val": {"top1": top1, "top5": top1 + 0.1, "samples": 10000, "oracle": oracle,
                                          "heads": [{"top1": h} for h in heads],
                                          "selection": {"most_confident": top1 - 0.01,
                                                        "confidence_weighted": top1 - 0.005}}},
            "model": {"arch": arch, "width": width, "stem": "small", "num_classes": 1000,
                      "preprocess": {"size": 32, "channels": 3}, "extra": {"config": {"seed": seed, "variant": variant}}}}


def curve(run, epochs):
    """A run's metrics.jsonl: (training loss, test top-1) per epoch."""
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "train_loss": loss, "val": {"top1": top1}}) + "\n"
                                               for i, (loss, top1) in enumerate(epochs)))


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
                    curve(run, [(6.0, 0.0005), (3.0, t - 0.005), (2.0, t)])
            self.folders[name] = folder
        manifest = {"seed": 0, "version": 1, "train_per_class": 30,
                    "faces": [{"split": "train", "family": "a"}, {"split": "train", "family": "b"},
                              {"split": "val", "family": "c"}]}
        self.manifest = root / "manifest.json"
        self.manifest.write_text(json.dumps(manifest))
        # bench/glyphs.sh's record of the ensembles: every ensemble of two gets 0.75.
        for folder in self.folders.values():
            pairs = [{"seeds": [a, b], "top1": 0.75} for a, b in ((0, 1), (0, 2), (1, 2))]
            (folder / "ensembles.json").write_text(json.dumps({"linear": pairs, "ssm": pairs}))

    def tearDown(self):
        self.scratch.cleanup()

    def test_section_reads_the_runs_and_applies_the_rule(self):
        text, cells, _ = results_glyphs.section(self.folders, self.manifest, "abc1234")
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
        self.assertAlmostEqual(cells["narrow"][0], 0.128)
        self.assertRegex(cells["wide"][1]["Table 1: SSM beats the linear head (ssm − linear)"], r"^supported: \+10\.00")

    def test_runs_left_at_chance_are_named_and_counted(self):
        # ln 1000 = 6.908: a final loss of 6.90 is within 1 % of a uniform guess; 6.80 is not.
        curve(self.folders["wide"] / "linear" / "seed-1", [(6.95, 0.001), (6.91, 0.001), (6.90, 0.0012)])
        curve(self.folders["narrow"] / "kfc3" / "seed-2", [(6.95, 0.001), (6.85, 0.002), (6.80, 0.02)])
        text, _, short = results_glyphs.section(self.folders, self.manifest, "abc1234")
        self.assertIn("1 of the 24 runs never left the chance plateau", text)
        self.assertIn(": wide linear seed 1.", text)
        # First above ten times chance (1 %): epoch 2 for the normal runs, epoch 3 for the slow one.
        self.assertIn("narrow: epoch 2 to 3; wide: epoch 2 to 2", text)
        # Gaining at least a point in the last epoch: only the slow narrow 3-FC run (+1.8; the others +0.5).
        self.assertIn("and 1 of the 24 were still gaining", text)
        self.assertTrue(short.startswith("1 of the 24 runs never left the chance plateau and "))

    def test_missing_seeds_are_refused_by_name(self):
        for path in (self.folders["wide"] / "kfc3" / "seed-2").iterdir():
            path.unlink()
        (self.folders["wide"] / "kfc3" / "seed-2").rmdir()
        with self.assertRaises(SystemExit) as caught:
            results_glyphs.section(self.folders, self.manifest, "abc1234")
        self.assertIn("kfc3", str(caught.exception))

    def test_ensembles_from_records_give_a_range_and_a_verdict_only_when_certain(self):
        # Undetermined samples (top-10 records) leave each ensemble a range; linear's members are
        # 0.60-0.604, so a pair whose range reaches below them is no support.
        pairs = [{"seeds": [a, b], "top1": low, "top1_max": 0.75, "undetermined": 10, "samples": 100}
                 for (a, b), low in (((0, 1), 0.70), ((0, 2), 0.60), ((1, 2), 0.70))]
        (self.folders["wide"] / "ensembles.json").write_text(json.dumps({"method": "top-10 records",
                                                                         "linear": pairs, "ssm": pairs}))
        text, cells, _ = results_glyphs.section(self.folders, self.manifest, "abc1234")
        self.assertRegex(cells["wide"][1]["Table 3: linear gains from an ensemble of two seeds (over the better "
                                          "member)"], r"^not shown: \+9\.60 to \+14\.60, \+0\.00 to \+15\.00, ")
        self.assertIn("linear seeds 0+1 70.00-75.00", text)

    def test_missing_or_short_ensembles_are_refused(self):
        (self.folders["narrow"] / "ensembles.json").unlink()
        with self.assertRaises(SystemExit) as caught:
            results_glyphs.section(self.folders, self.manifest, "abc1234")
        self.assertIn("ensembles.json is missing", str(caught.exception))
        (self.folders["narrow"] / "ensembles.json").write_text(json.dumps(
            {"linear": [{"seeds": [0, 1], "top1": 0.75}], "ssm": []}))
        with self.assertRaises(SystemExit) as caught:
            results_glyphs.section(self.folders, self.manifest, "abc1234")
        self.assertIn("holds 1 linear pairs", str(caught.exception))


def small_folder(root, base):
    """A compare --preset paper-small folder: base top-1 per variant, seeds 0-2 at +0, +0.002, -0.002."""
    variants = []
    for variant, top in base.items():
        runs, seeds = [], [0, 1, 2]
        for seed, e in zip(seeds, (0.0, 0.002, -0.002)):
            t = top + e
            heads = [t - 0.03, t - 0.01, t - 0.005, t - 0.10] if variant.startswith("ssm") else [t]
            val = {"top1": t, "top5": 0.99, "oracle": t + 0.04, "heads": [{"top1": h} for h in heads],
                   "selection": {"most_confident": t - 0.002, "confidence_weighted": t - 0.001}}
            runs.append(val)
            summary = {"seconds": 60, "train_images_per_epoch": 59904, "final": {"epoch": 9, "val": dict(val, samples=10000)},
                       "train": {"epochs": 9, "optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "schedule": "cosine",
                                 "batch_size": 128, "weight_decay": 0.0005},
                       "model": {"arch": "resnet10", "width": 16, "stem": "small", "num_classes": 10,
                                 "preprocess": {"size": 28, "channels": 1},
                                 "extra": {"config": {"data_settings": {"kind": "fashion-mnist", "augment": True}}}}}
            run = root / variant / f"seed-{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps(summary))
        variants.append({"variant": variant, "seeds": seeds, "runs": runs, "params": 300000, "head_params": 1290,
                         "top5_mean": 0.99, "ensemble_top1": top + 0.003, "ensemble_gain_over_best": 0.001,
                         "ensemble_gain_over_mean": 0.003})
    (root / "compare.json").write_text(json.dumps({"variants": variants}))


class SmallSection(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="results-md-test-")
        self.root = pathlib.Path(self.scratch.name) / "paper-small"
        # SSM 2 points above linear, the k-FC heads equal to linear.
        small_folder(self.root, {"linear": 0.90, "ssm": 0.92, "ssm-allnorm": 0.92, "ssm-individual": 0.90,
                                 "kfc2": 0.90, "kfc3": 0.90})

    def tearDown(self):
        self.scratch.cleanup()

    def test_section_describes_the_runs_and_applies_the_rule(self):
        variants = results_fashion.load(self.root)
        text = results_fashion.section(variants, "the command")
        self.assertIn("## Fashion-MNIST: the paper's tables at small scale", text)
        self.assertIn("Fashion-MNIST (10 classes; 59,904 training images per epoch, 10,000 test images, 28×28", text)
        self.assertIn("`resnet10` with stage-1 width 16 and the small stem (128 feature channels, 12.8 per class)", text)
        self.assertIn("9 epochs of SGD (momentum 0.9, lr 0.1, cosine schedule, batch 128, weight decay 0.0005)", text)
        self.assertIn("chance: 10.00 % for 10 classes", text)
        verdicts = results_fashion.verdicts(variants)
        self.assertEqual(verdicts["Table 1: SSM beats the linear head (ssm − linear)"], "supported")
        self.assertEqual(verdicts["Table 4: extra FCs alone barely help (kfc2 − linear)"], "not shown")
        # Individual heads are 0.90 - 0.03 and so on, joint ones 0.92 - 0.03: each joint head is better.
        self.assertEqual(verdicts["Table 2: FC1 trained alone beats FC1 trained jointly (individual − joint)"],
                         "contradicted")

    def test_unfinished_folder_is_refused(self):
        compare = json.loads((self.root / "compare.json").read_text())
        compare["variants"] = compare["variants"][:-1]
        (self.root / "compare.json").write_text(json.dumps(compare))
        with self.assertRaises(SystemExit) as caught:
            results_fashion.load(self.root)
        self.assertIn("kfc3", str(caught.exception))

    def test_the_page_opens_with_the_statement_and_ends_with_provenance(self):
        page = subprocess.run([sys.executable, str(ROOT / "scripts" / "results-md"), str(self.root), "abc1234"],
                              capture_output=True, text=True, check=True, cwd=ROOT).stdout
        self.assertTrue(page.startswith("# Results: the paper's claims, tested"))
        self.assertIn("On Fashion-MNIST the default SSM head's gain over the linear head is *supported* (every claim judged there: contradicted, not shown, supported), at 12.8 feature channels per class", page)
        self.assertIn("git checkout abc1234 && scripts/setup && scripts/build", page)
        self.assertNotIn("54,000", page)


if __name__ == "__main__":
    unittest.main()
