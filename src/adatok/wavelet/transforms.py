"""Wavelet and colour transforms of the wavelet tokenizers.

Two lifting wavelets, as in JPEG 2000 Part 1:

* ``"5/3"``: LeGall 5/3 integer lifting, reversible (lossless), on int64 arrays;
* ``"9/7"``: CDF 9/7 float lifting, irreversible, on float64 arrays.

Both use whole-sample symmetric extension and split a length-``n`` axis into ``ceil(n/2)`` low-pass
and ``floor(n/2)`` high-pass samples, so the transform is non-expansive for every size, odd ones
and 1-sample axes included (a 1-sample axis is passed through, its high band is empty).
Hand-written rather than PyWavelets because PyWavelets has no non-expansive symmetric mode for
odd lengths (its ``periodization`` mode adds a sample and wraps the border around), and it has no
reversible integer transform.

The layout follows ``pywt.wavedec2``: ``[LL_L, (HL_L, LH_L, HH_L), ..., (HL_1, LH_1, HH_1)]``,
coarsest first. ``HL`` is high-pass along x (width) and low-pass along y, ``LH`` the opposite,
``HH`` high-pass along both. The lifting runs in numba kernels (below): no Python loop over samples.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, types
from numba.extending import overload

WAVELETS = ("5/3", "9/7")

# CDF 9/7 lifting constants (JPEG 2000 Part 1, Annex F).
_A = -1.586134342059924
_B = -0.052980118572961
_G = 0.882911075530934
_D = 0.443506852043971
_K = 1.230174104914001


# --- lifting kernels -------------------------------------------------------------------------------
# Compiled with numba: the numpy version (a whole-array operation per lifting step, on transposed
# views for the x axis) took 17 ms per 768x512 RGB analysis and 24 ms per synthesis (now 7 and 9).
# The kernels do the same floating-point operations in the same order, so their output is
# bit-identical to it (``benchmarks/bytes_identity.py`` checks the bytes that depend on them).
# The helpers are plain compiled functions, not inlined into numba's IR (inline="always"): LLVM
# inlines them all the same, and the first compile of the transforms takes 14 s (measured; it was
# longer with inline="always").
# Each kernel lifts along axis 1 of a 3-D array ``(P, n, Q)``: the ``P * Q`` lines are independent,
# and the innermost loop runs over ``Q`` (contiguous), so one kernel serves both image axes:
# ``(1, H, W)`` lifts along y, ``(H, W, 1)`` along x (see :func:`_lines`).


@njit(cache=True)
def _right(i, n):
    """Index of the neighbour at ``i + 1`` in a band of ``n`` samples, mirrored past its end."""
    return i + 1 if i + 1 < n else n - 1


@njit(cache=True)
def _left(i, n):
    """Index of the neighbour at ``i - 1`` in a band of ``n`` samples, mirrored before its start
    (and clipped past its end)."""
    j = i - 1 if i > 0 else 0
    return j if j < n else n - 1


@njit(cache=True)
def _own(i, n):
    """Index ``i`` in a band of ``n`` samples, the last one repeated past its end (mirroring)."""
    return i if i < n else n - 1


@njit(cache=True)
def _split_line(x, s, d, p, Q):
    for i in range(s.shape[1]):
        for q in range(Q):
            s[p, i, q] = x[p, 2 * i, q]
    for i in range(d.shape[1]):
        for q in range(Q):
            d[p, i, q] = x[p, 2 * i + 1, q]


@njit(cache=True)
def _split(x):
    """Even and odd samples along axis 1: ``(P, n, Q)`` -> ``(P, ceil(n/2), Q)``, ``(P, floor(n/2), Q)``."""
    P, n, Q = x.shape
    s = np.empty((P, (n + 1) // 2, Q), x.dtype)
    d = np.empty((P, n // 2, Q), x.dtype)
    for p in range(P):  # element by element: a slice copy would allocate per line
        if Q == 1:  # lifting along x: with the constant, the compiler drops the inner loop
            _split_line(x, s, d, p, 1)
        else:
            _split_line(x, s, d, p, Q)
    return s, d


@njit(cache=True)
def _merge_line(s, d, out, p, Q):
    for i in range(s.shape[1]):
        for q in range(Q):
            out[p, 2 * i, q] = s[p, i, q]
    for i in range(d.shape[1]):
        for q in range(Q):
            out[p, 2 * i + 1, q] = d[p, i, q]


@njit(cache=True)
def _merge(s, d):
    """Inverse of :func:`_split`: interleave ``s`` (even) and ``d`` (odd) samples along axis 1."""
    P, ns, Q = s.shape
    out = np.empty((P, ns + d.shape[1], Q), s.dtype)
    for p in range(P):
        if Q == 1:
            _merge_line(s, d, out, p, 1)
        else:
            _merge_line(s, d, out, p, Q)
    return out


def _rounded(x, off, sh):
    """What a lifting step adds, before its coefficient: ``(x + off) >> sh`` on integers (the
    rounding of the reversible 5/3), ``x`` itself on floats. Compiled code only (see below)."""
    raise NotImplementedError("_rounded is for compiled code")


@overload(_rounded, inline="always")
def _rounded_impl(x, off, sh):
    if isinstance(x, types.Integer):
        return lambda x, off, sh: (x + off) >> sh
    return lambda x, off, sh: x


@njit(cache=True)
def _predict(s, d, p, c, Q, off=0, sh=0):
    """``d[i] += c * (s[i] + s[i + 1])`` along axis 1 of line group ``p`` (on integers the sum is
    rounded, see :func:`_rounded`)."""
    ns = s.shape[1]
    for i in range(d.shape[1]):
        r = _right(i, ns)
        for q in range(Q):
            d[p, i, q] += c * _rounded(s[p, i, q] + s[p, r, q], off, sh)


@njit(cache=True)
def _update(s, d, p, c, Q, off=0, sh=0):
    """``s[i] += c * (d[i - 1] + d[i])`` along axis 1 of line group ``p`` (rounded on integers)."""
    nd = d.shape[1]
    for i in range(s.shape[1]):
        a, b = _left(i, nd), _own(i, nd)
        for q in range(Q):
            s[p, i, q] += c * _rounded(d[p, a, q] + d[p, b, q], off, sh)


@njit(cache=True)
def _scale(v, p, c, divide, Q):
    """``v[p] *= c``, or ``v[p] /= c`` with ``divide`` (a division, as the numpy version did:
    multiplying by the reciprocal would round differently)."""
    for i in range(v.shape[1]):
        for q in range(Q):
            if divide:
                v[p, i, q] /= c
            else:
                v[p, i, q] *= c


@njit(cache=True)
def _steps(s, d, p, Q, kind):
    """The lifting steps of one line group: ``kind`` 0 = 5/3 analysis, 1 = 5/3 synthesis (int64,
    rounded), 2 = 9/7 analysis, 3 = 9/7 synthesis, 4 = 5/3 synthesis without rounding (float64;
    what the band gains of ``"5/3"`` are measured with), 5 = 5/3 analysis without rounding
    (float64; what the largest coefficients of ``"5/3"`` are bounded with)."""
    if kind == 0:
        _predict(s, d, p, -1, Q, 0, 1)
        _update(s, d, p, 1, Q, 2, 2)
    elif kind == 1:
        _update(s, d, p, -1, Q, 2, 2)
        _predict(s, d, p, 1, Q, 0, 1)
    elif kind == 2:
        _predict(s, d, p, _A, Q)
        _update(s, d, p, _B, Q)
        _predict(s, d, p, _G, Q)
        _update(s, d, p, _D, Q)
        _scale(s, p, _K, True, Q)
        _scale(d, p, _K / 2.0, False, Q)
    elif kind == 3:
        _scale(s, p, _K, False, Q)
        _scale(d, p, _K / 2.0, True, Q)
        _update(s, d, p, -_D, Q)
        _predict(s, d, p, -_G, Q)
        _update(s, d, p, -_B, Q)
        _predict(s, d, p, -_A, Q)
    elif kind == 4:
        _update(s, d, p, -0.25, Q)
        _predict(s, d, p, 0.5, Q)
    else:
        _predict(s, d, p, -0.5, Q)
        _update(s, d, p, 0.25, Q)


@njit(cache=True)
def _lift(s, d, kind):
    """The lifting of ``kind`` (see :func:`_steps`), in place on every line group of ``s`` and ``d``."""
    if d.shape[1] == 0:
        return  # a 1-sample axis: passed through
    Q = s.shape[2]
    for p in range(s.shape[0]):
        if Q == 1:  # lifting along x: with the constant, the compiler drops the inner loop
            _steps(s, d, p, 1, kind)
        else:
            _steps(s, d, p, Q, kind)


def _lines(v: np.ndarray, axis: int) -> np.ndarray:
    """A contiguous 3-D view of ``v`` whose axis 1 is ``v``'s ``axis`` (see the kernels above)."""
    v = np.ascontiguousarray(v)
    if v.ndim == 1:
        return v.reshape(1, -1, 1)
    return v.reshape(1, *v.shape) if axis == 0 else v.reshape(*v.shape, 1)


