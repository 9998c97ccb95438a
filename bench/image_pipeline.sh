#!/usr/bin/env bash
# Our image-folder pipeline (bench_image_pipeline, C++) against torchvision + PIL
# (peer_image_pipeline.py) on the same JPEG corpus with the same worker counts:
# training (decode + RandomResizedCrop(224) + flip + normalise) and evaluation
# (decode + resize 256 + centre crop 224 + normalise), batches of 64.
#
# For each worker count the two sides run back to back (ours first), so both see
# the same machine load. Printed per pipeline and worker count:
#   img/s        wall-clock throughput
#   img/s/core   img/s divided by the worker count (0 workers = 1 core)
#   img/cpu-s    images per second of CPU time of all the side's threads/processes,
#                the per-core figure that stays meaningful when other jobs share the cores
# and the ratios ours / peer.
#
# Usage: bench/image_pipeline.sh [BUILD_DIR]        (default: build)
# Environment: WORKERS="1 2"  EPOCHS=3  CORPUS=bench/corpus (made by make_corpus.py if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
workers=${WORKERS:-"1 2"}
epochs=${EPOCHS:-3}
corpus=${CORPUS:-bench/corpus}
python=${PYTHON:-.venv/bin/python}  # the project environment (scripts/setup): torch, torchvision, PIL
bin="$build/bench/bench_image_pipeline"

if [ ! -x "$bin" ]; then
  echo "image_pipeline.sh: $bin not found; build it: cmake --build $build --target bench_image_pipeline" >&2
  exit 1
fi
if [ ! -d "$corpus/train" ]; then
  "$python" bench/make_corpus.py --out "$corpus"
fi

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
echo "image_pipeline: $(find "$corpus/train" -type f | wc -l) files in $corpus/train, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in $workers; do
  echo "image_pipeline: workers=$w: ours ..."
  "$bin" --corpus="$corpus/train" --workers="$w" --epochs="$epochs" --benchmark_filter='^pipeline/' \
    --benchmark_format=json >"$results/ours_$w.json" 2>"$results/ours_$w.log"
  echo "image_pipeline: workers=$w: torchvision + PIL ..."
  "$python" bench/peer_image_pipeline.py "$corpus/train" --workers "$w" --epochs "$epochs" --json \
    >"$results/peer_$w.jsonl"
done

"$python" - "$results" $workers <<'EOF'
import json, sys

folder, workers = sys.argv[1], [int(w) for w in sys.argv[2:]]
rows = []
for w in workers:
    ours = {}
    for b in json.load(open(f"{folder}/ours_{w}.json"))["benchmarks"]:
        kind = b["name"].split("/")[1]
        ours[kind] = {"images_per_s": b["images_per_s"], "per_core": b["per_core"],
                      "images_per_cpu_s": b["images_per_cpu_s"]}
    peer = {}
    for line in open(f"{folder}/peer_{w}.jsonl"):
        r = json.loads(line)
        peer[r["pipeline"]] = r
    for kind in ("train", "eval"):
        rows.append((kind, w, ours[kind], peer[kind]))

header = (f"{'pipeline':8} {'workers':>7} | {'ours img/s':>10} {'img/s/core':>10} {'img/cpu-s':>9} | "
          f"{'peer img/s':>10} {'img/s/core':>10} {'img/cpu-s':>9} | {'ratio/core':>10} {'ratio/cpu-s':>11}")
print(header)
print("-" * len(header))
for kind, w, o, p in rows:
    cpu_ratio = o["images_per_cpu_s"] / p["images_per_cpu_s"] if p["images_per_cpu_s"] else float("nan")
    print(f"{kind:8} {w:7d} | {o['images_per_s']:10.0f} {o['per_core']:10.0f} {o['images_per_cpu_s']:9.0f} | "
          f"{p['images_per_s']:10.0f} {p['per_core']:10.0f} {p['images_per_cpu_s'] or 0:9.0f} | "
          f"{o['per_core'] / p['per_core']:9.2f}x {cpu_ratio:10.2f}x")
EOF
