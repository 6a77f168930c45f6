"""PSNR inside and outside each sample photo's subject mask (tests/data/masks) at one rate, with
and without the mask as region of interest, at the same total size; and for reference the inside
PSNR when the outside is flattened to one colour (at the same size: not a bound, the flat outside
and the mask's edge still take bits).

    python benchmarks/roi_gain.py [--bpp 0.25] [--tokenizer wavelet]

With ``--auto``: the saliency map (``saliency(img)``, what ``--roi auto`` uses) as the region instead
of a mask, on the photos at 1/4, 1/2 and full size, at 0.25 and 0.5 bpp: PSNR inside the map's own
region (map >= 0.5) without and with it.

    python benchmarks/roi_gain.py --auto
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import adatok
from adatok.core.metrics import psnr
from adatok.core.saliency import read_mask
from adatok.datasets import SAMPLE_IMAGES, sample_images

MASKS = Path(__file__).resolve().parent.parent / "tests" / "data" / "masks"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bpp", type=float, default=0.25)
    ap.add_argument("--tokenizer", default="wavelet")
    ap.add_argument("--auto", action="store_true", help="the saliency map as the region, at three sizes")
    args = ap.parse_args()
    tok = adatok.load(args.tokenizer)
    if args.auto:
        auto_by_size(tok)
        return
    print(f"{'image':10s} {'mask':>5s} {'bytes':>6s} {'in, no roi':>10s} {'in, roi':>8s} {'gain':>6s} "
          f"{'flat':>6s} {'out, no roi':>11s} {'out, roi':>8s}")
    for name, img in sample_images(SAMPLE_IMAGES):
        m = read_mask(MASKS / f"{name}.png", img.shape[:2])
        inside = m >= 0.5
        plain, = tok.encode([img], adatok.Bpp(args.bpp))
        roi, = tok.encode([img], adatok.Bpp(args.bpp), roi=[m])
        a = tok.decode([adatok.TokenSequence.from_bytes(plain.to_bytes())])[0]
        b = tok.decode([adatok.TokenSequence.from_bytes(roi.to_bytes())])[0]
        flat = img.copy()
        flat[~inside] = img[~inside].mean(axis=0).astype(np.uint8)
        bound_seq, = tok.encode([flat], adatok.Bpp(args.bpp))
        bound = psnr(img, tok.decode([bound_seq])[0], inside)
        print(f"{name:10s} {inside.mean():5.1%} {len(roi.to_bytes()):6d} {psnr(img, a, inside):10.2f} "
              f"{psnr(img, b, inside):8.2f} {psnr(img, b, inside) - psnr(img, a, inside):+6.2f} "
              f"{bound - psnr(img, a, inside):+6.2f} {psnr(img, a, ~inside):11.2f} {psnr(img, b, ~inside):8.2f}")


def auto_by_size(tok) -> None:
    """Inside PSNR of each photo's own saliency region, without -> with it as the region of interest,
    at 1/4, 1/2 and full size (every 4th, 2nd, 1st pixel), 0.25 and 0.5 bpp."""
    from adatok.core.metrics import region_psnr
    from adatok.core.saliency import saliency

    for name, full in sample_images(SAMPLE_IMAGES):
        for step in (4, 2, 1):
            img = np.ascontiguousarray(full[::step, ::step])
            sal = saliency(img)
            cells = []
            for bpp in (0.25, 0.5):
                plain, = tok.encode([img], adatok.Bpp(bpp))
                steered, = tok.encode([img], adatok.Bpp(bpp), roi=[sal])
                cells.append(f"{region_psnr(img, tok.decode([plain])[0], sal)[0]:.2f} -> "
                             f"{region_psnr(img, tok.decode([steered])[0], sal)[0]:.2f}")
            print(f"{name:10s} {img.shape[0]:4d} x {img.shape[1]:<4d}  0.25 bpp {cells[0]}   0.5 bpp {cells[1]}")


if __name__ == "__main__":
    main()
