#!/usr/bin/env python3
"""Tables and JSON of bench/image_pipeline.sh from its results folder, and the README's rows.

    image_pipeline_report.py collect RESULTS [--json FILE]   print one table per corpus size,
                                                             write everything as JSON
    image_pipeline_report.py md FILE.json                    markdown rows for the README

RESULTS holds what image_pipeline.sh wrote: meta.json (sizes, worker counts, peers, corpora,
host, notes), ours_<size>_<workers>.json and stages_<size>.json (google-benchmark JSON of
bench_image_pipeline), peer_<size>_<workers>_<peer>.jsonl (peer_image_pipeline.py --json).
A missing or empty file (a side that failed or was skipped) shows as "-".

The best peer of a row is the one with the most images per CPU-second; "ours / best" divides
our images per CPU-second by its, and our images per second by its.
"""
import argparse
import glob
import json
import os
import sys


def load_ours(path):
    """{"train": {...}, "eval": {...}} from one bench_image_pipeline --benchmark_format=json file."""
    result = {}
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return result
    for b in json.load(open(path))["benchmarks"]:
        name = b["name"].split("/")[1]  # pipeline/train/workers:1/iterations:3/real_time -> train
        result[name] = {k: b[k] for k in ("images_per_s", "per_core", "images_per_cpu_s", "skipped") if k in b}
    return result


def load_peer(path):
    """{"train": {...}, "eval": {...}} from one peer_image_pipeline.py --json file."""
    result = {}
    if not os.path.isfile(path):
        return result
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            result[r["pipeline"]] = r
    return result


def megapixels(folder):
    """min / mean / max megapixels and bytes of the JPEGs under folder (headers only)."""
    from PIL import Image

    sizes, total_bytes = [], 0
    for path in glob.glob(os.path.join(folder, "*", "*")):
        try:
            with Image.open(path) as im:
                sizes.append(im.size[0] * im.size[1] / 1e6)
                total_bytes += os.path.getsize(path)
        except OSError:
            pass
    if not sizes:
        return None
    return {"files": len(sizes), "min": round(min(sizes), 2), "mean": round(sum(sizes) / len(sizes), 2),
            "max": round(max(sizes), 2), "mib": round(total_bytes / 2**20, 1)}


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def fmt(value, width):
    if not isinstance(value, (int, float)):
        return f"{'-':>{width}}"
    return f"{value:{width}.0f}" if value >= 100 else f"{value:{width}.1f}"


def collect(folder, json_path):
    meta = json.load(open(os.path.join(folder, "meta.json")))
    result = dict(meta)
    result["sizes"] = {}
    versions = {}
    for size in meta["sizes"]:
        corpus = meta["corpora"][size]
        rows = []
        for w in meta["workers"]:
            ours = load_ours(os.path.join(folder, f"ours_{size}_{w}.json"))
            peers = {p: load_peer(os.path.join(folder, f"peer_{size}_{w}_{p}.jsonl")) for p in meta["peers"]}
            for p, records in peers.items():
                for r in records.values():
                    versions.setdefault(p, {"pil": r.get("pil"), "torchvision": r.get("torchvision")})
            for kind in ("train", "eval"):
                o = ours.get(kind)
                ps = {p: records[kind] for p, records in peers.items() if kind in records}
                best = max((p for p in ps if ps[p].get("images_per_cpu_s")),
                           key=lambda p: ps[p]["images_per_cpu_s"], default=None)
                rows.append({
                    "pipeline": kind, "workers": w,
                    "ours": o,
                    "peers": {p: {k: r[k] for k in ("images", "seconds", "images_per_s", "per_core",
                                                     "images_per_cpu_s")} for p, r in ps.items()},
                    "best_peer": best,
                    "ratio_vs_best_peer": ratio(o and o.get("images_per_cpu_s"),
                                                best and ps[best]["images_per_cpu_s"]),
                    "ratio_vs_best_peer_img_s": ratio(o and o.get("images_per_s"),
                                                      best and ps[best]["images_per_s"]),
                })
        stages = {}
        path = os.path.join(folder, f"stages_{size}.json")
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            for b in json.load(open(path))["benchmarks"]:
                stages[b["name"].split("/")[1]] = {"images_per_s": b["images_per_s"]}
        result["sizes"][size] = {"corpus": corpus, "train": megapixels(os.path.join(corpus, "train")),
                                 "rows": rows, "stages": stages}
    result["peer_versions"] = versions

    print_tables(result)
    if json_path:
        if os.path.isdir(json_path):
            json_path = os.path.join(json_path, "image_pipeline.json")
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"\nimage_pipeline: JSON written to {json_path}")


