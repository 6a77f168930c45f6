"""What the fixed header of generation costs: ``encode(..., fixed_header=True)`` against each
image's own header, on Fashion-MNIST test images and the bundled sample photos.

For each tokenizer and image set it prints the shape's top plane (``tok.top_plane``), how the
images' own top planes fall below it, and what re-expressing from the top plane adds: tokens
(a ``SIG0`` per root and a ``D0`` per root set per extra plane, all in front) and bytes of the
``.atk`` file (the extra decisions are arithmetic-coded too; the rest of the stream is coded in
the contexts they leave). Images with an exact pixel replication (``params["rep"]``) lose it in
the fixed header; they are counted apart. Run it:

    .venv/bin/python benchmarks/fixed_header.py --fashion 1000
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np

import adatok
from adatok.datasets import load, sample_images


def report(tok, label: str, imgs: list[np.ndarray]) -> None:
    own = tok.encode(imgs)
    fixed = tok.encode(imgs, fixed_header=True)
    tops = collections.Counter(tok.top_plane(im.shape) for im in imgs)
    gap = collections.Counter(f.params["nmax"] - o.params["nmax"] for o, f in zip(own, fixed) if "rep" not in o.params)
    rep = sum("rep" in o.params for o in own)
    plain = [(o, f) for o, f in zip(own, fixed) if "rep" not in o.params]
    tokens = np.array([len(f) - len(o) for o, f in plain])
    nbytes = np.array([len(f.to_bytes()) - len(o.to_bytes()) for o, f in plain])
    total = np.array([len(o.to_bytes()) for o, _ in plain])
    print(f"{tok.name:17} {label:28} top plane {dict(tops)}; top - own: {dict(sorted(gap.items()))}; "
          f"extra tokens mean {tokens.mean():.1f} (max {tokens.max()}); extra bytes mean {nbytes.mean():+.2f} "
          f"(max {nbytes.max():+d}) of {total.mean():.0f}; replicated images: {rep}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fashion", type=int, default=1000, help="Fashion-MNIST test images (default 1000)")
    args = ap.parse_args()
    fm = load("fashion-mnist", split="test", limit=args.fashion).images
    photos = [img for _, img in sample_images(max_side=256)]
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        report(tok, f"Fashion-MNIST ({len(fm)})", fm)
        report(tok, "sample photos (<= 256 px)", photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
