#!/usr/bin/env bash
# Our image-folder pipeline (bench_image_pipeline, C++) against Python pipelines on the same JPEG
# corpora with the same worker counts: training (decode + RandomResizedCrop(224) + flip +
# normalise) and evaluation (decode + resize 256 + centre crop 224 + normalise), batches of 64.
#
# Peers (bench/peer_image_pipeline.py, torch's DataLoader, the venv's torch and torchvision):
#   pil       PIL decode + torchvision.transforms on PIL images (the venv's Pillow)
#   pil-simd  the same code with pillow-simd (AVX2) first on PYTHONPATH; skipped, with a note,
#             when bench/setup_pillow_simd.sh has not installed it
#   tvio      torchvision.io.decode_jpeg + torchvision.transforms.v2 on uint8 tensors
# Corpora (bench/make_corpus.py, made if missing):
#   small     bench/corpus: 1,200 ImageNet-like 500-pixel JPEGs re-encoded from mate-backgrounds
#   large     bench/corpus-large: mate-backgrounds' full-size wallpapers as they are (1.3-18 MP,
#             some progressive), 8 copies of each of the 16 = 128 training files
#
# For each corpus and worker count the sides run back to back (ours first, then each peer), so
# they see the same machine load. Printed, one table per corpus, per pipeline and worker count:
#   img/s        wall-clock throughput
#   img/cpu-s    images per second of CPU time of all the side's threads/processes, the per-core
#                figure that stays meaningful when other jobs share the cores
#   best peer    the peer with the most img/cpu-s, and ours / best (img/cpu-s, and img/s)
# then our single-threaded stage/* rates on the files in memory (stage/decode_full: libjpeg-turbo
# decoding whole images, what PIL and decode_jpeg do), next to our pipelines' img/cpu-s.
# With OUT set, the whole result is also written there as JSON (OUT a folder:
# OUT/image_pipeline.json); `bench/image_pipeline_report.py md FILE` turns it into README rows.
#
# Usage: bench/image_pipeline.sh [BUILD_DIR]        (default: build)
# Environment: SIZES="small large"  WORKERS="1 2"  EPOCHS=3  EPOCHS_LARGE=$EPOCHS
#              PEERS="pil pil-simd tvio"  OUT=FILE.json|FOLDER
#              CORPUS_SMALL=bench/corpus (or CORPUS)  CORPUS_LARGE=bench/corpus-large
#              PILLOW_SIMD=DIR (default: where bench/setup_pillow_simd.sh installed it)
#              PYTHON=.venv/bin/python  KEEP=1 (keep the raw results folder)
set -euo pipefail
out=${OUT:-}
[ -z "$out" ] || out=$(realpath -m -- "$out")  # relative to where it was started
cd "$(dirname "$0")/.."

build=${1:-build}
sizes=${SIZES:-"small large"}
workers=${WORKERS:-"1 2"}
epochs=${EPOCHS:-3}
epochs_large=${EPOCHS_LARGE:-$epochs}
peers=${PEERS:-"pil pil-simd tvio"}
corpus_small=${CORPUS_SMALL:-${CORPUS:-bench/corpus}}
corpus_large=${CORPUS_LARGE:-bench/corpus-large}
python=${PYTHON:-.venv/bin/python}  # the project environment (scripts/setup): torch, torchvision, PIL
bin="$build/bench/bench_image_pipeline"

say() { echo "image_pipeline: $*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$bin" ] || die "$bin not found; build it: cmake --build $build --target bench_image_pipeline"
[ -x "$python" ] || die "no Python at $python (set PYTHON)"
for size in $sizes; do
  case $size in small | large) ;; *) die "unknown size '$size' in SIZES (small, large)" ;; esac
done
for peer in $peers; do
  case $peer in pil | pil-simd | tvio) ;; *) die "unknown peer '$peer' in PEERS (pil, pil-simd, tvio)" ;; esac
done
if [ -n "$out" ] && [ ! -d "$out" ]; then
  if ! mkdir -p "$(dirname "$out")" || [ ! -w "$(dirname "$out")" ]; then die "cannot write OUT=$out"; fi
fi

notes=()
run_peers=()
simd_dir=
for peer in $peers; do
  if [ "$peer" = pil-simd ]; then
    simd_dir=${PILLOW_SIMD:-$(bench/setup_pillow_simd.sh --check 2>/dev/null || true)}
    if [ -z "$simd_dir" ]; then
      notes+=("pil-simd skipped: pillow-simd is not installed (run bench/setup_pillow_simd.sh; it says why when it cannot build)")
      say "${notes[-1]}"
      continue
    fi
    found=$(PYTHONPATH="$simd_dir" "$python" -c 'import PIL; print(PIL.__version__, PIL.__file__)' 2>&1) || found="error: $found"
    case $found in
      *"$simd_dir"*) say "pil-simd: PIL ${found%% *} from $simd_dir" ;;
      *)
        notes+=("pil-simd skipped: PYTHONPATH=$simd_dir does not give its PIL ($found)")
        say "${notes[-1]}"
        continue
        ;;
    esac
  fi
  run_peers+=("$peer")
