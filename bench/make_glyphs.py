#!/usr/bin/env python3
"""Makes the 1,000-class glyph benchmark: CJK ideographs rendered from Debian's font packages.

Each class is one ideograph; each image is that ideograph drawn by one font face with a random
stroke width, affine transform (rotation, shear, scale, shift), blur, contrast, polarity and
noise, at 32x32 grey. Training images come from the TRAIN_FAMILIES' faces, test images from the
TEST_FAMILIES' faces: no font file and no design family (a face and the fonts derived from it)
is on both sides, so test accuracy measures generalisation to a style never seen in training.

The classes are `--classes` ideographs drawn with `--seed` from those that every face covers
(its cmap, read by fontconfig's fc-query) and draws with ink (about 2,050 of them). Every image
has its own generator, seeded by (seed, split, class, index), so the output does not depend on
the number of worker processes: the same seed and sizes give the same bytes.

Output, an `imagefolder:` input (classes are folders named U+XXXX; classes.tsv maps them to the
characters for --class-map):

    OUT/train/U+4E00/00000.png ...      --train images per class
    OUT/val/U+4E00/00000.png ...        --test images per class
    OUT/classes.tsv                     U+4E00<TAB>一, one line per class, in class order
    OUT/images.csv                      split,class,file,face: the face of every image
    OUT/manifest.json                   seed, sizes, characters, faces (package, file, index,
                                        family, sha256), transform ranges, Pillow/numpy versions

Usage: .venv/bin/python bench/make_glyphs.py --out data/glyphs-1k [--classes 1000] [--train 30]
       [--test 10] [--seed 0] [--workers 2]
The fonts come from Debian packages that scripts/setup installs (FONT_PACKAGES below).
"""
import argparse
import csv
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_ROOT = "/usr/share/fonts"
SIZE = 32
RENDER = 96  # drawn at 3x and reduced with a box filter: anti-aliased strokes at 32 px
GENERATOR_VERSION = 1

