#!/usr/bin/env python3
"""The Table 3 ensembles of the glyph experiment from its records, for when the six checkpoints
were never on one machine at once: each linear and SSM run's record holds its test-set top-10
classes and probabilities (`test-top10.csv.gz`, what `splitshare predict --topk 10` wrote).

The tool's ensemble (`splitshare eval --checkpoint A --checkpoint B`) predicts the class with the
largest sum of the two models' probabilities. From top-10 lists that sum is known exactly for a
class in both lists and bounded otherwise (a class outside a list has at most that list's 10th
probability), so each sample is counted correct, wrong, or undetermined (when the bounds allow
either; a margin covers the six significant digits the CSV keeps). top1 counts the samples
certainly correct, top1_max adds the undetermined ones: the tool's figure lies between them.

    python3 bench/glyph_ensembles.py results/glyphs-512 [--seeds 0 1 2] > ensembles.json

Standard library only.
"""
import argparse
import csv
import gzip
import json
import pathlib
import sys

NAME = "test-top10.csv.gz"
# Probabilities keep 6 significant digits: each is within 5e-7 of its value relative to it.
RELATIVE = 1e-6


def read_top(path):
    """{CLASS/FILE: (label, {class: probability}, the list's smallest probability)}."""
    rows = {}
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        labels = [i for i, name in enumerate(header) if name.startswith("label_")]
        if not labels:
            raise SystemExit(f"glyph_ensembles: {path}: no label_N columns (a predict --output CSV expected)")
        for row in reader:
            top = {row[i]: float(row[i + 1]) for i in labels}
            image = pathlib.PurePosixPath(row[0])
            # Keyed by CLASS/FILE: the data set's folder may have another path on another machine.
            rows[f"{image.parent.name}/{image.name}"] = (image.parent.name, top, min(top.values()))
    if not rows:
        raise SystemExit(f"glyph_ensembles: {path}: no rows")
    return rows


def outcome(label, a, a_floor, b, b_floor):
    """'correct', 'wrong' or 'undetermined' for the argmax of a + b (top lists a, b with floors)."""
    def low(c):
        return a.get(c, 0.0) + b.get(c, 0.0)

    def high(c):
        return a.get(c, a_floor) + b.get(c, b_floor)

    def above(x, y):
        return x > y + RELATIVE * (x + y)

    others = [c for c in set(a) | set(b) if c != label]
    # Some class outside both lists always exists (1,000 classes, at most 20 listed).
    rivals = [high(c) for c in others] + [a_floor + b_floor]
    if label in a or label in b:
        if all(above(low(label), r) for r in rivals):
            return "correct"
    if any(above(low(c), high(label)) for c in others):
        return "wrong"
    return "undetermined"


def pair(first, second):
    """{"top1", "top1_max", "undetermined", "samples"} of the ensemble of two records."""
    if first.keys() != second.keys():
        raise SystemExit("glyph_ensembles: the two records list different test images")
    counts = {"correct": 0, "wrong": 0, "undetermined": 0}
    for image, (label, a, a_floor) in first.items():
        _, b, b_floor = second[image]
        counts[outcome(label, a, a_floor, b, b_floor)] += 1
    n = len(first)
    return {"top1": counts["correct"] / n, "top1_max": (counts["correct"] + counts["undetermined"]) / n,
            "undetermined": counts["undetermined"], "samples": n}


def ensembles(records, seeds):
    out = {"method": f"top-10 records ({NAME}), bench/glyph_ensembles.py"}
    for variant in ("linear", "ssm"):
        tops = {}
        for s in seeds:
            path = pathlib.Path(records) / variant / f"seed-{s}" / NAME
            if not path.is_file():
                raise SystemExit(f"glyph_ensembles: {path} is missing (bench/glyphs.sh writes it after each linear "
                                 "and SSM run)")
            tops[s] = read_top(path)
        out[variant] = [dict(seeds=[a, b], **pair(tops[a], tops[b]))
                        for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", help="a width's record folder, e.g. results/glyphs-512")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    json.dump(ensembles(args.records, args.seeds), sys.stdout)
    print()


if __name__ == "__main__":
    main()
