"""The header a generator uses: one per image shape, whatever the image.

A wavelet sequence's header (``seq.params``) holds values that come from the image: the top
bit-plane ``nmax``, a pixel replication ``rep`` and a region of interest ``roi``. A model that
generates sequences from nothing cannot know them, so every image of a shape gets the same header
(:func:`fixed_params`): no replication, no region, and ``nmax`` fixed at :func:`top_plane`, the
largest top plane the tokenizer can produce for an 8-bit image of that shape. An image whose own
``nmax`` is lower is re-expressed from that plane (:func:`raise_top_plane`): at a plane above every
coded magnitude the walk says ``SIG0`` to each root in the LIP and ``D0`` to each root set, so
re-expressing prepends those tokens and changes nothing after them.

:func:`top_plane` is an upper bound computed from the transforms (no image is tried):

* ``wavelet``: a 9/7 coefficient is a weighted sum of level-shifted pixels (|x| <= 128 after the
  colour transform, whose rows sum to at most 1 in absolute value), so it is at most 128 times the
  l1 norm of its analysis weights; the coded magnitude is that times its weight, rounded.
* ``wavelet-lossless``: the same for the linear part of the 5/3 (inputs up to 128 for gray and Y,
  255 for the RCT's colour differences), plus a bound on what the lifting's rounding adds (each
  pass adds at most 3/4, and the next levels carry it on by the l1 norm of their cascade),
  shifted by the coefficient's bit-plane shift.

The bound is attained: :func:`witness` builds the image (the signs of the analysis weights of
the coefficient with the largest bound) whose ``nmax`` reaches it; ``tests/test_stepper.py``
checks this on several shapes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .layout import Layout, band_level
from .spiht import D0, SIG0
from .transforms import analysis_rows, default_levels

# An axis longer than this is bounded through a shorter one with the same boundaries (see
# _axis): the analysis matrices take O(n**2) memory. The rows of a coefficient at 6 levels reach
# 4 * (2**6 - 1) = 252 samples on each side (9/7), so 1024 samples keep the two ends apart.
_LONG_AXIS = 1152
_SHORT_AXIS = 1024


def _reduced(n: int) -> int:
    """The length an axis of ``n`` samples is bounded with: itself, or for a long axis a shorter
    one with the same parities at every level (``n`` modulo 128 = 2**(6 + 1)), whose rows take
    the same l1 norms (the interior ones are all alike, the ends have the same shape)."""
    return n if n <= _LONG_AXIS else _SHORT_AXIS + n % 128


@lru_cache(maxsize=64)
def _axis(n: int, levels: int, wavelet: str) -> tuple:
    """The analysis of an axis of ``n`` samples, level by level.

    Returns ``(norms, rows)``: ``norms[j][m]`` holds the largest row l1 norm (how many times the
    largest input a coefficient can be) of the low and of the high band ``m + 1`` levels after
    level ``j`` (0: the pixels), on the low band the axis has after ``j`` levels; ``rows[m]``
    holds the row of the pixels' cascade (``j = 0``) that has it, for :func:`witness`.
    """
    norms, rows = [], []
    for j in range(levels):
        m = _reduced(n)
        lows, highs = analysis_rows(m, levels - j, wavelet)
        lo = [_largest(a, m) for a in lows]
        hi = [_largest(a, m) for a in highs]
        norms.append(tuple((a[0], b[0]) for a, b in zip(lo, hi)))
        if j == 0:
            rows = [(a[1], b[1]) for a, b in zip(lo, hi)]
        n = (n + 1) // 2
    return tuple(norms), tuple(rows)


def _largest(rows: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """The largest row l1 norm of ``rows`` and the first row that has it (to rounding: the
    interior rows are alike, and the first of them lies in the axis's first half, as
    :func:`_full_row` needs)."""
    if rows.shape[0] == 0:
        return 0.0, np.zeros(m)
    norms = np.abs(rows).sum(1)
    top = float(norms.max())
    return top, rows[int(np.argmax(norms >= top * (1 - 1e-9)))]


def _band_axes(k: int, levels: int) -> tuple[int, int, int]:
    """Band index ``k`` -> (level index l, 0-based; y high?, x high?)."""
    if k == 0:
        return levels - 1, 0, 0
    lev = band_level(k, levels)
    b = (k - 1) % 3 + 1  # 1 HL (high along x), 2 LH (high along y), 3 HH
    return lev - 1, int(b in (2, 3)), int(b in (1, 3))


# What one lifting pass of the rounded 5/3 adds to the error of its low and high outputs, with
# no error in its input: the predict rounds by at most 1/2; the update rounds by at most 1/2 and
# adds a quarter of two predictions (1/4).
_ROUND = (0.75, 0.5)


def _rounding(ny: tuple, nx: tuple, levels: int) -> dict:
    """``{(level, y high, x high): e}``: how far a coefficient of the rounded 5/3 can be from its
    linear part. The error is linear in what each level's rounding adds (:data:`_ROUND` along
    y, then carried by x's l1 gain plus x's own), so it is at most the sum, over the levels before,
    of what each added to its LL times the l1 norm of the cascade from there to the band."""
    out = {}
    for lev in range(levels):
        for yh in (0, 1):
            for xh in (0, 1):
                e = nx[lev][0][xh] * _ROUND[yh] + _ROUND[xh]  # this level's own
                for j in range(lev):  # each earlier level's LL, carried on to this band
                    c = nx[j][0][0] * _ROUND[0] + _ROUND[0]
                    e += ny[j + 1][lev - j - 1][yh] * nx[j + 1][lev - j - 1][xh] * c
                out[lev, yh, xh] = e
    return out


def _bounds(tok, layout: Layout) -> list[tuple[int, int, int]]:
    """``(largest coded magnitude, channel, band)`` for every band of every channel of ``layout``."""
    h, w = layout.shape
    levels = layout.levels
    wavelet = "5/3" if tok.lossless else "9/7"
    ny, nx = _axis(h, levels, wavelet)[0], _axis(w, levels, wavelet)[0]
    if tok.lossless:
        shift = tok._shifts(layout)[0]
        rnd = _rounding(ny, nx, levels)
    else:
        weights = tok._weights(layout)
    out = []
    for c in range(layout.channels):
        top_in = 255.0 if (tok.lossless and c > 0) else 128.0  # RCT colour differences: -255..255
        for k, (bh, bw) in enumerate(layout.bands):
            if bh * bw == 0:
                continue
            first = int(layout.offsets[c, k])
            if levels == 0:
                l1, err = 1.0, 0.0
            else:
                lev, yh, xh = _band_axes(k, levels)
                l1 = ny[0][lev][yh] * nx[0][lev][xh]
                err = rnd[lev, yh, xh] if tok.lossless else 0.0
            if tok.lossless:
                mag = int(np.floor(top_in * l1 * (1 + 1e-12) + err)) << int(shift[first])
            else:
                mag = int(np.floor(top_in * l1 * float(weights[c, k]) * (1 + 1e-12) + 0.5))
            out.append((mag, c, k))
    return out


def top_plane(tok, layout: Layout) -> int:
    """The largest ``nmax`` ``tok`` can give an 8-bit image coded on ``layout`` (no region of
    interest): the top bit of the largest coded magnitude any image can reach."""
    return max(mag for mag, _, _ in _bounds(tok, layout)).bit_length() - 1


def witness(tok, layout: Layout, flip: bool = False) -> np.ndarray:
    """An 8-bit image of ``layout``'s shape whose largest coefficient comes as close to
    :func:`top_plane`'s bound as the pixels allow: each pixel at 0 or 255 by the sign of its weight
    in the coefficient whose bound is largest (for a colour difference, its two colours opposite);
    ``flip``: the opposite signs (the level-shifted pixels reach -128 but only 127)."""
    h, w = layout.shape
    _, c, k = max(_bounds(tok, layout))
    if layout.levels == 0:
        sy, sx = np.ones(h), np.ones(w)
    else:
        wavelet = "5/3" if tok.lossless else "9/7"
        lev, yh, xh = _band_axes(k, layout.levels)
        sy = _full_row(_axis(h, layout.levels, wavelet)[1][lev][yh], h)
        sx = _full_row(_axis(w, layout.levels, wavelet)[1][lev][xh], w)
    up = (np.outer(sy, sx) >= 0) != flip
    hi = np.where(up, 255, 0).astype(np.uint8)
    if layout.channels == 1:
        return hi[:, :, None]
    lo = 255 - hi
    if c == 0:
        rgb = (hi, hi, hi)
    elif tok.lossless:  # Cb = B - G, Cr = R - G
        mid = np.full_like(hi, 128)
        rgb = (mid, lo, hi) if c == 1 else (hi, lo, mid)
    else:  # Cb and Cr weigh B (R) positively, the two others negatively
        rgb = (lo, lo, hi) if c == 1 else (hi, lo, lo)
    return np.stack(rgb, axis=-1)


def _full_row(row: np.ndarray, n: int) -> np.ndarray:
    """A row of a reduced axis (see :func:`_reduced`) as weights over the full ``n`` samples:
    the reduced axis's second half stands for the full axis's end."""
    m = row.shape[0]
    if m == n:
        return row
    out = np.zeros(n)
    half = m // 2
    out[:half] = row[:half]
    out[n - (m - half):] = row[half:]
    return out


def fixed_params(tok, shape: tuple[int, ...]) -> dict:
    """The header every ``fixed_header`` sequence and every stepper started from ``shape`` has:
    the levels of the shape, the tokenizer's step (``wavelet``), ``nmax`` = :func:`top_plane`."""
    params = {"levels": default_levels(shape[:2], tok.max_levels)}
    if not tok.lossless:
        params["step"] = tok.step
    params["nmax"] = tok._top_plane(tok._layout(tuple(shape), params | {"nmax": 0}))
    return params


def raise_top_plane(layout: Layout, shift: np.ndarray, smin_d: np.ndarray, old: int,
                    new: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tokens a sequence of top plane ``old`` gains in front when it is re-expressed from plane
    ``new``: for each plane ``p`` from ``new`` down to ``old + 1``, ``SIG0`` for every root the walk
    tests there (``p >= shift``) and ``D0`` for every root set it tests (``p >= smin_d``), in the
    walk's order. Returns ``(ids, node, plane)`` as the walk would."""
    roots = layout.roots
    sets = roots[layout.child_ptr[roots + 1] > layout.child_ptr[roots]]
    ids, node, plane = [], [], []
    for p in range(new, old, -1):
        lip = roots[shift[roots] <= p]
        lis = sets[smin_d[sets] <= p]
        ids += [np.full(len(lip), SIG0), np.full(len(lis), D0)]
        node += [lip, lis]
        plane += [np.full(len(lip) + len(lis), p)]
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    return cat(ids, np.int32), cat(node, np.int32), cat(plane, np.int8)
