#!/usr/bin/env bash
# `splitshare predict` on a folder of 1,000 JPEGs against a straightforward PyTorch loop in the venv
# (PIL decode + torchvision Resize(256)/CenterCrop(224)/ToTensor/Normalize, DataLoader with the same
# number of workers, the same model loaded with python/splitshare_torch.py, batch 16, no_grad),
# same threads. Issue #18 item 2.
#
#   bench/predict_folder.sh [BUILD_DIR] [OUT_DIR]      # defaults: build, runs/bench-predict
#
# Makes OUT_DIR/photos/{a,b}/*.jpg (about 500x375, cut from Debian's mate-backgrounds wallpapers)
# and a ResNet-18 + SSM and a ResNet-50 + SSM checkpoint (one short training step each, so the
# weights are a real checkpoint's), then times both sides on each and prints images/s.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-runs/bench-predict}
py=.venv/bin/python
threads=$(nproc)
workers=2
mkdir -p "$out"
if [ ! -f "$out/photos/.complete" ]; then
  "$py" - "$out/photos" <<'PY'
import glob, os, sys
from PIL import Image
out = sys.argv[1]
sources = sorted(glob.glob("/usr/share/backgrounds/mate/**/*.jpg", recursive=True))
assert sources, "mate-backgrounds is not installed (scripts/setup installs it)"
for i in range(1000):
    with Image.open(sources[i % len(sources)]) as im:
        im = im.convert("RGB")
        w, h = im.size
        # a different window of each wallpaper, scaled to about ImageNet's size
        cw, ch = w // 2, h // 2
        x, y = (i * 37) % (w - cw), (i * 53) % (h - ch)
        im = im.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.BILINEAR)
    folder = os.path.join(out, "ab"[i % 2])
    os.makedirs(folder, exist_ok=True)
    im.save(os.path.join(folder, f"{i:04d}.jpg"), quality=90)
open(os.path.join(out, ".complete"), "w").close()
PY
fi
for arch in resnet18 resnet50; do
  ck="$out/$arch/best.pt"
  if [ ! -f "$ck" ]; then
    "$build/splitshare" train --data "imagefolder:$out/photos" --arch "$arch" --augment torchvision --epochs 1 \
      --limit-train 16 --limit-val 16 --batch-size 8 --workers 0 --no-progress --out "$out/$arch" >/dev/null 2>&1
  fi
  start=$(date +%s.%N)
  "$build/splitshare" predict --checkpoint "$ck" "$out/photos" --workers $workers --batch-size 16 \
    --threads "$threads" --no-progress --output "$out/$arch/predictions.csv" 2>/dev/null
  ours=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  peer=$("$py" - "$ck" "$out/photos" "$threads" "$workers" <<'PY'
import glob, sys, time
import torch, torchvision.transforms as T
from PIL import Image
sys.path.insert(0, "python")
import splitshare_torch as ss
ck, folder, threads, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
start = time.perf_counter()
model, meta = ss.load_checkpoint(ck)
p = meta["preprocess"]
tf = T.Compose([T.Resize(p["resize"]), T.CenterCrop(p["crop"]), T.ToTensor(), T.Normalize(p["mean"], p["std"])])
paths = sorted(glob.glob(folder + "/**/*.jpg", recursive=True))
class Files(torch.utils.data.Dataset):
    def __len__(self): return len(paths)
    def __getitem__(self, i):
        with Image.open(paths[i]) as im:
            return tf(im.convert("RGB"))
rows = []
with torch.no_grad():
    for x in torch.utils.data.DataLoader(Files(), batch_size=16, num_workers=workers):
        logits = model(x).logits
        rows.append(torch.softmax(logits, 1).topk(min(5, logits.shape[1]), 1))
print(time.perf_counter() - start)
PY
)
  n=$(($(wc -l < "$out/$arch/predictions.csv") - 1))
  awk -v arch="$arch" -v n="$n" -v ours="$ours" -v peer="$peer" 'BEGIN {
    printf "%s + SSM: splitshare %.1f img/s (%d images in %.1f s), PIL + torchvision %.1f img/s (%.1f s), ratio %.2fx\n",
      arch, n / ours, n, ours, 1000 / peer, peer, peer / ours }'
done