done

results=$(mktemp -d)
keep=${KEEP:-0}
trap 'if [ "$keep" = 1 ]; then say "raw results and logs kept in $results"; else rm -rf "$results"; fi' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "$(nproc) cores, load: $load_before; sizes: $sizes; workers: $workers; peers: ${run_peers[*]:-none}"

for size in $sizes; do
  if [ "$size" = large ]; then
    corpus=$corpus_large e=$epochs_large make=(--large)
  else
    corpus=$corpus_small e=$epochs make=()
  fi
  if [ ! -d "$corpus/train" ]; then
    say "making the $size corpus in $corpus ..."
    "$python" bench/make_corpus.py "${make[@]}" --out "$corpus" >&2
  fi
  say "$size: $(find "$corpus/train" -type f | wc -l) files ($(du -sh "$corpus/train" | cut -f1)) in $corpus/train, epochs=$e"
  for w in $workers; do
    say "$size workers=$w: ours ... ($(date -u +%H:%M:%S))"
    if ! "$bin" --corpus="$corpus/train" --workers="$w" --epochs="$e" --benchmark_filter='^pipeline/' \
        --benchmark_format=json >"$results/ours_${size}_$w.json" 2>"$results/ours_${size}_$w.log"; then
      tail -n 20 "$results/ours_${size}_$w.log" >&2
      keep=1
      die "$bin failed on $corpus/train (log above)"
    fi
    for peer in "${run_peers[@]}"; do
      say "$size workers=$w: $peer ... ($(date -u +%H:%M:%S))"
      args=(bench/peer_image_pipeline.py "$corpus/train" --workers "$w" --epochs "$e" --json)
      case $peer in
        pil) env_path=${PYTHONPATH:-} ;;
        pil-simd) env_path=$simd_dir${PYTHONPATH:+:$PYTHONPATH}; args+=(--peer pil --label pil-simd) ;;
        tvio) env_path=${PYTHONPATH:-}; args+=(--peer tvio) ;;
      esac
      if ! PYTHONPATH=$env_path "$python" "${args[@]}" >"$results/peer_${size}_${w}_$peer.jsonl" \
          2>"$results/peer_${size}_${w}_$peer.log"; then
        tail -n 20 "$results/peer_${size}_${w}_$peer.log" >&2
        notes+=("$peer failed on the $size corpus with $w workers (log kept)")
        say "${notes[-1]}"
        keep=1
      fi
    done
  done
  say "$size: ours, stage/* (one thread, files in memory) ... ($(date -u +%H:%M:%S))"
  if ! "$bin" --corpus="$corpus/train" --benchmark_filter='^stage/' --benchmark_format=json \
      >"$results/stages_$size.json" 2>"$results/stages_$size.log"; then
    tail -n 20 "$results/stages_$size.log" >&2
    keep=1
    die "$bin --benchmark_filter='^stage/' failed on $corpus/train (log above)"
  fi
done

# meta.json: what image_pipeline_report.py needs besides the measurements.
LOAD_BEFORE=$load_before LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg) STARTED=$started \
  SIZES_RUN="$sizes" WORKERS_RUN="$workers" PEERS_RUN="${run_peers[*]:-}" EPOCHS_SMALL=$epochs \
  EPOCHS_LARGE=$epochs_large CORPUS_SMALL=$corpus_small CORPUS_LARGE=$corpus_large BIN=$bin \
  COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +dirty)" \
  "$python" - "$results/meta.json" "${notes[@]}" <<'EOF'
import json, os, platform, sys
import torch, torchvision
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
meta = {
    "benchmark": "image_pipeline", "started": e["STARTED"], "commit": e["COMMIT"], "binary": e["BIN"],
    "host": {"cpu": cpu, "cores": os.cpu_count(), "load_before": e["LOAD_BEFORE"], "load_after": e["LOAD_AFTER"]},
    "torch": torch.__version__, "torchvision": torchvision.__version__,
    "sizes": e["SIZES_RUN"].split(), "workers": [int(w) for w in e["WORKERS_RUN"].split()],
    "epochs": {"small": int(e["EPOCHS_SMALL"]), "large": int(e["EPOCHS_LARGE"])},
    "peers": e["PEERS_RUN"].split(), "batch_size": 64,
    "corpora": {"small": e["CORPUS_SMALL"], "large": e["CORPUS_LARGE"]},
    "notes": sys.argv[2:],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

"$python" bench/image_pipeline_report.py collect "$results" ${out:+--json "$out"}
