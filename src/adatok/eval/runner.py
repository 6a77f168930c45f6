"""Rate-distortion runs: tokenizers and baselines over a dataset at a list of budgets.

:func:`evaluate` runs every method on every image at every budget and returns an
:class:`Evaluation`: one row per image x method x budget (a tidy table), what was skipped and
why, and the reconstructions the report shows. :func:`write_results` writes the rows as CSV.

* Tokenizers (``wavelet``, ``wavelet-lossless``, checkpoints, and the ``grid`` baseline) get each
  budget as it is: ``Bpp(x)`` or ``Tokens(k)``. Bytes are those of the sequence's byte form;
  encoding time covers image -> bytes, decoding time bytes -> image.
* Codecs (``jpeg``, ``webp``, ``avif``, ``jp2``) get each ``Bpp(x)`` budget as a byte budget,
  ``floor(x * H * W / 8)``, and run at their best setting within it (see
  :mod:`adatok.eval.baselines`); they have no tokens, so they sit out ``Tokens(k)`` budgets. Their
  times are of one encode and one decode at that setting (the search is not counted).
* A method that cannot meet a budget on an image (a header larger than the budget, a codec whose
  smallest file is larger) gets a row with empty measurements and a ``note`` saying why.
* With a region of interest (``roi=``: a saliency method, or a map per image), each tokenizer
  that steers by region (``supports_roi``: the wavelet ones) runs twice: as without (method
  ``wavelet``) and encoding with the region (method ``wavelet+roi``); the other tokenizers and
  the codecs run as without. Every row then has the PSNR inside the region (map >= 0.5) and
  outside it (``psnr_roi``, ``psnr_out``) of the same reconstruction: what the region bought and
  cost, against the same tokenizer unsteered and against the codecs, at the same budgets.

Everything is seeded (the grid's training patches and k-means); the same inputs give the same
rows, timings aside.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import adatok

from ..core.budget import Bpp, Tokens
from ..core.checks import shown
from ..core.errors import AdatokError, BudgetError, ImageFormatError, naming_image
from ..core.imageio import as_image, atomic_write_bytes
from ..core.metrics import region_psnr
from ..core.sequence import TokenSequence, header_size
from .baselines import CODECS, GridTokenizer, codec
from .metrics import quality

__all__ = ["COLUMNS", "DEFAULT_BASELINES", "DEFAULT_BPP", "GRID_PATCHES", "MIN_SIDE", "REGION_COLUMNS", "ROI_SUFFIX",
           "Evaluation", "Method", "budget_text", "evaluate", "read_results", "write_results"]

#: Budgets in bits per pixel that ``adatok eval`` uses when none are given.
DEFAULT_BPP: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)

#: Baselines that run when none are named.
DEFAULT_BASELINES: tuple[str, ...] = ("jpeg", "webp", "avif", "jp2", "grid")

#: Patch sides the grid baseline may use; a run fits a codebook for each side its budgets need.
GRID_PATCHES: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64)

#: Images with a side shorter than this are skipped (MS-SSIM's 11-pixel window, and budgets of a
#: few bytes that no method can meet).
MIN_SIDE = 16

#: The columns of ``results.csv``, in order.
COLUMNS: tuple[str, ...] = ("image", "height", "width", "channels", "method", "kind", "budget_kind", "budget",
                            "tokens", "bytes", "stream_bytes", "bpp", "psnr", "ssim", "ms_ssim", "psnr_roi", "psnr_out",
                            "encode_s", "decode_s", "setting", "note")
#: Added to a tokenizer's name for its rows encoded with the region of interest (``wavelet+roi``).
ROI_SUFFIX = "+roi"

#: Columns only measured with a region of interest (empty without one; absent from older files).
REGION_COLUMNS: tuple[str, ...] = ("psnr_roi", "psnr_out")

# Decimal places of each measured column in results.csv (the report shows these very strings).
_DIGITS = {"bpp": 5, "psnr": 3, "psnr_roi": 3, "psnr_out": 3, "ssim": 5, "ms_ssim": 5, "encode_s": 4, "decode_s": 4}


@dataclass(frozen=True)
class Method:
    """One line in the plots: a tokenizer or a codec.

    Attributes:
        name: as in ``results.csv`` (``"wavelet"``, ``"jp2"``, ``"grid"``).
        label: display name (``"JPEG 2000"``).
        kind: ``"tokenizer"`` or ``"codec"``.
        vocab: a tokenizer's vocabulary size (``None`` for codecs).
        roi_of: for a tokenizer encoding with the run's region of interest (name
            ``<tokenizer>+roi``), the name of the same tokenizer without it; ``None`` otherwise.
    """

    name: str
    label: str
    kind: str
    vocab: int | None = None
    roi_of: str | None = None


@dataclass
class Shot:
    """One reconstruction kept for the report: the image, and the tokens it came from (tokenizers)."""

    image: np.ndarray
    seq: TokenSequence | None = None


@dataclass
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes:
        rows: one dict per image x method x budget, keys :data:`COLUMNS` (numbers as numbers,
            ``None`` where a method could not meet the budget).
        methods: the methods, in plot order.
        budgets: ``("bpp", x)`` and ``("tokens", k)`` pairs, in order.
        images: ids of the evaluated images, in order.
        skipped: ``(id or path, reason)`` of images left out.
        originals: the first ``keep`` images, by id (for the report).
        shots: reconstructions of those images, by ``(image, method, budget_kind, budget)``.
        config: what was run (data, tokenizers, baselines, budgets, seed, grid, command, and
            ``roi``: which region of interest, or ``None``), for the report's reproduction note.
        regions: the region of interest of each evaluated image (``H x W`` maps in [0, 1]), by
            id; empty without one.
        lengths: with a quality target (:func:`adatok.eval.run`'s ``target``), per tokenizer its
            name and its :class:`~adatok.eval.lengths.LengthReport`, or why it was left out.
    """

    rows: list[dict[str, Any]]
    methods: list[Method]
    budgets: list[tuple[str, float]]
    images: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    originals: dict[str, np.ndarray] = field(default_factory=dict)
    shots: dict[tuple[str, str, str, float], Shot] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    lengths: list[tuple[str, Any]] = field(default_factory=list)


