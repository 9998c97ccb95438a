#!/usr/bin/env bash
# A head-selection gate (`splitshare select`) on every seed of the SSM,
# SSM-individual and 3-FC models of a compare run, with several gate seeds and configurations.
# Resumable: a run whose select.json exists is skipped. Prints one line per run and, at the end,
# bench/select_summary.py's table (mean ± std of the gate's validation top-1 and of the share of
# the mean-to-oracle gap it closes).
#
# Usage: bench/select_seeds.sh [RUNS=runs/paper-small] [OUT=runs/select]
# Environment: VARIANTS="ssm ssm-individual kfc3"  SEEDS="0 1 2"  GATE_SEEDS="0 1 2"  CHECKPOINT=checkpoint.pt
#              CONFIGS="both-linear:--gate-input both|logits-mlp64:--gate-input logits --gate-hidden 64"
#              SPLITSHARE=path/to/binary (default build/splitshare; a copy keeps the runs on one binary)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/paper-small}
out=${2:-runs/select}
variants=${VARIANTS:-"ssm ssm-individual kfc3"}
seeds=${SEEDS:-"0 1 2"}
gate_seeds=${GATE_SEEDS:-"0 1 2"}
# The final epoch's checkpoint, like the main tables: best.pt is chosen on the test split.
checkpoint_name=${CHECKPOINT:-checkpoint.pt}
splitshare=${SPLITSHARE:-./build/splitshare}
configs=${CONFIGS:-"both-linear:--gate-input both|logits-mlp64:--gate-input logits --gate-hidden 64"}
IFS='|' read -r -a config_list <<<"$configs"
for variant in $variants; do
  for seed in $seeds; do
    checkpoint="$runs/$variant/seed-$seed/$checkpoint_name"
    [ -f "$checkpoint" ] || { echo "select_seeds: $checkpoint missing" >&2; exit 1; }
    for config in "${config_list[@]}"; do
      name=${config%%:*}
      flags=${config#*:}
      for gate_seed in $gate_seeds; do
        dir="$out/$variant/seed-$seed/$name/gate-$gate_seed"
        if [ -f "$dir/select.json" ]; then continue; fi
        # shellcheck disable=SC2086
        "$splitshare" select --checkpoint "$checkpoint" --out "$dir" --gate-seed "$gate_seed" $flags 2>/dev/null |
          grep "^validation" | sed "s|^|$variant seed $seed $name gate $gate_seed: |"
      done
    done
  done
done
.venv/bin/python bench/select_summary.py "$out"
