"""Length per image: what a quality target costs each image, against one fixed size for all.

With a quality target (``Quality(psnr=..)``, ``Quality(ssim=..)``, optionally inside the region
of interest), a tokenizer picks each image's own shortest prefix. The alternative a pipeline
without adaptive length has is one fixed size for every image: the smallest token count (or rate)
at which every image that reaches the target with a prefix of its own decodes to it. Where quality
rises with length that is the largest of the per-image sizes; where it can fall (the learned
tokenizer's prefixes, a wavelet prefix cut in a pass), an image past its own shortest prefix may
be below the target again, so the fixed size is searched for, decoding the images at it. The
saving is that fixed size over the mean adaptive size of those images.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..core.budget import Bpp, Quality, Tokens, exact_bpp
from ..core.errors import AdatokError, BudgetError
from ..core.metrics import quality_mask, quality_score

#: Prefixes decoded at once while looking for the next length at which an image is at the target.
_SCAN = 32

#: Decimals of the fixed rate ``adatok eval --target-psnr`` prints (and the report shows).
BPP_DIGITS = 3
#: Decimals of each image's rate in ``lengths.csv``.
CSV_BPP_DIGITS = 6


def rate_up(nbytes: int, pixels: Sequence[int], digits: int) -> float:
    """The smallest rate of ``digits`` decimals whose ``Bpp`` allows at least ``nbytes`` bytes on
    every image of ``pixels`` (H x W each): a printed rate a reader can give back as a budget
    (``8 * 1083 / 4096`` printed as 2.115 allowed 1082 bytes)."""
    step = Fraction(1, 10**digits)
    need = max(Fraction(8 * nbytes, p) for p in pixels)
    x = math.ceil(need / step) * step
    while any(Bpp(float(x)).nbytes((p, 1)) < nbytes for p in pixels):  # (the float of x a hair under it)
        x += step
    return float(x)


@dataclass(frozen=True)
class LengthReport:
    """Per-image chosen lengths under one quality target, and the fixed-size comparison."""

    target: Quality
    names: tuple[str, ...]
    tokens: np.ndarray  # chosen tokens per image
    nbytes: np.ndarray  # bytes of each image's .atk file
    bpp: np.ndarray  # bits per pixel of each file
    quality: np.ndarray  # reached quality per image (over the region when the target says so)
    reached: np.ndarray  # bool per image

    fixed_tokens: int | None = None  # the smallest token count that serves every image reaching the target
    fixed_bpp: float | None = None  # the smallest rate (Bpp, header included) that does; None: no size does
    #: ``fixed_bpp`` as printed (:data:`BPP_DIGITS` decimals), rounded up to a value that, given as
    #: ``Bpp``, still serves every image (checked: rounded down, 2.115 left astro 1 byte short, at 24.985 dB)
    fixed_bpp_shown: float | None = None
    pixels: np.ndarray | None = None  # H x W of each image (for rates written with a few decimals)

    @property
    def token_saving(self) -> float | None:
        """The fixed token count over the mean adaptive one of the images that reach the target
        (1.0: no saving; None: no fixed count serves them all)."""
        return None if self.fixed_tokens is None else self.fixed_tokens / max(float(self.tokens[self.reached].mean()), 1e-12)

    @property
    def bpp_saving(self) -> float | None:
        """The fixed rate over the mean adaptive rate of the images that reach the target (None: no
        fixed rate serves them all)."""
        return None if self.fixed_bpp is None else self.fixed_bpp / max(float(self.bpp[self.reached].mean()), 1e-12)

    def summary(self) -> dict:
        """Distribution of lengths and sizes, and the savings, as plain numbers."""
        def dist(v: np.ndarray) -> dict:
            q = np.percentile(v, [0, 25, 50, 75, 100])
            return {"mean": float(v.mean()), "min": float(q[0]), "p25": float(q[1]), "median": float(q[2]),
                    "p75": float(q[3]), "max": float(q[4])}

        return {"images": len(self.names), "reached": int(self.reached.sum()), "tokens": dist(self.tokens),
                "bpp": dist(self.bpp), "fixed_tokens": self.fixed_tokens, "fixed_bpp": self.fixed_bpp,
                "fixed_bpp_shown": self.fixed_bpp_shown,
                "token_saving": self.token_saving, "bpp_saving": self.bpp_saving}


def length_report(tokenizer, images: Sequence[np.ndarray], target: Quality, names: Sequence[str] | None = None,
                  roi: Sequence[np.ndarray | None] | None = None) -> LengthReport:
    """Encode ``images`` under ``target`` (one call: each image gets its own shortest prefix) and
    measure what each got. ``roi`` steers a tokenizer that steers by region (``supports_roi``); one
    that does not runs as without (it is still needed, and refused, for ``region="roi"``).

    ``tokenizer`` is a tokenizer or a name for :func:`adatok.load`; ``images`` a list of images, as
    ``encode`` takes them (a bare array is refused, :class:`~adatok.ImageFormatError`).

    Raises:
        BudgetError: ``target`` is not a :class:`~adatok.Quality`.
        ImageFormatError: ``images`` is not a list of images, or ``roi`` not one map per image.
    """
    from ..core.protocol import image_list
    from .runner import tokenizer as as_tokenizer

    tokenizer = as_tokenizer(tokenizer)
    if not isinstance(target, Quality):  # (a Bpp had no .region: an AttributeError)
        raise BudgetError(f"length_report measures a quality target, Quality(psnr=..) or Quality(ssim=..); "
                          f"got {target!r}")
    images, maps = image_list(images, roi)  # the checks encode makes, before anything is encoded
    roi = maps if roi is not None else None
    if names is not None:
        names = list(names) if not isinstance(names, str | bytes) and isinstance(names, Iterable) else None
        if names is None or len(names) != len(images):
            raise AdatokError(f"names takes a list of one name per image ({len(images)})")
    steer = roi is not None and (getattr(tokenizer, "supports_roi", False) or target.region == "roi")
    seqs = tokenizer.encode(list(images), target, roi=roi) if steer else tokenizer.encode(list(images), target)
    outs = tokenizer.decode(seqs)
    tokens, nbytes, bpp, qual, pixels = [], [], [], [], []
    for i, (img, seq, out) in enumerate(zip(images, seqs, outs, strict=True)):
        img = np.asarray(img).reshape(out.shape)
        mask = quality_mask(target, roi[i] if roi is not None else None, f"image {i}")
        q = quality_score(img, out, target, mask)
        data = seq.to_bytes()
        tokens.append(len(seq))
        nbytes.append(len(data))
        bpp.append(8 * len(data) / (img.shape[0] * img.shape[1]))
        pixels.append(img.shape[0] * img.shape[1])
        qual.append(q)
    goal = target.psnr if target.psnr is not None else target.ssim
    qual_a = np.array(qual, dtype=np.float64)
    reached = qual_a >= goal - 1e-9
    fixed_k = fixed_x = None
    if reached.any():
        idx = np.flatnonzero(reached)
        sub = [np.asarray(images[i]).reshape(outs[i].shape) for i in idx]
        sub_roi = [roi[i] for i in idx] if steer else None
        masks = [quality_mask(target, roi[i] if roi is not None else None, f"image {i}") for i in idx]
        fixed_k = _fixed_size(tokenizer, sub, target, sub_roi, masks, max(tokens[i] for i in idx), "tokens")
        fixed_x = _fixed_size(tokenizer, sub, target, sub_roi, masks,
                              max(exact_bpp(nbytes[i], sub[j].shape).x for j, i in enumerate(idx)), "bpp")
        fixed_shown = _shown_size(tokenizer, sub, target, sub_roi, masks, fixed_x)
    return LengthReport(target, tuple(names or [f"image {i}" for i in range(len(images))]),
                        np.array(tokens), np.array(nbytes), np.array(bpp), qual_a, reached, fixed_k, fixed_x,
                        fixed_shown if reached.any() else None, np.array(pixels))


def _shown_size(tokenizer, images: list[np.ndarray], target: Quality, roi, masks, fixed: float | None) -> float | None:
    """``fixed`` (the smallest rate serving ``images``) rounded up to :data:`BPP_DIGITS` decimals, to
    a value at which every image is at the target, checked by encoding them at it (quality need not
    rise with length: past the smallest rate, a larger one is searched as :func:`_fixed_size` does)."""
    pixels = [im.shape[0] * im.shape[1] for im in images]
    while fixed is not None:
        x = max(rate_up(Bpp(fixed).nbytes((p, 1)), [p], BPP_DIGITS) for p in pixels)  # each image's bytes at least
        served = _fixed_size(tokenizer, images, target, roi, masks, x, "bpp")
        if served == x:
            return x
        fixed = served
    return None


def _fixed_size(tokenizer, images: list[np.ndarray], target: Quality, roi, masks, start, kind: str):
    """The smallest fixed size, a token count (``kind`` "tokens") or a rate (``"bpp"``, header
    included), from ``start`` on, at which every one of ``images`` (each reached ``target`` with a
    prefix of its own) decodes to the target; None when there is none (an image below it from some
    length to its whole sequence). Each round encodes the images at the size; an image below the
    target there moves the size to the next prefix of its own whole sequence that is at the target
    (and, for a rate, larger than the size), and every image is checked again at the new size."""
    goal = target.psnr if target.psnr is not None else target.ssim

    def encode(budget):
        return tokenizer.encode(images, budget, roi=roi) if roi is not None else tokenizer.encode(images, budget)

    def at_goal(j: int, out: np.ndarray) -> bool:
        return quality_score(images[j], out, target, masks[j]) >= goal - 1e-9

    whole = None
    rates: dict[tuple[int, int], float] = {}
    size = start
    while True:
        seqs = encode(Tokens(size) if kind == "tokens" else Bpp(size))
        below = [j for j, out in enumerate(tokenizer.decode(seqs)) if not at_goal(j, out)]
        if not below:
            return size
        whole = whole or encode(Tokens(sys.maxsize))
        nxt = []
        for j in below:
            def size_at(k: int, j=j):  # what size a prefix of k tokens of image j asks for (a rate: coded once)
                if kind == "tokens":
                    return k
                if (j, k) not in rates:
                    rates[j, k] = exact_bpp(len(whole[j].prefix(k).to_bytes()), images[j].shape).x
                return rates[j, k]

            def fits(k: int, out: np.ndarray, j=j) -> bool:  # (a rate must grow: the prefix at it was below)
                return at_goal(j, out) and (kind == "tokens" or size_at(k) > size)

            k = _next_at_goal(tokenizer, whole[j], len(seqs[j]), fits)
            if k is None:
                return None
            nxt.append(size_at(k))
        size = max(nxt)


def _next_at_goal(tokenizer, seq, after: int, fits) -> int | None:
    """The first length ``k > after`` of ``seq`` whose prefix ``fits(k, decoded image)``, decoding
    :data:`_SCAN` prefixes at a time; None when no prefix up to the whole sequence does."""
    k = after + 1
    while k <= len(seq):
        ks = range(k, min(k + _SCAN - 1, len(seq)) + 1)
        for i, out in zip(ks, tokenizer.decode([seq.prefix(i) for i in ks]), strict=True):
            if fits(i, out):
                return i
        k = ks[-1] + 1
    return None


#: The columns of the length summary (``adatok eval --target-psnr``'s table, and the report's).
SUMMARY_COLUMNS: tuple[str, ...] = ("tokenizer", "images", "reached", "tokens mean", "tokens min..max", "bpp mean",
                                    "fixed tokens", "fixed bpp", "saving (tokens)", "saving (bpp)")


def summary_rows(reports: Sequence[tuple[str, LengthReport | str]], images: int) -> list[tuple[str, ...]]:
    """One row of :data:`SUMMARY_COLUMNS` per tokenizer, as text: what the terminal and the report
    show. ``"none"`` where no fixed size serves every image; a tokenizer left out gets ``images``
    (all the run's) and why in the third column. The fixed bpp is :attr:`LengthReport.fixed_bpp_shown`,
    a budget that serves every image as printed."""
    def shown(value, form: str) -> str:
        return "none" if value is None else form.format(value)

    rows = []
    for name, rep in reports:
        if isinstance(rep, str):
            rows.append((name, str(images), f"left out: {rep}", *[""] * (len(SUMMARY_COLUMNS) - 3)))
            continue
        s = rep.summary()
        rows.append((name, str(s["images"]), str(s["reached"]), f"{s['tokens']['mean']:.0f}",
                     f"{s['tokens']['min']:.0f}..{s['tokens']['max']:.0f}", f"{s['bpp']['mean']:.3f}",
                     shown(s["fixed_tokens"], "{:d}"), shown(s["fixed_bpp_shown"], f"{{:.{BPP_DIGITS}f}}"),
                     shown(s["token_saving"], "{:.2f}x"), shown(s["bpp_saving"], "{:.2f}x")))
    return rows


#: The columns of ``lengths.csv``, in order.
LENGTH_COLUMNS: tuple[str, ...] = ("tokenizer", "image", "target", "tokens", "bytes", "bpp", "quality", "reached")


def length_reports(tokenizers: Sequence, images: Sequence[np.ndarray], target: Quality, names: Sequence[str],
                   roi: Sequence[np.ndarray | None] | None = None) -> list[tuple[str, LengthReport | str]]:
    """:func:`length_report` of each tokenizer: ``(name, report)``, or ``(name, why)`` for one that
    cannot take the images or the target (a learned tokenizer and a region, photos of another size)."""
    out: list[tuple[str, LengthReport | str]] = []
    for tok in tokenizers:
        try:
            out.append((tok.name, length_report(tok, images, target, names, roi=roi)))
        except AdatokError as exc:
            out.append((tok.name, str(exc)))
    return out


def lengths_csv(reports: Sequence[tuple[str, LengthReport | str]]) -> str:
    """The text of ``lengths.csv`` (columns :data:`LENGTH_COLUMNS`): a row per tokenizer and image."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(LENGTH_COLUMNS)
    for name, rep in reports:
        if isinstance(rep, str):
            continue
        for i, image in enumerate(rep.names):
            rate = rep.bpp[i] if rep.pixels is None else rate_up(int(rep.nbytes[i]), [int(rep.pixels[i])],
                                                                                 CSV_BPP_DIGITS)
            writer.writerow([name, image, str(rep.target), int(rep.tokens[i]), int(rep.nbytes[i]),
                             f"{rate:.{CSV_BPP_DIGITS}f}", f"{rep.quality[i]:.4f}", bool(rep.reached[i])])
    return buf.getvalue()
