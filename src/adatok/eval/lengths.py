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

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.budget import Bpp, Quality, Tokens, exact_bpp
from ..core.errors import AdatokError, BudgetError
from ..core.metrics import quality_mask, quality_score

#: Prefixes decoded at once while looking for the next length at which an image is at the target.
_SCAN = 32


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
    tokens, nbytes, bpp, qual = [], [], [], []
    for i, (img, seq, out) in enumerate(zip(images, seqs, outs, strict=True)):
        img = np.asarray(img).reshape(out.shape)
        mask = quality_mask(target, roi[i] if roi is not None else None, f"image {i}")
        q = quality_score(img, out, target, mask)
        data = seq.to_bytes()
        tokens.append(len(seq))
        nbytes.append(len(data))
        bpp.append(8 * len(data) / (img.shape[0] * img.shape[1]))
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
    return LengthReport(target, tuple(names or [f"image {i}" for i in range(len(images))]),
                        np.array(tokens), np.array(nbytes), np.array(bpp), qual_a, reached, fixed_k, fixed_x)


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
            writer.writerow([name, image, str(rep.target), int(rep.tokens[i]), int(rep.nbytes[i]),
                             f"{rep.bpp[i]:.6f}", f"{rep.quality[i]:.4f}", bool(rep.reached[i])])
    return buf.getvalue()
