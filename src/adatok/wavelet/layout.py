"""The trees of the wavelet language: every coefficient of every channel as a node of a forest.

Nodes are numbered channel by channel; inside a channel the LL band comes first, then the detail
bands from the coarsest level to the finest (HL, LH, HH at each level), each in raster order, so a
parent always has a smaller number than its children. A detail coefficient at ``(y, x)`` of level
``j`` has its parent at ``(y // 2, x // 2)`` in the same band of level ``j + 1`` (clipped to that
band, so the last row or column of an odd-sized band adopts the orphans); the coarsest detail
coefficients, and those whose coarser band is empty (a 1-pixel axis), hang from the LL
coefficient over them. The LL coefficients are the roots.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from .transforms import band_shapes

#: Names of the ``pos`` columns of a wavelet token, in order.
POS_FIELDS = ("plane", "level", "band", "channel", "y", "x")
BAND_NAMES = ("LL", "HL", "LH", "HH")


#: Which neighbours a node has inside its band, the low 4 bits of ``Layout.geo`` (read by the walk).
GEO_LEFT, GEO_RIGHT, GEO_UP, GEO_DOWN = 1, 2, 4, 8


@dataclass(frozen=True, eq=False)
class Layout:
    """Node numbering, tree and positions for one image size, channel count and depth."""

    shape: tuple[int, int]
    channels: int
    levels: int
    bands: tuple  # ((h, w) per band index) ; band index 0 = LL, 1 + 3 * i + b for coarse-to-fine level i
    offsets: np.ndarray  # (channels, n_bands + 1) start of each band's nodes
    node_pos: np.ndarray  # (N, 5) int32: level, band, channel, y, x
    parent: np.ndarray  # (N,) int32, -1 for roots
    child_ptr: np.ndarray  # (N + 1,) int32
    child_idx: np.ndarray  # (M,) int32
    has_l: np.ndarray  # (N,) bool: has grandchildren
    roots: np.ndarray  # (R,) int32, channels interleaved per LL position
    ncls: np.ndarray  # (N,) int8 context class: channel kind x band kind x level bucket (0..17)
    geo: np.ndarray  # (N,) int32 band width << 4 | which neighbours exist (GEO_LEFT, ...)

    def tree_args(self) -> tuple:
        """The arrays :func:`adatok.wavelet.spiht.walk` takes after its data arguments."""
        return (self.parent, self.child_ptr, self.child_idx, self.has_l, self.roots, self.geo, self.ncls)

    @property
    def size(self) -> int:
        """Number of nodes (coefficients)."""
        return int(self.parent.shape[0])

    def flatten(self, channel_coeffs: list) -> np.ndarray:
        """Per channel ``dwt2`` output -> one array over the nodes."""
        parts = []
        for coeffs in channel_coeffs:
            parts.append(coeffs[0].ravel())
            for triple in coeffs[1:]:
                parts.extend(b.ravel() for b in triple)
        return np.concatenate(parts)

    def unflatten(self, flat: np.ndarray) -> list:
        """Inverse of :meth:`flatten`."""
        out = []
        for c in range(self.channels):
            off = self.offsets[c]
            bands = [flat[off[k] : off[k + 1]].reshape(self.bands[k]) for k in range(len(self.bands))]
            coeffs = [bands[0]] + [tuple(bands[1 + 3 * i : 4 + 3 * i]) for i in range(self.levels)]
            out.append(coeffs)
        return out


def band_level(k: int, levels: int) -> int:
    """Decomposition level of band index ``k`` (LL counts as the coarsest level)."""
    return levels if k == 0 else levels - (k - 1) // 3


#: Coefficients a :class:`BoundedCache` keeps in all, besides its most recent entry: a layout
#: takes about 40 bytes a coefficient, so the layouts kept take at most about 170 MB.
CACHE_NODES = 1 << 22


class BoundedCache:
    """A least-recently-used cache of at most ``items`` entries holding at most ``nodes``
    coefficients in all, except that the most recent entry is always kept, whatever its size;
    safe to use from several threads. (``functools.lru_cache`` bounds only the count: a process
    that sees many large shapes, a server, kept 32 layouts of up to 150 million coefficients.)"""

    def __init__(self, items: int, nodes: int = CACHE_NODES) -> None:
        self.items, self.nodes = items, nodes
        self._data: OrderedDict = OrderedDict()  # key -> (value, size)
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], tuple[object, int]]):
        """The value cached under ``key``, or the value ``make()`` returns with its size in
        coefficients (made outside the lock: two threads may both make it, alike)."""
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit[0]
        value, size = make()
        with self._lock:
            old = self._data.pop(key, None)
            self._total += size - (old[1] if old is not None else 0)
            self._data[key] = (value, size)
            while len(self._data) > 1 and (len(self._data) > self.items or self._total > self.nodes):
                self._total -= self._data.popitem(last=False)[1][1]
        return value

    def __getstate__(self) -> dict:
        """Pickled empty, with a lock of its own when unpickled: a tokenizer sent to another process
        (``multiprocessing``, Ray) makes its layouts there again (a lock cannot be pickled: pickling a
        wavelet tokenizer was a raw "cannot pickle '_thread.lock' object")."""
        return {"items": self.items, "nodes": self.nodes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["items"], state["nodes"])

    def __len__(self) -> int:
        return len(self._data)

    @property
    def total(self) -> int:
        """Coefficients held by the entries kept."""
        return self._total

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._total = 0


_LAYOUTS = BoundedCache(32)


def make_layout(shape: tuple[int, int], channels: int, levels: int) -> Layout:
    """Build (and cache, see :class:`BoundedCache`) the :class:`Layout` of an image of ``shape``
    (H, W) with ``channels``."""
    key = ((int(shape[0]), int(shape[1])), int(channels), int(levels))

    def make() -> tuple[Layout, int]:
        layout = _build_layout(*key)
        return layout, layout.size

    return _LAYOUTS.get(key, make)


def _build_layout(shape: tuple[int, int], channels: int, levels: int) -> Layout:
    bs = band_shapes(shape, levels)
    bands = [bs[0]] + [b for triple in bs[1:] for b in triple]
    nb = len(bands)
    sizes = np.array([h * w for h, w in bands], dtype=np.int64)
    per_channel = int(sizes.sum())
    offsets = np.zeros((channels, nb + 1), dtype=np.int64)
    for c in range(channels):
        offsets[c, 0] = c * per_channel
        offsets[c, 1:] = c * per_channel + np.cumsum(sizes)
    n = per_channel * channels
    node_pos = np.empty((n, 5), dtype=np.int32)
    parent = np.full(n, -1, dtype=np.int32)
    llh, llw = bands[0]
    for c in range(channels):
        for k, (h, w) in enumerate(bands):
            if h * w == 0:
                continue
            lev = band_level(k, levels)
            yy, xx = np.divmod(np.arange(h * w, dtype=np.int64), w)
            sl = slice(offsets[c, k], offsets[c, k + 1])
            node_pos[sl, 0] = lev
            node_pos[sl, 1] = 0 if k == 0 else (k - 1) % 3 + 1
            node_pos[sl, 2] = c
            node_pos[sl, 3] = yy
            node_pos[sl, 4] = xx
            if k == 0:
                continue
            pk = k - 3  # same band, one level coarser
            if pk >= 1 and sizes[pk] > 0:
                ph, pw = bands[pk]
                py, px = np.minimum(yy // 2, ph - 1), np.minimum(xx // 2, pw - 1)
                parent[sl] = offsets[c, pk] + py * pw + px
            else:
                shift = levels - lev
                py, px = np.minimum(yy >> shift, llh - 1), np.minimum(xx >> shift, llw - 1)
                parent[sl] = offsets[c, 0] + py * llw + px
    has_parent = parent >= 0
    child_nodes = np.nonzero(has_parent)[0]
    order = np.argsort(parent[child_nodes], kind="stable")
    child_idx = child_nodes[order].astype(np.int32)
    counts = np.bincount(parent[child_nodes], minlength=n)
    child_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=child_ptr[1:])
    has_child = counts > 0
    has_l = np.zeros(n, dtype=bool)
    np.logical_or.at(has_l, parent[child_nodes], has_child[child_nodes])
    nw = np.empty(n, dtype=np.int32)
    nh = np.empty(n, dtype=np.int32)
    for c in range(channels):
        for k, (h, w) in enumerate(bands):
            nh[offsets[c, k] : offsets[c, k + 1]] = h
            nw[offsets[c, k] : offsets[c, k + 1]] = w
    level, band, chan = node_pos[:, 0], node_pos[:, 1], node_pos[:, 2]
    chan_kind = (chan > 0).astype(np.int32)
    band_kind = np.where(band == 0, 0, np.where(band == 3, 2, 1))
    level_bucket = np.clip(level, 1, 3) - 1
    ncls = (chan_kind * 9 + band_kind * 3 + level_bucket).astype(np.int8)
    x, y = node_pos[:, 4], node_pos[:, 3]
    geo = ((nw.astype(np.int32) << 4) | np.where(x > 0, GEO_LEFT, 0) | np.where(x < nw - 1, GEO_RIGHT, 0)
           | np.where(y > 0, GEO_UP, 0) | np.where(y < nh - 1, GEO_DOWN, 0)).astype(np.int32)
    ll_per = llh * llw
    roots = (offsets[:, 0][None, :] + np.arange(ll_per)[:, None]).ravel().astype(np.int32)
    return Layout(
        shape=tuple(shape),
        channels=channels,
        levels=levels,
        bands=tuple(bands),
        offsets=offsets,
        node_pos=node_pos,
        parent=parent,
        child_ptr=child_ptr.astype(np.int32),  # int32: half the walk's reads of it
        child_idx=child_idx,
        has_l=has_l,
        roots=roots,
        ncls=ncls,
        geo=geo.astype(np.int32),
    )
