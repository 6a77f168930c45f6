"""What adatok's tokenizers are measured against: Pillow's codecs and a uniform-grid tokenizer.

Codecs (:data:`CODECS`), each given a byte budget and run at the best setting that stays within it:

============  ==================================================================================
``jpeg``      libjpeg via Pillow, ``optimize=True`` (Huffman tables per image), quality 1..100
``webp``      libwebp, ``method=6`` (its slowest, strongest search), quality 0..100
``avif``      libavif (AV1), ``speed=6``, quality 0..100
``jp2``       OpenJPEG, JPEG 2000 at its strongest: irreversible 9/7 wavelet, multi-component
              transform (``mct=1``) for colour, rate control (``quality_mode="rates"``), raw
              codestream (``no_jp2=True``: no JP2 boxes)
============  ==================================================================================

:class:`GridTokenizer` is the conventional 2-D grid tokenization adaptive tokenizers are compared
with: the image is cut into fixed square patches and each patch becomes one token, the index of
its nearest entry in a k-means codebook learned on data. It implements the
:class:`~adatok.Tokenizer` contract. It needs data to learn its codebook, so it is not registered
with :func:`adatok.load`: make one with :meth:`GridTokenizer.fit`.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..core.budget import Bpp, Lossless, Quality, Tokens, check_budget, too_small
from ..core.errors import AdatokError, BudgetError, ContainerError, InvalidTokensError
from ..core import imageio
from ..core.imageio import as_image
from ..core.protocol import decode_each, image_list
from ..core.metrics import psnr, ssim
from ..core.checks import is_whole, size_text
from ..core.sequence import TokenSequence, check_maker
from ..core.stepper import SlotStepper, check_starts, start_shape

__all__ = ["CODECS", "Codec", "Encoded", "GridTokenizer", "codec"]


# --------------------------------------------------------------------------------------------
# Codecs
# --------------------------------------------------------------------------------------------


#: Quality steps above the first setting over a byte budget that :meth:`Codec.at_most` tries too.
DIP = 2


@dataclass(frozen=True)
class Codec:
    """One of Pillow's lossy codecs, driven by a byte budget.

    Attributes:
        name: short name, as in results (``"jpeg"``, ``"webp"``, ``"avif"``, ``"jp2"``).
        label: display name (``"JPEG 2000"``).
        format: Pillow's format name.
        low, high: range of the quality setting (for ``jp2``: of the compression ratio).
        max_side: the longest side the codec's library encodes (None: no limit below adatok's own).
    """

    name: str
    label: str
    format: str
    low: float
    high: float
    max_side: int | None = None

    def refuses(self, shape: tuple[int, ...]) -> str | None:
        """Why the codec cannot encode an image of ``shape`` (H, W, ...), or None. libwebp encodes at
        most 16,383 pixels a side, libjpeg 65,500, and libavif writes files of up to 32,768 that it reads
        back (Pillow raised a raw ValueError, an OSError, or wrote an AVIF file it could not open)."""
        h, w = shape[:2]
        if self.max_side is not None and max(h, w) > self.max_side:
            return f"{self.label} encodes images up to {self.max_side:,} pixels a side; this one is {size_text(shape)}"
        return None

    def encode(self, image: np.ndarray, setting: float) -> bytes:
        """Encode an ``H x W x C`` uint8 image at ``setting`` (quality, or for ``jp2`` a compression ratio).

        Raises:
            AdatokError: an image the codec cannot encode (see :meth:`refuses`).
        """
        img = as_image(image)
        why = self.refuses(img.shape)
        if why is not None:
            raise AdatokError(why)
        gray = img.shape[2] == 1
        pil = Image.fromarray(img[:, :, 0] if gray else img)
        buf = io.BytesIO()
        if self.name == "jp2":
            pil.save(buf, "JPEG2000", irreversible=True, mct=0 if gray else 1, quality_mode="rates",
                     quality_layers=[float(setting)], no_jp2=True)
        elif self.name == "jpeg":
            try:
                pil.save(buf, "JPEG", quality=int(setting), optimize=True)
            except OSError:  # (Pillow's optimized Huffman pass fails on very short, wide images at high quality:
                # 2 x 12000 at 95, "broken data stream", a 500 in adatok serve's curve; the standard tables do)
                buf = io.BytesIO()
                pil.save(buf, "JPEG", quality=int(setting), optimize=False)
        elif self.name == "webp":
            pil.save(buf, "WEBP", quality=int(setting), method=6)
        elif self.name == "avif":
            pil.save(buf, "AVIF", quality=int(setting), speed=6)
        else:  # pragma: no cover - CODECS lists every name
            raise ValueError(self.name)
        return buf.getvalue()

    def decode(self, data: bytes, channels: int) -> np.ndarray:
        """Decode bytes made by :meth:`encode` to ``H x W x channels`` uint8."""
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
        return arr[:, :, None] if arr.ndim == 2 else arr

    def at_most(self, image: np.ndarray, nbytes: int, cache: dict | None = None) -> Encoded | None:
        """The best setting whose file has at most ``nbytes`` bytes, as an :class:`Encoded`.

        File size grows with quality, mostly: the quality is found by a search that guesses from log
        sizes and falls back to halving, then the :data:`DIP` settings above the first one over the
        budget are tried too (WebP's size falls by a few bytes at some steps: at 96 px, 35 of 83,300
        budgets had a better setting two steps up). JPEG 2000 is given the compression ratio ``raw / nbytes`` and
        corrected from the sizes it makes until its file fills at least 99 % of the budget (at
        most 6 tries). ``None`` when even the smallest file this codec makes is larger.

        ``cache``, a dict kept between calls on the same image (for several budgets), spares
        encoding a setting twice.
        """
        files = cache if cache is not None else {}

        def enc(q: float) -> Encoded:
            if q not in files:
                t0 = time.perf_counter()
                data = self.encode(image, q)
                files[q] = Encoded(data, float(q), time.perf_counter() - t0)
            return files[q]

        if self.name == "jp2":
            return self._jp2_at_most(image, nbytes, enc)
        fits = [q for q, e in files.items() if len(e.data) <= nbytes]
        over = [q for q, e in files.items() if len(e.data) > nbytes]
        lo = int(max(fits)) if fits else int(self.low)
        hi = int(min(over)) if over else int(self.high)
        if len(enc(lo).data) > nbytes:
            return None
        if len(enc(hi).data) <= nbytes:
            return enc(hi)
        # size(lo) <= nbytes < size(hi): narrow down, guessing by log size, halving when a guess is poor
        guess = True
        while hi - lo > 1:
            if guess:
                a, b = math.log(len(enc(lo).data)), math.log(len(enc(hi).data))
                t = (math.log(nbytes) - a) / (b - a) if b > a else 0.5
                q = min(max(lo + round(t * (hi - lo)), lo + 1), hi - 1)
            else:
                q = (lo + hi) // 2
            width = hi - lo
            if len(enc(q).data) <= nbytes:
                lo = q
            else:
                hi = q
            guess = (hi - lo) * 2 <= width  # keep guessing while guesses at least halve the range
        for q in range(hi + 1, min(hi + DIP, int(self.high)) + 1):  # (sizes not monotone in quality)
            if q > lo and len(enc(q).data) <= nbytes:  # (lo may be above hi already: a size cached from another budget)
                lo = q
        return enc(lo)

    def _jp2_at_most(self, image: np.ndarray, nbytes: int, enc) -> Encoded | None:
        """Correct the compression ratio by the sizes it gives until the file fills 99 % of ``nbytes``."""
        if nbytes <= 0:  # no file has no bytes (and the correction would divide by zero)
            return None
        ratio = max(image.size / max(nbytes, 1), self.low)
        best = None
        for _ in range(6):
            e = enc(ratio)
            size = len(e.data)
            if size <= nbytes and (best is None or size > len(best.data)):
                best = e
                if size >= 0.99 * nbytes:
                    break
            nxt = min(max(ratio * size / (0.995 * nbytes), self.low), self.high)
            if nxt == ratio:
                break
            ratio = nxt
        return best


@dataclass(frozen=True)
class Encoded:
    """A codec's file at one setting: its bytes, the setting, and the seconds encoding took."""

    data: bytes
    setting: float
    seconds: float