# (file under FONT_ROOT, face index in the file, design family, Debian package). Faces that
# share glyph outlines (a font and its proportional twin, fonts derived from another) share a
# family, and a family is wholly on one side of the split.
FACES = [
    ("opentype/noto/NotoSansCJK-Regular.ttc", 0, "noto-sans", "fonts-noto-cjk"),
    ("opentype/noto/NotoSansCJK-Bold.ttc", 2, "noto-sans", "fonts-noto-cjk"),
    ("opentype/noto/NotoSerifCJK-Regular.ttc", 0, "noto-serif", "fonts-noto-cjk"),
    ("opentype/noto/NotoSerifCJK-Bold.ttc", 2, "noto-serif", "fonts-noto-cjk"),
    ("opentype/ipafont-gothic/ipag.ttf", 0, "ipa-gothic", "fonts-ipafont-gothic"),
    ("opentype/ipaexfont-gothic/ipaexg.ttf", 0, "ipa-gothic", "fonts-ipaexfont-gothic"),
    ("opentype/ipafont-mincho/ipam.ttf", 0, "ipa-mincho", "fonts-ipafont-mincho"),
    ("opentype/ipaexfont-mincho/ipaexm.ttf", 0, "ipa-mincho", "fonts-ipaexfont-mincho"),
    ("truetype/ipamj/ipamjm.ttf", 0, "ipa-mincho", "fonts-ipamj-mincho"),
    ("truetype/hanazono/HanaMinA.ttf", 0, "hanazono", "fonts-hanazono"),
    ("truetype/aoyagi-kouzan-t/AoyagiKouzanT.ttf", 0, "aoyagi-kouzan", "fonts-aoyagi-kouzan-t"),
    ("truetype/aoyagi-soseki/aoyagi-soseki.ttf", 0, "aoyagi-soseki", "fonts-aoyagi-soseki"),
    ("truetype/kouzan-mouhitsu/kouzan-mouhitsu.ttf", 0, "kouzan-mouhitsu", "fonts-kouzan-mouhitsu"),
    ("truetype/kouzan-mouhitsu/kouzan-mouhitsu-gyosho.ttf", 0, "kouzan-mouhitsu", "fonts-kouzan-mouhitsu"),
    ("truetype/vlgothic/VL-Gothic-Regular.ttf", 0, "vlgothic", "fonts-vlgothic"),
    ("truetype/sawarabi-gothic/sawarabi-gothic-medium.ttf", 0, "sawarabi", "fonts-sawarabi-gothic"),
    ("truetype/bizud-gothic/BIZUDGothic-Regular.ttf", 0, "bizud-gothic", "fonts-morisawa-bizud-gothic"),
    ("truetype/bizud-gothic/BIZUDGothic-Bold.ttf", 0, "bizud-gothic", "fonts-morisawa-bizud-gothic"),
    ("truetype/bizud-mincho/BIZUDMincho-Regular.ttf", 0, "bizud-mincho", "fonts-morisawa-bizud-mincho"),
    ("truetype/horai-umefont/ume-tgo4.ttf", 0, "ume", "fonts-horai-umefont"),
    ("truetype/horai-umefont/ume-tmo3.ttf", 0, "ume", "fonts-horai-umefont"),
    ("truetype/seto/setofont.ttf", 0, "seto", "fonts-seto"),
    ("truetype/kiloji/kiloji.ttf", 0, "kiloji", "fonts-kiloji"),
    ("truetype/kiloji/kiloji_b.ttf", 0, "kiloji", "fonts-kiloji"),
    ("truetype/klee/KleeOne-Regular.ttf", 0, "klee", "fonts-klee"),
    ("truetype/klee/KleeOne-SemiBold.ttf", 0, "klee", "fonts-klee"),
    ("truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0, "klee", "fonts-lxgw-wenkai"),  # derived from Klee One
    ("truetype/lxgw-wenkai/LXGWWenKai-Bold.ttf", 0, "klee", "fonts-lxgw-wenkai"),
    ("truetype/konatu/Konatu.ttf", 0, "konatu", "fonts-konatu"),
    ("truetype/migmix/migu-1c-regular.ttf", 0, "mplus", "fonts-migmix"),
    ("truetype/migmix/migmix-1m-bold.ttf", 0, "mplus", "fonts-migmix"),
    ("opentype/mplus/Mplus1-Regular.otf", 0, "mplus", "fonts-mplus"),
    ("opentype/mplus/Mplus2-Black.otf", 0, "mplus", "fonts-mplus"),
    ("opentype/mplus/Mplus1-Thin.otf", 0, "mplus", "fonts-mplus"),
    ("truetype/motoya-l-cedar/MTLc3m.ttf", 0, "motoya-cedar", "fonts-motoya-l-cedar"),
    ("truetype/motoya-l-maruberi/MTLmr3m.ttf", 0, "motoya-maru", "fonts-motoya-l-maruberi"),
    ("truetype/dejima-mincho/dejima-mincho-r227.ttf", 0, "dejima", "fonts-dejima-mincho"),
    ("truetype/oradano-mincho/OradanoGSRR.ttf", 0, "oradano", "fonts-oradano-mincho-gsrr"),
    ("truetype/reggae/ReggaeOne-Regular.ttf", 0, "reggae", "fonts-reggae"),
    ("truetype/arphic-gbsn00lp/gbsn00lp.ttf", 0, "arphic-ming", "fonts-arphic-gbsn00lp"),
    ("truetype/arphic-bsmi00lp/bsmi00lp.ttf", 0, "arphic-ming", "fonts-arphic-bsmi00lp"),
    ("truetype/arphic/uming.ttc", 0, "arphic-ming", "fonts-arphic-uming"),
    ("truetype/arphic-gkai00mp/gkai00mp.ttf", 0, "arphic-kai", "fonts-arphic-gkai00mp"),
    ("truetype/arphic-bkai00mp/bkai00mp.ttf", 0, "arphic-kai", "fonts-arphic-bkai00mp"),
    ("truetype/arphic/ukai.ttc", 0, "arphic-kai", "fonts-arphic-ukai"),
    ("truetype/cwtex/cwfs.ttf", 0, "cwtex-fangsong", "fonts-cwtex-fs"),
    ("truetype/cwtex/cwheib.ttf", 0, "cwtex-hei", "fonts-cwtex-heib"),
    ("truetype/cwtex/cwkai.ttf", 0, "cwtex-kai", "fonts-cwtex-kai"),
    ("truetype/cwtex/cwming.ttf", 0, "cwtex-ming", "fonts-cwtex-ming"),
    ("truetype/cwtex/cwyen.ttf", 0, "cwtex-yen", "fonts-cwtex-yen"),
    ("truetype/cns11643/TW-Kai-98_1.ttf", 0, "cns-kai", "fonts-cns11643-kai"),
    ("truetype/cns11643/TW-Sung-98_1.ttf", 0, "cns-sung", "fonts-cns11643-sung"),
    ("truetype/wqy/wqy-microhei.ttc", 0, "wqy-microhei", "fonts-wqy-microhei"),
    ("truetype/wqy/wqy-zenhei.ttc", 0, "wqy-zenhei", "fonts-wqy-zenhei"),
    ("truetype/smiley-sans/SmileySans-Oblique.ttf", 0, "smiley", "fonts-smiley-sans"),
    ("truetype/unfonts-core/UnBatang.ttf", 0, "un-batang", "fonts-unfonts-core"),
    ("truetype/unfonts-core/UnDotum.ttf", 0, "un-dotum", "fonts-unfonts-core"),
    ("truetype/unfonts-core/UnGungseo.ttf", 0, "un-gungseo", "fonts-unfonts-core"),
]
# Chosen before any training, to spread the kinds of face over both sides: two serif (Mincho/
# Song), two sans (Gothic/Hei), a Kai family with its three faces, a brush face, a rounded face,
# a handwriting family, a Korean hanja face: 15 of the 58 faces.
TEST_FAMILIES = {"noto-serif", "bizud-gothic", "arphic-kai", "cwtex-hei", "aoyagi-soseki", "motoya-maru",
                 "klee", "un-dotum"}
FONT_PACKAGES = sorted({face[3] for face in FACES})

# Ranges of the random rendering, per image (uniform unless said otherwise).
TRANSFORM = {
    "font_px": [56, 74],          # em size at the 96-px drawing scale (a glyph fills 60-80 % of the side)
    "stroke_px": [0, 2],          # extra stroke width at 96 px (integer)
    "rotate_deg": [-10, 10],
    "shear": [-0.15, 0.15],
    "scale": [0.85, 1.05],
    "shift_px": [-2, 2],          # at 32 px
    "blur_px": [0, 0.6],          # Gaussian radius at 32 px
    "ink_contrast": [0.5, 1.0],   # |foreground - background| / 255
    "inverted": 0.2,              # probability of light ink on a dark ground
    "noise_std": [0, 8],          # Gaussian noise, grey levels
}


def face_path(face):
    return os.path.join(FONT_ROOT, face[0])


def covered(face):
    """The ideographs U+4E00..U+9FFF the face's cmap covers (fontconfig's charset)."""
    out = subprocess.run(["fc-query", "-i", str(face[1]), "--format=%{charset}", face_path(face)],
                         capture_output=True, text=True, check=True).stdout
    codes = set()
    for part in out.split():
        low, _, high = part.partition("-")
        low, high = int(low, 16), int(high or low, 16)
        codes.update(range(max(low, 0x4E00), min(high, 0x9FFF) + 1))
    return codes


def has_ink(font, char):
    box = font.getbbox(char)
    return box[2] > box[0] and box[3] > box[1]


def common_characters():
    missing = [face_path(f) for f in FACES if not os.path.exists(face_path(f))]
    if missing:
        sys.exit("make_glyphs: missing font files (run scripts/setup, which installs " + " ".join(FONT_PACKAGES)
                 + "): " + ", ".join(missing))
    common = None
    for face in FACES:
        codes = covered(face)
        common = codes if common is None else common & codes
    fonts = [ImageFont.truetype(face_path(f), 40, index=f[1]) for f in FACES]
    return [c for c in sorted(common) if all(has_ink(font, chr(c)) for font in fonts)]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def draw_glyph(char, face, rng):
    t = TRANSFORM
    font = ImageFont.truetype(face_path(face), int(rng.integers(t["font_px"][0], t["font_px"][1] + 1)), index=face[1])
    stroke = int(rng.integers(t["stroke_px"][0], t["stroke_px"][1] + 1))
    canvas = Image.new("L", (RENDER, RENDER), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), char, font=font, stroke_width=stroke)
    origin = ((RENDER - (right - left)) / 2 - left, (RENDER - (bottom - top)) / 2 - top)
    draw.text(origin, char, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    # Inverse affine map (output -> input) about the centre: rotation, shear, scale, shift.
    angle = np.deg2rad(rng.uniform(*t["rotate_deg"]))
    shear, scale = rng.uniform(*t["shear"]), rng.uniform(*t["scale"])
    shift = rng.uniform(*t["shift_px"], size=2) * RENDER / SIZE
    forward = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ \
        np.array([[1.0, shear], [0.0, 1.0]]) * scale
    inverse = np.linalg.inv(forward)
    centre = np.array([RENDER / 2, RENDER / 2])
    offset = centre - inverse @ (centre + shift)
    canvas = canvas.transform((RENDER, RENDER), Image.AFFINE,
                              (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1]),
                              resample=Image.BILINEAR)
    small = canvas.resize((SIZE, SIZE), Image.BOX).filter(ImageFilter.GaussianBlur(rng.uniform(*t["blur_px"])))
    ink = np.asarray(small, dtype=np.float64) / 255.0
    contrast = rng.uniform(*t["ink_contrast"]) * 255.0
    background = rng.uniform(0, 255.0 - contrast)
    if rng.random() < t["inverted"]:
        pixels = background + contrast * ink
    else:
        pixels = 255.0 - background - contrast * ink
    pixels += rng.normal(0, rng.uniform(*t["noise_std"]), size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


SPLITS = {"train": 0, "val": 1}


def make_class(job):
    """Writes one class's images of one split; returns their (file, face index) rows."""
    out, split, seed, class_index, code, count, face_indices = job
    folder = os.path.join(out, split, f"U+{code:04X}")
    os.makedirs(folder, exist_ok=True)
    rows = []
    for i in range(count):
        rng = np.random.default_rng([seed, SPLITS[split], class_index, i])
        face = face_indices[int(rng.integers(len(face_indices)))]
        name = f"{i:05d}.png"
        path = os.path.join(folder, name)
        draw_glyph(chr(code), FACES[face], rng).save(path + ".tmp", format="PNG")
        os.replace(path + ".tmp", path)
        rows.append((split, f"U+{code:04X}", f"{split}/U+{code:04X}/{name}", face))
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder (an imagefolder: root)")
    parser.add_argument("--classes", type=int, default=1000, help="number of classes (ideographs), default 1000")
    parser.add_argument("--train", type=int, default=30, help="training images per class, default 30")
    parser.add_argument("--test", type=int, default=10, help="test images per class (unseen faces), default 10")
    parser.add_argument("--seed", type=int, default=0, help="seed of the character choice and every image")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes, default: all cores")
    args = parser.parse_args(argv)
    for name in ("classes", "train", "test", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def manifest(args, characters):
    faces = [{"file": f[0], "index": f[1], "family": f[2], "package": f[3], "sha256": sha256(face_path(f)),
              "split": "val" if f[2] in TEST_FAMILIES else "train"} for f in FACES]
    return {"generator": "bench/make_glyphs.py", "version": GENERATOR_VERSION, "seed": args.seed,
            "classes": args.classes, "train_per_class": args.train, "test_per_class": args.test,
            "image_size": SIZE, "characters": "".join(chr(c) for c in characters),
            "codepoints": [f"U+{c:04X}" for c in characters], "faces": faces, "transform": TRANSFORM,
            "pillow": PIL.__version__, "numpy": np.__version__}


def main(argv):
    args = parse_args(argv)
    pool_chars = common_characters()
    if args.classes > len(pool_chars):
        sys.exit(f"make_glyphs: --classes {args.classes} is more than the {len(pool_chars)} ideographs every face has")
    chosen = sorted(np.random.default_rng([args.seed, 7]).choice(pool_chars, args.classes, replace=False).tolist())
    train_faces = [i for i, f in enumerate(FACES) if f[2] not in TEST_FAMILIES]
    test_faces = [i for i, f in enumerate(FACES) if f[2] in TEST_FAMILIES]
    jobs = [(args.out, split, args.seed, k, code, count, faces)
            for split, count, faces in (("train", args.train, train_faces), ("val", args.test, test_faces))
            for k, code in enumerate(chosen)]
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with multiprocessing.Pool(args.workers) as pool:
        for n, part in enumerate(pool.imap(make_class, jobs, chunksize=4), 1):
            rows.extend(part)
            if n % 100 == 0 or n == len(jobs):
                print(f"make_glyphs: {n}/{len(jobs)} class folders", file=sys.stderr, flush=True)
    with open(os.path.join(args.out, "classes.tsv"), "w", encoding="utf-8") as f:
        f.writelines(f"U+{c:04X}\t{chr(c)}\n" for c in chosen)
    with open(os.path.join(args.out, "images.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "class", "file", "face"])
        writer.writerows((s, c, p, FACES[i][0] + ":" + str(FACES[i][1])) for s, c, p, i in rows)
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest(args, chosen), f, ensure_ascii=False, indent=1)
    print(f"make_glyphs: {args.classes} classes x ({args.train} train + {args.test} test) images, "
          f"{len(train_faces)} train faces / {len(test_faces)} test faces, written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
