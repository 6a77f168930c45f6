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
``HH`` high-pass along both. Every lifting step is a whole-array numpy operation: there is no
Python loop over samples.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

WAVELETS = ("5/3", "9/7")

# CDF 9/7 lifting constants (JPEG 2000 Part 1, Annex F).
_A = -1.586134342059924
_B = -0.052980118572961
_G = 0.882911075530934
_D = 0.443506852043971
_K = 1.230174104914001


def _right(v: np.ndarray, n_out: int) -> np.ndarray:
    """Neighbour at index ``i + 1`` for ``i < n_out``, mirrored past the end (symmetric extension)."""
    if v.shape[0] >= n_out + 1:
        return v[1 : n_out + 1]
    return np.concatenate([v[1:n_out], v[n_out - 1 : n_out]], axis=0)


def _left(v: np.ndarray, n_out: int) -> np.ndarray:
    """Neighbour at index ``i - 1`` for ``i < n_out``, mirrored before the start, and past the end."""
    idx = np.arange(-1, n_out - 1)
    idx[0] = 0
    idx = np.minimum(idx, v.shape[0] - 1)
    return v[idx]


def _own(v: np.ndarray, n_out: int) -> np.ndarray:
    """Neighbour at index ``i`` for ``i < n_out``, the last one repeated past the end (mirroring)."""
    if v.shape[0] >= n_out:
        return v[:n_out]
    return np.concatenate([v, v[-1:]], axis=0)


def _lift_forward(x: np.ndarray, wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """One 1-D analysis step along axis 0: returns (low, high)."""
    s = x[0::2].copy()
    d = x[1::2].copy()
    ns, nd = s.shape[0], d.shape[0]
    if nd == 0:
        return s, d
    if wavelet == "5/3":
        d -= (s[:nd] + _right(s, nd)) >> 1
        s += (_left(d, ns) + _own(d, ns) + 2) >> 2
        return s, d
    d += _A * (s[:nd] + _right(s, nd))
    s += _B * (_left(d, ns) + _own(d, ns))
    d += _G * (s[:nd] + _right(s, nd))
    s += _D * (_left(d, ns) + _own(d, ns))
    return s / _K, d * (_K / 2.0)


def _lift_inverse(s: np.ndarray, d: np.ndarray, wavelet: str) -> np.ndarray:
    """Inverse of :func:`_lift_forward` along axis 0."""
    ns, nd = s.shape[0], d.shape[0]
    out = np.empty((ns + nd,) + s.shape[1:], dtype=s.dtype)
    if nd == 0:
        out[0::2] = s
        return out
    if wavelet == "5/3":
        s = s - ((_left(d, ns) + _own(d, ns) + 2) >> 2)
        d = d + ((s[:nd] + _right(s, nd)) >> 1)
    elif wavelet == "5/3-linear":  # the 5/3 synthesis without its rounding, for gains
        s = s - (_left(d, ns) + _own(d, ns)) / 4.0
        d = d + (s[:nd] + _right(s, nd)) / 2.0
    else:
        s = s * _K
        d = d / (_K / 2.0)
        s = s - _D * (_left(d, ns) + _own(d, ns))
        d = d - _G * (s[:nd] + _right(s, nd))
        s = s - _B * (_left(d, ns) + _own(d, ns))
        d = d - _A * (s[:nd] + _right(s, nd))
    out[0::2] = s
    out[1::2] = d
    return out


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
        lo, hi = _lift_forward(a, wavelet)  # along y
        ll, hl = (t.T for t in _lift_forward(lo.T, wavelet))  # along x
        lh, hh = (t.T for t in _lift_forward(hi.T, wavelet))
        details.append((np.ascontiguousarray(hl), np.ascontiguousarray(lh), np.ascontiguousarray(hh)))
        a = np.ascontiguousarray(ll)
    return [a] + details[::-1]


def idwt2(coeffs: list, wavelet: str) -> np.ndarray:
    """Inverse of :func:`dwt2`; the output shape follows from the band shapes."""
    _check_wavelet(wavelet)
    a = coeffs[0]
    for hl, lh, hh in coeffs[1:]:
        lo = _lift_inverse(a.T, hl.T, wavelet).T
        hi = _lift_inverse(lh.T, hh.T, wavelet).T
        a = _lift_inverse(lo, hi, wavelet)
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
    return np.einsum("ij,hwj->ihw", _ICT, rgb.astype(np.float64))


def ict_inverse(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ict_forward`: 3 x H x W -> H x W x 3 float64."""
    return np.einsum("ij,jhw->hwi", _ICT_INV, ycc)
