#!/usr/bin/env bash
# Installs pillow-simd (PyPI, the SIMD fork of Pillow; AVX2 build) into a folder of its own,
#   ${XDG_CACHE_HOME:-~/.cache}/splitshare/pillow-simd-VERSION/
# so that the benchmark can run the project's Python with PYTHONPATH=that folder: `import PIL`
# then gets pillow-simd while torch and torchvision still come from the venv, which keeps its
# own Pillow untouched. bench/image_pipeline.sh runs the "pil-simd" peer that way.
#
# pillow-simd ships only as source: it is compiled here (a few minutes), against Debian's
# libjpeg62-turbo-dev and zlib1g-dev, with CC="cc -mavx2" as its documentation says for the
# AVX2 build. The pip log goes to the folder's .log file. Nothing is done when the folder is
# already complete (it holds a .complete stamp, written only after the checks below pass).
#
# The folder is the last line of stdout; messages go to stderr.
#
# Usage: bench/setup_pillow_simd.sh            install (or find) it and print the folder
#        bench/setup_pillow_simd.sh --check    print the folder if installed, else exit 1
# Environment: PYTHON=.venv/bin/python  PILLOW_SIMD_VERSION=12.1.1.post0
#              MAX_CONCURRENCY=1 (compile jobs; Pillow's setup.py reads it)
set -euo pipefail
cd "$(dirname "$0")/.."

version=${PILLOW_SIMD_VERSION:-12.1.1.post0}
python=${PYTHON:-.venv/bin/python}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/splitshare
dir=$cache/pillow-simd-$version
log=$dir.log

# The check that the folder works: PIL is pillow-simd's (imported from the folder, with its
# version) and torchvision's PIL transforms run on it.
check() {
  PYTHONPATH="$1" "$python" - "$1" "$version" <<'EOF'
import os, sys
folder, version = sys.argv[1], sys.argv[2]
import PIL
from PIL import Image, features
assert os.path.realpath(PIL.__file__).startswith(os.path.realpath(folder)), f"PIL comes from {PIL.__file__}"
assert PIL.__version__ == version, f"PIL.__version__ is {PIL.__version__}, expected {version}"
assert features.check("jpg"), "built without JPEG support"
import torch, torchvision
from torchvision import transforms
t = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                        transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
out = t(Image.new("RGB", (500, 375), (200, 100, 50)))
assert out.shape == (3, 224, 224), out.shape
print(f"setup_pillow_simd: PIL {PIL.__version__} from {os.path.dirname(PIL.__file__)}, "
      f"libjpeg-turbo {features.version('libjpeg_turbo')}, torch {torch.__version__}, "
      f"torchvision {torchvision.__version__}: transforms ok", file=sys.stderr)
EOF
}

if [ -f "$dir/.complete" ]; then
  echo "setup_pillow_simd: pillow-simd $version already installed in $dir" >&2
  echo "$dir"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "setup_pillow_simd: pillow-simd $version is not installed in $dir (run bench/setup_pillow_simd.sh)" >&2
  exit 1
fi
if [ ! -x "$python" ]; then
  echo "setup_pillow_simd: no Python at $python (set PYTHON)" >&2
  exit 1
fi

mkdir -p "$cache"
rm -rf "$dir.partial"
echo "setup_pillow_simd: building pillow-simd $version (AVX2) from source into $dir; log: $log" >&2
if ! CC="${CC:-cc} -mavx2" MAX_CONCURRENCY=${MAX_CONCURRENCY:-1} \
    "$python" -m pip install --no-deps --no-cache-dir --no-binary pillow-simd \
    --target "$dir.partial" "pillow-simd==$version" >"$log" 2>&1; then
  echo "setup_pillow_simd: FAILED: pip could not build pillow-simd $version. End of $log:" >&2
  grep -E -i 'error|fatal|not found|required' "$log" | grep -v -i 'warning' | tail -n 15 >&2 || true
  echo "---- last lines ----" >&2
  tail -n 10 "$log" >&2
  rm -rf "$dir.partial"
  exit 1
fi
if ! check "$dir.partial" 2>>"$log"; then
  echo "setup_pillow_simd: FAILED: pillow-simd $version built but does not work with torchvision. End of $log:" >&2
  tail -n 15 "$log" >&2
  exit 1
fi
rm -rf "$dir"
mv "$dir.partial" "$dir"
check "$dir"
touch "$dir/.complete"
echo "setup_pillow_simd: installed pillow-simd $version in $dir" >&2
echo "$dir"
