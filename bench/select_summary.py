#!/usr/bin/env python3
"""Summarises bench/select_seeds.sh's select.json files: per model variant and gate
configuration, the validation top-1 of the mean, the two label-free rules, the gate and the
oracle, and the share of the mean-to-oracle gap the gate closes. Each model (seed) counts once:
its figure is the mean over its gate seeds, and the spread is the std over the models, the
independent runs (gate seeds of one model share its errors). `--md` prints a markdown table.

Usage: .venv/bin/python bench/select_summary.py runs/select [--md]
"""
import glob
import json
import os
import statistics
import sys


def main():
    root = sys.argv[1]
    markdown = "--md" in sys.argv
    groups = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "seed-*", "*", "gate-*", "select.json"))):
        variant, seed, config, gate = path[len(root) + 1:].split(os.sep)[:4]
        with open(path) as f:
            groups.setdefault((variant, config), {}).setdefault(seed, []).append(json.load(f)["validation"])
    fields = ["combined", "most_confident", "confidence_weighted", "gate", "oracle", "gap_closed"]
    header = ["model", "gate", "models x gate seeds"] + ["mean (model's own)", "most confident", "conf.-weighted",
                                                         "gate", "oracle", "gap closed by the gate"]
    rows = []
    for (variant, config), models in sorted(groups.items()):
        cells = []
        for f in fields:
            values = [statistics.mean(100 * r[f] for r in runs) for runs in models.values()]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.2f} ± {sd:.2f}" + (" %" if f == "gap_closed" else ""))
        per_model = sorted({len(runs) for runs in models.values()})
        rows.append([variant, config, f"{len(models)} x {'/'.join(map(str, per_model))}"] + cells)
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
