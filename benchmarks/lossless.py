"""Lossless size of `wavelet-lossless` beside PNG (Pillow, optimize) and lossless JPEG 2000
(Pillow/OpenJPEG, reversible 5/3, mct=1 for colour, raw codestream), in one run; every
round trip checked bit-exact.

    python benchmarks/lossless.py [FOLDER ...] [--skimage astronaut,camera,...]
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
from PIL import Image

import adatok
from rate_distortion import decode_pillow, load_images

DEFAULT = "astronaut,camera,coffee,chelsea,rocket,coins,moon,immunohistochemistry"


def pillow_lossless(img: np.ndarray, fmt: str) -> int:
    """Size in bytes of a lossless Pillow encoding (checked to round-trip exactly)."""
    buf = io.BytesIO()
    im = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
    if fmt == "png":
        im.save(buf, "PNG", optimize=True)
    else:
        im.save(buf, "JPEG2000", irreversible=False, mct=1 if img.shape[2] == 3 else 0, no_jp2=True)
    data = buf.getvalue()
    assert np.array_equal(decode_pillow(data, img.shape[2]), img), fmt
    return len(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*")
    ap.add_argument("--skimage", default=DEFAULT)
    args = ap.parse_args(argv)
    tok = adatok.load("wavelet-lossless")
    tot = np.zeros(3)
    print(f"{'image':24s} {'wavelet-lossless':>16s} {'PNG':>10s} {'JPEG 2000':>10s}  vs PNG  vs J2K")
    for name, img in load_images(args.folders, [n for n in args.skimage.split(",") if n]):
        seq, = tok.encode([img], adatok.Lossless())
        data = seq.to_bytes()
        out = tok.decode([adatok.TokenSequence.from_bytes(data)])[0]
        assert np.array_equal(out, img), name
        sizes = np.array([len(data), pillow_lossless(img, "png"), pillow_lossless(img, "jp2")])
        tot += sizes
        print(f"{name[-24:]:24s} {sizes[0]:16d} {sizes[1]:10d} {sizes[2]:10d}  {sizes[0] / sizes[1] - 1:+6.1%} "
              f"{sizes[0] / sizes[2] - 1:+6.1%}")
    print(f"{'total':24s} {int(tot[0]):16d} {int(tot[1]):10d} {int(tot[2]):10d}  {tot[0] / tot[1] - 1:+6.1%} "
          f"{tot[0] / tot[2] - 1:+6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
