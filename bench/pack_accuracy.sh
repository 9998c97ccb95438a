#!/usr/bin/env bash
# Training from packed shards against training from the folder they were packed from: the same
# recipe and seeds, top-1 of each run, and Welch's 95 % interval of the difference (the rule of
# docs/results.md). The data is bench/corpus (bench/make_corpus.py: 1,200 training and 300
# validation JPEGs of about 500 x 375 pixels, 16 classes); the shards are packed with
# --shorter-side SIDE (default 80), so the difference includes pack-time resizing: the shards'
# images are resized twice (500 -> SIDE at pack time, then to the recipe's 73 x 73), the
# folder's once.
#
# Usage: bench/pack_accuracy.sh [BUILD_DIR]      (default: build)
# Environment: SEEDS="0 1 2"  EPOCHS=10  SIDE=80  OUT=runs/pack-accuracy  PYTHON=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seeds=${SEEDS:-"0 1 2"}
epochs=${EPOCHS:-10}
side=${SIDE:-80}
out=${OUT:-runs/pack-accuracy}
python=${PYTHON:-.venv/bin/python}
[ -d bench/corpus/train ] || "$python" bench/make_corpus.py >&2
mkdir -p "$out"
[ -f "$out/shards/dataset.json" ] || "$build/splitshare" pack imagefolder:bench/corpus --out "$out/shards" \
  --shorter-side "$side" --shard-size 100samples --no-progress >&2
recipe="--image-size 64 --arch resnet10 --width 16 --epochs $epochs --no-progress --workers 2"
for seed in $seeds; do
  for source in folder shards; do
    data=imagefolder:bench/corpus
    [ "$source" = folder ] || data=wds:$out/shards
    run=$out/$source-seed-$seed
    [ -f "$run/summary.json" ] && continue
    echo "pack_accuracy: $source, seed $seed ($(date -u +%H:%M:%S))" >&2
    # shellcheck disable=SC2086
    "$build/splitshare" train --data "$data" $recipe --seed "$seed" --out "$run" >"$run.log" 2>&1 ||
      { tail -20 "$run.log" >&2; exit 1; }
  done
done
PYTHONPATH=scripts "$python" - "$out" $seeds <<'PY'
import json, pathlib, sys
import results_stats as rs
out, seeds = pathlib.Path(sys.argv[1]), sys.argv[2:]
top1 = {s: [json.loads((out / f"{s}-seed-{seed}" / "summary.json").read_text())["final"]["val"]["top1"] for seed in seeds]
        for s in ("folder", "shards")}
for s, values in top1.items():
    print(f"{s}: " + ", ".join(f"{v * 100:.2f}" for v in values) + f" % top-1; {rs.mean_sd(values)}")
d, low, high, _ = rs.welch(top1["shards"], top1["folder"])
print(f"shards - folder: {d * 100:+.2f} points, 95 % interval [{low * 100:+.2f}, {high * 100:+.2f}]: "
      + ("no difference shown (0 inside)" if low <= 0 <= high else "a difference"))
PY