def _label(name: str) -> str:
    if name in CODECS:
        return CODECS[name].label
    return name


def _fmt(value: Any, column: str) -> str:
    """A value as results.csv writes it."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if column in _DIGITS:
            return f"{value:.{_DIGITS[column]}f}"
        return f"{value:.6g}"
    return str(value)


def budget_text(kind: str, value: float) -> str:
    """A budget as results.csv writes it: ``"0.25"`` (bpp) or ``"5000"`` (tokens)."""
    return _fmt(float(value), "budget") if kind == "bpp" else str(int(value))


def _listed(values: Any, what: str, kind: str, error: type[AdatokError] = AdatokError) -> list:
    """``values`` (a list, a tuple, any iterable but a string) as a list; one value alone, a string
    or a non-iterable is an ``error`` (``bpp=0.5`` would fail deep inside)."""
    if isinstance(values, str | bytes | np.ndarray) or not isinstance(values, Iterable):
        raise error(f"{what} takes a list of {kind}, got {values!r}; give a single one as [value]")
    return list(values)


def check_budgets(bpp: Any, tokens: Any) -> tuple[list[float], list[int]]:
    """The budgets of a run as lists, each once (0.5 and .5 are one), each checked as ``Bpp(x)`` and
    ``Tokens(k)`` check theirs (:class:`~adatok.BudgetError`: ``10.5`` tokens is refused, not cut to 10).

    Raises:
        BudgetError: a budget that is not a list, a malformed budget, or no budget at all.
    """
    # (None: what "no bpp budget" reads as beside token budgets)
    bpp = _listed(() if bpp is None else bpp, "bpp", "bits per pixel", BudgetError)
    tokens = _listed(() if tokens is None else tokens, "tokens", "token counts", BudgetError)
    bpp_list = list(dict.fromkeys(Bpp(b).x for b in bpp))
    token_list = list(dict.fromkeys(Tokens(k).k for k in tokens))
    if not bpp_list and not token_list:
        raise BudgetError("give at least one budget: --bpp or --tokens")
    return bpp_list, token_list


def tokenizer(value: Any) -> Any:
    """A tokenizer given by name (:func:`adatok.load`) or as an object; anything else is an
    :class:`~adatok.AdatokError` (a number had failed deep inside, on its missing ``name``)."""
    if isinstance(value, str):
        return adatok.load(value)
    if not all(hasattr(value, attr) for attr in ("name", "encode", "decode")):
        raise AdatokError(f"a tokenizer is a name for adatok.load or a tokenizer object, got {value!r}")
    return value


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, a file name's bytes that are not UTF-8 (``bad\\xff.png``, which Python
    holds as lone surrogates) written as ``\\xff`` escapes: the report is written, the name shown
    as near as text can (``str.encode`` failed after the whole run)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")  # (the bytes of the file's name)
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace")  # (a lone surrogate from elsewhere)
        return raw.decode("utf-8", "backslashreplace").encode()


def _pairs(images: Any) -> list[tuple[str, Any]]:
    """``evaluate``'s images as ``(id, image)`` pairs, refusing anything else clearly, and two of one
    id as results.csv writes it (:func:`utf8`: a file name's bytes that are not UTF-8 as ``\\xe9``
    escapes, so ``caf\\xe9.png`` and a file literally named so): their rows, and their BD-rate
    curves, would read as one image's."""
    if isinstance(images, np.ndarray | str | bytes) or not isinstance(images, Iterable):
        raise ImageFormatError("evaluate takes (id, image) pairs, e.g. [('photo', image)] or "
                               f"adatok.datasets.load(...).items(), got {type(images).__name__}")
    pairs = list(images)
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise ImageFormatError(f"evaluate takes (id, image) pairs with a string id, e.g. [('photo', image)]; "
                                   f"got an item of type {type(pair).__name__}")
    seen: dict[bytes, str] = {}
    for name, _ in pairs:
        written = utf8(name)
        if written in seen:
            how = "" if seen[written] == name else \
                f" as results.csv writes them ({shown(seen[written])} and {shown(name)})"
            raise AdatokError(f"two images have the id {shown(written.decode())}{how}: their rows would read as one "
                              "image's; give each image its own id (in a folder: rename one of the files)")
        seen[written] = name
    return pairs


