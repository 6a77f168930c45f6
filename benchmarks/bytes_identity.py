"""Hashes of the wavelet tokenizers' bytes and decoded images on a fixed set of cases.

A speed change must leave every hash as it was: run it before and after, and diff the output.

    PYTHONPATH=src .venv/bin/python benchmarks/bytes_identity.py > before.txt
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

import adatok
from adatok import Bpp, TokenSequence, Tokens
from adatok.core.sequence import header_size


def h(b) -> str:
    return hashlib.sha256(b if isinstance(b, bytes) else np.ascontiguousarray(b).tobytes()).hexdigest()[:16]


def main() -> None:
    import skimage.data

    astro = skimage.data.astronaut()
    big = np.asarray(Image.fromarray(astro).resize((768, 512), Image.Resampling.LANCZOS))
    rng = np.random.default_rng(0)
    odd = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    odd_gray = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    moon = skimage.data.moon()  # an exact 2x2 nearest-neighbour enlargement: coded reduced (params["rep"])
    framed = big.copy()  # a photo with a uniform frame: rows 0 and 1 alike, no replication
    framed[:4], framed[-4:], framed[:, :4], framed[:, -4:] = 255, 255, 255, 255
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    roi = np.zeros(astro.shape[:2], np.float32)
    roi[100:250, 150:350] = 1.0
    lossy, lossless = adatok.load("wavelet"), adatok.load("wavelet-lossless")
    cases = [
        ("astronaut Bpp(0.25)", lossy, astro, Bpp(0.25), None),
        ("astronaut Bpp(1.0)", lossy, astro, Bpp(1.0), None),
        ("astronaut 768x512 Bpp(1.0)", lossy, big, Bpp(1.0), None),
        ("astronaut full", lossy, astro, None, None),
        ("astronaut lossless full", lossless, astro, None, None),
        ("astronaut lossless Bpp(2)", lossless, astro, Bpp(2.0), None),
        ("odd 13x17 full", lossy, odd, None, None),
        ("odd 13x17 lossless full", lossless, odd, None, None),
        ("odd gray 13x17 Tokens(300)", lossy, odd_gray, Tokens(300), None),
        ("odd gray 13x17 lossless full", lossless, odd_gray, None, None),
        ("astronaut roi Bpp(0.5)", lossy, astro, Bpp(0.5), roi),
        ("astronaut roi lossless Tokens(50000)", lossless, astro, Tokens(50000), roi),
        ("1x1 RGB full", lossy, rng.integers(0, 256, (1, 1, 3), dtype=np.uint8), None, None),
        ("1x7 gray lossless full", lossless, rng.integers(0, 256, (1, 7), dtype=np.uint8), None, None),
        ("7x1 RGB full", lossy, rng.integers(0, 256, (7, 1, 3), dtype=np.uint8), None, None),
        ("2x3 RGB lossless full", lossless, rng.integers(0, 256, (2, 3, 3), dtype=np.uint8), None, None),
        ("moon lossless full", lossless, moon, None, None),
        ("moon Bpp(0.5)", lossy, moon, Bpp(0.5), None),
        ("framed 768x512 Bpp(1.0)", lossy, framed, Bpp(1.0), None),
        ("noise 64x64 full", lossy, noise, None, None),
        ("noise 64x64 lossless Tokens(10**12)", lossless, noise, Tokens(10**12), None),
    ]
    for label, tok, img, budget, r in cases:
        (seq,) = tok.encode([img], budget, roi=None if r is None else [r])
        blob = seq.to_bytes()
        dec = tok.decode([seq])[0]
        back = TokenSequence.from_bytes(blob)
        assert np.array_equal(back.ids, seq.ids) and np.array_equal(back.pos, seq.pos)
        dec2 = tok.decode([back])[0]
        assert np.array_equal(dec, dec2)
        cut = TokenSequence.from_bytes(blob[: max(header_size(blob), len(blob) * 2 // 3)])
        dcut = tok.decode([cut])[0]
        print(f"{label:38s} n={len(seq):8d} bytes={len(blob):7d} atk={h(blob)} ids={h(seq.ids)} "
              f"pos={h(seq.pos)} img={h(dec)} cut={len(cut)}:{h(cut.pos)}:{h(dcut)}")


if __name__ == "__main__":
    main()
