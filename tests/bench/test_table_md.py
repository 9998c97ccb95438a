"""bench/table_md.py: the README-style table from a bench/run_table.sh folder, with the spread of
single-round ratios when the bench ran in rounds.

    python3 tests/bench/test_table_md.py
"""
import contextlib
import io
import json
import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))

import table_md  # noqa: E402


def timing(median, rounds=None):
    t = {"median": median, "min": median, "max": median, "images_per_second": [median], "peak_rss_mb": 100.0}
    if rounds:
        t["round_medians"] = rounds
    return t


def bench_json(row_extra):
    row = {"workload": "default model train, b128 28x28", "key": "fashion-train", "precision": "fp32",
           "memory": False, "ours": timing(120.0), "peers": {"eager": timing(100.0)}, "best_peer": "eager",
           "ratio_vs_best_peer": 1.2, "gflops": 50.0, "peak_fraction": 0.25, "machine_peak_fraction": 0.2}
    row.update(row_extra)
    return {"peak_gflops": {"fp32": 200.0, "bf16": 400.0}, "rows": [row],
            "cpu": {"model": "Test CPU", "isa": ["avx2"], "amx_usable": False}}


def table(row_extra):
    with tempfile.TemporaryDirectory() as folder:
        (pathlib.Path(folder) / "fashion-train.json").write_text(json.dumps(bench_json(row_extra)))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            sys.argv = ["table_md.py", folder]
            table_md.main()
        return out.getvalue()


class Table(unittest.TestCase):
    def test_one_round_gives_the_ratio_alone(self):
        text = table({})
        self.assertIn("| eager | 1.20x | 50 | 25 % | 20 % |", text)
        self.assertIn("CPU: Test CPU", text)

    def test_rounds_give_the_lowest_and_highest_single_round_ratio(self):
        text = table({"ratio_by_round": [1.31, 0.93, 1.12]})
        self.assertIn("| eager | 1.20x (0.93-1.31) |", text)


if __name__ == "__main__":
    unittest.main()
