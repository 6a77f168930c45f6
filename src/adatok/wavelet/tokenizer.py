"""The wavelet tokenizers: ``wavelet`` (CDF 9/7 + YCbCr) and ``wavelet-lossless`` (5/3 + RCT).

Pipeline: level shift (-128) -> colour transform -> 2-D lifting wavelet per channel -> integer
coefficients (for ``wavelet``: each band and channel scaled by the square root of its synthesis
energy gain and divided by ``step``, so that a unit of error costs the same in every band and
bit-planes come in order of RGB squared error) -> the embedded set-partitioning coder of
:mod:`adatok.wavelet.spiht`. Decoding replays the coder on any prefix and puts every coefficient at
the centre of what is still unknown about it.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numba import njit

from ..core.budget import Bpp, Lossless, Quality, Tokens, check_budget, too_small
from ..core.checks import is_whole, shown
from ..core.errors import (AdatokError, BudgetError, ContainerError, ImageFormatError, InvalidTokensError,
                           not_lossless_cli)
from ..core import imageio
from ..core.imageio import as_image
from ..core.protocol import image_list, sequence_list
from ..core.metrics import quality_mask, quality_score
from ..core.registry import registered
from ..core.sequence import TokenSequence, check_maker, container_overhead as _container_overhead
from ..core.stepper import check_starts, start_shape
from . import header
from . import roi as roi_coding
from . import spiht
from .layout import POS_FIELDS, BoundedCache, Layout, make_layout
from .stepper import WaveletStepper
from .transforms import (ICT_CHANNEL_GAINS, RCT_CHANNEL_GAINS, default_levels, dwt2, ict_forward, ict_inverse, idwt2,
                         rct_forward, rct_inverse, synthesis_gains, to_uint8)

VERSION = "1"
CODEC = "cabac"  # context-adaptive binary arithmetic coding of the walk's decisions
_NO_IDS = np.zeros(0, np.uint8)
_NO_BYTES = np.zeros(0, np.uint8)
_NO_MAG = np.zeros(0, np.int64)
_NO_SGN = np.zeros(0, np.bool_)
_NO_STATS = np.zeros((0, 2), np.int64)
_PRIOR_DIR = Path(__file__).with_name("priors")
#: Tokens after which a decoded prefix can differ from the one before (they change a coefficient).
_CHANGERS = np.array([spiht.SIG_POS, spiht.SIG_NEG, spiht.REF0, spiht.REF1])
#: ``Quality`` checks every shorter prefix that changes a coefficient when (those prefixes) x
#: (the image's values, H x W x C) is at most this (an image synthesised per prefix: about 2 s at
#: the limit); see ``_shortest_prefix``.
EXACT_SEARCH = 2**24


# --- what a header may claim ------------------------------------------------------------------
# A container's header says how many tokens follow; before anything is allocated from that count,
# it is checked against the most any payload of its length, and any stream of its image, can hold.

#: Each coded decision leaves at most this fraction of the arithmetic coder's range: a bit's
#: probability is at most 1 - 32/65536 (the adaptive model's clamp in ``spiht._adapt``; the shipped
#: priors lie inside it), and the integer arithmetic adds at most 32 / 2**24 of the range (it is at
#: least 2**24 before a decision).
_MAX_KEEP = 1 - 255 * 2.0**-19
#: The fewest bits a coded decision takes: about 0.000702.
BITS_PER_DECISION = -math.log2(_MAX_KEEP)


def max_coded_tokens(nbytes: int) -> int:
    """The most tokens ``nbytes`` bytes of arithmetic-coded payload can determine.

    After ``d`` decisions and ``s`` renormalisations the coder's range, at least 2**24, is at most
    ``2**32 * _MAX_KEEP**d * 256**s``, and every renormalisation costs a byte of output: so
    ``d <= (8 * nbytes + 8) / BITS_PER_DECISION`` (about 11,400 a byte: long runs of certain
    decisions, as in a flat image, cost almost nothing). Every token is at least one decision except
    a forced ``L1``, which follows the ``D1`` of its node: at most twice as many tokens. An empty
    payload codes no token (the coder always ends with at least one byte).
    """
    if nbytes <= 0:
        return 0
    return 2 * int((8 * nbytes + 8) / BITS_PER_DECISION)


def max_stream_tokens(nodes: int, nmax: int) -> int:
    """The most tokens a stream from top plane ``nmax`` can have over ``nodes`` coefficients: at
    each plane a coefficient is tested or refined once (``nmax + 1``), and its set tests, ``D`` until
    it is significant and then ``L``, share one plane (``nmax + 2``)."""
    return max(0, nodes * (2 * nmax + 3)) if nmax >= 0 else 0


def load_prior(name: str) -> tuple[np.ndarray, str]:
    """The shipped context prior of tokenizer ``name`` and a short digest of it (part of the
    tokenizer's version: a different prior codes different bytes). Uniform if none is shipped."""
    path = _PRIOR_DIR / f"{name}.json"
    if not path.exists():
        prior = spiht.uniform_prior()
    else:
        prior = np.array(json.loads(path.read_text())["prior"], dtype=np.int64)
        if prior.shape != (spiht.N_CTX, 2):
            prior = spiht.uniform_prior()  # contexts changed since the prior was fitted
    digest = hashlib.sha256(prior.tobytes()).hexdigest()[:8]
    return prior, digest


# Two elementwise passes of the encoder, compiled: as numpy chains they made image-sized
# temporaries (~5 ms of a 768x512 encode). Same values.


@njit(cache=True)
def _quantise(flat, starts, weights):
    """``rint(flat * weight)`` as int64, the weight of each node that of its segment: ``starts``
    (ascending) the first node of each segment, ``weights`` its weight."""
    out = np.empty(flat.shape[0], np.int64)
    for j in range(starts.shape[0]):
        end = starts[j + 1] if j + 1 < starts.shape[0] else flat.shape[0]
        for i in range(starts[j], end):
            out[i] = np.int64(np.rint(flat[i] * weights[j]))
    return out


_WEIGHTS = BoundedCache(32)


def _importance_weights(shape: tuple[int, int], channels: int, levels: int, lossless: bool,
                        step: float) -> tuple[np.ndarray, np.ndarray]:
    """Per (channel, band), read-only: sqrt(band gain * channel gain), what a unit of a coefficient's
    error costs in RGB, and that / ``step``, the 9/7 coefficients' scale (one value a band: kept
    for every node they took 16 bytes a coefficient). Cached like the layouts."""
    key = (tuple(shape), channels, levels, lossless, step)
    return _WEIGHTS.get(key, lambda: _make_weights(*key))


def _make_weights(shape, channels, levels, lossless, step) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    gains = synthesis_gains(shape, levels, "5/3" if lossless else "9/7")
    per_band = np.array([gains[0]] + [g for triple in gains[1:] for g in triple])
    chan = (RCT_CHANNEL_GAINS if lossless else ICT_CHANNEL_GAINS) if channels == 3 else (1.0,)
    imp = np.stack([np.sqrt(per_band * chan[c]) for c in range(channels)])
    weights = imp / step
    imp.flags.writeable = False
    weights.flags.writeable = False
    return (imp, weights), imp.size


def replication(img: np.ndarray, most: int = 8, min_side: int = 8) -> tuple[int, int]:
    """``(fy, fx)``: the largest factors (at most ``most``) by which ``img`` is an exact pixel
    replication (every ``fy x fx`` block one colour, as in a nearest-neighbour enlargement, pixel
    art or a 2x screenshot); ``(1, 1)`` when it is none. Such an image is coded at its reduced size
    and enlarged again on decoding: PNG's LZ77 finds these repeats, a wavelet transform does not.
    A side is reduced only while it keeps ``min_side`` pixels (on tiny images there is little to
    gain and the token positions would say less).
    """
    h, w = img.shape[:2]

    def factor(a: np.ndarray, n: int) -> int:  # along axis 0
        if n < 2 * min_side or not np.array_equal(a[0], a[1]):  # every factor needs rows 0 and 1 alike:
            return 1  # this spares the whole-image comparisons on almost every photo
        for f in range(min(most, n // min_side), 1, -1):
            m = (n // f // 2) * f  # a block's first row in the middle: a uniform frame passes rows 0 and 1
            if n % f or not np.array_equal(a[m], a[m + 1]):
                continue
            if (a.reshape(n // f, f, *a.shape[1:]) == a[::f][:, None]).all():
                return f
        return 1

    fy = factor(img, h)
    fx = factor(img[::fy].swapaxes(0, 1), w)
    return fy, fx


@njit(cache=True)
def _magnitudes(coef, shift):
    """``|coef| << shift``, ``coef < 0`` and the largest shifted magnitude."""
    mag = np.empty(coef.shape[0], np.int64)
    sgn = np.empty(coef.shape[0], np.bool_)
    top = 0
    for i in range(coef.shape[0]):
        c = coef[i]
        m = (-c if c < 0 else c) << shift[i]
        mag[i] = m
        sgn[i] = c < 0
        if m > top:
            top = m
    return mag, sgn, top


def _plane(nmax) -> int:
    """A bit-plane given by a caller (``nmax``) as an int: a whole number, else
    :class:`~adatok.InvalidTokensError` (``2.7`` was truncated, ``"x"`` a raw ValueError)."""
    if not is_whole(nmax):
        raise InvalidTokensError(f"nmax must be a whole number (a bit-plane), got {nmax!r}")
    return int(nmax)


class WaveletTokenizer:
    """Training-free, embedded wavelet tokenizer (see ``docs/wavelet-language.md``).

    Args:
        name: registered name, ``"wavelet"`` or ``"wavelet-lossless"``.
        lossless: integer 5/3 wavelet and reversible colour transform (bit-exact at full length)
            instead of CDF 9/7 and YCbCr.
        step: quantiser step of the weighted 9/7 coefficients (lossy only); the full sequence of
            ``wavelet`` has a mean squared error of about ``step**2 / 12`` before rounding to 8 bits.
        max_levels: deepest decomposition used (fewer for small images).

    Example:
        >>> import numpy as np, adatok
        >>> tok = adatok.load("wavelet-lossless")
        >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        >>> seq, = tok.encode([img])
        >>> bool((tok.decode([seq])[0] == img).all())
        True
    """

    vocab_size = spiht.VOCAB_SIZE
    pos_fields = POS_FIELDS
    version = VERSION
    #: How prefixes are decoded (tokens and bytes do not depend on it): what keeps decoded results,
    #: like the generators' measurements, keys on it. Raise it with a change to :meth:`_image`.
    #: 1: quiet roots held (:func:`spiht.reconstruct`).
    decoder_revision = 1
    #: ``encode(..., roi=maps)`` steers the early tokens into the region (the learned and grid
    #: tokenizers say ``False``: they refuse ``roi``); ``adatok eval --roi`` reads this.
    supports_roi = True

    def __init__(self, name: str = "wavelet", lossless: bool = False, step: float = 1.0, max_levels: int = 6):
        self.name = name
        self.lossless = lossless
        self.step = float(step)
        self.max_levels = int(max_levels)
        self.payload_codec = self  # the tokenizer codes its own payload (see pack / unpack)
        self._shift_cache = BoundedCache(64)  # (shape, channels, levels, region) -> shifts and set minima
        self._top_cache = BoundedCache(256)  # (shape, channels, levels) -> header.top_plane (checked by every _layout)
        self.prior, digest = load_prior(name)
        self.version = f"{VERSION}+{digest}"
        # Where a coefficient is put inside its remaining interval: 0.5 is the centre; the 9/7
        # coefficients are peaked at 0 (Laplacian-like), so a point nearer zero does better:
        # 0.4 measured +0.03 dB over 0.5 against JPEG 2000 on the tuning photos (astronaut,
        # camera, coffee at 0.125-1 bpp).
        self.bias = 0.5 if lossless else 0.4
        #: Quiet roots move only toward their true value (see :func:`spiht.reconstruct`); False
        #: centres them like every other coefficient (the decoder before; for measurements).
        self.hold_roots = True

    def __repr__(self) -> str:
        return f"WaveletTokenizer(name={self.name!r}, lossless={self.lossless})"

    # --- analysis and synthesis ----------------------------------------------------------------

    def _importance(self, layout: Layout) -> np.ndarray:
        """Per (channel, band): sqrt(band gain * channel gain), what a unit of a coefficient's error
        costs in RGB."""
        return _importance_weights(layout.shape, layout.channels, layout.levels, self.lossless, self.step)[0]

    def _weights(self, layout: Layout) -> np.ndarray:
        """Per (channel, band) scale of the 9/7 coefficients: importance / step."""
        return _importance_weights(layout.shape, layout.channels, layout.levels, self.lossless, self.step)[1]

    def _top_plane(self, layout: Layout) -> int:
        """:func:`header.top_plane <adatok.wavelet.header.top_plane>` of ``layout``, computed once a
        shape (as much again as the rest of a 28 x 28 sequence's checks)."""
        key = (layout.shape, layout.channels, layout.levels)
        return self._top_cache.get(key, lambda: (header.top_plane(self, layout), 0))

    def _nmax_limit(self, layout: Layout, params) -> int:
        """The highest top bit-plane a sequence coded on ``layout`` with ``params`` may have: one above
        the highest any 8-bit image reaches there (:meth:`_top_plane`, plus the planes a region of
        interest lifts), a margin so that the bound's float sums never refuse a real file."""
        return self._top_plane(layout) + (roi_coding.ROI_SHIFT if "roi" in params else 0) + 1

    def _shifts(self, layout: Layout, params: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bit-plane shift of every node and the smallest shift of each node's D and L sets.

        ``wavelet`` scales its coefficients by their importance and needs no shift. The integer
        coefficients of ``wavelet-lossless`` cannot be scaled, so each is shifted by the power of
        two nearest its importance: it reaches each bit-plane as early as its error matters. A
        region of interest in ``params`` adds its own shifts (see :mod:`adatok.wavelet.roi`).
        """
        roi_p = (params or {}).get("roi")
        key = (layout.shape, layout.channels, layout.levels, None if roi_p is None else roi_p["d"])

        def make() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
            if roi_p is not None:
                base = self._shifts(layout)[0]
                grid, g = roi_coding.grid_from_params(roi_p, layout.shape)
                shift = (base + roi_coding.node_shifts(grid, g, layout)).astype(np.int8)  # at most 30 + ROI_SHIFT
            elif self.lossless:
                full = [h * w > 0 for h, w in layout.bands]  # (an empty band's gain is 0, and it has no node)
                imp = np.log2(np.where(full, self._importance(layout), 1.0))  # per (channel, band)
                low = imp[:, full].min()
                shift = layout.per_node(np.clip(np.rint(imp - low), 0, 30).astype(np.int8))
            else:
                shift = np.zeros(layout.size, np.int8)
            return (shift, *spiht.set_minima(shift, layout.parent)), layout.size

        return self._shift_cache.get(key, make)

    def _walk_args(self, layout: Layout, params: dict | None, stats: np.ndarray | None = None) -> tuple:
        """The arguments of :func:`spiht.walk` after ``pad``."""
        return (self.prior, _NO_STATS if stats is None else stats, *self._shifts(layout, params),
                *layout.tree_args())

    def coding_stats(self, images: Sequence[np.ndarray], bpp: float) -> np.ndarray:
        """Zeros and ones each context codes when ``images`` are encoded at ``Bpp(bpp)``
        (what :func:`adatok.wavelet.spiht.fit_prior` turns into a prior)."""
        total = np.zeros((spiht.N_CTX, 2), np.int64)
        for image in images:
            img = as_image(image)
            layout, coef, _ = self._analyze(img)
            mag, sgn, top = _magnitudes(coef, self._shifts(layout)[0])
            stats = np.zeros((spiht.N_CTX, 2), np.int64)
            budget = Bpp(bpp).nbytes(img.shape)
            spiht.walk(spiht.SRC_COEF, True, int(top).bit_length() - 1, -1, budget, mag, sgn, _NO_IDS, _NO_BYTES, 0,
                       *self._walk_args(layout, None, stats))
            total += stats
        return total

    def _analyze(self, img: np.ndarray) -> tuple[Layout, np.ndarray, int]:
        """H x W x C uint8 -> (layout, signed integer coefficients per node, levels)."""
        h, w, c = img.shape
        levels = default_levels((h, w), self.max_levels)
        layout = make_layout((h, w), c, levels)
        if self.lossless:
            if c == 3:
                planes = rct_forward(img)
                planes[0] -= 128
            else:
                planes = img.transpose(2, 0, 1).astype(np.int64) - 128
            flat = layout.flatten([dwt2(p, levels, "5/3") for p in planes])
            return layout, flat.astype(np.int64), levels
        x = img.astype(np.float64) - 128.0
        planes = ict_forward(x) if c == 3 else x.transpose(2, 0, 1)
        flat = layout.flatten([dwt2(p, levels, "9/7") for p in planes])
        nb = len(layout.bands)
        return layout, _quantise(flat, layout.offsets[:, :nb].ravel(), self._weights(layout).ravel()), levels

    def _synthesize(self, layout: Layout, coef: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_analyze`: per-node coefficient estimates -> H x W x C uint8."""
        if self.lossless:
            planes = np.stack([idwt2(cf, "5/3") for cf in layout.unflatten(np.rint(coef).astype(np.int64))])
            if layout.channels == 3:
                planes[0] += 128
                img = rct_inverse(planes)
            else:
                img = planes.transpose(1, 2, 0) + 128
            return np.clip(img, 0, 255).astype(np.uint8)
        planes = np.stack([idwt2(cf, "9/7") for cf in layout.unflatten(coef, self._weights(layout))])
        return to_uint8(ict_inverse(planes) if layout.channels == 3 else planes.transpose(1, 2, 0), 128.0)

    # --- the contract --------------------------------------------------------------------------

    def encode(self, images: Sequence[np.ndarray], budget=None, roi=None, *,
               fixed_header: bool = False) -> list[TokenSequence]:
        """Tokenize each image; ``budget`` picks each sequence's length (default: the full sequence).

        ``Tokens(k)`` gives ``min(k, full length)`` tokens; ``Lossless()`` the full sequence of
        ``wavelet-lossless``; ``Quality(psnr=..)`` / ``Quality(ssim=..)`` the shortest prefix that
        reaches the target, per image (the full sequence if even that does not).

        ``fixed_header=True`` gives every image of a shape the same header, the one a
        :meth:`stepper` started from that shape has (what a model that generates sequences
        needs): no pixel replication, no region of interest (``roi`` is refused), and the top
        bit-plane at :meth:`top_plane` rather than the image's own (the sequence is the image's
        own with the tokens of the planes above in front: see :meth:`with_top_plane`).
        """
        return self._encode(images, budget, roi, fixed_header)

    def _encode(self, images, budget, roi, fixed_header: bool, unit: int = 1, maker=None) -> list[TokenSequence]:
        """:meth:`encode`, in whole groups of ``unit`` decisions (a word tokenizer's words, see
        :mod:`adatok.wavelet.words`): every sequence is ``unit`` times a whole number of decisions
        long, or ends with its stream. ``Tokens(k)`` counts decisions (the caller multiplies); a
        ``Bpp`` budget gives the longest such sequence whose bytes fit, in the container of
        ``maker`` (default: this tokenizer); a ``Quality`` target the shortest that reaches it."""
        check_budget(budget)
        images, roi = image_list(images, roi)
        if not isinstance(fixed_header, bool | np.bool_):  # (a config's "false" was taken as True)
            raise ImageFormatError(f"fixed_header is True or False, got {shown(fixed_header)}")
        if fixed_header and any(r is not None for r in roi):
            raise ImageFormatError("fixed_header=True codes every image of a shape alike and takes no region of "
                                   "interest: drop roi, or fixed_header")
        if isinstance(budget, Lossless) and not self.lossless:
            name = (maker or self).name  # a word tokenizer's own name, and its lossless sibling's
            sibling = name.replace("wavelet", "wavelet-lossless", 1)
            if not registered(sibling):  # a word tokenizer of another n: made, not loaded (not one -t names)
                raise BudgetError(f"{name!r} is not lossless; use WordTokenizer(adatok.load('wavelet-lossless'), "
                                  f"{getattr(maker, 'n', 1)}) for Lossless()")
            raise BudgetError(f"{name!r} is not lossless; use adatok.load({sibling!r}) for Lossless()",
                              cli=not_lossless_cli(name, sibling))
        out = []
        for i, image in enumerate(images):
            img = as_image(image, what=f"image {i}")
            fy, fx = (1, 1) if fixed_header else replication(img)
            coded = img[::fy, ::fx]
            layout, coef, levels = self._analyze(coded)
            params = {"levels": levels}
            if not self.lossless:
                params["step"] = self.step
            if (fy, fx) != (1, 1):
                params["rep"] = [fy, fx]
            roi_map = None
            if roi[i] is not None:  # saliency needs scipy and scikit-image: imported only for a region
                from ..core.saliency import roi_from

                roi_map = roi_from(roi[i], img)
            mask = quality_mask(budget, roi_map, f"image {i}") if isinstance(budget, Quality) else None
            if roi_map is not None:
                h, w = roi_map.shape  # a replicated block is inside where any of its pixels is
                coded_roi = roi_map.reshape(h // fy, fy, w // fx, fx).max(axis=(1, 3))
                params["roi"] = roi_coding.roi_params(coded_roi, coded.shape[:2], levels)
            mag, sgn, top = _magnitudes(coef, self._shifts(layout, params)[0])
            params["nmax"] = int(top).bit_length() - 1  # -1 when every coefficient is 0
            if fixed_header:  # the walk from a higher plane is the re-expressed sequence
                params["nmax"] = max(params["nmax"], self._top_plane(layout))
            limit = min(budget.k, spiht.MAX_TOKENS) if isinstance(budget, Tokens) else -1
            if isinstance(budget, Bpp):
                try:
                    seq = self._encode_bytes(img, np.shape(image), layout, mag, sgn, params, budget, maker)
                except BudgetError as exc:  # (which image of a batch: "this 20x20 image" named none)
                    if len(images) == 1:
                        raise
                    raise BudgetError(f"image {i}: {exc}") from None
                if len(seq) % unit and not self._ends(seq.ids, layout, params):
                    seq = seq.prefix(len(seq) // unit * unit)  # (its bytes are no longer: fewer decisions)
            else:
                _, _, ids, node, plane, value, low, neg, _ = spiht.walk(
                    spiht.SRC_COEF, False, params["nmax"], limit, -1, mag, sgn, _NO_IDS, _NO_BYTES, 0,
                    *self._walk_args(layout, params))
                seq = self._sequence(ids, node, plane, layout, np.shape(image), params)
                seq.cache["state"] = (value, low, neg)
            if isinstance(budget, Quality):
                seq = seq.prefix(self._shortest_prefix(seq, node, plane, img, budget, mask, unit))
            out.append(seq)
        return out

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """Decode each sequence (any prefix) to a uint8 image of the encoded shape."""
        return [self._decode_one(s) for s in sequence_list(seqs)]

    # --- token by token ----------------------------------------------------------------------------

    def stepper(self, starts: Sequence[tuple[int, ...] | TokenSequence], nmax: int | None = None) -> WaveletStepper:
        """Start B sequences to grow one token at a time, under the grammar (see
        :class:`~adatok.wavelet.stepper.WaveletStepper`: ``next_pos``, ``legal``, ``push``,
        ``images``, ``sequences``).

        ``starts``: per sequence, an image shape ``(H, W)`` or ``(H, W, C)`` (C = 1 or 3), to start
        an empty sequence with the header of ``encode(..., fixed_header=True)`` (``nmax``: its top
        bit-plane instead of :meth:`top_plane`), or a :class:`~adatok.TokenSequence` of this
        tokenizer, to go on from (any prefix; its header is kept, its ids are checked).

        Example:
            >>> import numpy as np, adatok
            >>> tok = adatok.load("wavelet")
            >>> st = tok.stepper([(8, 8), (8, 8)])
            >>> while not st.done.all():
            ...     st.push(st.legal().argmax(1))   # always the first legal id
            >>> [len(s) for s in st.sequences()] == list(st.lengths)
            True
        """
        starts = check_starts(starts)
        out = []
        for i, start in enumerate(starts):
            if isinstance(start, TokenSequence):
                check_maker(start.tokenizer, start.version, self, what=f"start {i}", use="step it")
                self._layout(start.shape, start.params)
                self._check_range(start.ids, f"start {i}: ")
                out.append((tuple(start.shape), dict(start.params), start.ids))
                continue
            shape = start_shape(start, i)
            params = header.fixed_params(self, shape)
            if nmax is not None:
                params["nmax"] = _plane(nmax)
            self._layout(shape, params, nmax_from="given as nmax")  # checks nmax
            out.append((shape, params, _NO_IDS))
        return WaveletStepper(self, out)

    def top_plane(self, shape: tuple[int, ...]) -> int:
        """The largest top bit-plane (``params["nmax"]``) this tokenizer can give an 8-bit image
        of ``shape`` without a region of interest: the ``nmax`` of every sequence of that shape
        made with ``fixed_header=True`` or by a stepper started from the shape. An upper bound
        from the transforms, attained (see :mod:`adatok.wavelet.header`)."""
        shape = start_shape(shape, 0, "top_plane")
        return header.fixed_params(self, shape)["nmax"]

    def with_top_plane(self, seq: TokenSequence, nmax: int | None = None) -> TokenSequence:
        """``seq`` re-expressed from top bit-plane ``nmax`` (default :meth:`top_plane` of its
        shape): the planes above its own come first, a ``SIG0`` for each root and a ``D0`` for
        each root set per plane, then ``seq``'s own tokens, unchanged. Every prefix of ``seq``
        decodes to the same image as that prefix with the new tokens in front."""
        check_maker(seq.tokenizer, seq.version, self)
        layout = self._layout(seq.shape, seq.params)
        old = int(seq.params["nmax"])
        new = self.top_plane(seq.shape) if nmax is None else _plane(nmax)
        if new < old:
            raise InvalidTokensError(f"cannot re-express a sequence of top plane {old} from plane {new}: a sequence "
                                     f"can only gain planes above its own; give nmax >= {old}")
        params = dict(seq.params) | {"nmax": new}
        rep = tuple(seq.params.get("rep", (1, 1)))
        try:
            self._layout(seq.shape, params, nmax_from="given as nmax")  # checks nmax
        except InvalidTokensError:
            if nmax is not None or rep == (1, 1):
                raise
            # the default, top_plane of the shape, is of images coded at that shape; this one is coded smaller
            (h, w), limit = layout.shape, self._nmax_limit(layout, params)
            raise InvalidTokensError(
                f"with_top_plane's default top plane is of images without pixel replication: top_plane"
                f"({tuple(seq.shape)}) = {new} is of images coded at {seq.shape[0]}x{seq.shape[1]}, and this sequence "
                f"is a {rep[0]}x{rep[1]} pixel replication (params['rep']) coded at {h}x{w}, where no 8-bit image has a "
                f"coefficient above plane {limit - 1} and planes above {limit} are refused; encode the image with "
                "fixed_header=True (no replication) for the fixed header of its shape, or give nmax up to "
                f"{limit}") from None
        shift, smin_d, _ = self._shifts(layout, params)
        ids, node, plane = header.raise_top_plane(layout, shift, smin_d, old, new)
        pos = np.empty((len(ids), 6), np.int32)
        pos[:, 0] = plane
        layout.positions(node, out=pos[:, 1:])
        out = TokenSequence(np.concatenate([ids, seq.ids]), np.concatenate([pos, seq.pos]), seq.shape, self.name,
                            self.version, params, self.pos_fields)
        if "state" in seq.cache:  # the planes above know nothing more
            out.cache["state"] = seq.cache["state"]
        return out

    def sequence_from_ids(self, ids: np.ndarray, header: dict) -> TokenSequence:
        """Rebuild a sequence (positions included) from ids and a container header."""
        shape, params, layout = self._from_header(header)
        ids = np.asarray(ids, dtype=np.int32)[: header["n_tokens"]]
        value, low, neg, node, plane = self._replay(ids, layout, params)
        seq = self._sequence(ids, node, plane, layout, shape, params)
        seq.cache["state"] = (value, low, neg)
        return seq

    def _sequence(self, ids, node, plane, layout: Layout, shape, params: dict) -> TokenSequence:
        def positions() -> np.ndarray:  # made when first asked for (see TokenSequence.pos)
            pos = np.empty((len(ids), 6), np.int32)
            pos[:, 0] = plane
            layout.positions(node, out=pos[:, 1:])
            return pos

        return TokenSequence(ids, positions, shape, self.name, self.version, params, self.pos_fields)

    def _encode_bytes(self, img, shape, layout: Layout, mag, sgn, params: dict, budget: Bpp,
                      maker=None) -> TokenSequence:
        """The longest sequence whose ``.atk`` bytes (header included, unless ``budget.header`` is
        False: then the payload alone) fit ``budget`` (``mag``: the shifted magnitudes, ``sgn``: the
        signs), in the container of ``maker`` (default: this tokenizer; a word tokenizer's has
        another name, see :mod:`adatok.wavelet.words`)."""
        total = budget.nbytes(img.shape)
        maker = self if maker is None else maker
        probe = TokenSequence(np.zeros(0, np.int32), np.zeros((0, len(maker.pos_fields)), np.int32), shape,
                              maker.name, maker.version, params, maker.pos_fields)
        overhead = (lambda n: _container_overhead(probe, n, CODEC)) if budget.header else (lambda n: 0)
        # The longest payload whose file fits: the header grows with the payload (a checksum per
        # 512-byte chunk), so between the payload the whole budget less the largest header leaves and
        # the whole budget, the largest that fits with its own header is bisected. (A search that converged on it from
        # walks stepped back past a chunk boundary and stopped 1-2 bytes short: 21,435 tokens where
        # 21,444 fit.) The coder then takes the longest prefix whose payload fits that, in one walk.
        payload_max, over = max(0, total - overhead(total)), total + 1  # fits / does not (p + overhead(p) grows)
        while budget.header and over - payload_max > 1:  # (bisected: a huge budget's gap is millions of bytes)
            mid = (payload_max + over) // 2
            payload_max, over = (mid, over) if mid + overhead(mid) <= total else (payload_max, mid)
        for _ in range(8):
            # (the decoder state is not kept: a walk stopped by its byte limit has gone one token past)
            _, _, ids, node, plane, _, _, _, out = spiht.walk(
                spiht.SRC_COEF, True, int(params["nmax"]), -1, payload_max, mag, sgn, _NO_IDS, _NO_BYTES,
                0, *self._walk_args(layout, params))
            seq = self._sequence(ids, node, plane, layout, shape, params)
            payload = out.tobytes() if len(ids) else b""  # (as pack codes the empty sequence)
            seq.cache["payload:" + CODEC] = payload
            if len(payload) + overhead(len(payload)) <= total:
                return seq
            if payload_max == 0:
                break  # not even the empty sequence's header fits
            payload_max -= 1  # (not reached: a walk keeps to its byte limit; kept as a guard)
        raise too_small(budget, total, img.shape, _container_overhead(probe, 0, CODEC))

    # --- bytes ------------------------------------------------------------------------------------

    @property
    def codec_name(self) -> str:
        return CODEC

    def pack(self, seq: TokenSequence) -> bytes:
        """Arithmetic-code a sequence's tokens (the payload of its ``.atk`` bytes); the empty
        sequence's payload is empty (its decoder reads nothing)."""
        check_maker(seq.tokenizer, seq.version, self)
        layout = self._layout(seq.shape, seq.params)
        if len(seq) == 0:
            return b""
        status, at, *_, out = spiht.walk(spiht.SRC_IDS, True, int(seq.params["nmax"]), -1, -1, _NO_MAG, _NO_SGN,
                                         seq.ids.astype(np.uint8), _NO_BYTES, 0, *self._walk_args(layout, seq.params))
        if status != spiht.OK:
            self._replay(seq.ids, layout, seq.params)  # raises the right error
        return out.tobytes()

    def unpack_sequence(self, header: dict, payload: bytes, unit: int = 1, limit: int | None = None) -> TokenSequence:
        """The sequence (positions included, decoder state cached) a payload codes, in one pass.
        ``unit``: decisions a token of the header's count (a word tokenizer's header counts words of
        ``unit`` decisions, the last one padded: see :mod:`adatok.wavelet.words`). ``limit``: at most
        that many tokens of ``unit`` decisions (the walk stops there: the first tokens of a long
        payload without decoding the rest).

        A cut payload is decoded twice, reading past its end as all-zero and as all-one bytes: the
        tokens both agree on are those every continuation of the bytes gives. (The decoder reads the
        first four bytes as its code, which is below the coder's range, 2**32 - 1, in every stream
        the encoder writes and then stays below it whatever bytes follow; that makes the decisions
        a monotone function of the bytes, and so the two extremes enough. Four 0xff bytes are no
        stream: refused; read on, they gave cuts that were not prefixes of longer ones.)
        """
        shape, params, layout = self._from_header(header, unit)
        n = int(header["n_tokens"]) * unit
        if limit is not None:
            n = min(n, int(limit) * unit)
        cut = len(payload) < int(header["payload_len"])
        if payload[:4] == b"\xff" * 4:
            raise ContainerError("the payload begins with four 0xff bytes, which no stream does: the file is corrupt")
        if cut:  # what its bytes can determine
            n = min(n, max_coded_tokens(len(payload) + 4))
        data = np.frombuffer(payload, np.uint8).copy()  # writable: the type walk is compiled for
        walk_args = self._walk_args(layout, params)

        def walk(cap: int, pad: int):
            return spiht.walk(spiht.SRC_AC, False, int(params["nmax"]), cap, -1, _NO_MAG, _NO_SGN, _NO_IDS, data, pad,
                              *walk_args)

        if not cut:
            _, k, ids, node, plane, value, low, neg, _ = walk(n, 0)
        else:
            # The two readings agree on the determined prefix and then part. Both walked to the cap
            # (up to ~23,000 tokens a payload byte: certain decisions cost almost nothing) took
            # 1.9-6 s on 1 KB of random bytes in a 512 x 512 x 3 header (44 s from plane 61), for
            # about 8,400 tokens determined; so the cap starts near what the bytes hold at a few
            # tokens a byte and grows fourfold until the readings part or end: the same prefix, at a
            # few times its own walk (0.03-0.07 s there).
            cap = min(n, 16 * len(payload) + 1024)
            while True:
                first = walk(cap, 0)
                ids, ids1 = first[2], walk(cap, 255)[2]
                m = min(len(ids), len(ids1))
                differ = np.nonzero(ids[:m] != ids1[:m])[0]
                if len(differ) or m < cap or cap >= n:
                    break
                cap = min(n, 4 * cap)
            _, k, ids, node, plane, value, low, neg, _ = first
            k = int(differ[0]) if len(differ) else m
            if k < len(ids):  # the decoder state went past the determined prefix: walk it again
                ids = ids[:k]
                _, _, _, node, plane, value, low, neg, _ = spiht.walk(
                    spiht.SRC_IDS, False, int(params["nmax"]), -1, -1, _NO_MAG, _NO_SGN, ids, _NO_BYTES, 0, *walk_args)
        seq = self._sequence(ids, node, plane, layout, shape, params)
        seq.cache["state"] = (value, low, neg)
        return seq

    # --- helpers -------------------------------------------------------------------------------

    def _from_header(self, header: dict, unit: int = 1) -> tuple[tuple[int, ...], dict, Layout]:
        """Shape, params and layout from a container header, checked (ContainerError if bad); the
        header counts tokens of ``unit`` decisions (see :meth:`unpack_sequence`)."""
        check_maker(header["tokenizer"], header["version"], self)
        shape = tuple(header["shape"])
        params = dict(header["params"])
        try:
            layout = self._layout(shape, params, (int(header["n_tokens"]), int(header["payload_len"])), unit)
        except InvalidTokensError as exc:
            raise ContainerError(f"header parameters are invalid ({exc}): the file is corrupt") from None
        return shape, params, layout

    def _layout(self, shape: tuple[int, ...], params, counts: tuple[int, int] | None = None,
                unit: int = 1, nmax_from: str = "in the sequence") -> Layout:
        """The layout a sequence of ``shape`` with ``params`` is coded on, after checking every
        value the decoder reads (type and range), so that a hand-built or edited sequence is refused
        with :class:`InvalidTokensError` before anything is allocated from it, exactly as its bytes
        would be by ``from_bytes``. ``counts``: a container header's token count and payload
        length, checked (:class:`ContainerError`) against what that payload can code and what a
        stream of the image can hold (:func:`max_coded_tokens`, :func:`max_stream_tokens`), also
        before the layout is built; in tokens of ``unit`` decisions (a word's: the last word of a
        stream is padded, so a count up to the bound's in whole words, rounded up, is a real one).
        ``nmax_from``: where a refused top bit-plane came from, for the message."""

        def whole(v, what: str) -> int:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise InvalidTokensError(f"the sequence's {what} must be a whole number, got {v!r}")
            return int(v)

        if not isinstance(shape, tuple) or len(shape) not in (2, 3):
            raise InvalidTokensError(f"invalid image shape {shape!r} in the sequence")
        shape = tuple(whole(d, "shape") for d in shape)
        if min(shape[:2]) < 1:
            raise InvalidTokensError(f"invalid image shape {shape} in the sequence")
        if shape[0] * shape[1] > imageio.MAX_PIXELS:
            raise InvalidTokensError(f"image shape {shape} in the sequence is over the pixel limit")
        channels = shape[2] if len(shape) == 3 else 1
        if channels not in (1, 3):
            raise InvalidTokensError(f"invalid channel count in the sequence (shape {shape})")
        if not isinstance(params, Mapping):
            raise InvalidTokensError(f"the sequence's params must be a mapping, got {type(params).__name__}")
        allowed = {"levels", "nmax", "rep", "roi"} | (set() if self.lossless else {"step"})
        unknown = sorted(set(params) - allowed, key=str)
        missing = sorted({"levels", "nmax"} - set(params) | (set() if self.lossless else {"step"} - set(params)))
        if unknown or missing:
            raise InvalidTokensError(f"the sequence's params of {self.name} "
                                     + (f"lack {', '.join(missing)}" if missing else f"have unknown {unknown}"))
        if not self.lossless:
            step = params["step"]
            try:
                same = not isinstance(step, bool) and isinstance(step, numbers.Real) and float(step) == self.step
            except OverflowError:  # an integer too large for a float
                same = False
            if not same:
                raise InvalidTokensError(f"the sequence's step {step!r} is not {self.name}'s ({self.step}): "
                                         "it was made by another tokenizer")
        rep = params.get("rep", (1, 1))
        if not isinstance(rep, list | tuple) or len(rep) != 2:
            raise InvalidTokensError(f"the sequence's replication must be two whole numbers, got {rep!r}")
        fy, fx = (whole(v, "replication") for v in rep)
        if not (1 <= fy <= shape[0] and 1 <= fx <= shape[1] and shape[0] % fy == 0 and shape[1] % fx == 0):
            raise InvalidTokensError(f"invalid replication {fy}x{fx} for shape {shape} in the sequence")
        h, w = shape[0] // fy, shape[1] // fx  # the size the image was coded at
        levels = whole(params["levels"], "levels")
        if levels != default_levels((h, w), self.max_levels):
            raise InvalidTokensError(f"the sequence's {levels} levels do not fit its shape {shape}")
        if not -1 <= whole(params["nmax"], "top bit-plane nmax") < 62:
            raise InvalidTokensError(f"invalid top bit-plane {params['nmax']} {nmax_from}")
        if counts is not None:
            n, nbytes = counts
            most = min(max_coded_tokens(nbytes), max_stream_tokens(h * w * channels, int(params["nmax"])))
            most = -(-most // unit)
            if n > most:
                raise ContainerError(f"the header says {n} tokens, more than {nbytes} payload bytes and a {shape} "
                                     f"image can hold ({most}): the file is corrupt")
        layout = make_layout((h, w), channels, levels)
        # No 8-bit image of this shape codes a plane above the transforms' bound (header.top_plane,
        # a region lifting its coefficients up to ROI_SHIFT planes more). A higher one only adds
        # planes of tokens no image has: a hostile header's nmax of 61 let 16 KB of payload code
        # 156 million tokens. One plane of margin: the bound's float sums must never refuse a
        # real file, and one plane more or less does not matter against such a header.
        limit = self._nmax_limit(layout, params)
        if int(params["nmax"]) > limit:
            replicated = (fy, fx) != (1, 1)
            coded = f" (a {fy}x{fx} pixel replication, coded at {h}x{w})" if replicated else ""
            bound = f"top_plane({(h, w, *shape[2:])})" if replicated else "top_plane"
            if "roi" in params:
                bound += f" plus the {roi_coding.ROI_SHIFT} planes its region of interest lifts"
            raise InvalidTokensError(f"invalid top bit-plane {params['nmax']} {nmax_from}: no 8-bit image of shape "
                                     f"{shape}{coded} has a coefficient above plane {limit - 1} ({bound}), and one "
                                     f"plane more is let through as a margin for the rounding of that bound: the "
                                     f"highest allowed is {limit}")
        if "roi" in params:
            roi_p = params["roi"]
            if not isinstance(roi_p, Mapping) or set(roi_p) != {"g", "s", "d"}:
                raise InvalidTokensError(f"the sequence's region of interest must have g, s and d, got {roi_p!r}")
            if whole(roi_p["g"], "region cell size g") != roi_coding.cell_log2(levels):
                raise InvalidTokensError(f"the region's cell size g={roi_p['g']} does not fit {levels} levels")
            if whole(roi_p["s"], "region shift s") != roi_coding.ROI_SHIFT:
                raise InvalidTokensError(f"the region's shift s={roi_p['s']} is not {roi_coding.ROI_SHIFT}")
            if not isinstance(roi_p["d"], str):
                raise InvalidTokensError(f"the region's grid d must be a base64 string, got {type(roi_p['d']).__name__}")
            try:
                self._shifts(layout, params)  # decodes the region's grid
            except ContainerError as exc:  # (said once: the file's reader adds that it is corrupt)
                raise InvalidTokensError(str(exc).removesuffix(": the file is corrupt")) from None
        return layout

    def _check_range(self, ids: np.ndarray, what: str = "") -> None:
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(np.nonzero((ids < 0) | (ids >= self.vocab_size))[0][0])
            raise InvalidTokensError(f"{what}token id {int(ids[bad])} at index {bad} is out of range: "
                                     f"{self.name} ids are 0..{self.vocab_size - 1}")

    def _ends(self, ids: np.ndarray, layout: Layout, params: dict) -> bool:
        """Whether the (valid) ``ids`` are a whole stream: the walk has nothing after them."""
        more = np.append(np.asarray(ids, np.uint8), np.uint8(spiht.SIG0))
        status, at, *_ = spiht.walk(spiht.SRC_IDS, False, int(params["nmax"]), -1, -1, _NO_MAG, _NO_SGN, more,
                                    _NO_BYTES, 0, *self._walk_args(layout, params))
        return status == spiht.TOO_LONG and at == len(ids)

    def _replay(self, ids: np.ndarray, layout: Layout, params: dict):
        self._check_range(ids)
        status, at, _, node, plane, value, low, neg, _ = spiht.walk(
            spiht.SRC_IDS, False, int(params["nmax"]), -1, -1, _NO_MAG, _NO_SGN, ids.astype(np.uint8), _NO_BYTES, 0,
            *self._walk_args(layout, params))
        if status == spiht.BAD_TOKEN:
            raise InvalidTokensError(f"token {spiht.TOKEN_NAMES[ids[at]]} (id {int(ids[at])}) at index {at} "
                                     "cannot stand there: the sequence is corrupt or was edited")
        if status == spiht.TOO_LONG:
            raise InvalidTokensError(f"the sequence has {len(ids) - at} tokens past the end of its stream "
                                     f"(it ends at {at})")
        return value, low, neg, node, plane

    def _decode_one(self, seq: TokenSequence) -> np.ndarray:
        check_maker(seq.tokenizer, seq.version, self)
        layout = self._layout(seq.shape, seq.params)
        state = seq.cache.get("state")
        if state is None:
            value, low, neg, _, _ = self._replay(seq.ids, layout, seq.params)
        else:
            value, low, neg = state
        return self._image(layout, value, low, neg, seq.params, seq.shape)

    def _image(self, layout: Layout, value: np.ndarray, low: np.ndarray, neg: np.ndarray, params, shape) -> np.ndarray:
        """The image the decoder's knowledge (``value``, ``low``, ``neg``: see :func:`spiht.walk`)
        stands for: :meth:`decode` and the stepper's ``images`` both end here."""
        shift = self._shifts(layout, params)[0]
        img = self._synthesize(layout, spiht.reconstruct(value, low, neg, self.bias, layout.parent, shift,
                                                         self.hold_roots))
        fy, fx = params.get("rep", (1, 1))
        if (fy, fx) != (1, 1):
            img = np.repeat(np.repeat(img, fy, axis=0), fx, axis=1)
        return img.reshape(shape)

    def _shortest_prefix(self, seq: TokenSequence, node: np.ndarray, plane: np.ndarray, img: np.ndarray, q: Quality,
                         mask: np.ndarray | None, unit: int = 1, known: dict[int, float] | None = None) -> int:
        """The smallest k whose decoded prefix reaches the target (with ``mask``, the region of
        interest: the quality inside it), or ``len(seq)`` when even the full sequence does not;
        with ``unit``, among the lengths ``unit * j`` and ``len(seq)`` (whole words).

        Quality does not always rise with k (see ``docs/wavelet-language.md``, "Longer prefixes"),
        so a bisection alone can land on a later crossing. The bisection finds a prefix ``hi``
        that reaches the target; then every shorter prefix at which the decoded image changes
        (k = 0, and right after each SIG+, SIG-, REF0 or REF1 token: the other tokens change no
        coefficient; with ``unit``, each length whose last word holds one) is checked in order,
        which makes the answer exact. That check synthesises one image per such prefix; it runs
        when their number times the image's values (H x W x C) is at most :data:`EXACT_SEARCH`
        (28x28 gray images at any target, a 64x64 gray one up to 4,095 such prefixes), and beyond
        that the bisection's answer is returned: the shortest when quality rises with k.

        ``node`` and ``plane``: each token's coefficient and bit-plane, from the encoder's walk; the
        knowledge of a prefix is then one pass over its tokens (:func:`spiht.knowledge`), and in the check, prefix after
        prefix, each token is applied once (:func:`spiht.apply_tokens`). (Each prefix was walked
        again from its first token: the check cost ``hi**2`` token steps, 9.6 s for a 30 x 30 x 3
        noise image at ``Quality(ssim=0.999)``.)

        ``known``: scores of prefixes already measured (by length: ``q``'s metric, with ``mask``), read
        by the bisection and added to, so that a caller asking for several targets of one sequence
        (``adatok serve``'s PSNR slider) synthesises each prefix once.
        """
        ref = img.reshape(seq.shape)
        target = q.psnr if q.psnr is not None else q.ssim
        n = len(seq)
        layout = self._layout(seq.shape, seq.params)
        ids = np.ascontiguousarray(seq.ids, np.uint8)
        shift = self._walk_args(layout, seq.params)[2]

        def length(j: int) -> int:
            return min(j * unit, n)

        def score(value, low, neg) -> float:
            return quality_score(ref, self._image(layout, value, low, neg, seq.params, seq.shape), q, mask)

        def reaches(j: int) -> bool:
            k = length(j)
            v = None if known is None else known.get(k)
            if v is None:
                v = score(*spiht.knowledge(ids, node, plane, shift, k, layout.size))
                if known is not None:
                    known[k] = v
            return v >= target

        lo, hi = 0, -(-n // unit)
        if not reaches(hi):
            return n
        while lo < hi:
            mid = (lo + hi) // 2
            if reaches(mid):
                hi = mid
            else:
                lo = mid + 1
        changes = np.unique(np.flatnonzero(np.isin(seq.ids[: length(hi - 1)], _CHANGERS)) // unit) + 1
        if (len(changes) + 1) * int(np.prod(seq.shape)) <= EXACT_SEARCH:
            value, low, neg = spiht.knowledge(ids, node, plane, shift, 0, layout.size)
            done = 0
            for j in (0, *changes.tolist()):
                spiht.apply_tokens(ids, node, plane, shift, value, low, neg, done, length(j))
                done = length(j)
                if score(value, low, neg) >= target:
                    return done
        return length(hi)
