#!/usr/bin/env bash
# Installs NVIDIA DALI (PyPI's nvidia-dali-cuda130 and what it needs) into a folder of its own,
#   ${XDG_CACHE_HOME:-~/.cache}/splitshare/dali-VERSION/
# for the "dali" peer of bench/pack_pipeline.sh, which runs the project's Python with
# PYTHONPATH=that folder (torch and the rest still come from the venv, which stays untouched).
# DALI's CPU pipelines run without a GPU; its import warns that nvJPEG2000 and nvTIFF are missing,
# which only JPEG 2000 and TIFF decoding need. Nothing is done when the folder is complete.
#
# Usage: bench/setup_dali.sh            install (or find) it and print the folder
#        bench/setup_dali.sh --check    print the folder if installed, else exit 1
# Environment: PYTHON=.venv/bin/python  DALI_VERSION=2.4.0
set -euo pipefail
cd "$(dirname "$0")/.."
version=${DALI_VERSION:-2.4.0}
python=${PYTHON:-.venv/bin/python}
dir=${XDG_CACHE_HOME:-$HOME/.cache}/splitshare/dali-$version
check() { PYTHONPATH="$dir" "$python" -c "import nvidia.dali as d; assert d.__version__ == '$version', d.__version__" 2>/dev/null; }
if [ -f "$dir/.complete" ] && check; then echo "$dir"; exit 0; fi
[ "${1:-}" != --check ] || exit 1
echo "setup_dali: installing nvidia-dali-cuda130==$version into $dir" >&2
rm -rf "$dir" "$dir.deps"
# DALI's own requirements (its METADATA, 2.4.0), pinned; --no-deps keeps pip from pulling a second
# numpy or torch into the folder. The nvidia/ namespace of two wheels must be merged by hand:
# pip --target does not merge folders.
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" \
  "nvidia-dali-cuda130==$version" astunparse==1.6.3 gast==0.7.0 six==1.17.0 optree==0.20.0 makefun==1.16.0 \
  libcst==1.8.6 nvtx==0.2.17 >&2
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir.deps" \
  nvidia-nvimgcodec-cu13==0.9.0.20 nvidia-libnvcomp-cu13==5.3.0.16 >&2
cp -rn "$dir.deps/nvidia/." "$dir/nvidia/"
find "$dir.deps" -mindepth 1 -maxdepth 1 ! -name nvidia -exec cp -rn {} "$dir/" \;
rm -rf "$dir.deps"
check || { echo "setup_dali: DALI $version does not import from $dir" >&2; exit 1; }
touch "$dir/.complete"
echo "$dir"
