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
from functools import cached_property

import numpy as np

from .transforms import band_shapes

#: Names of the ``pos`` columns of a wavelet token, in order.
POS_FIELDS = ("plane", "level", "band", "channel", "y", "x")
BAND_NAMES = ("LL", "HL", "LH", "HH")


#: Which neighbours a node has inside its band, the low 4 bits of ``Layout.geo`` (read by the walk).
GEO_LEFT, GEO_RIGHT, GEO_UP, GEO_DOWN = 1, 2, 4, 8


@dataclass(frozen=True, eq=False)
class Layout:
    """Node numbering, tree and positions for one image size, channel count and depth.

    About 18 bytes a coefficient (the tree the walk reads); a node's position (level, band,
    channel, y, x) is computed from the band offsets when asked for (:meth:`positions`), not kept
    for every node: a 4000 x 3000 x 3 image has 36 million."""

    shape: tuple[int, int]
    channels: int
    levels: int
    bands: tuple  # ((h, w) per band index) ; band index 0 = LL, 1 + 3 * i + b for coarse-to-fine level i
    offsets: np.ndarray  # (channels, n_bands + 1) start of each band's nodes
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

    def positions(self, nodes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(len(nodes), 5)`` int32 (into ``out`` if given): level, band, channel, y, x of each node
        (a band's nodes are in raster order from its offset)."""
        nodes = np.asarray(nodes)
        out = np.empty((len(nodes), 5), np.int32) if out is None else out
        nb = len(self.bands)
        starts = self.offsets[:, :nb].ravel()  # (channel, band) segments in node order
        widths = np.array([max(w, 1) for _, w in self.bands], np.int64)
        level = np.array([band_level(j, self.levels) for j in range(nb)], np.int32)
        band = np.array([0] + [(j - 1) % 3 + 1 for j in range(1, nb)], np.int32)
        for a in range(0, len(nodes), 1 << 20):  # a million at a time: the int64 temporaries stay small
            part = nodes[a : a + (1 << 20)]
            # The last segment starting at or before the node: an empty band shares its start with
            # the next one, which is where its nodes (none) would be.
            seg = np.searchsorted(starts, part, side="right") - 1
            k = seg % nb
            rows = out[a : a + len(part)]
            rows[:, 0], rows[:, 1], rows[:, 2] = level[k], band[k], seg // nb
            rows[:, 3], rows[:, 4] = np.divmod(part - starts[seg], widths[k])
        return out

    @cached_property
    def node_pos(self) -> np.ndarray:
        """:meth:`positions` of every node, ``(N, 5)`` int32, made when first asked for (the
        steppers and regions of interest read it; 20 bytes a coefficient)."""
        return self.positions(np.arange(self.size))

    def flatten(self, channel_coeffs: list) -> np.ndarray:
        """Per channel ``dwt2`` output -> one array over the nodes."""
        parts = []
        for coeffs in channel_coeffs:
            parts.append(coeffs[0].ravel())
            for triple in coeffs[1:]:
                parts.extend(b.ravel() for b in triple)
        return np.concatenate(parts)

    def unflatten(self, flat: np.ndarray, scale: np.ndarray | None = None) -> list:
        """Inverse of :meth:`flatten`; with ``scale`` (channels x bands), each band divided by its
        value (new arrays; without, views of ``flat``)."""
        out = []
        for c in range(self.channels):
            off = self.offsets[c]
            bands = [flat[off[k] : off[k + 1]].reshape(self.bands[k]) for k in range(len(self.bands))]
            if scale is not None:
                bands = [b / scale[c, k] for k, b in enumerate(bands)]
            coeffs = [bands[0]] + [tuple(bands[1 + 3 * i : 4 + 3 * i]) for i in range(self.levels)]
            out.append(coeffs)
        return out

    def per_node(self, table: np.ndarray) -> np.ndarray:
        """A (channels x bands) table of values, one per node."""
        sizes = [h * w for h, w in self.bands]
        return np.concatenate([np.repeat(table[c], sizes) for c in range(self.channels)])


def band_level(k: int, levels: int) -> int:
    """Decomposition level of band index ``k`` (LL counts as the coarsest level)."""
    return levels if k == 0 else levels - (k - 1) // 3


#: Coefficients a :class:`BoundedCache` keeps in all, besides its most recent entry: a layout
#: takes about 18 bytes a coefficient, so the layouts kept take at most about 80 MB.
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
    # Band by band, in int32: whole-image int64 temporaries (positions, then the neighbour flags
    # from them) made the build's peak about 90 bytes a coefficient over the layout's own 18.
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
    parent = np.full(n, -1, dtype=np.int32)
    geo = np.empty(n, dtype=np.int32)
    ncls = np.empty(n, dtype=np.int8)
    llh, llw = bands[0]
    for k, (h, w) in enumerate(bands):
        if h * w == 0:
            continue
        lev = band_level(k, levels)
        yy = np.arange(h, dtype=np.int32)[:, None]
        xx = np.arange(w, dtype=np.int32)[None, :]
        band_geo = ((np.int32(w) << 4) | np.where(xx > 0, GEO_LEFT, 0) | np.where(xx < w - 1, GEO_RIGHT, 0)
                    | np.where(yy > 0, GEO_UP, 0) | np.where(yy < h - 1, GEO_DOWN, 0)).astype(np.int32).ravel()
        band_kind = 0 if k == 0 else (2 if (k - 1) % 3 == 2 else 1)
        if k > 0:
            pk = k - 3  # same band, one level coarser
            if pk >= 1 and sizes[pk] > 0:
                ph, pw = bands[pk]
                local = (np.minimum(yy // 2, ph - 1) * pw + np.minimum(xx // 2, pw - 1)).ravel()
            else:
                shift = levels - lev
                local = (np.minimum(yy >> shift, llh - 1) * llw + np.minimum(xx >> shift, llw - 1)).ravel()
        for c in range(channels):
            sl = slice(offsets[c, k], offsets[c, k + 1])
            geo[sl] = band_geo
            ncls[sl] = (1 if c > 0 else 0) * 9 + band_kind * 3 + min(max(lev, 1), 3) - 1
            if k > 0:
                parent[sl] = offsets[c, pk if pk >= 1 and sizes[pk] > 0 else 0] + local
    # Children grouped by parent (a stable sort keeps each group in node order), channel by channel
    # (no parent has children in another channel): the sort's int64 temporaries a channel at a time.
    child_idx = np.empty(n - channels * int(sizes[0]), dtype=np.int32)
    counts = np.zeros(n, dtype=np.int32)
    at = 0
    for c in range(channels):
        first, last = int(offsets[c, 0]), int(offsets[c, nb])
        kids = np.arange(first + int(sizes[0]), last, dtype=np.int32)  # every non-LL node has a parent
        order = np.argsort(parent[kids], kind="stable")
        child_idx[at : at + len(kids)] = kids[order]
        at += len(kids)
        del order
        counts[first:last] = np.bincount(parent[kids] - first, minlength=last - first)
    child_ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=child_ptr[1:])
    has_l = np.zeros(n, dtype=bool)
    kids = child_idx[counts[child_idx] > 0]  # nodes that have children: their parents have grandchildren
    has_l[parent[kids]] = True
    ll_per = llh * llw
    roots = (offsets[:, 0][None, :] + np.arange(ll_per)[:, None]).ravel().astype(np.int32)
    return Layout(
        shape=tuple(shape),
        channels=channels,
        levels=levels,
        bands=tuple(bands),
        offsets=offsets,
        parent=parent,
        child_ptr=child_ptr,  # int32: half the walk's reads of it
        child_idx=child_idx,
        has_l=has_l,
        roots=roots,
        ncls=ncls,
        geo=geo,
    )
