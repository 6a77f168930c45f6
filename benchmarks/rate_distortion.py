"""Rate-distortion of the `wavelet` tokenizer beside JPEG 2000, AVIF, WebP and JPEG, in one run.

For each image and each rate (bits per pixel) the wavelet tokenizer is given `Bpp(rate)`; every
baseline is then given the smallest setting whose file is at least as large as the wavelet's
bytes (so the baselines never get fewer bytes). PSNR is over all channels of the 8-bit RGB (or
gray) image. JPEG 2000 is Pillow's OpenJPEG at its strongest: irreversible 9/7, multi-component
transform on (`mct=1`), rate-controlled (`quality_mode="rates"`), raw codestream (no JP2 boxes).

Prints per-image rows, the mean PSNR difference to JPEG 2000 at each rate, and the Bjontegaard
delta rate (BD-rate, piecewise-cubic, over the overlapping PSNR range) of each codec against
JPEG 2000: negative means fewer bytes for the same quality.

    python benchmarks/rate_distortion.py FOLDER [FOLDER ...] [--skimage astronaut,camera]
        [--rates 0.25,0.5,1.0] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import adatok
from adatok.core.errors import AdatokError
from adatok.core.imageio import read_image
from adatok.core.metrics import psnr
from adatok.eval import bd_rate  # the one BD-rate of the project (piecewise-cubic, in log rate)

SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}

#: The photos the coder and its context priors were tuned on (scripts/fit_priors.py).
TUNING = ("astronaut", "camera", "coffee")
#: Held-out natural photos, never used for tuning: scikit-image's others and Debian opencv-doc's.
HOLDOUT_SKIMAGE = ("chelsea", "rocket", "coins", "moon")
OPENCV = "/usr/share/doc/opencv-doc/examples/data"
HOLDOUT_OPENCV = ("baboon.jpg", "fruits.jpg", "home.jpg", "HappyFish.jpg", "squirrel_cls.jpg", "leuvenA.jpg",
                  "butterfly.jpg", "orange.jpg", "apple.jpg", "messi5.jpg", "building.jpg", "aero1.jpg")


def load_images(folders: list[str], skimage_names: list[str]) -> list[tuple[str, np.ndarray]]:
    """(name, H x W x C uint8) for every readable image under the folders, and named skimage photos."""
    out = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() in SUFFIXES:
                try:
                    out.append((str(path), read_image(path)))
                except AdatokError as exc:
                    print(f"skipped {path}: {exc}", file=sys.stderr)
    if skimage_names:
        import skimage.data

        for name in skimage_names:
            img = getattr(skimage.data, name)()
            out.append((name, img if img.ndim == 3 else img[..., None]))
    return out


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)


def encode_pillow(img: np.ndarray, codec: str, setting: float) -> bytes:
    """Encode with one Pillow codec at a quality setting (JPEG 2000: a compression ratio)."""
    buf = io.BytesIO()
    im = _pil(img)
    if codec == "jp2":
        im.save(buf, "JPEG2000", irreversible=True, mct=1 if img.shape[2] == 3 else 0, quality_mode="rates",
                quality_layers=[setting], no_jp2=True)
    elif codec == "jpeg":
        im.save(buf, "JPEG", quality=int(setting), optimize=True)
    elif codec == "webp":
        im.save(buf, "WEBP", quality=int(setting), method=6)
    elif codec == "avif":
        im.save(buf, "AVIF", quality=int(setting), speed=4)
    else:
        raise ValueError(codec)
    return buf.getvalue()


def decode_pillow(data: bytes, channels: int) -> np.ndarray:
    """Decode any Pillow-readable bytes back to H x W x C uint8."""
    im = Image.open(io.BytesIO(data))
    im = im.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def at_least(img: np.ndarray, codec: str, nbytes: int) -> tuple[int, float] | None:
    """(size, PSNR) of ``codec`` at the smallest setting giving at least ``nbytes`` (None if none can)."""
    if codec == "jp2":  # compression ratio: smaller ratio -> more bytes; bisect on the log ratio
        raw = img.size
        lo, hi = np.log(raw / (nbytes * 1.6)), np.log(raw / (nbytes * 0.6))
        best = None
        for _ in range(14):
            mid = (lo + hi) / 2
            data = encode_pillow(img, codec, float(np.exp(mid)))
            if len(data) >= nbytes:
                best, lo = data, mid
            else:
                hi = mid
        if best is None:
            return None
    else:
        qs = range(1, 101)
        lo, hi, best = 0, len(qs) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            data = encode_pillow(img, codec, qs[mid])
            if len(data) >= nbytes:
                best, hi = data, mid - 1
            else:
                lo = mid + 1
        if best is None:
            return None
    return len(best), psnr(img, decode_pillow(best, img.shape[2]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*")
    ap.add_argument("--skimage", default="", help="comma-separated scikit-image photo names")
    ap.add_argument("--holdout", action="store_true",
                    help="the held-out photos (scikit-image: " + ", ".join(HOLDOUT_SKIMAGE)
                    + "; opencv-doc: " + ", ".join(HOLDOUT_OPENCV) + ")")
    ap.add_argument("--rates", default="0.25,0.5,1.0")
    ap.add_argument("--codecs", default="jp2,avif,webp,jpeg")
    ap.add_argument("--tokenizer", default="wavelet")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    codecs = [c for c in args.codecs.split(",") if c]
    images = load_images(args.folders, [n for n in args.skimage.split(",") if n])
    if args.holdout:
        images += load_images([], list(HOLDOUT_SKIMAGE))
        for name in HOLDOUT_OPENCV:
            path = Path(OPENCV) / name
            if not path.exists():
                print(f"missing {path}: apt-get install opencv-doc", file=sys.stderr)
                return 2
            images.append((name, read_image(path)))
    if not images:
        print("no images", file=sys.stderr)
        return 2
    tok = adatok.load(args.tokenizer)
    rows = []
    for name, img in images:
        hw = img.shape[0] * img.shape[1]
        for rate in rates:
            seq, = tok.encode([img], adatok.Bpp(rate))
            data = seq.to_bytes()
            out = tok.decode([adatok.TokenSequence.from_bytes(data)])[0]
            row = {"image": name, "rate": rate, "wavelet_bpp": 8 * len(data) / hw, "wavelet_psnr": psnr(img, out)}
            for codec in codecs:
                res = at_least(img, codec, len(data))
                row[f"{codec}_bpp"] = 8 * res[0] / hw if res else float("nan")
                row[f"{codec}_psnr"] = res[1] if res else float("nan")
            rows.append(row)
            print(f"{Path(name).name:28s} {rate:5.2f} wavelet {row['wavelet_psnr']:6.2f} dB @ {row['wavelet_bpp']:.3f}  "
                  + "  ".join(f"{c} {row[f'{c}_psnr']:6.2f} @ {row[f'{c}_bpp']:.3f}" for c in codecs), flush=True)
    print()
    for rate in rates:
        sel = [r for r in rows if r["rate"] == rate]
        diffs = {c: np.nanmean([r["wavelet_psnr"] - r[f"{c}_psnr"] for r in sel]) for c in codecs}
        print(f"rate {rate:5.2f} bpp: mean PSNR wavelet - codec: "
              + "  ".join(f"{c} {d:+.3f} dB" for c, d in diffs.items()))
    if "jp2" in codecs and len(rates) >= 2:
        for codec in ["wavelet"] + [c for c in codecs if c != "jp2"]:
            vals = []
            for name, _ in images:
                sel = [r for r in rows if r["image"] == name]
                vals.append(bd_rate([r["jp2_bpp"] for r in sel], [r["jp2_psnr"] for r in sel],
                                    [r[f"{codec}_bpp"] for r in sel], [r[f"{codec}_psnr"] for r in sel]))
            print(f"BD-rate of {codec} against JPEG 2000: mean {np.nanmean(vals):+.2f}% "
                  f"(per image: {', '.join(f'{v:+.1f}' for v in vals)})")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