def evaluate(images: Sequence[tuple[str, np.ndarray]], tokenizers: Sequence[Any] = ("wavelet",),
             bpp: Sequence[float] = DEFAULT_BPP, tokens: Sequence[int] = (),
             baselines: Sequence[str] = DEFAULT_BASELINES, *, seed: int = 0, grid_codebook: int = 256,
             grid_train: Sequence[np.ndarray] | None = None, skipped: Sequence[tuple[str, str]] = (),
             keep: int = 8, config: dict[str, Any] | None = None, header: bool = True,
             roi: str | Mapping[str, np.ndarray] | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> Evaluation:
    """Run tokenizers and baselines over ``images`` at every budget.

    Args:
        images: ``(id, image)`` pairs (e.g. ``adatok.datasets.load(...).items()``).
        tokenizers: names for :func:`adatok.load`, or tokenizer objects.
        bpp: budgets in bits per pixel (of the coded bytes, headers included).
        tokens: budgets in tokens (tokenizers only).
        baselines: any of ``jpeg``, ``webp``, ``avif``, ``jp2`` and ``grid``.
        seed: seeds the grid baseline (training patches and k-means).
        grid_codebook: the grid's codebook size.
        grid_train: images to fit the grid's codebooks on (default: the evaluated images crosswise,
            each coded by codebooks fitted on the other half; see :class:`GridFolds`).
        skipped: ``(id, reason)`` already left out upstream (e.g. unreadable files), passed through.
        keep: keep reconstructions of the first ``keep`` images for the report.
        config: extra facts to record (dataset name, command line, ``roi``: how to name the
            region in the report, ...).
        header: whether a bpp budget counts the container header. ``False`` (``adatok eval
            --stream``) gives tokenizers ``Bpp(x, header=False)`` and measures their bpp on the token
            stream alone: the fair comparison between tokenizers on small images. Codecs, whose
            headers cannot be taken apart from their data, sit out bpp budgets then.
        roi: a region of interest: a saliency method (``"auto"``, ``"spectral"``, ``"gradient"``,
            ``"centre"``: a map of each image) or ``{id: H x W map in [0, 1]}`` for every image
            (e.g. from :func:`adatok.eval.regions.mask_regions`). Tokenizers with
            ``supports_roi`` encode with it; every row gets ``psnr_roi`` and ``psnr_out``.
        progress: called as ``progress(done, total, what)`` before each step (fitting the grid,
            then each image x method, ``done`` of ``total`` finished) and once at the end.

    Raises:
        AdatokError: no budget, an unknown baseline or tokenizer, no image left to evaluate, an
            unknown saliency method, a map missing for an image or of another size, or bpp budgets
            of the token stream alone (``header=False``) with a region.
    """
    bpp, tokens = check_budgets(bpp, tokens)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise AdatokError(f"the seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    tokenizers = [tokenizer(t) for t in _listed(tokenizers, "tokenizers", "names or tokenizer objects")]
    if roi is not None and not isinstance(roi, str | Mapping):
        raise AdatokError(f"roi is a saliency method's name or {{image id: map}}, got {type(roi).__name__}")
    if not header and roi is not None and bpp and any(
            getattr(t, "supports_roi", False) for t in tokenizers):
        raise AdatokError("--stream counts the token stream alone, but a steered sequence's region map is in its "
                          "header (tens of bytes): its bpp would leave out what the decoder needs; measure regions "
                          "with headers counted (without --stream), or give --tokens budgets")
    baselines = list(dict.fromkeys(_listed(baselines, "baselines", "names")))  # each once, in the order given
    unknown = [b for b in baselines if not isinstance(b, str) or (b not in CODECS and b != "grid")]
    if unknown:
        raise AdatokError(f"unknown baseline {unknown[0]!r}: use any of {', '.join([*CODECS, 'grid'])}")
    budgets = [("bpp", b) for b in bpp] + [("tokens", k) for k in tokens]

    skipped = list(skipped)
    kept: list[tuple[str, np.ndarray]] = []
    for name, img in _pairs(images):
        img = as_image(img, what=f"image {name!r}")
        h, w = img.shape[:2]
        if min(h, w) < MIN_SIDE:
            skipped.append((name, f"too small ({h}x{w} pixels, H x W): evaluation needs at least {MIN_SIDE}x{MIN_SIDE}"))
        else:
            kept.append((name, img))
    if not kept:
        if not skipped:  # ("(0 skipped: none given)" until 2026-12-03)
            raise AdatokError("no images to evaluate: none were given")
        listing = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        raise AdatokError(f"no images to evaluate ({len(skipped)} skipped: {listing})")

    def report(done: int, total: int, what: str) -> None:
        if progress is not None:
            progress(done, total, what)

    total = len(kept) * (len(tokenizers) + len(baselines))
    regions = _regions(kept, roi, report)
    runners: list[tuple[Method, Any]] = []
    for tok in tokenizers:
        same = [other for m, other in runners if m.name == tok.name]
        if same and getattr(same[0], "version", None) != getattr(tok, "version", None):
            raise AdatokError(f"two tokenizers named {tok.name!r} with other weights (versions "
                              f"{getattr(same[0], 'version', None)} and {getattr(tok, 'version', None)}): their rows "
                              "would share one name; give one another name (adatok train --name)")
        if same:  # the same tokenizer twice: once
            continue
        runners.append((Method(tok.name, _label(tok.name), "tokenizer", int(tok.vocab_size)), tok))
        if regions and getattr(tok, "supports_roi", False):
            runners.append((Method(tok.name + ROI_SUFFIX, _label(tok.name) + " + roi", "tokenizer",
                                   int(tok.vocab_size), tok.name), tok))
            total += len(kept)
    grid_info = None
    if "grid" in baselines:
        grid = _fit_grid(kept, budgets, grid_train, grid_codebook, seed, header, lambda: report(0, total,
                                                                                           "grid: fitting codebooks"))
        runners.append((Method("grid", "grid (k-means)", "tokenizer", grid.vocab_size), grid))
        grid_info = grid.info
    for name in baselines:
        if name in CODECS:
            runners.append((Method(name, CODECS[name].label, "codec"), codec(name)))

    ev = Evaluation(rows=[], methods=[m for m, _ in runners], budgets=budgets, images=[n for n, _ in kept],
                    skipped=skipped, regions=regions)
    ev.config = {"tokenizers": [m.name for m, _ in runners if m.kind == "tokenizer" and m.name != "grid"
                                and not m.roi_of],
                 "baselines": list(baselines), "bpp": bpp, "tokens": tokens, "seed": seed, "grid": grid_info,
                 "bpp_counts": "file" if header else "stream",
                 "adatok": adatok.__version__, **(config or {})}
    if regions:
        ev.config.setdefault("roi", f"saliency ({roi}) of each image" if isinstance(roi, str) else "given maps")
    else:
        ev.config["roi"] = None
    done = 0
    for index, (name, img) in enumerate(kept):
        keep_this = index < keep
        if keep_this:
            ev.originals[name] = img
        for method, runner in runners:
            report(done, total, f"{name} {method.name}")
            cache: dict = {}  # a codec's files of this image, shared by its budgets
            for kind, b in budgets:
                if method.kind == "codec" and kind == "tokens":
                    continue
                use = runner.for_image(index, img.shape, Bpp(b, header=header) if kind == "bpp" else Tokens(int(b))) \
                    if isinstance(runner, GridFolds) else runner
                row, shot = _measure(method, use, img, kind, b, cache, regions[name] if method.roi_of else None,
                                     header)
                row = {"image": name, "height": img.shape[0], "width": img.shape[1], "channels": img.shape[2],
                       "method": method.name, "kind": method.kind, "budget_kind": kind,
                       "budget": b if kind == "bpp" else int(b), **row, "psnr_roi": None, "psnr_out": None}
                if regions and shot is not None:
                    row["psnr_roi"], row["psnr_out"] = region_psnr(img, shot.image, regions[name])
                ev.rows.append(row)
                if keep_this and shot is not None:
                    ev.shots[(name, method.name, kind, b)] = shot
            done += 1
    report(done, total, "done")
    return ev


class GridFolds:
    """The grid baseline of a run: one codebook set fitted on training images, or, without any, two
    fitted crosswise on the evaluated images (those fitted on the odd-numbered images code the
    even-numbered ones, and the other way round), so that no image is coded by codebooks that saw it (a codebook
    entry would otherwise hold a patch of the image itself: with a patch as large as the image,
    one token would decode to it exactly). With a single image and no training images there is
    nothing to fit on: every row of the grid then says so."""

    def __init__(self, grids: Sequence[GridTokenizer | None], info: dict[str, Any], note: str = "",
                 thin: Sequence[dict[int, int]] | None = None, parts: Sequence[int] | None = None):
        self.grids, self.info, self.note = list(grids), info, note
        #: the fold each image is coded by (default: by its number's parity, see :func:`_fold_parts`)
        self.parts = list(parts) if parts is not None else None
        self.thin = list(thin) if thin is not None else [{} for _ in self.grids]
        self.vocab_size = next((g.vocab_size for g in self.grids if g is not None), 0)

    def for_image(self, index: int, shape: tuple[int, ...] | None = None, budget=None) -> GridTokenizer | str:
        """The grid that codes image ``index`` of the run at ``budget`` (the note when there is
        none, or when the patch side the budget picks had fewer patches to learn from, in the
        images its codebook was fitted on, than the codebook has entries: with images of other
        sizes crosswise, a 16-pixel codebook fitted on one 16 x 16 image would code a 128 x 128 one)."""
        part = self.parts[index] if self.parts is not None else index % len(self.grids)
        grid = self.grids[part]
        if grid is None:
            return self.note
        if budget is not None and self.thin[part]:
            try:
                side = grid.choose(shape, budget)[0]
            except BudgetError:
                return grid  # (measured as a row with the reason)
            if side in self.thin[part]:
                return (f"the grid's {side}-pixel codebook was fitted on {self.thin[part][side]} patch places of the "
                        f"other images, fewer than its {grid.vocab_size} entries: too few to measure it")
        return grid


def _fit_grid(kept: Sequence[tuple[str, np.ndarray]], budgets: Sequence[tuple[str, float]],
              grid_train: Sequence[np.ndarray] | None, codebook: int, seed: int, header: bool,
              starting: Callable[[], None]) -> GridFolds:
    """The grid baseline's codebooks (see :class:`GridFolds`), one patch side for each side the
    budgets pick on the evaluated images (a budget under the grid's header picks none: that row
    gets the grid's note)."""
    planner = GridTokenizer({}, 3, {}, codebook)
    patches = set()
    for _, img in kept:
        for kind, b in budgets:
            try:
                patches.add(planner.choose(img.shape, Bpp(b, header=header) if kind == "bpp" else Tokens(int(b)),
                                           GRID_PATCHES)[0])
            except BudgetError:  # measured as a row with the reason (the grid's header does not fit)
                pass
    patches = sorted(patches or {min(GRID_PATCHES)}, reverse=True)
    info = {"patches": patches, "codebook": codebook, "bits": max(1, math.ceil(math.log2(codebook)))}
    # colour codebooks when any image, evaluated or trained on, is in colour: a fold (or a training
    # split) of gray images alone coded the colour images in gray
    colour = any(im.shape[2] == 3 for _, im in kept)
    if grid_train is not None:
        train = [as_image(im) for im in grid_train]
        starting()
        channels = 3 if colour or any(im.shape[2] == 3 for im in train) else 1
        return GridFolds([GridTokenizer.fit(train, patch=patches, codebook=codebook, seed=seed, channels=channels)],
                         {**info, "train_images": len(train), "fitted_on": "given training images"})
    if len(kept) < 2:
        return GridFolds([None], {**info, "train_images": 0, "fitted_on": "nothing (one image, no training split)"},
                         "the grid baseline needs training images: a training split, or at least two images "
                         "(each is coded by codebooks fitted on the others)")
    starting()
    parts = _fold_parts([im for _, im in kept])
    halves = [[im for i, (_, im) in enumerate(kept) if parts[i] != part] for part in (0, 1)]
    folds = [GridTokenizer.fit(half, patch=patches, codebook=codebook, seed=seed, channels=3 if colour else 1)
             for half in halves]
    places = [{p: sum(max(1, im.shape[0] - p + 1) * max(1, im.shape[1] - p + 1) for im in half) for p in patches}
              for half in halves]
    thin = [{p: n for p, n in fold.items() if n < codebook} for fold in places]
    return GridFolds(folds, {**info, "train_images": len(kept), "fitted_on": "the evaluated images crosswise (each "
                             "coded by codebooks fitted on the other half: even- and odd-numbered images)"}, thin=thin,
                     parts=parts)


def _fold_parts(images: Sequence[np.ndarray]) -> list[int]:
    """The fold (0 or 1) of each image, coded by codebooks fitted on the other fold: by its number's
    parity; but when that leaves all the colour images in one fold (colour and gray alternating),
    the colour and the gray images each alternate on their own, so that colour images are coded by
    codebooks that saw colour (fitted on gray images alone, they came back gray)."""
    parts = [i % 2 for i in range(len(images))]
    colour = [i for i, im in enumerate(images) if im.shape[2] == 3]
    if len(colour) >= 2 and len({parts[i] for i in colour}) == 1:
        gray = [i for i, im in enumerate(images) if im.shape[2] != 3]
        for group in (colour, gray):
            for k, i in enumerate(group):
                parts[i] = k % 2
    return parts


def _measure(method: Method, runner: Any, img: np.ndarray, kind: str, b: float,
             cache: dict | None = None, roi: np.ndarray | None = None,
             header: bool = True) -> tuple[dict[str, Any], Shot | None]:
    """Measure one method on one image at one budget: the row's measured columns, and the shot.

    A tokenizer encodes with ``roi`` (the image's region map) when it is given. ``header=False``:
    bpp budgets and the row's bpp count the token stream alone (tokenizers).
    """
    empty = {c: None for c in ("tokens", "bytes", "stream_bytes", "bpp", "psnr", "ssim", "ms_ssim", "encode_s",
                               "decode_s", "setting")}
    h, w, c = img.shape
    if isinstance(runner, str):  # a method that cannot run on this image: why
        return {**empty, "note": runner}, None
    if method.kind == "codec" and not header:
        return {**empty, "note": f"{method.label} has no token stream apart from its headers (bpp counts "
                                 "the token stream in this run)"}, None
    if method.kind == "codec" and runner.refuses(img.shape):
        return {**empty, "note": runner.refuses(img.shape)}, None
    if method.kind == "codec":
        nbytes = Bpp(b).nbytes(img.shape)
        found = runner.at_most(img, nbytes, cache)
        if found is None:
            return {**empty, "note": f"{method.label} cannot make a file of at most {nbytes} bytes"}, None
        data = found.data
        enc_s = found.seconds  # the search's encode at the chosen setting
        t0 = time.perf_counter()
        rec = runner.decode(data, c)
        dec_s = time.perf_counter() - t0
        row = {"tokens": None, "bytes": len(data), "stream_bytes": None, "setting": found.setting}
        seq = None
        counted = len(data)
    else:
        budget = Bpp(b, header=header) if kind == "bpp" else Tokens(int(b))
        if isinstance(runner, GridTokenizer):  # not registered: it writes and reads its own bytes
            to_bytes, from_bytes, head = runner.to_bytes, runner.from_bytes, runner.header_size
        else:
            to_bytes, from_bytes, head = TokenSequence.to_bytes, TokenSequence.from_bytes, header_size
        try:
            t0 = time.perf_counter()
            seq, = runner.encode([img], budget) if roi is None else runner.encode([img], budget, roi=[roi])
            data = to_bytes(seq)
            t1 = time.perf_counter()
            rec = runner.decode([from_bytes(data)])[0]
            t2 = time.perf_counter()
            enc_s, dec_s = t1 - t0, t2 - t1
        except AdatokError as exc:  # (the row names its image: "image 0", the place in a list of one, named none)
            return {**empty, "note": str(naming_image(exc, "the image"))}, None
        setting = seq.params.get("patch") if method.name == "grid" else None
        stream = len(data) - head(data)
        row = {"tokens": len(seq), "bytes": len(data), "stream_bytes": stream,
               "setting": None if setting is None else float(setting)}
        counted = len(data) if header else stream
    rec = rec.reshape(img.shape)
    row.update(bpp=8 * counted / (h * w), **quality(img, rec), encode_s=enc_s, decode_s=dec_s, note="")
    return row, Shot(rec, seq)


def _regions(kept: Sequence[tuple[str, np.ndarray]], roi: str | Mapping[str, np.ndarray] | None,
             report: Callable[[int, int, str], None]) -> dict[str, np.ndarray]:
    """The region map of each kept image: ``{}`` without a region, saliency maps for a method name,
    the given maps (checked: one per image, of its size) for a mapping."""
    from .regions import check_region, saliency_regions

    if roi is None:
        return {}
    if isinstance(roi, str):
        from ..core.saliency import check_method

        return saliency_regions(kept, check_method(roi), progress=report)
    missing = [name for name, _ in kept if name not in roi]
    if missing:
        raise AdatokError(f"no region of interest for {len(missing)} of {len(kept)} images: "
                          f"{', '.join(repr(n) for n in missing[:5])}{', ...' if len(missing) > 5 else ''}")
    return {name: check_region(name, img, roi[name], "region") for name, img in kept}


def results_csv(ev: Evaluation) -> str:
    """``ev.rows`` as the text of a ``results.csv`` (columns :data:`COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in ev.rows:
        writer.writerow([budget_text(row["budget_kind"], row["budget"]) if col == "budget" else _fmt(row[col], col)
                         for col in COLUMNS])
    return buf.getvalue()


def write_results(ev: Evaluation, path) -> None:
    """Write ``ev.rows`` to ``path`` as CSV (columns :data:`COLUMNS`), atomically."""
    atomic_write_bytes(path, results_csv(ev).encode())


def read_results(path) -> list[dict[str, str]]:
    """The rows of a ``results.csv`` as dicts of strings (empty string: not measured).

    Files written before a column existed (:data:`REGION_COLUMNS`) read as if it were empty."""
    if not isinstance(path, str | os.PathLike):  # (open(5) reads file descriptor 5)
        raise AdatokError(f"read_results takes the path of a results.csv, got {path!r}")
    try:
        with open(path, newline="") as fh:
            return parse_results(fh.read())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AdatokError(f"cannot read the results {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def parse_results(text: str) -> list[dict[str, str]]:
    """The rows of a ``results.csv``'s text, as :func:`read_results` gives them."""
    return [{**row, **{c: "" for c in REGION_COLUMNS if c not in row}} for row in csv.DictReader(io.StringIO(text))]
