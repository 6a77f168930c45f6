"""What the page works on, kept between requests: images, their codings and generation jobs.

Library calls only (the HTTP side is :mod:`adatok.serve.app`):

* an **image**: an upload read by :func:`adatok.read_image` (from a temporary folder removed at once),
  a bundled sample photo or a Fashion-MNIST test image;
* a **coding**: one tokenizer's full sequence of one image (with a region of interest, or
  without), and every prefix of it at hand: for the wavelet tokenizers a
  :class:`~adatok.wavelet.prefixes.Prefixes` (any prefix's image without a replay, the file size of
  every step-th prefix), for the others ``decode`` of each prefix (their sequences are short);
* a **job**: a generator writing samples (or completing a cut file) in a thread, its progress
  streamed.

Images and codings are kept in LRU stores of bounded size (:class:`Limits`), so memory is bounded.
"""

from __future__ import annotations

import base64
import io
import math
import queue
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import adatok
from adatok import AdatokError, TokenSequence
from adatok.core import imageio
from adatok.core.checks import shown, size_text  # (also app.py's state.shown, state.size_text)
from adatok.core.metrics import psnr, region_mask, region_psnr, ssim
from adatok.eval.maps import ERROR_MAP_MAX, colorize_indexed, error_map, token_heatmap

# --------------------------------------------------------------------------------------------
# Errors the page shows in words (each with its HTTP status)
# --------------------------------------------------------------------------------------------


class ServeError(AdatokError):
    """A request the server refuses; ``status`` is its HTTP status."""

    status = 400


class NotFound(ServeError):
    status = 404


class TooLarge(ServeError):
    status = 413


class WrongType(ServeError):
    status = 415


class OutOfRange(ServeError):
    status = 422


class BadField(ServeError):
    """A form field given wrongly: empty, or more than once (each was taken without a word: an empty
    value as the field left out, the last of several)."""

    status = 422


class Busy(ServeError):
    status = 503


class Gone(ServeError):
    """The client closed the request before its answer was ready (nginx's 499: no one reads it)."""

    status = 499


class Cancelled(Exception):
    """Raised inside work to stop it: a generation's (the page went away, or the time limit), or a
    request's ``stop()`` between the steps of its work once the request has ended."""


def go_on() -> None:
    """The ``stop`` of work nobody stops (a call outside the server): never raises."""


