#!/usr/bin/env bash
# The README's bench table, one row group per process so that a stopped run keeps what it
# measured: BUILD/splitshare bench --json for each group into OUT/<group>.json, in order of
# importance, then nothing else. Record `uptime` before starting (the README gives the load).
# Each speed row is measured in ROUNDS rounds (default 3: ours, then each peer, in turn), so that
# a machine whose speed changes in steps is seen by both sides; ROUNDS=1 takes a third of the time.
#
#   bench/run_table.sh build runs/bench-table
#   ROUNDS=1 bench/run_table.sh build runs/bench-table-quick
set -euo pipefail
build=${1:?usage: bench/run_table.sh BUILD OUT}
out=${2:?usage: bench/run_table.sh BUILD OUT}
mkdir -p "$out"
uptime > "$out/load-before.txt"
groups=(
  fashion-train
  resnet50-ssm-train
  resnet50-ssm-infer-b1
  resnet50-ssm-infer-b64
  head-ssm,head-ssm-reference,head-linear
  resnet50-ssm-train-memory
  fashion-train-bf16
  resnet50-ssm-train-bf16
  resnet50-ssm-infer-b1-bf16
  resnet50-ssm-infer-b64-bf16
  head-ssm-infer,head-ssm-reference-infer
)
for group in "${groups[@]}"; do
  file="$out/${group%%,*}.json"
  [ -s "$file" ] && continue  # measured in an earlier, stopped run
  echo "bench/run_table: $group ($(date -u +%H:%M:%S))" >&2
  "$build/splitshare" bench --workloads "$group" --rounds "${ROUNDS:-3}" --json > "$file.tmp" 2> "$out/${group%%,*}.log"
  mv "$file.tmp" "$file"
done
echo "bench/run_table: done ($(date -u +%H:%M:%S))" >&2