#: The codecs, by name.
CODECS: dict[str, Codec] = {
    "jpeg": Codec("jpeg", "JPEG", "JPEG", 1, 100, max_side=65_500),
    "webp": Codec("webp", "WebP", "WEBP", 0, 100, max_side=16_383),
    "avif": Codec("avif", "AVIF", "AVIF", 0, 100, max_side=32_768),
    "jp2": Codec("jp2", "JPEG 2000", "JPEG2000", 1.0, 1e5),
}


def codec(name: str) -> Codec:
    """The codec called ``name`` (one of :data:`CODECS`)."""
    if name not in CODECS:
        raise AdatokError(f"unknown codec {name!r}: use one of {', '.join(CODECS)}")
    return CODECS[name]


# --------------------------------------------------------------------------------------------
# The uniform-grid tokenizer
# --------------------------------------------------------------------------------------------

_HEADER = struct.Struct(">IIBBI")  # height, width, channels, patch side, tokens
_LUMA = np.array([0.299, 0.587, 0.114])


class GridTokenizer:
    """Uniform 2-D grid tokenizer: fixed square patches, a k-means codebook, one token per patch.

    It may hold grids of several patch sizes, each with its own codebook; a budget picks the finest
    grid whose tokens fit it and the sequence is that grid's patches in raster order. A prefix
    decodes to the patches it holds, with the mean training patch in place of the others.

    * ``None`` (no budget): the finest grid.
    * ``Tokens(k)``: the finest grid of at most ``k`` tokens (fewer than ``k`` where the grids do
      not give exactly ``k``); if even the coarsest grid has more, its first ``k`` tokens.
    * ``Bpp(x)``: the same with the bytes of :meth:`to_bytes` (a 14-byte header, then
      ``ceil(log2(vocab_size))`` bits per token); ``Bpp(x, header=False)`` counts the tokens' bits
      alone.
    * ``Quality(psnr=..)`` / ``Quality(ssim=..)``: the coarsest grid that reaches the target (the
      finest if none does).
    * ``Lossless()``: refused (:class:`~adatok.BudgetError`).

    Token positions (``pos_fields``) are ``patch`` (the patch side in pixels), ``y`` and ``x``
    (the patch's row and column): a token covers rows ``y * patch .. (y + 1) * patch`` and the same
    for columns.

    Example:
        >>> import numpy as np
        >>> from adatok import Tokens
        >>> from adatok.eval import GridTokenizer
        >>> rng = np.random.default_rng(0)
        >>> imgs = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
        >>> tok = GridTokenizer.fit(imgs, patch=(8, 4), codebook=16)
        >>> seq, = tok.encode(imgs[:1], Tokens(20))
        >>> len(seq), seq.params["patch"], tok.decode([seq])[0].shape
        (16, 8, (32, 32, 3))
    """

    name = "grid"
    pos_fields = ("patch", "y", "x")
    supports_roi = False  # a fixed grid: no region of interest

    def __init__(self, codebooks: Mapping[int, np.ndarray], channels: int, fill: Mapping[int, np.ndarray],
                 codebook_size: int, seed: int = 0):
        """Use :meth:`fit`; this takes already learned codebooks ``{patch: (K, patch*patch*channels)}``."""
        if channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        self.codebooks = {int(p): np.asarray(c, np.float32) for p, c in sorted(codebooks.items())}
        self.fill = {int(p): np.asarray(f, np.float32) for p, f in fill.items()}
        self.channels = channels
        self.vocab_size = int(codebook_size)
        self.seed = seed
        self.bits = max(1, math.ceil(math.log2(self.vocab_size)))
        # The version names the codebooks: a sequence of another fitted grid (same name, same patch
        # sides) would decode here without error to another image.
        digest = hashlib.sha256(repr((self.channels, self.vocab_size)).encode())
        for p, book in self.codebooks.items():
            digest.update(repr((p, book.shape)).encode() + book.tobytes() + self.fill[p].tobytes())
        self.version = "1-" + digest.hexdigest()[:12]

    def __repr__(self) -> str:
        return (f"GridTokenizer(patches={self.patches}, codebook={self.vocab_size}, channels={self.channels}, "
                f"seed={self.seed})")

    @property
    def patches(self) -> tuple[int, ...]:
        """The patch sides this tokenizer has codebooks for, coarsest (largest) first."""
        return tuple(sorted(self.codebooks, reverse=True))

    # --- learning ------------------------------------------------------------------------------

    @classmethod
    def fit(cls, images: Sequence[np.ndarray], patch: int | Sequence[int] = (16, 8, 4), codebook: int = 256,
            seed: int = 0, max_values: int = 2_000_000, max_patches: int = 20_000,
            channels: int | None = None) -> GridTokenizer:
        """Learn a k-means codebook for each patch side from ``images``.

        Args:
            images: training images (``H x W x C`` uint8; gray and colour may be mixed: with any
                colour image the codebooks are colour and gray images are coded as colour).
            patch: one patch side in pixels, or several (one grid each).
            codebook: codebook size ``K`` (tokens take ``ceil(log2 K)`` bits).
            seed: seeds the choice of training patches and k-means (scikit-learn's
                ``MiniBatchKMeans``, k-means++ initialisation).
            max_values, max_patches: at most this many patches, and patches x values per patch,
                are drawn (uniformly, at any offset) per patch side.
            channels: 1 or 3, the codebooks' channels (default: 3 when any training image is in
                colour); 3 for gray training images that colour images will be coded with.
        """
        try:
            from sklearn.cluster import MiniBatchKMeans
            from threadpoolctl import threadpool_limits
        except ImportError as exc:  # pragma: no cover - the eval extra installs it
            raise AdatokError("the grid tokenizer needs scikit-learn: pip install 'adatok[eval]'") from exc
        imgs = [as_image(im, what=f"training image {i}") for i, im in enumerate(images)]
        if not imgs:
            raise AdatokError("GridTokenizer.fit needs at least one training image")
        if isinstance(codebook, bool) or not isinstance(codebook, int | np.integer) or codebook < 2:
            raise AdatokError(f"codebook size must be a whole number >= 2, got {codebook!r}")
        sides = [patch] if isinstance(patch, int | np.integer) else list(patch)
        if not sides or any(isinstance(p, bool) or not isinstance(p, int | np.integer) or p < 1 for p in sides):
            raise AdatokError(f"patch sides must be whole numbers >= 1, got {patch!r}")
        if channels is None:
            channels = 3 if any(im.shape[2] == 3 for im in imgs) else 1
        elif channels not in (1, 3) or (channels == 1 and any(im.shape[2] == 3 for im in imgs)):
            raise AdatokError(f"channels is 1 or 3 (3 when a training image is in colour), got {channels!r}")
        imgs = [_to_channels(im, channels) for im in imgs]
        codebooks, fill = {}, {}
        for p in sorted({int(p) for p in sides}, reverse=True):
            rng = np.random.default_rng([seed, p])
            data = _sample_patches(imgs, p, min(max_patches, max(1, max_values // (p * p * channels))), rng)
            k = min(int(codebook), len(np.unique(data, axis=0)))
            km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=min(2048, len(data)), n_init=1,
                                 init_size=min(len(data), 3 * k), max_iter=20, max_no_improvement=5)
            with threadpool_limits(1):  # one thread: faster on small problems, and the same result anywhere
                km.fit(data)
            centres = km.cluster_centers_.astype(np.float32)
            if k < codebook:  # so few distinct patches that some entries repeat
                centres = np.concatenate([centres, np.repeat(centres[:1], codebook - k, axis=0)])
            codebooks[p] = centres
            fill[p] = data.mean(axis=0)
        return cls(codebooks, channels, fill, int(codebook), seed)

    # --- sizes ---------------------------------------------------------------------------------

    @staticmethod
    def grid_tokens(shape: Sequence[int], patch: int) -> int:
        """Tokens of a full grid of ``patch``-pixel patches over an image of ``shape``."""
        return -(-int(shape[0]) // patch) * -(-int(shape[1]) // patch)

    def nbytes(self, n_tokens: int) -> int:
        """Bytes of :meth:`to_bytes` for a sequence of ``n_tokens`` tokens."""
        return _HEADER.size + -(-n_tokens * self.bits // 8)

    def choose(self, shape: Sequence[int], budget, patches: Sequence[int] | None = None) -> tuple[int, int]:
        """``(patch, tokens)`` a ``Tokens`` or ``Bpp`` budget gets on an image of ``shape``.

        ``patches`` are the patch sides to choose from (default: those with a codebook). Used by
        :meth:`encode`, and to find which patch sides a set of budgets needs before fitting.
        """
        sides = sorted(patches if patches is not None else self.codebooks)  # finest first
        if isinstance(budget, Tokens):
            limit = int(budget.k)
            fits = [p for p in sides if self.grid_tokens(shape, p) <= limit]
            return (fits[0], self.grid_tokens(shape, fits[0])) if fits else (sides[-1], limit)
        if isinstance(budget, Bpp):
            total = budget.nbytes(shape) + (0 if budget.header else _HEADER.size)
            fits = [p for p in sides if self.nbytes(self.grid_tokens(shape, p)) <= total]
            if fits:
                return fits[0], self.grid_tokens(shape, fits[0])
            k = (total - _HEADER.size) * 8 // self.bits
            if k < 0:
                raise too_small(budget, total, shape, _HEADER.size, f"the grid's {_HEADER.size}-byte header")
            return sides[-1], int(k)
        raise BudgetError(f"choose takes Tokens or Bpp budgets, got {budget!r}")

    # --- the contract --------------------------------------------------------------------------

    def encode(self, images: Sequence[np.ndarray], budget=None, roi=None) -> list[TokenSequence]:
        """Tokenize each image on the grid its budget picks (see the class docstring)."""
        check_budget(budget)
        images, roi = image_list(images, roi)
        if any(r is not None for r in roi):
            raise AdatokError("the grid tokenizer does not support regions of interest")
        if isinstance(budget, Lossless):
            raise BudgetError("the grid tokenizer is lossy: Lossless() is not available")
        out = []
        for i, image in enumerate(images):
            img = as_image(image, what=f"image {i}")
            shape = np.shape(image)
            if isinstance(budget, Tokens | Bpp):
                p, k = self.choose(img.shape, budget)
                out.append(self._tokenize(img, shape, p).prefix(k))
            elif isinstance(budget, Quality):
                out.append(self._by_quality(img, shape, budget))
            else:
                out.append(self._tokenize(img, shape, min(self.codebooks)))
        return out

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """Decode each sequence (any prefix) to a uint8 image of the encoded shape."""
        return decode_each(seqs, self._decode_one)  # (an error names the sequence: sequence 5: ...)

    def stepper(self, starts: Sequence[tuple[int, ...] | TokenSequence], patch: int | None = None) -> SlotStepper:
        """Start B sequences to grow one token at a time (see :class:`~adatok.core.stepper.SlotStepper`):
        patch after patch in raster order, any id at each, complete when the grid is. Each start is
        an image shape (an empty sequence on the grid of ``patch``, default the finest) or a
        sequence of this tokenizer (to go on from, on its grid)."""
        starts = check_starts(starts)
        p0 = min(self.codebooks) if patch is None else patch
        if not is_whole(p0) or p0 not in self.codebooks:
            raise AdatokError(f"this grid tokenizer has no codebook for {p0}-pixel patches "
                              f"(it has {', '.join(map(str, self.patches))})")
        p0 = int(p0)
        grids, prefixes = [], []
        for i, start in enumerate(starts):
            if isinstance(start, TokenSequence):
                self._check(start)
                grids.append((tuple(start.shape), int(start.params["patch"])))
                prefixes.append(start.ids)
                continue
            grids.append((start_shape(start, i), p0))
            prefixes.append(np.zeros(0, np.int64))
        full = [self._sequence(np.zeros(self.grid_tokens(s, p), np.int64), s, p).pos for s, p in grids]
        return SlotStepper(self.vocab_size, self.pos_fields, full, prefixes, self._sequence, self.decode, grids)

    # --- bytes -----------------------------------------------------------------------------------

    def header_size(self, data: bytes) -> int:
        """Bytes of :meth:`to_bytes` output before the token stream (the fixed header)."""
        return _HEADER.size

    def to_bytes(self, seq: TokenSequence) -> bytes:
        """A 14-byte header (height, width, channels, patch side, tokens), then the ids at
        ``ceil(log2(vocab_size))`` bits each, most significant bit first. The bytes do not name
        the codebooks (a baseline's rate counts what a decoder that has them needs): read them
        with the tokenizer that wrote them. (Not the ``.atk`` container: ``seq.to_bytes()`` is
        for registered tokenizers.)"""
        self._check(seq)
        h, w = seq.shape[:2]
        c = seq.shape[2] if len(seq.shape) == 3 else 0  # 0: a 2-D image
        bits = np.unpackbits(seq.ids.astype(">u4").view(np.uint8).reshape(-1, 4), axis=1)[:, 32 - self.bits:]
        return _HEADER.pack(h, w, c, int(seq.params["patch"]), len(seq)) + np.packbits(bits.reshape(-1)).tobytes()

    def from_bytes(self, data: bytes) -> TokenSequence:
        """Inverse of :meth:`to_bytes`."""
        if len(data) < _HEADER.size:
            raise ContainerError(f"grid token bytes need a {_HEADER.size}-byte header, got {len(data)} bytes")
        h, w, c, p, n = _HEADER.unpack_from(data)
        if c not in (0, 1, 3) or min(h, w) < 1 or h * w > imageio.MAX_PIXELS:
            raise ContainerError(f"grid token bytes hold no image: {h} x {w} pixels, {c} channels (corrupt?)")
        if p not in self.codebooks or n > self.grid_tokens((h, w), p) or len(data) < self.nbytes(n):
            raise ContainerError("grid token bytes do not match this grid tokenizer: corrupt, or another codebook")
        bits = np.unpackbits(np.frombuffer(data, np.uint8, offset=_HEADER.size))[: n * self.bits]
        weights = 1 << np.arange(self.bits - 1, -1, -1)
        ids = (bits.reshape(n, self.bits).astype(np.int64) * weights).sum(axis=1)
        shape = (h, w) if c == 0 else (h, w, c)
        return self._sequence(ids, shape, p)

    # --- helpers ---------------------------------------------------------------------------------

    def _sequence(self, ids: np.ndarray, shape: tuple[int, ...], p: int) -> TokenSequence:
        gw = -(-shape[1] // p)
        idx = np.arange(len(ids))
        pos = np.stack([np.full(len(ids), p), idx // gw, idx % gw], axis=1)
        return TokenSequence(ids, pos, shape, self.name, self.version, {"patch": p}, self.pos_fields)

    def _tokenize(self, img: np.ndarray, shape: tuple[int, ...], p: int) -> TokenSequence:
        x = _grid_patches(_to_channels(img, self.channels), p)
        book = self.codebooks[p]
        d = (book * book).sum(axis=1)[None, :] - 2.0 * (x @ book.T)
        return self._sequence(np.argmin(d, axis=1), shape, p)

    def _by_quality(self, img: np.ndarray, shape: tuple[int, ...], q: Quality) -> TokenSequence:
        if q.region is not None:
            raise BudgetError("the grid tokenizer does not support Quality(region='roi')")
        target = q.psnr if q.psnr is not None else q.ssim
        seq = None
        for p in self.patches:  # coarsest first
            seq = self._tokenize(img, shape, p)
            out = self._decode_one(seq).reshape(img.shape)
            if (psnr(img, out) if q.psnr is not None else ssim(img, out)) >= target:
                break
        return seq

    def _check(self, seq: TokenSequence) -> None:
        if not isinstance(seq, TokenSequence):
            raise InvalidTokensError(f"expected a TokenSequence, got {type(seq).__name__}")
        check_maker(seq.tokenizer, seq.version, self, "another grid (other codebooks) made it")
        shape = seq.shape
        if (len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3))
                or shape[0] * shape[1] > imageio.MAX_PIXELS):
            raise InvalidTokensError(f"shape {shape} is not an image's of at most {imageio.MAX_PIXELS} pixels "
                                     "with 1 or 3 channels")
        p = seq.params.get("patch", -1)
        if not is_whole(p) or int(p) not in self.codebooks:
            raise InvalidTokensError(f"this grid tokenizer has no codebook for {p}-pixel patches "
                                     f"(it has {', '.join(map(str, self.patches))})")
        p = int(p)
        if len(seq) > self.grid_tokens(seq.shape, p):
            raise InvalidTokensError(f"{len(seq)} tokens, more than the {self.grid_tokens(seq.shape, p)} patches "
                                     "of the grid")
        if len(seq) and (seq.ids.min() < 0 or seq.ids.max() >= self.vocab_size):
            raise InvalidTokensError(f"token ids must be in 0..{self.vocab_size - 1}")

    def _decode_one(self, seq: TokenSequence) -> np.ndarray:
        self._check(seq)
        p = int(seq.params["patch"])
        h, w = seq.shape[:2]
        gh, gw = -(-h // p), -(-w // p)
        vals = np.repeat(self.fill[p][None, :], gh * gw, axis=0)
        vals[: len(seq)] = self.codebooks[p][seq.ids]
        c = self.channels
        img = vals.reshape(gh, gw, p, p, c).transpose(0, 2, 1, 3, 4).reshape(gh * p, gw * p, c)[:h, :w]
        want = seq.shape[2] if len(seq.shape) == 3 else 1
        if want != c:
            img = img.mean(axis=2, keepdims=True) if want == 1 else np.repeat(img, 3, axis=2)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8).reshape(seq.shape)


def _to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """``H x W x C`` uint8 as ``channels`` channels (gray replicated, or colour to luma)."""
    if img.shape[2] == channels:
        return img
    if channels == 3:
        return np.repeat(img, 3, axis=2)
    return np.clip(np.rint(img.astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)[:, :, None]


def _pad_to(img: np.ndarray, p: int) -> np.ndarray:
    """Pad (edge replication) so that both sides are multiples of ``p``."""
    h, w = img.shape[:2]
    return np.pad(img, ((0, -h % p), (0, -w % p), (0, 0)), mode="edge")


def _grid_patches(img: np.ndarray, p: int) -> np.ndarray:
    """The non-overlapping ``p x p`` patches of ``img`` in raster order, as float32 rows."""
    x = _pad_to(img, p)
    gh, gw, c = x.shape[0] // p, x.shape[1] // p, x.shape[2]
    return x.reshape(gh, p, gw, p, c).transpose(0, 2, 1, 3, 4).reshape(gh * gw, p * p * c).astype(np.float32)


def _sample_patches(imgs: list[np.ndarray], p: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` (or as many as there are) of the patches the grid codes (:func:`_grid_patches`: the
    images padded to multiples of ``p``, patches at multiples of ``p``), drawn uniformly without
    replacement, as float32 rows: the codebook learns what it will code. (Until 2026-12-03 patches
    were drawn at any offset inside the images, padded only up to ``p``: on 28 x 28 Fashion-MNIST
    images, whose 16-pixel grid is mostly padding in its last row and column, four 16-pixel
    tokens decoded to 13.7 dB, 2.9 dB below one 32-pixel token.)"""
    counts = np.array([GridTokenizer.grid_tokens(im.shape, p) for im in imgs], dtype=np.int64)
    total = int(counts.sum())
    picks = np.sort(rng.choice(total, size=min(n, total), replace=False)) if total <= 50_000_000 \
        else np.sort(rng.integers(0, total, size=n))
    starts = np.concatenate([[0], np.cumsum(counts)])
    rows = []
    for i, im in enumerate(imgs):
        sel = picks[(picks >= starts[i]) & (picks < starts[i + 1])] - starts[i]
        if len(sel):
            rows.append(_grid_patches(im, p)[sel])
    return np.concatenate(rows).astype(np.float32)