def print_tables(result):
    peers = result["peers"]
    for size, data in result["sizes"].items():
        t = data["train"] or {}
        print(f"\n== {size} corpus: {data['corpus']}/train, {t.get('files', '?')} files, "
              f"{t.get('min', '?')}-{t.get('max', '?')} MP (mean {t.get('mean', '?')}), {t.get('mib', '?')} MiB ==")
        header = f"{'pipeline':8} {'workers':>7} | {'ours img/s':>10} {'img/cpu-s':>9} |"
        for p in peers:
            header += f" {p + ' img/s':>14} {'img/cpu-s':>9} |"
        header += f" {'best peer':>9} {'ours/best cpu-s':>15} {'img/s':>6}"
        print(header)
        print("-" * len(header))
        for r in data["rows"]:
            o = r["ours"] or {}
            line = f"{r['pipeline']:8} {r['workers']:7d} | {fmt(o.get('images_per_s'), 10)} {fmt(o.get('images_per_cpu_s'), 9)} |"
            for p in peers:
                pr = r["peers"].get(p, {})
                line += f" {fmt(pr.get('images_per_s'), 14)} {fmt(pr.get('images_per_cpu_s'), 9)} |"
            rc, rs = r["ratio_vs_best_peer"], r["ratio_vs_best_peer_img_s"]
            line += (f" {r['best_peer'] or '-':>9} {(f'{rc:.2f}x' if rc else '-'):>15}"
                     f" {(f'{rs:.2f}x' if rs else '-'):>6}")
            print(line)
        stages = data["stages"]
        if stages:
            full = stages.get("decode_full", {}).get("images_per_s")
            print(f"ours, one thread, files in memory (stage/*): " +
                  ", ".join(f"{k} {v['images_per_s']:.1f} img/s" for k, v in stages.items()))
            for r in data["rows"]:
                o = r["ours"] or {}
                if o.get("images_per_cpu_s") and full:
                    print(f"  pipeline/{r['pipeline']} workers={r['workers']}: {o['images_per_cpu_s']:.1f} img/cpu-s "
                          f"= {o['images_per_cpu_s'] / full:.2f}x stage/decode_full (whole-image libjpeg-turbo decode)")
    for note in result.get("notes", []):
        print(f"note: {note}")
    for p, v in result.get("peer_versions", {}).items():
        print(f"peer {p}: PIL {v['pil']}, torchvision {v['torchvision']}")


def markdown(json_path):
    result = json.load(open(json_path))
    peers = result["peers"]
    print("| corpus | pipeline | workers | splitshare | " + " | ".join(peers) +
          " | best peer | ours / best (img/cpu-s) |")
    print("| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in peers) + " | --- | ---: |")

    def num(x):
        return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"

    def cell(r):
        if not r or not r.get("images_per_s"):
            return "-"
        return f"{num(r['images_per_s'])} ({num(r['images_per_cpu_s'])})" if r.get("images_per_cpu_s") \
            else num(r["images_per_s"])

    for size, data in result["sizes"].items():
        for r in data["rows"]:
            rc = r["ratio_vs_best_peer"]
            print(f"| {size} | {r['pipeline']} | {r['workers']} | {cell(r['ours'])} | " +
                  " | ".join(cell(r["peers"].get(p)) for p in peers) +
                  f" | {r['best_peer'] or '-'} | {f'{rc:.2f}x' if rc else '-'} |")
    print("\nCells: images/s (images per CPU-second).")
    for size, data in result["sizes"].items():
        if data["stages"]:
            print(f"{size}: ours single-threaded, files in memory: " +
                  ", ".join(f"{k} {v['images_per_s']:.1f} img/s" for k, v in data["stages"].items()) + ".")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("results")
    c.add_argument("--json", help="write the whole result here (a folder: FOLDER/image_pipeline.json)")
    m = sub.add_parser("md")
    m.add_argument("json_file")
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.results, args.json)
    else:
        markdown(args.json_file)


if __name__ == "__main__":
    sys.exit(main())
