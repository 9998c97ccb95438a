#!/usr/bin/env bash
# The data side of a timm-style training loop from Python: splitshare.data.ImageFolder against
# torch's DataLoader over torchvision's ImageFolder + transforms (PIL), both with torchvision's
# training recipe (RandomResizedCrop(224) + flip + Normalize), batches of 64, 1 and 2 workers
# (our decoding threads / DataLoader worker processes), on the JPEG corpus bench/make_corpus.py
# makes from Debian's mate-backgrounds (made when missing). One JSON line per run from
# bench/peer_image_pipeline.py, then a table; the figure that counts is images per CPU-second
# (every thread and worker process counted), which holds when the cores are shared.
#
#   bench/python_loader.sh                      # EPOCHS=2 timed epochs after a warm-up one
# Environment: CORPUS=bench/corpus  EPOCHS=2  OPS=build/python/splitshare/_ops.so (unset and no
#   build: the installed package)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${CORPUS:-bench/corpus}
[ -d "$corpus/train" ] || .venv/bin/python bench/make_corpus.py --out "$corpus"
ops=${OPS:-build/python/splitshare/_ops.so}
if [ -f "$ops" ]; then
  export SPLITSHARE_OPS_LIBRARY=$ops PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH}
fi
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for workers in 1 2; do
  for peer in splitshare pil; do
    .venv/bin/python bench/peer_image_pipeline.py "$corpus/train" --peer "$peer" --workers "$workers" \
      --pipelines train --epochs "${EPOCHS:-2}" --json | tee -a "$lines"
  done
done
.venv/bin/python - "$lines" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("\n| workers | splitshare images/CPU-s | DataLoader + torchvision images/CPU-s | ratio | splitshare images/s | DataLoader images/s |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for workers in sorted({r["workers"] for r in rows}):
    ours = next(r for r in rows if r["workers"] == workers and r["peer"] == "splitshare")
    peer = next(r for r in rows if r["workers"] == workers and r["peer"] == "pil")
    print(f"| {workers} | {ours['images_per_cpu_s']} | {peer['images_per_cpu_s']} | "
          f"{ours['images_per_cpu_s'] / peer['images_per_cpu_s']:.2f}x | {ours['images_per_s']} | {peer['images_per_s']} |")
PY
