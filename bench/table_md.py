#!/usr/bin/env python3
"""The README's bench table from bench/run_table.sh's folder: one markdown row per workload with
ours, each peer (median; memory rows: peak MiB), the best peer, ours over it, GFLOP/s and % of the
matrix-product peak, then the peaks and torch.compile's compile times.

    python3 bench/table_md.py runs/bench-table
"""
import glob
import json
import os
import sys

PEERS = ("eager", "eager_tuned", "compile")


def cell(t, memory):
    if t is None:
        return "-"
    return f"{t['peak_rss_mb']:.0f} MiB" if memory else f"{t['median']:.1f}"


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "runs/bench-table"
    files = sorted(glob.glob(os.path.join(folder, "*.json")), key=os.path.getmtime)
    print("| workload | prec. | splitshare | eager | eager_tuned | compile | best peer | ours / best | GFLOP/s | % of mm peak |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    peaks, compiles = {}, []
    for f in files:
        d = json.load(open(f))
        peaks = d["peak_gflops"] if d["peak_gflops"]["fp32"] > 0 else peaks
        for r in d["rows"]:
            memory = r["memory"]
            p = r["peers"]
            ratio = f"{r['ratio_vs_best_peer']:.2f}x" if r["ratio_vs_best_peer"] else "-"
            g = f"{r['gflops']:.0f}" if r["gflops"] else "-"
            frac = f"{100 * r['peak_fraction']:.0f} %" if r["peak_fraction"] else "-"
            print(f"| {r['workload']} | {r['precision']} | {cell(r['ours'], memory)} | " +
                  " | ".join(cell(p.get(k), memory) for k in PEERS) + f" | {r['best_peer'] or '-'} | {ratio} | {g} | {frac} |")
            if "compile" in p and p["compile"].get("compile_seconds"):
                compiles.append(f"{r['key']} {p['compile']['compile_seconds']:.0f} s")
    if peaks:
        print(f"\nMatrix-product peak (2048², libtorch, same threads): fp32 {peaks['fp32']:.0f} GFLOP/s, "
              f"bf16 {peaks['bf16']:.0f} GFLOP/s. torch.compile's first steps: {', '.join(compiles)}.")


if __name__ == "__main__":
    main()