@dataclass
class Limits:
    """What one server accepts and keeps.

    Attributes:
        max_upload_bytes: largest request body (an image or ``.atk`` upload).
        max_pixels: largest image (H * W), checked from the file's header before any pixel is
            decoded; at most :data:`adatok.core.imageio.MAX_PIXELS` (more is refused: it was lowered
            to that without a word).
        seconds: the time limit of one request's work (encoding, curves, a PSNR target's search, a
            generation): then 503, and the work stops at its next step.
        encoders: encodes (and curves, comparisons, a prefix's details and ``.atk``) running at once;
            more wait for a free one, up to ``seconds``, and are then refused with 503.
        images, codings: how many of each the server keeps (least recently used dropped first).
        generations: generation jobs running at once.
        updates: seconds between two pictures of a generation in progress (several a second).
    """

    max_upload_bytes: int = 16 * 2**20
    max_pixels: int = 2**20
    seconds: float = 60.0
    encoders: int = 2
    images: int = 16
    codings: int = 6
    generations: int = 1
    updates: float = 0.1

    def __post_init__(self) -> None:
        # (each at least 1: encoders=0 made every encode wait out the time limit, then 503; images=0 or
        # codings=0 answered an id already dropped, so the next request was told to load it again)
        for name in ("max_upload_bytes", "max_pixels", "encoders", "images", "codings", "generations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise AdatokError(f"Limits.{name} is a whole number >= 1, got {value!r}")
        if self.max_pixels > imageio.MAX_PIXELS:
            raise AdatokError(f"the pixel limit (Limits.max_pixels, --max-pixels) is at most {imageio.MAX_PIXELS:,}, "
                              f"the library's limit on any image (adatok.core.imageio.MAX_PIXELS); got "
                              f"{int(self.max_pixels):,}")
        self.max_pixels = int(self.max_pixels)
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise AdatokError(f"the time limit is a finite number of seconds > 0, got {self.seconds}")
        if not (math.isfinite(self.updates) and self.updates >= 0):
            raise AdatokError(f"Limits.updates is a finite number of seconds >= 0, got {self.updates}")


def new_id() -> str:
    return secrets.token_hex(8)




# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def display_name(filename: str | None) -> str:
    """An upload's name as the page shows it: its last path part, printable characters only."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"[^\w.\- ()+]", "_", name)[:80]
    return name or "upload"


def read_upload(data: bytes, filename: str | None, limits: Limits, read=None):
    """An uploaded image file as an ``H x W x C`` uint8 array, read by :func:`adatok.read_image`
    from a temporary folder that is removed before returning; with ``read``, what it returns given
    the file's path (a mask by :func:`adatok.core.saliency.read_mask`, the image and whether its
    transparency was flattened by :func:`adatok.core.imageio.read_image_and_alpha`). The file's name
    is never used as a path; error messages name the upload, not the temporary file (a mask's, which
    the library calls "mask PATH", by the upload's name alone: "the painted region has ...")."""
    name = display_name(filename)
    if not data:
        raise ServeError(f"{name} is empty (0 bytes): choose an image file (PNG, JPEG, WebP, TIFF ...)")
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(f"{name} is {len(data):,} bytes, more than this server's limit of "
                       f"{limits.max_upload_bytes:,}")
    with tempfile.TemporaryDirectory(prefix="adatok-serve-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            _check_pixels(path, name, limits.max_pixels)
            return (read or adatok.read_image)(path)
        except AdatokError as exc:
            message = str(exc).replace(f"mask {path}", name).replace(str(path), name)
            raise (TooLarge if "pixels" in message and "limit" in message else ServeError)(message) from None


def _check_pixels(path: Path, name: str, max_pixels: int) -> None:
    """Refuse an image over ``max_pixels`` from its header alone (before any pixel is decoded); a file
    Pillow cannot open is left to :func:`adatok.read_image`, which says what is wrong with it."""
    from PIL import Image

    from adatok.core.imageio import pillow_pixel_limit

    try:
        # under the library's limit, not Pillow's default (a GIF's first frame is made inside open: 170 MB for a
        # 43-byte upload); not the server's own, lower one: Pillow's is one for the process, and other threads'
        # reads of larger images would be refused meanwhile
        with pillow_pixel_limit(), Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise TooLarge(f"{name} is far larger than this server's limit of {max_pixels:,} pixels (a "
                       "decompression bomb?); downscale it first") from None
    except Exception:  # noqa: BLE001 - not an image, truncated ...: read_image reports it in words
        return
    if w * h > max_pixels:
        raise TooLarge(f"{name} is {size_text((h, w))} = {w * h:,} pixels, more than this server's limit of "
                       f"{max_pixels:,} pixels; downscale it first (or start the server with a larger "
                       "--max-pixels)")


@dataclass
class Image:
    """An image the page works on, and the baseline codecs' files of it (by codec and byte budget)."""

    name: str
    pixels: np.ndarray
    #: Whether the upload's transparency was flattened onto white (its alpha is not in ``pixels``).
    flattened: bool = False
    codecs: dict = field(default_factory=dict)
    #: Held while the codecs' files are made or read: curves of two codings of the image (plain and
    #: steered, or two tokenizers) share them, and one filling the dict the other walked was a 500.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]

    def describe(self, iid: str) -> dict:
        h, w, c = self.shape
        return {"image": iid, "name": self.name, "height": h, "width": w, "channels": c, "flattened": self.flattened}


def fashion_samples() -> list[str]:
    """The Fashion-MNIST test images the page offers (one per class), when the dataset is installed."""
    from adatok.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR

    if not FASHION_MNIST_DIR.is_dir():
        return []
    return [f"fashion-mnist-{i}" for i in range(len(FASHION_MNIST_CLASSES))]


def sample_image(name: str) -> np.ndarray:
    """A bundled sample photo by name, or ``fashion-mnist-C``: the first test image of class C."""
    from adatok import datasets

    if name in datasets.SAMPLE_IMAGES:
        return datasets.sample_images([name])[0][1]
    if name in fashion_samples():
        label = int(name.rsplit("-", 1)[1])
        ds = datasets.load("fashion-mnist", "test", limit=200)
        at = int(np.flatnonzero(np.asarray(ds.labels) == label)[0])
        return ds.images[at]
    raise NotFound(f"unknown sample {shown(name)}: use one of "
                   f"{', '.join([*datasets.SAMPLE_IMAGES, *fashion_samples()])}")


# --------------------------------------------------------------------------------------------
# Codings: a tokenizer's full sequence of an image, every prefix at hand
# --------------------------------------------------------------------------------------------


class _Decoded:
    """Every prefix of a short sequence (a learned tokenizer's 32 tokens) by ``decode``: the same
    members as :class:`~adatok.wavelet.prefixes.Prefixes`."""

    def __init__(self, tok, seq: TokenSequence) -> None:
        self.tok, self.seq = tok, seq
        self.step = 1
        self.cuts = np.arange(len(seq) + 1)
        self.sizes = np.array([len(seq.prefix(k).to_bytes()) for k in self.cuts], np.int64)
        self._fits = np.maximum.accumulate(self.sizes)

    def __len__(self) -> int:
        return len(self.seq)

    def image(self, k: int) -> np.ndarray:
        return self.tok.decode([self.seq.prefix(int(k))])[0]

    def nbytes(self, k: int) -> int:
        return int(self.sizes[int(k)])

    def snap(self, k: int) -> int:
        return int(k)

    def longest(self, nbytes: int) -> int:
        return int(self.cuts[max(int(np.searchsorted(self._fits, int(nbytes), side="right")) - 1, 0)])

    def sequence(self, k: int) -> TokenSequence:
        return self.seq.prefix(int(k))


#: The longest sequence a tokenizer without a fast prefix path is served with.
SHORT = 4096
#: The highest PSNR target (dB) the slider takes.
MAX_PSNR = 200


class Coding:
    """One tokenizer's full sequence of one image (steered to a region of interest, or not), and
    every prefix of it: :meth:`resolve` turns a slider value into a prefix length, :meth:`frame`
    gives that prefix's image and numbers. ``stop()`` (the server's, see
    :meth:`adatok.serve.app.Server._bounded`) is called after the library's encode, before the walk."""

    def __init__(self, iid: str, image: Image, tokenizer: str, roi: np.ndarray | None = None,
                 roi_name: str | None = None, stop: Callable[[], None] = go_on) -> None:
        from adatok.wavelet import WaveletTokenizer
        from adatok.wavelet.prefixes import Prefixes

        self.iid, self.image, self.tokenizer = iid, image, tokenizer
        self.roi, self.roi_name = roi, roi_name
        tok = adatok.load(tokenizer)
        if roi is not None and not getattr(tok, "supports_roi", False):
            raise ServeError(f"{tokenizer} has no region of interest (its tokens have no place in the image): "
                             "choose a wavelet tokenizer for that")
        (seq,) = tok.encode([image.pixels], roi=None if roi is None else [roi])  # (one step: the library's)
        seq.cache.clear()  # (the full sequence's decoder state: the prefixes make their own)
        stop()
        if isinstance(tok, WaveletTokenizer):
            self.prefixes = Prefixes(tok, seq)
        elif len(seq) <= SHORT:
            self.prefixes = _Decoded(tok, seq)
        else:
            raise ServeError(f"{tokenizer} made {len(seq):,} tokens; the page serves other tokenizers' sequences "
                             f"up to {SHORT:,}")
        self.tok, self.seq = tok, seq
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._psnr: dict[int, float] = {}
        self._reaching: dict[float, int] = {}  # a PSNR target's prefix, by target
        self._lock = threading.Lock()
        self.curve: dict | None = None

    @property
    def pixels(self) -> int:
        return self.image.shape[0] * self.image.shape[1]

    def describe(self, cid: str) -> dict:
        p = self.prefixes
        return {"coding": cid, "image": self.iid, "tokenizer": self.tokenizer, "roi": self.roi_name,
                "tokens": len(p), "step": int(p.step), "bytes": int(p.sizes[-1]), "min_bytes": int(p.sizes[0]),
                "bpp": 8 * int(p.sizes[-1]) / self.pixels, **self.image.describe(self.iid),
                "full_psnr": _finite(self.psnr_at(len(p)))}

    # --- slider values to prefix lengths --------------------------------------------------------

    def resolve(self, tokens: int | None = None, nbytes: int | None = None, target: float | None = None,
                stop: Callable[[], None] = go_on) -> int:
        """The prefix a slider value stands for: ``tokens`` (snapped to the longest cut at most
        that long, unless it is a prefix a PSNR target was answered with), ``nbytes`` (the longest
        cut whose ``.atk`` file fits) or ``target`` (the prefix the library's ``Quality(psnr=target)``
        gives: see :meth:`shortest_reaching`, which ``stop()`` can end)."""
        given = [v is not None for v in (tokens, nbytes, target)]
        if sum(given) != 1:
            raise OutOfRange("give exactly one of tokens, bytes or psnr")
        p = self.prefixes
        if tokens is not None:
            if not 0 <= tokens <= len(p):
                raise OutOfRange(f"tokens={shown(tokens)} is out of range: this sequence has 0 to {len(p):,} tokens")
            k = p.snap(tokens)
            # a PSNR target's prefix need not be a cut (past 65,536 tokens); the page asks for its
            # details and downloads by its length, and they are of that very prefix
            return tokens if k != tokens and self._answered(tokens) else k
        if nbytes is not None:
            if not int(p.sizes[0]) <= nbytes <= 2**40:  # (below the empty file: a larger file was answered)
                raise OutOfRange(f"bytes={shown(nbytes)} is out of range: the smallest file of this coding (its "
                                 f"header, no token) is {int(p.sizes[0]):,} bytes, the whole file {int(p.sizes[-1]):,}")
            return p.longest(nbytes)
        if not 0 < target <= MAX_PSNR:
            raise OutOfRange(f"psnr={shown(target)} is out of range: give a PSNR in dB above 0 and at most "
                             f"{MAX_PSNR:g} (e.g. 20 to 60)")
        return self.shortest_reaching(target, stop)

    #: PSNRs kept per coding, and answers to PSNR targets (the oldest half dropped beyond it): a bound on memory.
    KEEP_PSNR = 8192

    def psnr_at(self, k: int) -> float:
        v = self._psnr.get(k)
        if v is None:
            v = psnr(self.image.pixels, self.picture(k))
            with self._lock:
                _keep(self._psnr, k, v, self.KEEP_PSNR)
        return v

    def shortest_reaching(self, target: float, stop: Callable[[], None] = go_on) -> int:
        """The prefix ``tok.encode([image], Quality(psnr=target), roi=[this coding's region])``
        gives: the shortest reaching ``target``, or the full sequence if none does, found by the
        library's own search (a wavelet tokenizer's on the sequence held here: its bisection, then
        every shorter prefix that changes a coefficient checked while that is cheap,
        ``adatok.wavelet.tokenizer.EXACT_SEARCH``; a learned tokenizer's image is encoded again with
        the budget, which decodes its 33 prefixes: a few tens of milliseconds). Answers
        are kept per target; no answer narrows another's search, so each is the library's whatever
        was asked before. (The server's own bisection over the cuts took PSNR to rise with k: it
        gave a learned tokenizer's full sequence when a shorter prefix reached the target, and on
        small images longer prefixes than the library's, which hung on earlier targets.) ``stop()``
        is called before each prefix the search measures (see :class:`_Stoppable`)."""
        with self._lock:
            k = self._reaching.get(target)
        if k is not None:
            return k
        k = self._library_shortest(target, stop)
        with self._lock:
            _keep(self._reaching, target, k, self.KEEP_PSNR)
        return k

    def _library_shortest(self, target: float, stop: Callable[[], None]) -> int:
        from adatok.core.metrics import quality_mask
        from adatok.wavelet.prefixes import Prefixes

        q = adatok.Quality(psnr=target)
        p = self.prefixes
        if isinstance(p, Prefixes):  # the encoder's walk is in Prefixes: the search needs no encode again
            mask = quality_mask(q, self.roi)  # (None: the slider's PSNR is over the whole image, as the budget's)
            # the PSNRs measured so far (the slider's, the searches' before): each prefix is synthesised once
            # (a new target on a 768x512 photo took 0.5-0.9 s, its bisection synthesising ~22 images anew)
            # (with a region, the scores are the region's: kept for this search only)
            with self._lock:
                known = _Stoppable(self._psnr if mask is None else {}, stop)
            k = int(self.tok._shortest_prefix(self.seq, p._node, p._plane, self.image.pixels, q, mask, known=known))
            if mask is None:
                with self._lock:
                    for at, v in known.items():
                        if at not in self._psnr:
                            _keep(self._psnr, at, v, self.KEEP_PSNR)
            return k
        (seq,) = self.tok.encode([self.image.pixels], q, roi=None if self.roi is None else [self.roi])
        return len(seq)

    def _answered(self, k: int) -> bool:
        with self._lock:
            return k in self._reaching.values()

    # --- a prefix ---------------------------------------------------------------------------------

    def picture(self, k: int) -> np.ndarray:
        """The image of the first ``k`` tokens (the last few are kept)."""
        with self._lock:
            img = self._frames.get(k)
            if img is not None:
                self._frames.move_to_end(k)
                return img
        img = self.prefixes.image(k)
        with self._lock:
            self._frames[k] = img
            while len(self._frames) > 4:
                self._frames.popitem(last=False)
        return img

    def frame(self, k: int) -> tuple[np.ndarray, dict]:
        """The image of the first ``k`` tokens and its numbers (PSNR ``None`` when exact)."""
        img = self.picture(k)
        nbytes = self.prefixes.nbytes(k)
        return img, {"k": int(k), "tokens": int(k), "total": len(self.prefixes), "bytes": nbytes,
                     "bpp": 8 * nbytes / self.pixels, "psnr": _finite(self.psnr_at(k))}

    def details(self, k: int, stop: Callable[[], None] = go_on) -> dict:
        """SSIM of the prefix, its error map and where its tokens landed (palette PNGs as data URIs);
        ``stop()`` between the steps."""
        img = self.picture(k)
        stop()
        out = {"k": int(k), "ssim": ssim(self.image.pixels, img), "token_map": None}
        stop()
        out["error_map"] = png_uri(*colorize_indexed(error_map(self.image.pixels, img), "magma", vmax=ERROR_MAP_MAX))
        heat = self.token_map(k, stop)
        if heat is not None:
            stop()
            out["token_map"] = png_uri(*colorize_indexed(heat, "viridis", log=True))
        return out

    #: Tokens placed at a time in :meth:`token_map`.
    HEAT_CHUNK = 2**20

    def token_map(self, k: int, stop: Callable[[], None] = go_on) -> np.ndarray | None:
        """:func:`~adatok.eval.maps.token_heatmap` of the first ``k`` tokens, summed over runs of
        :attr:`HEAT_CHUNK` tokens (the map is a sum over tokens), ``stop()`` between them: its
        memory is that of one run's tokens, whatever ``k``. (At once, it made every token's place and
        footprint first: 2.7 GB at the peak for the 25 million tokens of a 1024x1024 noise image;
        see docs/serve.md, "Memory".)"""
        p = self.prefixes
        if not isinstance(p, _Decoded):  # (a wavelet tokenizer's: each token's place is its own, by its node)
            heat = None
            for a in range(0, max(int(k), 1), self.HEAT_CHUNK):
                stop()
                b = min(a + self.HEAT_CHUNK, int(k))
                part = token_heatmap(self.tok._sequence(self.seq.ids[a:b], p._node[a:b], p._plane[a:b], p._layout,
                                                        self.seq.shape, dict(self.seq.params)))
                if part is None:
                    return None
                heat = part if heat is None else np.add(heat, part, out=heat)
            return heat
        return token_heatmap(p.sequence(k))


class _Stoppable(dict):
    """The ``known`` scores handed to the library's PSNR search (a copy of ``scores``): it looks a
    prefix up here before it measures one, so ``stop()`` is called there, between its steps."""

    def __init__(self, scores: dict, stop: Callable[[], None]) -> None:
        super().__init__(scores)
        self._stop = stop

    def get(self, key, default=None):
        self._stop()
        return super().get(key, default)


def _keep(store: dict, key, value, size: int) -> None:
    """``store[key] = value``, the oldest half of ``store`` dropped first when it holds ``size``."""
    if len(store) >= size:
        for old in list(store)[: size // 2]:
            store.pop(old, None)
    store[key] = value


def _finite(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def png(img: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """A uint8 image (or palette indices with their palette) as PNG bytes, compressed fast."""
    from PIL import Image as PILImage

    arr = np.asarray(img)
    if palette is not None:
        pil = PILImage.fromarray(arr, "L").convert("P")  # (indices kept) then the palette
        pil.putpalette(np.asarray(palette, np.uint8).reshape(-1).tolist())
    else:
        pil = PILImage.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def png_uri(img: np.ndarray, palette: np.ndarray | None = None) -> str:
    return "data:image/png;base64," + base64.b64encode(png(img, palette)).decode()


# --------------------------------------------------------------------------------------------
# The rate-distortion curve of an image, against the codecs at the same bytes
# --------------------------------------------------------------------------------------------

#: The codecs the curve is drawn against (adatok.eval.baselines), in the legend's order.
CURVE_CODECS = ("jpeg", "webp", "jp2")
#: The bit rates the codecs are run at (bits per pixel of the file), where the image allows.
CURVE_BPP = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)


def curve(coding: Coding, points: int = 24, stop: Callable[[], None] = go_on) -> dict:
    """PSNR against file bytes: the coding's prefixes (``points`` cuts, evenly spaced in log bytes,
    and the codecs' budgets) and JPEG, WebP and JPEG 2000 each at its best setting within the same
    byte budgets (:meth:`adatok.eval.baselines.Codec.at_most`); a codec that cannot encode an image
    of this size (:meth:`~adatok.eval.baselines.Codec.refuses`: a 20000 x 50 strip, under the pixel
    limit, was a raw 500) has no points and a ``note`` saying why, as has one with no budget above the
    coding's empty file or whose smallest file is over every budget (see :func:`_no_points`); a
    codec with points has ``note`` ``None``. ``stop()`` before each point."""
    from adatok.eval.baselines import codec

    p, img = coding.prefixes, coding.image
    h, w, c = img.shape
    lo, hi = int(p.sizes[0]), int(p.sizes[-1])
    budgets = [adatok.Bpp(b).nbytes((h, w)) for b in CURVE_BPP]  # (floor(x * H * W / 8), as a Bpp budget counts)
    budgets = [b for b in budgets if lo < b]
    ours = {}
    for b in [*np.geomspace(lo + 1, hi, points).astype(int).tolist(), *[b for b in budgets if b <= hi]]:
        stop()
        k = p.longest(b)
        ours[k] = {"tokens": k, "bytes": p.nbytes(k), "psnr": _finite(coding.psnr_at(k))}
    out = {"pixels": h * w, "ours": {"label": coding.tokenizer, "points": sorted(ours.values(), key=lambda r: r["tokens"])},
           "codecs": []}
    for name in CURVE_CODECS:
        cd = codec(name)
        why = cd.refuses(img.shape)
        if why is not None:
            out["codecs"].append({"name": name, "label": cd.label, "points": [], "note": why})
            continue
        rows = []
        with img.lock:
            cache = img.codecs.setdefault(name, {})
            for b in budgets:
                stop()
                enc = cd.at_most(img.pixels, b, cache)
                if enc is None:
                    continue
                rows.append({"bytes": len(enc.data), "budget": b,
                             "psnr": _finite(psnr(img.pixels, cd.decode(enc.data, c)))})
            smallest = min((len(e.data) for e in cache.values()), default=None)
        note = None if rows else _no_points(cd.label, budgets, smallest, lo, (h, w))
        out["codecs"].append({"name": name, "label": cd.label, "points": rows, "note": note})
    return out


def _no_points(label: str, budgets: list[int], smallest: int | None, lo: int, shape: tuple[int, int]) -> str:
    """Why a codec the image's size allows has no point on the curve (a 1x1 image's codecs came
    with no point and no note): no budget holds more than the coding's empty file, or the codec's
    smallest file is over every budget."""
    h, w = shape
    if not budgets:
        top = adatok.Bpp(CURVE_BPP[-1]).nbytes((h, w))
        return (f"no byte budget to draw {label} within: at {CURVE_BPP[0]:g} to {CURVE_BPP[-1]:g} bits per pixel "
                f"this image, {size_text(shape)}, gets at most {top:,} bytes, no more than this coding's empty file "
                f"({lo:,} bytes: its header)")
    return (f"{label}'s smallest file of this image, {size_text(shape)}, ({smallest:,} bytes) is larger than every budget "
            f"(up to {max(budgets):,} bytes: {CURVE_BPP[-1]:g} bits per pixel)")


def compare(plain: Coding, steered: Coding, nbytes: int, stop: Callable[[], None] = go_on) -> dict:
    """PSNR inside and outside the region of ``steered`` for both codings at the same bytes (each
    at its longest cut whose file fits ``nbytes``); ``stop()`` before each."""
    least = max(int(plain.prefixes.sizes[0]), int(steered.prefixes.sizes[0]))
    if not least <= nbytes <= 2**40:  # (each coding's empty file is the least it answers: one was compared at
        # more bytes; above, as for a frame: 10**23 came back in the JSON, a number JavaScript cannot hold)
        raise OutOfRange(f"bytes={shown(nbytes)} is out of range: both codings fit from {least:,} bytes (their "
                         "headers) to 2**40")
    mask = region_mask(steered.roi)
    out = {"bytes": int(nbytes), "region_pixels": int(mask.sum()), "pixels": int(mask.size)}
    for key, cd in (("without", plain), ("with", steered)):
        stop()
        k = cd.prefixes.longest(nbytes)
        inside, outside = region_psnr(cd.image.pixels, cd.picture(k), mask)
        out[key] = {"tokens": k, "bytes": cd.prefixes.nbytes(k), "inside": _finite(inside if inside is not None else np.inf),
                    "outside": _finite(outside if outside is not None else np.inf),
                    "psnr": _finite(cd.psnr_at(k))}
    return out


# --------------------------------------------------------------------------------------------
# LRU stores
# --------------------------------------------------------------------------------------------


class Store:
    """At most ``size`` items by id, the least recently used dropped first; thread-safe. ``what``
    names an item in messages, ``again`` tells what to do when an id is not found."""

    def __init__(self, size: int, what: str, again: str = "load it again") -> None:
        self.size, self.what, self.again = int(size), what, again
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, item) -> str:
        key = new_id()
        with self._lock:
            self._items[key] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str):
        with self._lock:
            item = self._items.get(key)
            if item is None:  # (an id never given out and one dropped look alike: the message says both)
                raise NotFound(f"no {self.what} {shown(key)} on the server: the id is unknown, or the {self.what} was "
                               f"dropped (the server keeps the {self.size} most recent {self.what}"
                               f"{'' if self.size == 1 else 's'}); {self.again}")
            self._items.move_to_end(key)
            return item

    def find(self, match: Callable[[object], bool]) -> tuple[str, object] | None:
        """The newest item that ``match``es, marked as used now (a coding handed to the page again was
        the next to be dropped, and its slider then found it gone)."""
        with self._lock:
            for key, item in reversed(self._items.items()):
                if match(item):
                    self._items.move_to_end(key)
                    return key, item
        return None

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------------------------
# Generation jobs
# --------------------------------------------------------------------------------------------


@dataclass
class Job:
    """A generation (or completion) to run when its events are asked for.

    ``work(emit, stop)`` runs in a thread: ``emit(event)`` sends an event, ``stop()`` is true once
    the job should end (it then raises :class:`Cancelled`)."""

    work: Callable
    events: queue.Queue = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False


def generator_frames(gen, st, interval: float, emit: Callable[[dict], None], stop: Callable[[], bool],
                     extra: dict | None = None) -> Callable:
    """The ``on_step`` callback of :func:`adatok.generate.sample.run`: every ``interval`` seconds,
    the images of the stepper's current prefixes as an event; raises :class:`Cancelled` once
    ``stop()``."""
    last = [0.0]

    def on_step(stepper, finished) -> None:
        if stop():
            raise Cancelled
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            emit(stepper_event(stepper, False, extra))

    return on_step


def stepper_event(st, done: bool, extra: dict | None = None) -> dict:
    images = st.images()
    return {"done": done, "tokens": [int(v) for v in np.asarray(st.lengths)],
            "images": [png_uri(np.asarray(im, np.uint8).reshape(np.shape(im)[0], np.shape(im)[1], -1)) for im in images],
            **(extra or {})}


def generate_job(gen, label: int | None, n: int, seed: int, cfg: float, interval: float, seconds: float,
                 max_tokens: int | None = None) -> Callable:
    """The work of a job that samples ``n`` images of class ``label`` (None: any), streaming them:
    the samples of :func:`adatok.generate.sample.sample` (and ``adatok generate``) with the same
    seed and options, their first batch seeded as it seeds it (the raw seed drew other samples)."""
    from adatok.generate.sample import batch_seed, run

    def work(emit, stop) -> None:
        st = gen.lang.stepper(n)
        t0 = time.monotonic()
        halt = lambda: stop() or time.monotonic() - t0 > seconds  # noqa: E731
        run(gen, st, np.full(n, -1 if label is None else label), cfg=cfg, seed=batch_seed(seed, 0),
            max_tokens=max_tokens, on_step=generator_frames(gen, st, interval, emit, halt))
        emit(stepper_event(st, True, {"seconds": time.monotonic() - t0}))

    return work


def complete_job(gen, prefix: TokenSequence, label: int | None, n: int, seed: int, cfg: float, interval: float,
                 seconds: float, max_tokens: int | None = None) -> Callable:
    """The work of a job that completes a cut ``.atk`` file's prefix ``n`` times, streaming them."""
    from adatok.generate import sample

    def work(emit, stop) -> None:
        t0 = time.monotonic()
        halt = lambda: stop() or time.monotonic() - t0 > seconds  # noqa: E731
        holder = {}

        def on_step(st, finished) -> None:
            holder.setdefault("cb", generator_frames(gen, st, interval, emit, halt, {"prefix": len(prefix)}))
            holder["cb"](st, finished)
            holder["st"] = st

        # (the API's max_tokens: tokens the model writes; the sampler's: the whole sequence, the prefix included)
        cap = None if max_tokens is None else int(gen.lang.stepper(prefixes=[prefix]).lengths[0]) + max_tokens
        sample.complete(gen, prefix, n, label, seed=seed, cfg=cfg, max_tokens=cap, on_step=on_step)
        emit(stepper_event(holder["st"], True, {"prefix": len(prefix), "seconds": time.monotonic() - t0}))

    return work
