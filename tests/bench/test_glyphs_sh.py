"""bench/glyphs.sh with a stand-in for build/splitshare: every finished run is copied to its record
folder, a run with a record is not trained again, the linear and SSM runs of every seed come
first, each keeps its test-set top-10 in its record, and the three seed pairs of each are recorded
in ensembles.json from their checkpoints, or from the records when the checkpoints are gone.

    python3 tests/bench/test_glyphs_sh.py
"""
import json
import os
import pathlib
import stat
import subprocess
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Writes the run folder compare would (checkpoint, metrics, summary) and logs each call; `eval`
# answers top-1 0.5 plus a tenth of the seeds' sum, so each pair's figure is its own.
FAKE = r"""#!/usr/bin/env python3
import json, os, pathlib, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
def flag(name):
    return args[args.index(name) + 1]
if args[0] == "compare":
    run = pathlib.Path(flag("--out")) / flag("--variants") / ("seed-" + flag("--seed"))
    run.mkdir(parents=True, exist_ok=True)
    (run / "checkpoint.pt").write_text("weights")
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (run / "summary.json").write_text(json.dumps({"final": {"val": {"top1": 0.25}}, "seed": int(flag("--seed"))}))
elif args[0] == "eval":
    seeds = [int(re.search(r"seed-(\d+)", a).group(1)) for a in args if a.endswith("checkpoint.pt")]
    print(json.dumps({"top1": 0.5 + sum(seeds) / 10}))
elif args[0] == "predict":
    # Ten test images of class A: a model of seed s puts A first on images 0..2+3s, B first elsewhere.
    seed = int(re.search(r"seed-(\d+)", flag("--checkpoint")).group(1))
    header = ",".join(["path"] + [f"label_{k},prob_{k}" for k in range(1, 11)])
    rows = []
    for i in range(10):
        first, second = ("A", "B") if i <= 2 + 3 * seed else ("B", "A")
        rest = [f"C{k},0.01" for k in range(8)]
        rows.append(",".join([f"data-{seed}/val/A/{i}.png", first, "0.5", second, "0.3"] + rest))
    pathlib.Path(flag("--output")).write_text(header + "\n" + "\n".join(rows) + "\n")
"""


class GlyphsScript(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="glyphs-sh-test-")
        self.root = pathlib.Path(self.scratch.name)
        fake = self.root / "fake-splitshare"
        fake.write_text(FAKE)
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        data = self.root / "data"
        data.mkdir()
        (data / "manifest.json").write_text("{}")
        self.log = self.root / "calls.log"
        self.env = dict(os.environ, SPLITSHARE=str(fake), FAKE_LOG=str(self.log), DATA=str(data),
                        RUNS=str(self.root / "runs"), RECORDS=str(self.root / "results"))

    def tearDown(self):
        self.scratch.cleanup()

    def glyphs(self):
        run = subprocess.run(["bash", str(ROOT / "bench" / "glyphs.sh"), "narrow"], env=self.env,
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        return run.stderr

    def trained(self):
        calls = [line.split() for line in self.log.read_text().splitlines() if line.startswith("compare")]
        return [(c[c.index("--variants") + 1], int(c[c.index("--seed") + 1])) for c in calls]

    def test_records_every_run_and_the_ensembles(self):
        self.glyphs()
        order = self.trained()
        self.assertEqual(order[:6], [(v, s) for s in (0, 1, 2) for v in ("linear", "ssm")])
        self.assertEqual(sorted(order[6:]), sorted((v, s) for s in (0, 1, 2) for v in ("ssm-allnorm", "kfc3")))
        records = self.root / "results" / "glyphs-128"
        for variant, seed in order:
            record = records / variant / f"seed-{seed}"
            self.assertEqual(json.loads((record / "summary.json").read_text())["seed"], seed)
            self.assertTrue((record / "metrics.jsonl").is_file())
            self.assertFalse((record / "checkpoint.pt").exists())   # checkpoints stay out of the record
        ensembles = json.loads((records / "ensembles.json").read_text())
        for variant in ("linear", "ssm"):
            self.assertEqual([(p["seeds"], round(p["top1"], 6)) for p in ensembles[variant]],
                             [([0, 1], 0.6), ([0, 2], 0.7), ([1, 2], 0.8)])
            for seed in (0, 1, 2):
                self.assertTrue((records / variant / f"seed-{seed}" / "test-top10.csv.gz").is_file())
        for variant in ("ssm-allnorm", "kfc3"):
            self.assertFalse((records / variant / "seed-0" / "test-top10.csv.gz").exists())
        # The check beside the tool's figures: seeds 0 and 1 agree on images 0-2 (A, correct), differ
        # on 3-5 (A 0.5 + B 0.3 against B 0.5 + A 0.3: a tie, undetermined), agree on B elsewhere.
        check = json.loads((records / "ensembles-from-records.json").read_text())
        self.assertEqual([(p["seeds"], p["top1"], p["top1_max"]) for p in check["ssm"]],
                         [([0, 1], 0.3, 0.6), ([0, 2], 0.3, 0.9), ([1, 2], 0.6, 0.9)])

    def test_a_recorded_run_is_not_trained_again(self):
        self.glyphs()
        self.log.write_text("")
        (self.root / "results" / "glyphs-128" / "kfc3" / "seed-1" / "summary.json").unlink()
        stderr = self.glyphs()
        self.assertEqual(self.trained(), [("kfc3", 1)])
        self.assertIn("has a record", stderr)

    def test_ensembles_come_from_the_records_when_the_checkpoints_are_gone(self):
        self.glyphs()
        records = self.root / "results" / "glyphs-128"
        (records / "ensembles.json").unlink()
        (records / "ensembles-from-records.json").unlink()
        (self.root / "runs" / "glyphs-128" / "ssm" / "seed-2" / "checkpoint.pt").unlink()
        self.log.write_text("")
        stderr = self.glyphs()
        self.assertIn("the ensembles come from the records instead", stderr)
        ensembles = json.loads((records / "ensembles.json").read_text())
        self.assertIn("top-10 records", ensembles["method"])
        self.assertEqual([p["top1"] for p in ensembles["linear"]], [0.3, 0.3, 0.6])
        self.assertFalse((records / "ensembles-from-records.json").exists())
        self.assertEqual(self.trained(), [])

    def test_ensembles_need_the_checkpoints_and_the_rest_goes_on(self):
        # Records from another machine without their top-10 lists, checkpoints gone: the ensembles
        # are not made up, and the remaining runs still train.
        self.glyphs()
        records = self.root / "results" / "glyphs-128"
        (records / "ensembles.json").unlink()
        (records / "ssm" / "seed-2" / "test-top10.csv.gz").unlink()
        (records / "kfc3" / "seed-2" / "summary.json").unlink()
        (self.root / "runs" / "glyphs-128" / "ssm" / "seed-2" / "checkpoint.pt").unlink()
        self.log.write_text("")
        stderr = self.glyphs()
        self.assertFalse((records / "ensembles.json").exists())
        self.assertIn("the ensembles need all six", stderr)
        self.assertEqual(self.trained(), [("kfc3", 2)])


if __name__ == "__main__":
    unittest.main()
