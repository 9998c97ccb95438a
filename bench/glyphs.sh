#!/usr/bin/env bash
# The 1,000-class glyph experiment of docs/results.md (pre-registered in
# docs/preregistration-glyphs.md): the heads linear, SSM (default), SSM with Algorithm 1's norm on
# all splits and 3-FC, seeds 0, 1, 2, at one feature width per call, on the data set
# bench/make_glyphs.py makes (made here when missing).
#
#   bench/glyphs.sh narrow   # resnet10, width 16: 128 feature channels (0.13 per class), glyphs-128
#   bench/glyphs.sh wide     # resnet50, width 16: 512 feature channels (0.5 per class, ResNet-18's
#                            # ratio on ImageNet), glyphs-512
#   bench/glyphs.sh gpu      # resnet50, width 64: 2,048 channels (2 per class, ResNet-50's ratio),
#                            # on CUDA with bf16 autocast, glyphs-2048: for a machine with a GPU
#
# Each run trains into runs/NAME/VARIANT/seed-S (checkpoints: large, not kept in git) and, once
# finished, its summary.json and metrics.jsonl are copied to results/NAME/VARIANT/seed-S: the
# record docs/results.md is written from, committed so that it outlives the machine. A run with a
# record is not trained again; a run stopped part-way continues from its checkpoint. The linear and
# SSM runs of every seed come first, so that one sitting can hold all six checkpoints at once:
# results/NAME/ensembles.json (Table 3: the three seed pairs of each) is evaluated from them as
# soon as they are all there. Each linear and SSM record also keeps the run's test-set top-10
# classes and probabilities (test-top10.csv.gz, from `predict`), so that when the six checkpoints
# never meet on one machine the ensembles are computed from the records instead
# (bench/glyph_ensembles.py, which bounds what it cannot know exactly); when they do meet, both
# are recorded (ensembles-from-records.json beside ensembles.json) as a check of that method.
# Environment: DATA=data/glyphs-1k  EPOCHS (pre-registered: 6)  SEEDS="0 1 2"  EXTRA="more flags"
#   SPLITSHARE=path/to/binary (default build/splitshare; a copy keeps a long experiment on one
#   binary while build/ is rebuilt)  RUNS=runs  RECORDS=results (where the two kinds of folder go)
set -euo pipefail
cd "$(dirname "$0")/.."
width=${1:?"usage: bench/glyphs.sh narrow|wide|gpu"}
data=${DATA:-data/glyphs-1k}
epochs=${EPOCHS:-6}
seeds=${SEEDS:-"0 1 2"}
case $width in
  narrow) model="--arch resnet10 --width 16 --stem small --amp fp32"; name=glyphs-128 ;;
  wide) model="--arch resnet50 --width 16 --stem small --amp fp32"; name=glyphs-512 ;;
  gpu) model="--arch resnet50 --width 64 --stem small --device cuda --amp bf16"; name=glyphs-2048 ;;
  *) echo "glyphs.sh: unknown width '$width' (narrow, wide or gpu)" >&2; exit 2 ;;
esac
out=${RUNS:-runs}/$name
records=${RECORDS:-results}/$name
splitshare=${SPLITSHARE:-./build/splitshare}
if [ ! -f "$data/manifest.json" ]; then
  .venv/bin/python bench/make_glyphs.py --out "$data"
fi
# The recipe, fixed before any run (docs/preregistration-glyphs.md says how it was chosen):
# compare's SGD schedule (momentum 0.9, lr 0.1, cosine, batch 128, weight decay 5e-4), no
# augmentation beyond the generator's own (a mirrored character is not a character); float32 on
# the CPU, as the pre-registered runs were (`--amp auto` would pick bf16 on some CPUs).
recipe="--data imagefolder:$data --epochs $epochs --augment none
        --lr 0.1 --schedule cosine --batch-size 128 --weight-decay 5e-4 --no-progress"

run() {  # VARIANT SEED: trains one run unless it has a record, then records it
  local variant=$1 seed=$2 record=$records/$1/seed-$2
  if [ -f "$record/summary.json" ]; then
    echo "glyphs.sh: $variant seed $seed has a record in $record, not trained again" >&2
    return
  fi
  # shellcheck disable=SC2086
  "$splitshare" compare $recipe $model ${EXTRA:-} --variants "$variant" --seed "$seed" --seeds 1 --out "$out" > /dev/null
  mkdir -p "$record"
  cp "$out/$variant/seed-$seed/metrics.jsonl" "$record/"
  cp "$out/$variant/seed-$seed/summary.json" "$record/summary.json.tmp"
  mv "$record/summary.json.tmp" "$record/summary.json"
  echo "glyphs.sh: $variant seed $seed finished, recorded in $record" >&2
}

