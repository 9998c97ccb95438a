#!/usr/bin/env bash
# Installs torchao (PyPI) into a folder of its own,
#   ${XDG_CACHE_HOME:-~/.cache}/splitshare/torchao-VERSION/
# for the torch.compile + X86InductorQuantizer peer of bench/int8_peers.py (--torchao FOLDER):
# PyTorch 2's export quantization moved from torch.ao to torchao. The venv stays untouched.
#
# Usage: bench/setup_torchao.sh            install (or find) it and print the folder
# Environment: PYTHON=.venv/bin/python  TORCHAO_VERSION=0.18.0
set -euo pipefail
cd "$(dirname "$0")/.."
version=${TORCHAO_VERSION:-0.18.0}
python=${PYTHON:-.venv/bin/python}
dir=${XDG_CACHE_HOME:-$HOME/.cache}/splitshare/torchao-$version
check() { PYTHONPATH="$dir" "$python" -c "import torchao; assert torchao.__version__ == '$version'" 2>/dev/null; }
if check; then echo "$dir"; exit 0; fi
echo "setup_torchao: installing torchao==$version into $dir" >&2
rm -rf "$dir"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "torchao==$version" >&2
check || { echo "setup_torchao: torchao $version does not import with $python" >&2; exit 1; }
echo "$dir"
