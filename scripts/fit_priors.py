"""Fit the context priors the wavelet tokenizers ship (src/adatok/wavelet/priors/NAME.json).

A prior is each context's starting probability, learned from how often it coded a zero when the
tuning photos were encoded at several rates; it spares every image the cost of learning its
contexts from scratch (most of the cost of many contexts at low rates). Only the tuning photos
are used (scikit-image astronaut, camera, coffee); every other photo is held out for reporting.

    .venv/bin/python scripts/fit_priors.py [--weight 12]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import skimage.data

from adatok.wavelet import spiht
from adatok.wavelet.tokenizer import _PRIOR_DIR, WaveletTokenizer

TUNING = ("astronaut", "camera", "coffee")
RATES = {"wavelet": (0.125, 0.25, 0.5, 1.0, 2.0), "wavelet-lossless": (0.25, 0.5, 1.0, 2.0, 4.0, 1000.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weight", type=int, default=12, help="how many decisions a prior is worth")
    args = ap.parse_args()
    images = [getattr(skimage.data, n)() for n in TUNING]
    _PRIOR_DIR.mkdir(exist_ok=True)
    for name, lossless in (("wavelet", False), ("wavelet-lossless", True)):
        tok = WaveletTokenizer(name, lossless=lossless)
        tok.prior = spiht.uniform_prior()
        stats = sum(tok.coding_stats(images, r) for r in RATES[name])
        prior = spiht.fit_prior(stats, args.weight)
        path = _PRIOR_DIR / f"{name}.json"
        path.write_text(json.dumps({"fitted_on": list(TUNING), "rates_bpp": list(RATES[name]),
                                    "weight": args.weight, "prior": prior.tolist()}, separators=(",", ":")))
        used = int((stats.sum(axis=1) > 0).sum())
        print(f"{name}: {used} of {spiht.N_CTX} contexts seen -> {path}")


if __name__ == "__main__":
    main()