predictions() {  # VARIANT SEED: the test-set top-10 of a linear or SSM run into its record
  local variant=$1 seed=$2 record=$records/$1/seed-$2 run=$out/$1/seed-$2
  [ -f "$record/test-top10.csv.gz" ] && return
  if [ ! -f "$run/checkpoint.pt" ]; then
    echo "glyphs.sh: $variant seed $seed: no checkpoint on this machine for its test-set top-10" >&2
    return
  fi
  "$splitshare" predict --checkpoint "$run/checkpoint.pt" --amp fp32 --topk 10 --batch-size 256 --no-progress \
    --output "$run/test-top10.csv" "$data/val" > /dev/null
  gzip -n -9 < "$run/test-top10.csv" > "$record/test-top10.csv.gz.tmp"
  mv "$record/test-top10.csv.gz.tmp" "$record/test-top10.csv.gz"
  echo "glyphs.sh: $variant seed $seed: test-set top-10 recorded in $record" >&2
}

records_complete() {  # true when every linear and SSM record has its test-set top-10
  local variant seed
  for variant in linear ssm; do
    for seed in $seeds; do
      [ -f "$records/$variant/seed-$seed/test-top10.csv.gz" ] || return 1
    done
  done
}

from_records() {  # FILE: the ensembles computed from the records' top-10 lists
  # shellcheck disable=SC2086
  if ! .venv/bin/python bench/glyph_ensembles.py "$records" --seeds $seeds > "$1.tmp"; then
    rm -f "$1.tmp"
    echo "glyphs.sh: the ensembles could not be computed from the records" >&2
    return 1
  fi
  mv "$1.tmp" "$1"
  echo "glyphs.sh: ensembles from the records' top-10 lists in $1" >&2
}

ensembles() {  # the three seed pairs of linear and of SSM, from their checkpoints (or records)
  if [ -f "$records/ensembles.json" ]; then
    if [ ! -f "$records/ensembles-from-records.json" ] && records_complete &&
       ! grep -q '"method"' "$records/ensembles.json"; then
      from_records "$records/ensembles-from-records.json"
    fi
    return 0
  fi
  local seed_list=($seeds) json="{" sep="" variant i j a b top1
  for variant in linear ssm; do
    json+="$sep\"$variant\": ["
    local inner=""
    for ((i = 0; i < ${#seed_list[@]}; ++i)); do
      for ((j = i + 1; j < ${#seed_list[@]}; ++j)); do
        a=$out/$variant/seed-${seed_list[i]}/checkpoint.pt
        b=$out/$variant/seed-${seed_list[j]}/checkpoint.pt
        if [ ! -f "$a" ] || [ ! -f "$b" ]; then
          if records_complete; then
            echo "glyphs.sh: $a or $b is missing: the ensembles come from the records instead" >&2
            from_records "$records/ensembles.json"
            return 0
          fi
          echo "glyphs.sh: $a or $b is missing: the ensembles need all six linear and SSM checkpoints" \
               "of one machine, or the test-set top-10 of all six in their records" >&2
          return 1
        fi
        top1=$("$splitshare" eval --json --amp fp32 --data "imagefolder:$data" --checkpoint "$a" --checkpoint "$b" |
               .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["top1"])')
        inner+="${inner:+, }{\"seeds\": [${seed_list[i]}, ${seed_list[j]}], \"top1\": $top1}"
      done
    done
    json+="$inner]"
    sep=", "
  done
  echo "$json}" > "$records/ensembles.json"
  echo "glyphs.sh: ensembles recorded in $records/ensembles.json" >&2
  if records_complete; then from_records "$records/ensembles-from-records.json"; fi
}

for seed in $seeds; do
  for variant in linear ssm; do
    run "$variant" "$seed"
    predictions "$variant" "$seed"
  done
done
ensembles || echo "glyphs.sh: no ensembles recorded; the other runs go on" >&2
for seed in $seeds; do
  run ssm-allnorm "$seed"
  run kfc3 "$seed"
done
echo "glyphs.sh: $name done: records in $records" >&2
