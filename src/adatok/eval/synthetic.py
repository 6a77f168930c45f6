"""Synthetic images of the kinds users tokenize besides photos: screenshots, diagrams, documents,
renders. Flat areas (black, white, any grey or colour), saturated crops of photos, gradients,
checkerboards, stripes, text-like marks on white, binary and uniform noise, tiny images, pixel art,
single dots on flat backgrounds, and plain photo crops, at random sizes (1 to ``max_side`` pixels a
side), gray or RGB.

Seeded: the same ``(n, seed, max_side)`` gives the same images on any machine. Used to check what
must hold beyond photos (``benchmarks/monotonicity.py``: longer prefixes must not decode worse;
the ``Quality`` search against brute force in the tests).

    >>> from adatok.eval.synthetic import synthetic_images
    >>> name, img = synthetic_images(12, seed=0)[0]
    >>> name.split("-")[1], img.dtype
    ('flat', dtype('uint8'))
"""

from __future__ import annotations

import numpy as np

from ..core.checks import is_whole
from ..core.errors import AdatokError

#: The kinds, in the order they take turns.
KINDS = ("flat", "saturated", "gradient", "checker", "stripes", "text", "binary", "noise", "tiny", "pixelart",
         "dot", "photo")


def _photos() -> list[np.ndarray]:
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.camera()[..., None], skimage.data.coffee(),
            skimage.data.chelsea()]


def _crop(rng: np.random.Generator, photos: list[np.ndarray], h: int, w: int) -> np.ndarray:
    p = photos[int(rng.integers(len(photos)))]
    if h > p.shape[0] or w > p.shape[1]:  # larger than the photo: mirrored on past its edges
        p = np.pad(p, ((0, max(0, h - p.shape[0])), (0, max(0, w - p.shape[1])), (0, 0)), mode="symmetric")
    y, x = int(rng.integers(0, p.shape[0] - h + 1)), int(rng.integers(0, p.shape[1] - w + 1))
    return p[y : y + h, x : x + w]


def synthetic_image(kind: str, rng: np.random.Generator, max_side: int = 64, photos=None) -> np.ndarray:
    """One image of ``kind`` (one of :data:`KINDS`), drawn with ``rng``: ``H x W x C`` uint8, of
    sides 1 to ``max_side`` (a whole number >= 1)."""
    if not (is_whole(max_side) and max_side >= 1):
        raise AdatokError(f"max_side is a whole number >= 1, got {max_side!r}")
    h, w = (int(v) for v in rng.integers(1, max_side + 1, 2))
    c = int(rng.choice([1, 3]))
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "flat":
        v = rng.choice([0, 255, int(rng.integers(0, 256))], size=c)
        return np.broadcast_to(np.array(v, np.uint8), (h, w, c)).copy()
    if kind in ("saturated", "photo"):
        crop = _crop(rng, photos or _photos(), h, w)
        if kind == "photo":
            return crop.copy()
        gain = rng.uniform(2, 6)  # contrast stretched until much of it clips to black or white
        return np.clip((crop.astype(np.float64) - 128) * gain + 128, 0, 255).astype(np.uint8)
    if kind == "gradient":
        a, b = rng.uniform(-1, 1, 2)
        f = a * yy / h + b * xx / w
        f = (f - f.min()) / (np.ptp(f) + 1e-9)
        lo, hi = sorted(int(v) for v in rng.integers(0, 256, 2))
        return np.repeat(np.rint(lo + f * (hi - lo)).astype(np.uint8)[..., None], c, 2)
    if kind == "checker":
        p = int(rng.integers(1, 9))
        m = ((yy // p + xx // p) % 2).astype(bool)
        a, b = rng.integers(0, 256, (2, c))
        return np.where(m[..., None], a, b).astype(np.uint8)
    if kind == "stripes":
        p = int(rng.integers(1, 9))
        m = (((xx if rng.random() < 0.5 else yy) // p) % 2).astype(bool)
        return np.repeat(np.where(m, 0, 255).astype(np.uint8)[..., None], c, 2)
    if kind == "text":
        img = np.full((h, w, c), 255, np.uint8)
        for _ in range(int(rng.integers(1, 12))):
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            img[y0 : y0 + int(rng.integers(1, 4)), x0 : x0 + int(rng.integers(1, 8))] = 0
        return img
    if kind == "binary":
        on = rng.random((h, w)) < rng.uniform(0.05, 0.95)
        return np.repeat(on.astype(np.uint8)[..., None] * 255, c, 2)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if kind == "tiny":
        h, w = (int(v) for v in rng.integers(1, min(8, max_side + 1), 2))  # (the same draws from 7 on)
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if kind == "pixelart":
        f = int(rng.integers(2, 9))
        small = rng.integers(0, 256, (max(1, h // f), max(1, w // f), c), dtype=np.uint8)
        return np.repeat(np.repeat(small, f, 0), f, 1)[:max_side, :max_side]  # (a block may be larger than h)
    if kind == "dot":
        img = np.full((h, w, c), int(rng.integers(0, 256)), np.uint8)
        img[int(rng.integers(h)), int(rng.integers(w))] = rng.integers(0, 256, c)
        return img
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")


def synthetic_images(n: int = 300, seed: int = 0, max_side: int = 64) -> list[tuple[str, np.ndarray]]:
    """``n`` images, the kinds taking turns: ``("{index}-{kind}", H x W x C uint8)`` pairs."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    return [(f"{i}-{KINDS[i % len(KINDS)]}", synthetic_image(KINDS[i % len(KINDS)], rng, max_side, photos))
            for i in range(n)]
