#!/usr/bin/env bash
# The leak-free measurement of the gate: the main job's models trained without a stratified hold-out
# of the training split (`train --holdout`), so that `select` trains its gate on samples the
# model never saw. Same recipe as `compare --preset paper-small` (9 epochs, lr 0.1, cosine).
# Resumable: a finished seed (best.pt and summary.json) is skipped, an interrupted one resumed.
#
# Usage: bench/train_holdout.sh [OUT=runs/holdout]
# Environment: VARIANTS="ssm ssm-individual kfc3"  SEEDS="0 1 2"  HOLDOUT=0.1
# Then: bench/select_seeds.sh runs/holdout runs/select-holdout
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/holdout}
variants=${VARIANTS:-"ssm ssm-individual kfc3"}
seeds=${SEEDS:-"0 1 2"}
holdout=${HOLDOUT:-0.1}
for variant in $variants; do
  case $variant in
    ssm) head="--head ssm --splits 4" ;;
    ssm-individual) head="--head ssm --splits 4 --loss individual" ;;
    kfc3) head="--head kfc --kfc-k 3" ;;
    *) echo "train_holdout: unknown variant $variant (ssm, ssm-individual, kfc3)" >&2; exit 1 ;;
  esac
  for seed in $seeds; do
    dir="$out/$variant/seed-$seed"
    if [ -f "$dir/best.pt" ] && [ -f "$dir/summary.json" ]; then continue; fi
    if [ -f "$dir/checkpoint.pt" ]; then
      ./build/splitshare train --resume "$dir" --no-progress 2>&1 | tail -2
      continue
    fi
    # shellcheck disable=SC2086
    ./build/splitshare train $head --epochs 9 --lr 0.1 --schedule cosine --seed "$seed" \
      --holdout "$holdout" --holdout-seed 0 --no-progress --out "$dir" 2>&1 | tail -2
  done
done