def _lift_forward(x: np.ndarray, wavelet: str, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One 1-D analysis step along ``axis`` (0 or 1) of a 1-D or 2-D array: returns (low, high);
    ``"5/3-linear"`` is the 5/3 without rounding."""
    s, d = _split(_lines(x, axis))
    _lift(s, d, {"5/3": 0, "9/7": 2, "5/3-linear": 5}[wavelet])
    return _unlines(s, x, axis), _unlines(d, x, axis)


def _lift_inverse(s: np.ndarray, d: np.ndarray, wavelet: str, axis: int = 0) -> np.ndarray:
    """Inverse of :func:`_lift_forward` along ``axis``; ``"5/3-linear"`` is the 5/3 without rounding."""
    ls, ld = _lines(s, axis).copy(), _lines(d, axis).copy()
    _lift(ls, ld, {"5/3": 1, "9/7": 3, "5/3-linear": 4}[wavelet])
    return _unlines(_merge(ls, ld), s, axis)


def _unlines(v: np.ndarray, like: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of :func:`_lines`: back to the dimensions of ``like``."""
    if like.ndim == 1:
        return v.reshape(-1)
    return v[0] if axis == 0 else v[:, :, 0]


def _check_wavelet(wavelet: str) -> None:
    if wavelet not in WAVELETS:
        raise ValueError(f"unknown wavelet {wavelet!r}; expected one of {WAVELETS}")


def dwt2(x: np.ndarray, levels: int, wavelet: str) -> list:
    """Multi-level 2-D forward transform of a 2-D array.

    ``"5/3"`` takes and returns int64, ``"9/7"`` float64. Returns
    ``[LL, (HL, LH, HH) coarsest, ..., (HL, LH, HH) finest]``.
    """
    _check_wavelet(wavelet)
    a = np.asarray(x, dtype=np.int64 if wavelet == "5/3" else np.float64)
    details = []
    for _ in range(levels):
        lo, hi = _lift_forward(a, wavelet, 0)  # along y
        ll, hl = _lift_forward(lo, wavelet, 1)  # along x
        lh, hh = _lift_forward(hi, wavelet, 1)
        details.append((hl, lh, hh))
        a = ll
    return [a] + details[::-1]


def idwt2(coeffs: list, wavelet: str) -> np.ndarray:
    """Inverse of :func:`dwt2`; the output shape follows from the band shapes."""
    _check_wavelet(wavelet)
    a = coeffs[0]
    for hl, lh, hh in coeffs[1:]:
        lo = _lift_inverse(a, hl, wavelet, 1)
        hi = _lift_inverse(lh, hh, wavelet, 1)
        a = _lift_inverse(lo, hi, wavelet, 0)
    return a


def band_shapes(shape: tuple[int, int], levels: int) -> list:
    """Shapes of the bands :func:`dwt2` gives for a 2-D ``shape``, in its layout."""
    h, w = shape
    details = []
    for _ in range(levels):
        hl = ((h + 1) // 2, w // 2)
        lh = (h // 2, (w + 1) // 2)
        hh = (h // 2, w // 2)
        details.append((hl, lh, hh))
        h, w = (h + 1) // 2, (w + 1) // 2
    return [(h, w)] + details[::-1]


def default_levels(shape: tuple[int, int], max_levels: int = 6) -> int:
    """Decomposition depth: about ``log2(max(H, W)) - 2``, at most ``max_levels``, at least 0."""
    longest = max(shape)
    return int(min(max_levels, max(0, int(np.ceil(np.log2(longest))) - 2 if longest > 1 else 0)))


def analysis_rows(n: int, levels: int, wavelet: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The 1-D analysis of a length-``n`` axis as matrices: ``(lows, highs)``, where row ``i`` of
    ``lows[l]`` (``highs[l]``) holds the weights of the input samples in coefficient ``i`` of the
    low (high) band after ``l + 1`` levels, as :func:`dwt2` takes them along each axis.
    ``"5/3-linear"``: the 5/3 without rounding. Memory is ``O(n**2)``: for short axes."""
    kind = {"5/3": "5/3-linear", "9/7": "9/7", "5/3-linear": "5/3-linear"}[wavelet]
    a = np.eye(n)  # column j: an impulse at sample j, carried through the cascade
    lows, highs = [], []
    for _ in range(levels):
        a, hi = _lift_forward(a, kind, 0)
        lows.append(a)
        highs.append(hi)
    return lows, highs


@lru_cache(maxsize=256)
def _gains_1d(n: int, levels: int, wavelet: str) -> tuple:
    """1-D synthesis energy of each band of a length-``n`` axis.

    Returns ``(low, highs)``: ``low[l]`` is the gain of the low band after ``l + 1`` levels and
    ``highs[l]`` that of the high band of level ``l + 1`` (index 0 = finest), each measured with an
    impulse in the middle of the band.
    """
    sizes = []
    m = n
    for _ in range(levels):
        sizes.append(((m + 1) // 2, m // 2))
        m = (m + 1) // 2

    def energy(top: int, low: np.ndarray, high: np.ndarray) -> float:
        sig = _lift_inverse(low, high, wavelet)
        for lev in range(top - 1, -1, -1):
            sig = _lift_inverse(sig, np.zeros(sizes[lev][1]), wavelet)
        return float(np.sum(sig**2))

    lows, highs = [], []
    for lev in range(levels):
        ns, nd = sizes[lev]
        low = np.zeros(ns)
        low[ns // 2] = 1.0
        lows.append(energy(lev, low, np.zeros(nd)))
        if nd:
            high = np.zeros(nd)
            high[nd // 2] = 1.0
            highs.append(energy(lev, np.zeros(ns), high))
        else:
            highs.append(0.0)
    return tuple(lows), tuple(highs)


def synthesis_gains(shape: tuple[int, int], levels: int, wavelet: str = "9/7") -> list:
    """Energy gain of each band's synthesis functions, in :func:`dwt2`'s layout.

    For ``"5/3"`` the gains are those of its linear part (the lifting without rounding).

    A coefficient error ``e`` in a band of gain ``g`` costs about ``g * e**2`` of squared error in the
    image. The transform is separable, so a 2-D gain is the product of a row and a column gain.
    """
    h, w = shape
    if levels == 0:
        return [1.0]
    _check_wavelet(wavelet)
    kind = "5/3-linear" if wavelet == "5/3" else wavelet
    lo_y, hi_y = _gains_1d(h, levels, kind)
    lo_x, hi_x = _gains_1d(w, levels, kind)
    out = [lo_y[-1] * lo_x[-1]]
    for lev in range(levels - 1, -1, -1):
        out.append((lo_y[lev] * hi_x[lev], hi_y[lev] * lo_x[lev], hi_y[lev] * hi_x[lev]))
    return out


# --- colour transforms -------------------------------------------------------------------------

# ITU-R BT.601 full-range YCbCr (JPEG 2000's irreversible colour transform).
_ICT = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64
)
_ICT_INV = np.linalg.inv(_ICT)
#: Squared-error gain of each ICT channel in the RGB domain (column energies of the inverse).
ICT_CHANNEL_GAINS = tuple(float(g) for g in np.sum(_ICT_INV**2, axis=0))
#: The same for the RCT, from its linear part (R = Y + 3/4 Cr - 1/4 Cb, G = Y - 1/4 (Cb + Cr), ...).
RCT_CHANNEL_GAINS = (3.0, 11.0 / 16.0, 11.0 / 16.0)


def rct_forward(rgb: np.ndarray) -> np.ndarray:
    """Reversible colour transform (JPEG 2000 RCT): H x W x 3 ints -> 3 x H x W int64 (Y, Cb, Cr)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    y = (r + 2 * g + b) >> 2
    return np.stack([y, b - g, r - g])


def rct_inverse(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rct_forward`: 3 x H x W int64 -> H x W x 3 int64."""
    y, cb, cr = ycc
    g = y - ((cb + cr) >> 2)
    return np.stack([cr + g, g, cb + g], axis=-1)


def ict_forward(rgb: np.ndarray) -> np.ndarray:
    """Irreversible colour transform: H x W x 3 floats -> 3 x H x W float64 (Y, Cb, Cr)."""
    return _ict_forward(np.ascontiguousarray(rgb, dtype=np.float64), _ICT)


def ict_inverse(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ict_forward`: 3 x H x W -> H x W x 3 float64."""
    if ycc.shape[1] * ycc.shape[2] == 1:  # einsum sums one pixel in another order: kept, bit for bit
        return np.einsum("ij,jhw->hwi", _ICT_INV, ycc)
    return _ict_inverse(np.ascontiguousarray(ycc, dtype=np.float64), _ICT_INV)


# The colour transforms were np.einsum calls; these loops sum the three products in the order
# einsum did (forward (r + b) + g, inverse (y + cb) + cr but for a 1-pixel image; tested bit for
# bit on random data of many sizes), so the coefficients, bytes and images did not change, and
# on a 768x512 image they take 0.9 ms instead of 7.8 (forward) and 0.3 instead of 1.2 (inverse).


@njit(cache=True)
def _ict_forward(rgb, m):
    h, w, _ = rgb.shape
    out = np.empty((3, h, w), np.float64)
    for y in range(h):
        for x in range(w):
            r, g, b = rgb[y, x, 0], rgb[y, x, 1], rgb[y, x, 2]
            for i in range(3):
                out[i, y, x] = (m[i, 0] * r + m[i, 2] * b) + m[i, 1] * g
    return out


@njit(cache=True)
def _ict_inverse(ycc, m):
    _, h, w = ycc.shape
    out = np.empty((h, w, 3), np.float64)
    for y in range(h):
        for x in range(w):
            a, b, c = ycc[0, y, x], ycc[1, y, x], ycc[2, y, x]
            for i in range(3):
                out[y, x, i] = (m[i, 0] * a + m[i, 1] * b) + m[i, 2] * c
    return out


@njit(cache=True)
def _to_uint8(x, offset):
    out = np.empty(x.shape, np.uint8)
    flat = x.reshape(-1)
    o = out.reshape(-1)
    for i in range(flat.shape[0]):
        v = np.rint(flat[i] + offset)
        o[i] = 0 if v < 0 else (255 if v > 255 else np.uint8(v))
    return out


def to_uint8(x: np.ndarray, offset: float) -> np.ndarray:
    """``clip(rint(x + offset), 0, 255)`` as uint8, in one pass (the numpy chain made three
    image-sized temporaries; same values)."""
    return _to_uint8(np.ascontiguousarray(x, dtype=np.float64), float(offset))
