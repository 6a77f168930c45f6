"""The stepper follows the encoder, at full size: every photo bundled with scikit-image and 200
Fashion-MNIST test images, for both wavelet tokenizers.

For each set, :func:`tests.test_stepper.replay_encoder` encodes the images and grows them again
token by token with the encoder's own ids: at every step each sequence's ``next_pos`` must be the
encoder's position, its id legal and ``done`` right; at 10 lengths per image the stepper's image
must equal ``decode`` of that prefix; the sequences made must be the encoder's and survive their
bytes. Fashion-MNIST runs twice: with each image's own header and with the fixed header
(``fixed_header=True``, stepper started from the shape). ``tests/test_stepper.py`` runs the same
check on smaller sets. Run it (12 to 14 minutes on the 2-core development machine, shared with other work):

    .venv/bin/python benchmarks/stepper_check.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import adatok  # noqa: E402
from adatok.datasets import load  # noqa: E402
from test_stepper import replay_encoder  # noqa: E402
from test_wavelet import PHOTOS, photo  # noqa: E402


def main() -> int:
    fm = load("fashion-mnist", split="test", limit=200).images
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        t = time.perf_counter()
        n = replay_encoder(tok, fm)
        print(f"{name}: 200 Fashion-MNIST images, own header: {n} tokens stepped, all checks pass "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
        t = time.perf_counter()
        n = replay_encoder(tok, fm, fixed_header=True)
        print(f"{name}: 200 Fashion-MNIST images, fixed header: {n} tokens stepped, all checks pass "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
        for p in PHOTOS:
            img = photo(p)
            t = time.perf_counter()
            n = replay_encoder(tok, [img])
            print(f"{name}: {p} {img.shape}: {n} tokens stepped, all checks pass ({time.perf_counter() - t:.1f} s)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
