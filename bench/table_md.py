#!/usr/bin/env python3
"""The README's bench table from bench/run_table.sh's folder: one markdown row per workload with
ours, each peer (median; memory rows: peak MiB), the best peer, ours over it, GFLOP/s, % of the
matrix-product peak and % of the microkernel (FMA) peak, then the CPU, the peaks and torch.compile's
compile times. When the bench ran in rounds (--rounds), the ratio cell also gives the lowest and
highest ratio of a single round, in brackets.

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
    print("| workload | prec. | splitshare | eager | eager_tuned | compile | best peer | ours / best | GFLOP/s | "
          "% of mm peak | % of FMA peak |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    peaks, machine, cpu, compiles = {}, {}, {}, []
    for f in files:
        d = json.load(open(f))
        peaks = d["peak_gflops"] if d["peak_gflops"]["fp32"] > 0 else peaks
        machine = d["machine_peak"] if (d.get("machine_peak") or {}).get("fp32_gflops") else machine
        cpu = d.get("cpu", cpu)
        for r in d["rows"]:
            memory = r["memory"]
            p = r["peers"]
            ratio = f"{r['ratio_vs_best_peer']:.2f}x" if r["ratio_vs_best_peer"] else "-"
            if r.get("ratio_by_round"):
                ratio += f" ({min(r['ratio_by_round']):.2f}-{max(r['ratio_by_round']):.2f})"
            g = f"{r['gflops']:.0f}" if r["gflops"] else "-"
            frac = f"{100 * r['peak_fraction']:.0f} %" if r["peak_fraction"] else "-"
            fma = f"{100 * r['machine_peak_fraction']:.0f} %" if r.get("machine_peak_fraction") else "-"
            print(f"| {r['workload']} | {r['precision']} | {cell(r['ours'], memory)} | " +
                  " | ".join(cell(p.get(k), memory) for k in PEERS) +
                  f" | {r['best_peer'] or '-'} | {ratio} | {g} | {frac} | {fma} |")
            if "compile" in p and p["compile"].get("compile_seconds"):
                compiles.append(f"{r['key']} {p['compile']['compile_seconds']:.0f} s")
    if peaks:
        print(f"\nMatrix-product peak (2048², libtorch, same threads): fp32 {peaks['fp32']:.0f} GFLOP/s, "
              f"bf16 {peaks['bf16']:.0f} GFLOP/s. torch.compile's first steps: {', '.join(compiles)}.")
    if machine:
        def figure(value, unit, isa):
            return f"{value:.0f} {unit} ({isa})" if value else "none"
        print(f"\nMicrokernel (FMA) peak, {machine['threads']} threads: fp32 "
              f"{figure(machine['fp32_gflops'], 'GFLOP/s', machine['isa']['fp32'])}, bf16 "
              f"{figure(machine['bf16_gflops'], 'GFLOP/s', machine['isa']['bf16'])}, int8 "
              f"{figure(machine['int8_tops'] and 1000 * machine['int8_tops'], 'GOP/s', machine['isa']['int8'])}.")
    if cpu:
        print(f"\nCPU: {cpu['model']} ({' '.join(cpu['isa'])}; AMX {'usable' if cpu['amx_usable'] else 'not usable'}).")


if __name__ == "__main__":
    main()
