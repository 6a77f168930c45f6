"""Regions of interest for the wavelet tokenizers: where the early tokens go.

A region-of-interest map (H x W, values in [0, 1]) becomes extra bit-plane shifts of the wavelet
coefficients over it, as JPEG 2000's Maxshift scales ROI coefficients up, but graded: a
coefficient gets ``round(ROI_SHIFT * m)`` extra planes, where ``m`` is the map's largest value in
its grid cell (below), averaged over the cells it covers at the coarse levels. Shifted coefficients reach every bit-plane earlier, so the
region is refined first; no token is spent on the planes below a coefficient's own bit 0, so the
full sequence is about as long as without a region (the set partitioning changes a little: on
64x64 noise, 32,170 -> 32,258 tokens) and ``wavelet-lossless`` stays bit-exact.

What the decoder needs travels in the sequence's params (and so in the ``.atk`` header): the map
max-pooled to a grid of ``2**g``-pixel cells (``g = levels - 2``, e.g. 16-pixel cells for a
512 x 512 image), quantised to ``0..ROI_SHIFT``, zlib-compressed and base64-encoded: typically a
few dozen bytes for a mask.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

from ..core.errors import ContainerError, ImageFormatError
from .layout import Layout

#: Most extra bit-planes a coefficient under the region gets (a weight of 2**ROI_SHIFT).
ROI_SHIFT = 4



def _pool(grid: np.ndarray, factor: int, mean: bool) -> np.ndarray:
    """Max (or rounded mean) over ``factor x factor`` blocks; a last, partial block counts only
    the cells it has."""
    if factor == 1:
        return grid
    h, w = grid.shape
    hh, ww = -(-h // factor), -(-w // factor)
    padded = np.zeros((hh * factor, ww * factor), np.float64)
    padded[:h, :w] = grid
    blocks = padded.reshape(hh, factor, ww, factor)
    if not mean:
        return blocks.max(axis=(1, 3)).astype(grid.dtype)
    cells = np.zeros_like(padded)
    cells[:h, :w] = 1
    count = cells.reshape(hh, factor, ww, factor).sum(axis=(1, 3))
    return np.rint(blocks.sum(axis=(1, 3)) / count).astype(grid.dtype)


def cell_log2(levels: int) -> int:
    """log2 of the grid cell size, in pixels, for a decomposition of ``levels``."""
    return max(0, levels - 2)


def roi_params(roi_map: np.ndarray, shape: tuple[int, int], levels: int) -> dict:
    """The compact description of a map that decoding needs (goes into the sequence params)."""
    m = np.asarray(roi_map, dtype=np.float64)
    if m.shape != tuple(shape):
        raise ImageFormatError(f"region-of-interest map is {m.shape[0]}x{m.shape[1]} but the image is "
                               f"{shape[0]}x{shape[1]}: give a map of the image's size")
    if not np.all(np.isfinite(m)) or m.min() < 0 or m.max() > 1:
        raise ImageFormatError("region-of-interest map values must be finite and in [0, 1]")
    g = cell_log2(levels)
    # In 8-bit steps first: a map and its PNG (adatok saliency writes rint(255 m)) code the same region;
    # the cells' cut-offs, (k + 1/2) / ROI_SHIFT, lie between 8-bit levels, and a method's map a hair
    # from one was another number of planes than its saved PNG (4 of 16 images x methods)
    m = np.rint(m * 255.0) / 255.0
    grid = np.rint(_pool(m, 1 << g, mean=False) * ROI_SHIFT).astype(np.uint8)
    data = base64.b64encode(zlib.compress(grid.tobytes(), 9)).decode()
    return {"g": g, "s": ROI_SHIFT, "d": data}


def grid_from_params(p: dict, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Inverse of :func:`roi_params`: the quantised grid and its cell size (log2)."""
    try:
        g = int(p["g"])
        if not 0 <= g <= 30 or int(p["s"]) != ROI_SHIFT:
            raise ValueError("grid")
        gh, gw = -(-shape[0] // (1 << g)), -(-shape[1] // (1 << g))
        inflate = zlib.decompressobj()  # at most one byte past the grid's size: a header cannot inflate more
        raw = inflate.decompress(base64.b64decode(p["d"], validate=True), gh * gw + 1)
        grid = np.frombuffer(raw, np.uint8).reshape(gh, gw)
        if grid.max(initial=0) > ROI_SHIFT:
            raise ValueError("values")
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        why = {"grid": "its grid's cell size is out of range", "values": "its values are out of range"}.get(str(exc)) \
            or ("a field is missing" if isinstance(exc, KeyError) else f"its grid does not fit the image ({type(exc).__name__})")
        raise ContainerError(f"the region of interest in the header is invalid ({why}): the file is corrupt") from None
    return grid, g


def node_shifts(grid: np.ndarray, g: int, layout: Layout) -> np.ndarray:
    """Extra shift of every node: its grid cell's value, or for a node covering several cells (the
    coarse levels) their rounded mean, so a coarse coefficient that only touches the region is not
    fully boosted."""
    level, y, x = layout.node_pos[:, 0], layout.node_pos[:, 3], layout.node_pos[:, 4]
    out = np.zeros(layout.size, np.int64)
    for lev in np.unique(level):
        sel = level == lev
        if lev >= g:
            pooled = _pool(grid, 1 << (lev - g), mean=True)
            yy, xx = y[sel], x[sel]
        else:
            pooled = grid
            yy, xx = y[sel] >> (g - lev), x[sel] >> (g - lev)
        out[sel] = pooled[np.minimum(yy, pooled.shape[0] - 1), np.minimum(xx, pooled.shape[1] - 1)]
    return out
