"""Bjontegaard delta rate: how many more (or fewer) bits one rate-distortion curve needs than another."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import AdatokError

__all__ = ["bd_rate"]


def bd_rate(r1: Sequence[float], p1: Sequence[float], r2: Sequence[float], p2: Sequence[float]) -> float:
    """Bjontegaard delta rate (%) of curve 2 against curve 1 (piecewise-cubic in log rate).

    Each curve is given as rates (bits per pixel or bytes; only ratios matter) and qualities
    (PSNR in dB, or any measure that rises with rate). Log rate is interpolated as a monotone
    piecewise-cubic (PCHIP) function of quality and averaged over the quality range both curves
    cover. Negative means curve 2 needs fewer bits for the same quality: -10 is 10 % fewer.

    Points that are not finite (a budget a codec could not meet, a lossless ``inf`` dB) are
    dropped; of points of one quality (a saturated codec, rounded figures) the lowest rate is
    kept, whatever order they come in. ``nan`` when the curves do not overlap or either has
    fewer than two distinct qualities left. Rates and qualities of a curve are two flat sequences
    of one length (else :class:`~adatok.core.errors.AdatokError`).

    >>> round(bd_rate([1, 2, 4], [30, 33, 36], [0.9, 1.8, 3.6], [30, 33, 36]), 6)
    -10.0
    """
    from scipy.interpolate import PchipInterpolator

    def prep(r, p, which):
        try:
            r = np.asarray(r, dtype=np.float64)
            p = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise AdatokError(f"curve {which}: rates and qualities are sequences of numbers ({exc})") from None
        if r.ndim != 1 or p.ndim != 1 or len(r) != len(p):
            raise AdatokError(f"curve {which}: rates and qualities are two flat sequences of one length, "
                              f"got shapes {r.shape} and {p.shape}")
        keep = np.isfinite(r) & np.isfinite(p) & (r > 0)
        r, p = r[keep], p[keep]
        order = np.lexsort((r, p))  # by quality, then rate: np.unique keeps the first, the lowest rate
        p, idx = np.unique(p[order], return_index=True)
        return p, np.log(r[order][idx])

    q1, l1 = prep(r1, p1, 1)
    q2, l2 = prep(r2, p2, 2)
    if len(q1) < 2 or len(q2) < 2:
        return float("nan")
    lo, hi = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if hi <= lo:
        return float("nan")
    f1, f2 = PchipInterpolator(q1, l1), PchipInterpolator(q2, l2)
    a1 = f1.integrate(lo, hi) / (hi - lo)
    a2 = f2.integrate(lo, hi) / (hi - lo)
    return float((np.exp(a2 - a1) - 1) * 100)
