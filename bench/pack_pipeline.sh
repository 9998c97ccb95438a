#!/usr/bin/env bash
# Decode once (`splitshare pack`) against decode every epoch, on the large corpus of
# bench/image_pipeline.sh (mate-backgrounds' full-size wallpapers, 128 training files):
#   pack    `splitshare pack imagefolder:CORPUS/train --shorter-side 256 --shard-size 16samples`
#           (images/s, images/CPU-s; 8 shards, so that every worker of the peers gets shards)
#   ours    bench_image_pipeline's pipeline/train and pipeline/eval (RandomResizedCrop(224) + flip,
#           resize 256 + centre crop 224, batches of 64) on the folder and on the packed shards
#   peers   on the same shards: wds (the webdataset package + PIL + torchvision transforms in a
#           DataLoader) and dali (DALI's CPU pipeline; bench/setup_dali.sh, skipped with a note
#           when it is not installed)
# for each worker count. Prints one markdown table (images/s, and images per CPU-second of all
# the side's threads and processes) and the ratios the README quotes; with OUT=FILE.json also
# the raw records.
#
# Usage: bench/pack_pipeline.sh [BUILD_DIR]        (default: build)
# Environment: WORKERS="1 2"  EPOCHS=3 (the folder)  EPOCHS_SHARDS=30 (an epoch of shards takes a
#              fraction of a second)  CORPUS_LARGE=bench/corpus-large  SHARDS=(a temporary folder)
#              PYTHON=.venv/bin/python  OUT=FILE.json
set -euo pipefail
out=${OUT:-}
[ -z "$out" ] || out=$(realpath -m -- "$out")
cd "$(dirname "$0")/.."
build=${1:-build}
workers=${WORKERS:-"1 2"}
epochs=${EPOCHS:-3}
epochs_shards=${EPOCHS_SHARDS:-30}
corpus=${CORPUS_LARGE:-bench/corpus-large}
python=${PYTHON:-.venv/bin/python}
say() { echo "pack_pipeline: $*" >&2; }
for bin in "$build/splitshare" "$build/bench/bench_image_pipeline"; do
  [ -x "$bin" ] || { say "$bin not found: build it (cmake --build $build)"; exit 1; }
done
[ -d "$corpus/train" ] || "$python" bench/make_corpus.py --large --out "$corpus" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shards=${SHARDS:-$work/shards}
records=$work/records.jsonl
say "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(lscpu | sed -n 's/^Model name: *//p')"

start=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$work/pack.time" "$build/splitshare" pack "imagefolder:$corpus/train" --out "$shards" \
  --shorter-side 256 --shard-size 16samples --workers 2 --no-progress >&2
wall=$(echo "$(date +%s.%N) - $start" | bc)
read -r user sys <"$work/pack.time"
echo "{\"side\": \"pack\", \"workers\": 2, \"images\": $(find "$corpus/train" -type f | wc -l), \"seconds\": $wall, \"cpu\": $(echo "$user + $sys" | bc), \"bytes\": $(du -sb "$shards" | cut -f1), \"source_bytes\": $(du -sb "$corpus/train" | cut -f1)}" >>"$records"

dali=$(bench/setup_dali.sh --check 2>/dev/null || true)
[ -n "$dali" ] || say "dali skipped: not installed (bench/setup_dali.sh)"
for w in $workers; do
  for source in folder shards; do
    corpus_arg=$corpus/train e=$epochs
    [ "$source" = folder ] || corpus_arg=wds:$shards e=$epochs_shards
    say "ours on the $source, workers=$w ($(date -u +%H:%M:%S))"
    "$build/bench/bench_image_pipeline" --corpus="$corpus_arg" --workers="$w" --epochs="$e" \
      --benchmark_filter='^pipeline/' --benchmark_format=json 2>/dev/null |
      "$python" -c 'import json, sys
for b in json.load(sys.stdin)["benchmarks"]:
    print(json.dumps({"side": "ours-" + sys.argv[1], "pipeline": b["name"].split("/")[1], "workers": int(b["workers"]),
                      "images_per_s": b["images_per_s"], "images_per_cpu_s": b["images_per_cpu_s"]}))' "$source" >>"$records"
  done
  for peer in wds dali; do
    [ "$peer" = wds ] || [ -n "$dali" ] || continue
    say "$peer on the shards, workers=$w ($(date -u +%H:%M:%S))"
    PYTHONPATH=${dali:+$([ "$peer" = dali ] && echo "$dali")} "$python" bench/peer_image_pipeline.py "$shards" \
      --peer "$peer" --workers "$w" --epochs "$epochs_shards" --json 2>/dev/null >>"$records"
  done
done
[ -z "$out" ] || cp "$records" "$out"
"$python" - "$records" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
pack = next(r for r in rows if r["side"] == "pack")
print(f"pack: {pack['images']} images in {pack['seconds']:.1f} s = {pack['images'] / pack['seconds']:.1f} images/s, "
      f"{pack['images'] / pack['cpu']:.1f} images/CPU-s; {pack['source_bytes'] / 1e6:.0f} MB -> {pack['bytes'] / 1e6:.1f} MB\n")
sides = ["ours-folder", "ours-shards", "wds", "dali"]
cell = {}
for r in rows:
    side = r.get("peer", r["side"]) if r["side"] == "peer" else r["side"]
    cell[(side, r.get("pipeline"), r.get("workers"))] = r
print("| pipeline | workers | " + " | ".join(sides) + " | shards / folder | ours / best peer |")
print("| --- | ---: | " + " | ".join(["---:"] * len(sides)) + " | ---: | ---: |")
for pipeline in ("train", "eval"):
    for w in sorted({r["workers"] for r in rows if r.get("pipeline") == pipeline}):
        got = [cell.get((s, pipeline, w)) for s in sides]
        text = [f"{g['images_per_s']:,.1f} ({g['images_per_cpu_s']:,.1f})" if g else "-" for g in got]
        ours, folder = got[1], got[0]
        peers = [g for g in got[2:] if g and g.get("images_per_cpu_s")]
        best = max(peers, key=lambda g: g["images_per_cpu_s"]) if peers else None
        ratio = f"{ours['images_per_cpu_s'] / folder['images_per_cpu_s']:.1f}x" if ours and folder else "-"
        vs = f"{ours['images_per_cpu_s'] / best['images_per_cpu_s']:.2f}x ({best['peer']})" if ours and best else "-"
        print(f"| {pipeline} | {w} | " + " | ".join(text) + f" | {ratio} | {vs} |")
print("\ncells: images/s (images per CPU-second); ratios per CPU-second")
PY
