#!/usr/bin/env bash
# The 1,000-class glyph experiment of docs/results.md (pre-registered there): the heads linear,
# SSM (default), SSM with Algorithm 1's norm on all splits and 3-FC, seeds 0, 1, 2, at one
# feature width per call, on the data set bench/make_glyphs.py makes (made here when missing).
#
#   bench/glyphs.sh narrow   # resnet10, width 16: 128 feature channels (0.13 per class), runs/glyphs-128
#   bench/glyphs.sh wide     # resnet50, width 16: 512 feature channels (0.5 per class, ResNet-18's
#                            # ratio on ImageNet), runs/glyphs-512
#   bench/glyphs.sh gpu      # resnet50, width 64: 2,048 channels (2 per class, ResNet-50's ratio),
#                            # on CUDA with bf16 autocast, runs/glyphs-2048: for a machine with a GPU
#
# Resumable: a finished run is reused, an interrupted one continues from its checkpoint. Seeds
# run in the order 0, 1, 2 across all heads, so a stopped experiment has whole seeds. The last
# call trains nothing new and writes OUT/compare.json over all three seeds.
# Environment: DATA=data/glyphs-1k  EPOCHS (pre-registered: 6)  SEEDS="0 1 2"  EXTRA="more flags"
#   SPLITSHARE=path/to/binary (default build/splitshare; a copy keeps a long experiment on one
#   binary while build/ is rebuilt)
set -euo pipefail
cd "$(dirname "$0")/.."
width=${1:?"usage: bench/glyphs.sh narrow|wide|gpu"}
data=${DATA:-data/glyphs-1k}
epochs=${EPOCHS:-6}
seeds=${SEEDS:-"0 1 2"}
case $width in
  narrow) model="--arch resnet10 --width 16 --stem small"; out=runs/glyphs-128 ;;
  wide) model="--arch resnet50 --width 16 --stem small"; out=runs/glyphs-512 ;;
  gpu) model="--arch resnet50 --width 64 --stem small --device cuda --amp bf16"; out=runs/glyphs-2048 ;;
  *) echo "glyphs.sh: unknown width '$width' (narrow, wide or gpu)" >&2; exit 2 ;;
esac
out=${OUT:-$out}
splitshare=${SPLITSHARE:-./build/splitshare}
if [ ! -f "$data/manifest.json" ]; then
  .venv/bin/python bench/make_glyphs.py --out "$data"
fi
# The recipe, fixed before any run (docs/results.md says how it was chosen): compare's SGD
# schedule (momentum 0.9, lr 0.1, cosine, batch 128, weight decay 5e-4), no augmentation beyond
# the generator's own (a mirrored character is not a character).
recipe="--data imagefolder:$data --variants linear,ssm,ssm-allnorm,kfc3 --epochs $epochs --augment none
        --lr 0.1 --schedule cosine --batch-size 128 --weight-decay 5e-4 --no-progress"
first=""
for seed in $seeds; do
  first=${first:-$seed}
  # shellcheck disable=SC2086
  "$splitshare" compare $recipe $model ${EXTRA:-} --seed "$seed" --seeds 1 --out "$out" > /dev/null
done
count=$(wc -w <<<"$seeds")
# shellcheck disable=SC2086
"$splitshare" compare $recipe $model ${EXTRA:-} --seed "$first" --seeds "$count" --out "$out"
