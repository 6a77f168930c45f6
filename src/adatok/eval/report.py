"""The report of a run: plots (PNG), a BD-rate table and one self-contained HTML page.

Every number in the plots, tables and captions is read back from ``results.csv`` (the HTML shows
the very strings the CSV holds, or means of them), so the page and the table cannot disagree.
Images are embedded as base64 PNG data URIs: ``report.html`` is one file that opens anywhere.

:func:`write_report` writes, into the run's folder:

* ``plots/psnr_bpp.png``, ``plots/ssim_bpp.png``, ``plots/ms_ssim_bpp.png`` -- mean quality
  against mean bits per pixel for each method at each ``Bpp`` budget (a point is drawn where the
  method met the budget on every image);
* ``plots/psnr_tokens.png`` -- mean PSNR against mean token count, for the tokenizers;
* with a region of interest, ``plots/psnr_roi_bpp.png`` and ``plots/psnr_out_bpp.png`` -- mean
  PSNR inside and outside the region against bits per pixel, and a table of both per budget;
* ``bd_rate.csv`` -- Bjontegaard delta rate of each method against JPEG 2000 (PSNR and MS-SSIM),
  mean over images;
* ``report.html`` -- all of the above, and per image: a comparison of every method at the middle
  ``Bpp`` budget, and for each tokenizer a strip of reconstructions at growing budgets (growing
  prefixes, for embedded tokenizers), their error maps, and heat maps of where those first tokens
  land.
"""

from __future__ import annotations

import base64
import csv
import html
import re
import io
import math
import platform
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.checks import counted, shown, size_text
from ..core.errors import AdatokError
from ..core.imageio import atomic_writes, folder_lock
from .bdrate import bd_rate
from .maps import ERROR_MAP_MAX, colorize_indexed, error_map, token_heatmap
from .metrics import EXACT_PSNR, mean_psnr
from .runner import (COLUMNS, REGION_COLUMNS, ROI_SUFFIX, Evaluation, Method, _fmt, budget_text, parse_results,
                     results_csv, utf8)

__all__ = ["PLOTS", "REFERENCE", "REGION_PLOTS", "bd_rates", "plot_curves", "summarize", "write_report"]

#: The method BD-rates are measured against.
REFERENCE = "jp2"

#: Plot file stem -> (x column, y column, axis labels, which rows).
PLOTS: dict[str, tuple[str, str, str, str, str]] = {
    "psnr_bpp": ("bpp", "psnr", "bits per pixel", "PSNR (dB)", "bpp"),
    "psnr_roi_bpp": ("bpp", "psnr_roi", "bits per pixel", "PSNR inside the region (dB)", "bpp"),
    "psnr_out_bpp": ("bpp", "psnr_out", "bits per pixel", "PSNR outside the region (dB)", "bpp"),
    "ssim_bpp": ("bpp", "ssim", "bits per pixel", "SSIM", "bpp"),
    "ms_ssim_bpp": ("bpp", "ms_ssim", "bits per pixel", "MS-SSIM", "bpp"),
    "psnr_tokens": ("tokens", "psnr", "tokens (log scale)", "PSNR (dB)", "tokens"),
}
#: Plots drawn only when the run had a region of interest.
REGION_PLOTS: tuple[str, ...] = ("psnr_roi_bpp", "psnr_out_bpp")
_TITLES = {"psnr_bpp": "PSNR against bits per pixel", "psnr_roi_bpp": "PSNR inside the region of interest",
           "psnr_out_bpp": "PSNR outside the region of interest", "ssim_bpp": "SSIM against bits per pixel",
           "ms_ssim_bpp": "MS-SSIM against bits per pixel", "psnr_tokens": "PSNR against tokens (tokenizers)"}

_COLOURS = {"wavelet": "#d62728", "wavelet-lossless": "#ff7f0e", "grid": "#7f7f7f", "jpeg": "#1f77b4",
            "webp": "#2ca02c", "avif": "#9467bd", "jp2": "#111111"}
_OTHER_COLOURS = ["#17becf", "#bcbd22", "#e377c2", "#8c564b"]
_SHOW_SIDE = 320  # longest side of the pictures in the page


def _num(s: str) -> float:
    return float(s) if s not in ("", None) else float("nan")


def _colour(name: str, order: Sequence[str]) -> str:
    name = name.removesuffix(ROI_SUFFIX)  # a tokenizer with the region: its own colour, dashed
    if name in _COLOURS:
        return _COLOURS[name]
    others = [m for m in order if m not in _COLOURS]
    return _OTHER_COLOURS[others.index(name) % len(_OTHER_COLOURS)] if name in others else "#333333"


# --------------------------------------------------------------------------------------------
# Numbers from results.csv
# --------------------------------------------------------------------------------------------


#: The columns a results row must have for :func:`summarize` (:func:`bd_rates`: all but ``budget``).
_NEEDED = ("image", "method", "budget_kind", "budget", "bpp", "psnr")


def result_rows(rows: Any, what: str = "the report", needed: Sequence[str] = _NEEDED) -> list[dict[str, str]]:
    """Results in the one form the report reads, rows of strings as :func:`read_results` gives them
    (``""``: not measured), from any form the library produces: an :class:`Evaluation`, its ``rows``
    (numbers, ``None`` where not measured: each written as ``results.csv`` writes it) or
    :func:`read_results`' rows. Anything else is an :class:`~adatok.AdatokError` (``None`` read as
    a measurement had counted a budget no image met as met on every image).
    """
    if isinstance(rows, Evaluation):
        return parse_results(results_csv(rows))
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
        raise AdatokError(f"{what} takes an Evaluation, its rows or read_results' rows, got {shown(rows)}")
    out = []
    for r in rows:
        missing = [c for c in needed if not isinstance(r, Mapping) or c not in r]
        if missing:
            raise AdatokError(f"{what} takes an Evaluation, its rows or read_results' rows (dicts with the columns of "
                              f"results.csv); got a row {'without ' + missing[0] if isinstance(r, Mapping) else shown(r)}")
        text = {c: v if isinstance(v, str) else (budget_text(r["budget_kind"], v) if c == "budget" else _fmt(v, c))
                for c, v in r.items()}
        out.append({**{c: "" for c in (*COLUMNS, *REGION_COLUMNS)}, **text})
    return out


def summarize(rows: Any) -> dict[tuple[str, str, str], dict[str, float]]:
    """Means over images per ``(method, budget_kind, budget)``: ``n`` (images measured), ``images``
    (images run), ``exact`` (images reconstructed exactly: PSNR infinite), and the means of
    ``tokens``, ``bytes``, ``bpp``, ``psnr``, ``ssim``, ``ms_ssim``, ``psnr_roi`` and ``psnr_out``.

    ``rows``: an :class:`Evaluation`, its ``rows``, or :func:`read_results`' rows (see
    :func:`result_rows`). A mean is over the images where the method met the budget; ``n < images``
    says some did not. In a mean PSNR an exact image counts as
    :data:`~adatok.eval.metrics.EXACT_PSNR` (100 dB). ``psnr_roi`` / ``psnr_out`` average the
    images that have pixels on that side of the region (``nan`` without a region, or in files
    written before those columns), ``n_psnr_roi`` / ``n_psnr_out`` count them (:func:`side_count`
    shows it where it is fewer than the images run).
    """
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in result_rows(rows, "summarize"):
        groups[(r["method"], r["budget_kind"], r["budget"])].append(r)
    out = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r["bpp"] != ""]
        stats = {"n": float(len(ok)), "images": float(len(rs)), "exact": 0.0}
        for col in ("tokens", "bytes", "bpp", "psnr", "ssim", "ms_ssim", *REGION_COLUMNS):
            vals = [_num(r[col]) for r in ok if r.get(col, "") != ""]
            if col in REGION_COLUMNS:
                stats[f"n_{col}"] = float(len(vals))
            if col.startswith("psnr"):
                stats[col], exact = mean_psnr(vals)
                if col == "psnr":
                    stats["exact"] = float(exact)
            else:
                stats[col] = float(np.mean(vals)) if vals else float("nan")
        out[key] = stats
    return out


def met_count(stats: dict[str, float]) -> str:
    """`` n/N`` when :func:`summarize`'s ``stats`` of a cell met the budget on ``n`` images of the ``N``
    run, fewer than all, else ``""``: the mark every table of a run's means gives such a cell."""
    return f" {int(stats['n'])}/{int(stats['images'])}" if stats["n"] < stats["images"] else ""


def _note(count: str) -> str:
    """A count of :func:`met_count` as the report's note after a cell's value (``""`` stays ``""``)."""
    return f" <span class='note'>{count.strip()}</span>" if count else ""


def side_count(stats: dict[str, float], col: str) -> str:
    """`` n/N`` when the mean of a region column (``psnr_roi``, ``psnr_out``) in :func:`summarize`'s
    ``stats`` covers fewer images than its whole-image mean (``n``: an image with no pixel on that
    side, as with an empty mask or a region covering the whole image), else ``""``: a cell's
    whole-image, inside and outside means covered different images, which was not shown."""
    n = int(stats.get(f"n_{col}", stats["n"]))
    return f" {n}/{int(stats['images'])}" if n < stats["n"] else ""


def bd_rates(rows: Any, reference: str = REFERENCE) -> dict[str, dict[str, float]]:
    """BD-rate (%) of each method against ``reference``, from the ``Bpp`` rows of each image
    (``rows`` as for :func:`summarize`).

    Returns ``{method: {"psnr": mean %, "ms_ssim": mean %, "n": images of the PSNR mean, "n_ms_ssim":
    images of the MS-SSIM mean}}`` (means over the images whose curves overlap the reference's; the
    two counts differ where a curve loses points to an exact reconstruction); empty if the
    reference did not run.
    """
    rows = result_rows(rows, "bd_rates", [c for c in _NEEDED if c != "budget"])
    curves: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for r in rows:
        if r["budget_kind"] == "bpp" and r["bpp"] != "":
            curves[(r["image"], r["method"])].append((_num(r["bpp"]), _num(r["psnr"]), _num(r["ms_ssim"])))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    images = list(dict.fromkeys(r["image"] for r in rows))
    if reference not in methods:
        return {}
    out = {}
    for m in methods:
        if m == reference:
            continue
        per = {"psnr": [], "ms_ssim": []}
        for img in images:
            ref, cur = curves.get((img, reference), []), curves.get((img, m), [])
            for j, metric in ((1, "psnr"), (2, "ms_ssim")):
                v = bd_rate([p[0] for p in ref], [p[j] for p in ref], [p[0] for p in cur], [p[j] for p in cur])
                if math.isfinite(v):
                    per[metric].append(v)
        out[m] = {"psnr": float(np.mean(per["psnr"])) if per["psnr"] else float("nan"),
                  "ms_ssim": float(np.mean(per["ms_ssim"])) if per["ms_ssim"] else float("nan"),
                  "n": float(len(per["psnr"])), "n_ms_ssim": float(len(per["ms_ssim"]))}
    return out


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def plot_curves(rows: Sequence[dict[str, str]], methods: Sequence[Method],
                stream: bool = False) -> dict[str, tuple[bytes, dict[str, int]]]:
    """Render :data:`PLOTS` from results rows: ``{stem: (png bytes, {method: points drawn})}``.

    ``stream``: the run counted bits per pixel of the token stream alone (``adatok eval --stream``);
    the axes say so.

    A point is the mean over images of one method at one budget, drawn only where the method met
    the budget on every image (so that every point of a curve averages the same images); an exact
    reconstruction counts as :data:`~adatok.eval.metrics.EXACT_PSNR` dB, as in :func:`summarize`.
    :data:`REGION_PLOTS` are left out when no row has a region PSNR.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = result_rows(rows, "plot_curves")
    stats = summarize(rows)
    order = [m.name for m in methods]
    out = {}
    region = any(r.get("psnr_roi", "") != "" for r in rows)
    for stem, (xcol, ycol, xlabel, ylabel, which) in PLOTS.items():
        if stem in REGION_PLOTS and not region:
            continue
        fig = Figure(figsize=(6.4, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        counts, positive = {}, False
        for m in methods:
            if which == "tokens" and m.kind != "tokenizer":
                continue
            pts = []
            for (name, kind, _), s in stats.items():
                if name != m.name or (which == "bpp" and kind != "bpp"):
                    continue
                x, y = s[xcol], s[ycol]
                if s["n"] == s["images"] and math.isfinite(x) and math.isfinite(y):
                    pts.append((x, y))
            pts.sort()
            counts[m.name] = len(pts)
            positive = positive or any(p[0] > 0 for p in pts)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, lw=1.6,
                        ls="--" if m.roi_of else "-", color=_colour(m.name, order), label=m.label)
        if which == "tokens" and positive:  # (a log axis of 0 tokens alone has no place to put it)
            ax.set_xscale("log")
        ax.set_title(_TITLES[stem], fontsize=11)
        ax.set_xlabel(xlabel + (" of the token stream (headers excluded)" if stream and which == "bpp" else ""))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if any(counts.values()):
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        out[stem] = (buf.getvalue(), counts)
    return out


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------


def _saliency_row(ev: Evaluation, name: str, orig: np.ndarray, mid: tuple) -> str:
    """The region of interest (the run's, else the auto saliency map), its inside (map >= 0.5)
    and where the first tokens land with and without it, side by side, for the first tokenizer
    of the run that steers by region (none: empty)."""
    from .. import Tokens, load
    from ..core.metrics import region_mask
    from ..core.saliency import saliency

    given = ev.regions.get(name)
    for m in ev.methods:
        shot = ev.shots.get((name, m.name, *mid))
        if m.kind != "tokenizer" or shot is None or shot.seq is None:
            continue
        if given is None:  # no region in the run: what the auto saliency map would do, at the same length
            if "plane" not in shot.seq.pos_fields:
                continue
            sal, what = saliency(orig, "auto"), "saliency (auto)"
            plain = shot.seq
            steered, = load(m.name).encode([orig], Tokens(len(plain)), roi=[sal])
        else:  # the run's region: this tokenizer's rows with and without it, at the same budget
            twin = ev.shots.get((name, m.roi_of, *mid)) if m.roi_of else None
            if twin is None or twin.seq is None:
                continue
            sal, what = given, "region of interest"
            plain, steered = twin.seq, shot.seq
        region = orig.astype(np.float64) * np.where(region_mask(sal), 1.0, 0.3)[..., None]
        heat, flat = token_heatmap(steered), token_heatmap(plain)
        top = float(max(np.percentile(heat, 99.5), np.percentile(flat, 99.5))) or None
        figs = [_figure(_png_uri(_show_map(sal, "inferno", vmax=1.0)), _e(what)),
                _figure(_png_uri(_show(region.astype(np.uint8))), _e(f"inside: {what} >= 0.5")),
                _figure(_png_uri(_show_map(flat, "viridis", vmax=top)),
                        _e(f"first {counted(len(plain), 'token')}, no roi")),
                _figure(_png_uri(_show_map(heat, "viridis", vmax=top)),
                        _e(f"first {counted(len(steered), 'token')}, roi = {what}"))]
        return (f"<div class='saliency' data-method='{_e(m.name)}'><div class='rowlabel'><b>{_e(m.label)}</b>: "
                f"where the early tokens go</div><div class='strip'>{''.join(figs)}</div></div>")
    return ""


def _png_uri(img: np.ndarray | tuple[np.ndarray, np.ndarray]) -> str:
    """A PNG data URI of an image array, or of a palette image ``(indices, palette)``."""
    from PIL import Image

    if isinstance(img, tuple):
        index, palette = img
        pil = Image.fromarray(index, "L").convert("P")
        pil.putpalette(palette.reshape(-1).tolist())
    else:
        pil = Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _show_map(values: np.ndarray, cmap: str, vmax: float | None = None, log: bool = False) -> tuple:
    """A value map for the page: shrunk like the pictures, as a 64-colour palette image."""
    if max(values.shape) > _SHOW_SIDE:
        from PIL import Image

        scale = _SHOW_SIDE / max(values.shape)
        size = (max(1, round(values.shape[1] * scale)), max(1, round(values.shape[0] * scale)))
        values = np.asarray(Image.fromarray(values.astype(np.float32), "F").resize(size, Image.Resampling.BOX))
    return colorize_indexed(values, cmap, vmax, log, levels=64)


def _show(img: np.ndarray) -> np.ndarray:
    """Shrink a picture for the page if it is larger than ``_SHOW_SIDE``."""
    from ..datasets import shrink

    return shrink(img, _SHOW_SIDE) if max(img.shape[:2]) > _SHOW_SIDE else img


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _budget_label(kind: str, value: str) -> str:
    return f"{value} bpp" if kind == "bpp" else counted(int(value), "token")


def _figure(uri: str, caption: str, attrs: str = "") -> str:
    alt = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", caption)).strip()  # (the caption's words, not its markup)
    return f'<figure{attrs}><img src="{uri}" alt="{_e(html.unescape(alt))}"><figcaption>{caption}</figcaption></figure>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222}
h1{margin-bottom:4px} h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px} h3{margin:24px 0 6px}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px} .meta{color:#555}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f6f6f6} td.l,th.l{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:16px} .plots figure{margin:0;width:560px;max-width:100%}
.plots img{width:560px;max-width:100%;border:1px solid #eee}
ul.legend{list-style:none;padding:0;margin:4px 0;font-size:12px;display:flex;flex-wrap:wrap;gap:10px}
ul.legend li::before{content:"";display:inline-block;width:18px;height:3px;margin-right:4px;vertical-align:middle;background:var(--c)}
.strip{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
.strip figure{margin:0;font-size:11px;max-width:260px} .strip img{display:block;max-width:256px;image-rendering:pixelated;border:1px solid #ddd}
.strip figcaption{color:#444;padding:2px 0}
.rowlabel{font-size:12px;color:#666;margin:6px 0 2px}
.skipped li{font-size:13px} .note{color:#a33}
"""


#: The files :func:`write_report` writes into its folder (and it writes ``plots/*.png``).
REPORT_FILES = ("results.csv", "bd_rate.csv", "report.html")

#: The per-image lengths a run with a quality target adds to its report (:mod:`adatok.eval.lengths`).
LENGTHS = "lengths.csv"


def check_report_files(out: str | Path) -> None:
    """Refuse (:class:`~adatok.AdatokError`) a report into ``out`` where one of its files is a folder
    (or a device, a pipe): found before any work, not when the report is written after it."""
    out = Path(out)
    for path in [out / name for name in (*REPORT_FILES, LENGTHS)] + [out / "plots" / f"{s}.png" for s in PLOTS]:
        if path.exists() and not path.is_file():
            raise AdatokError(f"cannot write the report into {out}: {path} is {'a folder' if path.is_dir() else 'not a file'}"
                              "; the earlier report there, if any, is as it was; remove it or give another folder")
    if (out / "plots").exists() and not (out / "plots").is_dir():
        raise AdatokError(f"cannot write the report into {out}: {out / 'plots'} is not a folder; remove it or give "
                          "another output folder")


def _is_our_results(path: Path) -> bool:
    """Whether ``path`` is a ``results.csv`` an evaluation wrote (its header, older files' too)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(200).startswith(b"image,height,width,channels,method,kind,budget_kind,budget,")
    except OSError:
        return False


def check_report_folder(out: str | Path) -> None:
    """Refuse (:class:`~adatok.AdatokError`) a report into ``out`` where it would write over files of
    the report's names (``results.csv``, ``report.html``, ``bd_rate.csv``, ``lengths.csv``) that are
    not an earlier report's: one is recognised by its ``results.csv``. A new folder, or one of other
    files only (which the run leaves alone), is taken. A file that is no folder, and report files
    that are folders, are refused too."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AdatokError(f"the output {out} is a file; give a folder for the report")
    check_report_files(out)
    present = [name for name in (*REPORT_FILES, LENGTHS) if (out / name).exists()]
    if present and not _is_our_results(out / "results.csv"):
        raise AdatokError(f"the output folder {out} holds {present[0]}, but not the results.csv of an adatok eval "
                          "report: the report would write over it; give a new folder, or an earlier report's")


def remove_report(out: str | Path) -> bool:
    """Remove an earlier report in ``out`` (recognised by its ``results.csv``): the files
    :func:`write_report` writes there, and ``out/plots`` and ``out`` when that leaves them empty;
    anything else stays. Whether there was one (``adatok demo`` without a learned run removes that
    run's earlier ``OUT/NAME/``, which read as this run's)."""
    out = Path(out)
    if out.is_symlink() or not out.is_dir() or not _is_our_results(out / "results.csv"):
        return False
    try:
        with folder_lock(out, "another adatok eval", wait=120.0):
            for path in [out / name for name in (*REPORT_FILES, LENGTHS)] + [out / "plots" / f"{s}.png" for s in PLOTS]:
                if path.is_file() or path.is_symlink():
                    path.unlink()
        for folder in (out / "plots", out):
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
    except OSError as exc:
        raise AdatokError(f"cannot remove the earlier report in {out}: {exc.strerror or exc}") from None
    return True


def check_report_spares(out: str | Path, reads: Sequence[tuple[Sequence[Path], Sequence[Path]]]) -> None:
    """Refuse (:class:`~adatok.AdatokError`) a report into ``out`` that would write over what its run
    reads, by where each file of it leads (a link is written through): ``reads`` holds, for the data
    and the masks, ``(folders, files)`` with links resolved (:func:`adatok.datasets.data_reads`,
    :func:`adatok.eval.regions.mask_reads`): no report file may be one of the files, nor land in
    one of the folders (the next run would read it). ``lengths.csv`` (``--target-psnr``) counts too."""
    out = Path(out)
    check_report_files(out)
    folders = {Path(f) for group, _ in reads for f in group}
    files = {Path(f) for _, group in reads for f in group}
    names = (*REPORT_FILES, LENGTHS)
    for path in [out / name for name in names] + [out / "plots" / f"{stem}.png" for stem in PLOTS]:
        real = path.resolve()
        inside = next((f for f in real.parents if f in folders), None)
        if inside is not None and any(part.startswith(".") for part in real.parent.relative_to(inside).parts):
            inside = None  # (under a hidden folder, which no read walks)
        if inside is not None or real in files:
            what = f"in the folder {inside}" if inside is not None else f"the file {real}"
            raise AdatokError(f"the report into {out} would write {path}"
                              f"{f' (a link to {real})' if path.is_symlink() else ''}, which is {what} this run "
                              "reads (data or masks): give an output folder apart from them")


def write_report(ev: Evaluation, out: str | Path, *, results: Sequence[dict[str, str]] | None = None,
                 lengths: str | None = None) -> Path:
    """Write ``results.csv`` (unless ``results`` are given), the plots, ``bd_rate.csv`` and
    ``report.html`` for an evaluation into folder ``out``; return the report's path.

    ``lengths``: the text of ``lengths.csv`` (:func:`adatok.eval.lengths.lengths_csv`), written with
    the rest; without it, a new ``results.csv`` removes an earlier run's ``lengths.csv`` there, which
    would read as this run's. All of it is written as one (:func:`~adatok.core.imageio.atomic_writes`,
    under the folder's lock): the folder holds one run's report, an earlier one or this one, whole.
    The page's numbers are read back from ``out/results.csv``.
    """
    out = Path(out)
    check_report_files(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[Path, bytes] = {}  # written together at the end: a failed write leaves the earlier run whole
    stale: list[Path] = []  # an earlier run's files this run does not write: not this run's
    if results is None:
        text = results_csv(ev)
        files[out / "results.csv"] = utf8(text)
        results = parse_results(text)
        if lengths is None:
            stale.append(out / LENGTHS)
    if lengths is not None:
        files[out / LENGTHS] = utf8(lengths)
    rows = list(results)
    by_key = {(r["image"], r["method"], r["budget_kind"], r["budget"]): r for r in rows}
    order = [m.name for m in ev.methods]

    plots = plot_curves(rows, ev.methods, stream=ev.config.get("bpp_counts") == "stream")
    for stem, (png, _) in plots.items():
        files[out / "plots" / f"{stem}.png"] = png

    rates = bd_rates(rows)
    bd_csv = io.StringIO()  # (csv quotes a method name holding a comma: a checkpoint's --name may)
    writer = csv.writer(bd_csv, lineterminator="\n")
    writer.writerow(["method", "bd_rate_psnr_percent", "bd_rate_ms_ssim_percent", "images_psnr", "images_ms_ssim"])
    writer.writerows([m, _fmt_pct(v["psnr"]), _fmt_pct(v["ms_ssim"]), int(v["n"]), int(v["n_ms_ssim"])]
                     for m, v in rates.items())
    files[out / "bd_rate.csv"] = utf8(bd_csv.getvalue())

    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>adatok evaluation: {_e(ev.config.get('data', ''))}</title><style>{_CSS}</style></head><body>"]
    parts.append(_header(ev, rows))
    parts.append(_summary_table(ev, rows))
    parts.append(_region_section(ev, rows, plots, order))
    parts.append(_bd_table(ev, rates))
    parts.append(_lengths_section(ev))
    parts.append(_plots_section(ev, plots, order))
    parts.append(_images_section(ev, by_key, order))
    parts.append(_results_table(rows))
    parts.append("</body></html>\n")
    path = out / "report.html"
    files[path] = utf8("\n".join(parts))
    try:
        (out / "plots").mkdir(exist_ok=True)
        # (two runs into one folder at once: one after the other, the files of one run, never some of each)
        with folder_lock(out, "another adatok eval", wait=120.0):
            atomic_writes([(p, lambda tmp, data=data: tmp.write_bytes(data)) for p, data in files.items()])
            stale += [out / "plots" / f"{stem}.png" for stem in set(PLOTS) - set(plots)]  # (a plot it does not draw)
            for old in stale:
                old.unlink(missing_ok=True)
    except OSError as exc:
        raise AdatokError(f"cannot write the report into {out} ({exc.strerror or exc}); the earlier report there, "
                          "if any, is as it was") from None
    return path


def _fmt_pct(v: float) -> str:
    return f"{v:+.2f}" if math.isfinite(v) else ""


def _pct_cell(v: float) -> str:
    """A BD-rate in the report's table: ``-12.34 %``, or ``n/a`` without a unit (``n/a %`` until 2026-12-03)."""
    return f"{_fmt_pct(v)} %" if math.isfinite(v) else "n/a"


def _header(ev: Evaluation, rows: Sequence[dict[str, str]]) -> str:
    cfg = ev.config
    budgets = ", ".join(_budget_label(k, budget_text(k, b)) for k, b in ev.budgets)
    grid = cfg.get("grid")
    grid_txt = ""
    if grid:
        grid_txt = (f"<li>grid baseline: {grid['codebook']}-entry k-means codebooks ({grid['bits']} bits a token) "
                    f"for patch sides {', '.join(map(str, grid['patches']))} px, fitted on "
                    f"{_e(grid['fitted_on'])} ({counted(grid['train_images'], 'image')}), seed {cfg.get('seed')}</li>")
    parts = [
        "<h1>adatok evaluation</h1>",
        f"<p class='meta'>data <b>{_e(cfg.get('data', '?'))}</b>{_e(cfg.get('data_note', ''))}: "
        f"{counted(len(ev.images), 'image')} evaluated, {len(ev.skipped)} skipped · budgets: {_e(budgets)} · "
        f"{counted(len(rows), 'row')} in <code>results.csv</code></p>",
        "<ul class='meta'>",
        f"<li>methods: {_e(', '.join(m.label for m in ev.methods))}</li>",
        grid_txt,
        "".join(f"<li>also: <a href='{_e(href)}'>{_e(text)}</a></li>" for text, href in cfg.get("links", ())),
        _region_note(ev),
        "<li>codecs get each bpp budget as a byte budget and run at their best setting within it; "
        "JPEG 2000 is OpenJPEG at its strongest (irreversible 9/7, mct=1, rate control, raw codestream); "
        "codecs have no tokens and sit out token budgets</li>",
        ("<li>bits per pixel count <b>the token stream alone</b> (<code>--stream</code>): every tokenizer got "
         "<code>Bpp(x, header=False)</code>, container headers are not counted, and codecs, whose headers "
         "cannot be taken apart from their data, sit out the bpp budgets</li>"
         if cfg.get("bpp_counts") == "stream" else
         "<li>bits per pixel count whole files, headers included</li>"),
        "<li>PSNR over all channels of the 8-bit image; SSIM scikit-image's (Gaussian weights of sigma 1.5 over "
        "11 x 11 pixels, a 3-pixel border left out: win_size 7; under 7 pixels a side a 5 x 5 or 3 x 3 uniform "
        "window, under 3 the whole image as one; mean over channels); "
        "MS-SSIM sewar's (mean over channels)</li>",
        f"<li>reproduce: <code>{_e(cfg.get('command', ''))}</code> (seed {cfg.get('seed')}; adatok "
        f"{_e(cfg.get('adatok'))}, Python {_e(platform.python_version())}); a second run gives the same "
        "numbers, timings aside</li>",
        "</ul>",
    ]
    if ev.skipped:
        parts.append(f"<details class='skipped' open><summary>{len(ev.skipped)} skipped</summary><ul id='skipped'>")
        parts += [f"<li data-file='{_e(n)}'><code>{_e(n)}</code>: {_e(r)}</li>" for n, r in ev.skipped]
        parts.append("</ul></details>")
    return "\n".join(parts)


def _summary_table(ev: Evaluation, rows: Sequence[dict[str, str]]) -> str:
    stats = summarize(rows)
    parts = ["<h2>Summary</h2>",
             "<p>Mean PSNR (dB) and mean bits per pixel over the images; <span class='note'>n/N</span> where a "
             "method met the budget on only n of N images; <span class='note'>k exact</span> where k images were "
             f"reconstructed exactly (PSNR infinite), each counted as {EXACT_PSNR:g} dB in the mean.</p>",
             "<table id='summary-table'><tr><th class='l'>method</th>"]
    parts += [f"<th>{_e(_budget_label(k, budget_text(k, b)))}</th>" for k, b in ev.budgets]
    parts.append("</tr>")
    for m in ev.methods:
        cells = []
        for k, b in ev.budgets:
            s = stats.get((m.name, k, budget_text(k, b)))
            if s is None:
                cells.append("<td>-</td>")
                continue
            partial = _note(met_count(s))
            if s["exact"]:
                partial += f" <span class='note exact'>{int(s['exact'])} exact</span>"
            txt = f"{s['psnr']:.2f} dB @ {s['bpp']:.3f}" if s["n"] else "cannot"
            cells.append(f"<td data-psnr='{s['psnr']:.3f}' data-bpp='{s['bpp']:.5f}' data-exact='{int(s['exact'])}'>"
                         f"{txt}{partial}</td>")
        parts.append(f"<tr data-method='{_e(m.name)}'><td class='l'>{_e(m.label)}</td>{''.join(cells)}</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _bd_table(ev: Evaluation, rates: dict[str, dict[str, float]]) -> str:
    if not rates:
        return "<h2>BD-rate</h2><p>No BD-rate: JPEG 2000 (<code>jp2</code>) was not among the baselines.</p>"
    parts = ["<h2>BD-rate against JPEG 2000</h2>",
             "<p>Bjontegaard delta rate over the bpp budgets, per image, then the mean: the extra bits a method "
             "needs for the quality JPEG 2000 reaches (negative: fewer bits). Also in <code>bd_rate.csv</code>.</p>",
             "<table id='bd-rate'><tr><th class='l'>method</th><th>BD-rate (PSNR)</th><th>BD-rate (MS-SSIM)</th>"
             "<th>images (PSNR / MS-SSIM)</th></tr>"]
    labels = {m.name: m.label for m in ev.methods}
    for m, v in rates.items():
        parts.append(f"<tr data-method='{_e(m)}'><td class='l'>{_e(labels.get(m, m))}</td>"
                     f"<td>{_pct_cell(v['psnr'])}</td><td>{_pct_cell(v['ms_ssim'])}</td>"
                     f"<td>{int(v['n'])} / {int(v['n_ms_ssim'])}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _lengths_section(ev: Evaluation) -> str:
    """With a quality target (``ev.lengths``): the length per image summary, as ``adatok eval`` prints
    it (empty without one): kept with the report, under ``--quiet`` too."""
    if not ev.lengths:
        return ""
    from .lengths import LengthReport, SUMMARY_COLUMNS, summary_rows

    target = next((rep.target for _, rep in ev.lengths if isinstance(rep, LengthReport)), None)
    parts = [f"<h2>Length per image</h2><p>Each image's own shortest prefix reaching {_e(target or 'the target')}, "
             "against the one fixed size that serves every image that reaches it (fixed bpp: rounded up to a "
             f"budget that does, as printed). Per image in <code>{LENGTHS}</code>.</p>",
             "<table id='lengths-table'><tr>" + "".join(f"<th{' class=l' if i == 0 else ''}>{_e(c)}</th>"
                                                       for i, c in enumerate(SUMMARY_COLUMNS)) + "</tr>"]
    for row in summary_rows(ev.lengths, len(ev.images) + len(ev.skipped)):
        parts.append(f"<tr data-method='{_e(row[0])}'>" + "".join(
            f"<td{' class=l' if i == 0 or v.startswith('left out') else ''}>{_e(v)}</td>"
            for i, v in enumerate(row)) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _plots_section(ev: Evaluation, plots: dict[str, tuple[bytes, dict[str, int]]], order: list[str]) -> str:
    labels = {m.name: m.label for m in ev.methods}
    vocab = ", ".join(f"{m.label}: {m.vocab:,} symbols" for m in ev.methods if m.vocab)
    parts = ["<h2>Rate-distortion curves</h2>",
             "<p>Means over the images; a point is drawn where the method met the budget on every image; "
             f"an exact reconstruction counts as {EXACT_PSNR:g} dB. "
             f"The PNG files are in <code>plots/</code>. A token is not a bit: vocabularies differ ({_e(vocab)}).</p>"
             "<div class='plots'>"]
    parts += [_plot_figure(stem, png, counts, labels, order) for stem, (png, counts) in plots.items()
              if stem not in REGION_PLOTS]
    parts.append("</div>")
    return "\n".join(parts)


def _plot_figure(stem: str, png: bytes, counts: dict[str, int], labels: dict[str, str], order: list[str],
                 extra: str = "") -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    legend = "".join(f"<li data-method='{_e(m)}' data-points='{n}' style='--c:{_colour(m, order)}'>"
                     f"{_e(labels.get(m, m))} ({counted(n, 'point')})</li>" for m, n in counts.items())
    return (f"<figure class='plot' data-plot='{stem}{extra}'><img src='{uri}' alt='{stem}'>"
            f"<figcaption><ul class='legend'>{legend}</ul></figcaption></figure>")


def _region_note(ev: Evaluation) -> str:
    """The header's line on the run's region of interest (empty without one)."""
    roi = ev.config.get("roi")
    if not roi:
        return ""
    from ..core.metrics import region_mask

    inside = 100 * float(np.mean([region_mask(m).mean() for m in ev.regions.values()])) if ev.regions else float("nan")
    steered = [m.label for m in ev.methods if m.roi_of]
    how = (f"{_e(', '.join(steered))} encoded with it, beside the same tokenizer without it; every other "
           "method ran as without" if steered else "no method of the run steers by region: every method ran as without")
    return (f"<li id='roi'>region of interest: <b>{_e(roi)}</b>; inside where its map is &gt;= 0.5 "
            f"({inside:.1f} % of the pixels, mean over the images); {how}; <code>psnr_roi</code> and "
            "<code>psnr_out</code> in <code>results.csv</code> are the PSNR inside and outside it</li>")


def _region_section(ev: Evaluation, rows: Sequence[dict[str, str]], plots: dict, order: list[str]) -> str:
    """PSNR inside and outside the region beside the whole image's, per method and bpp budget, as a
    table and plots (empty without a region)."""
    if not ev.config.get("roi"):
        return ""
    stats = summarize(rows)
    bpps = [(k, b) for k, b in ev.budgets if k == "bpp"]
    parts = ["<h2>Region of interest</h2>",
             f"<p>Region: <b>{_e(ev.config['roi'])}</b> (inside: map &gt;= 0.5). Mean PSNR (dB) of the whole image, "
             "inside the region and outside it, of the same reconstructions, at each bpp budget (mean bits per "
             "pixel after the @). Methods marked <i>+ roi</i> spent their early tokens on the region (dashed "
             "lines); the others, the same tokenizer among them, did not know it: their inside and outside show "
             "what the same budget gives without steering. <span class='note'>n/N</span> after an inside or outside "
             "mean: over the n images with pixels on that side, fewer than its whole-image mean.</p>",
             "<table id='region-table'><tr><th class='l'>method</th>"]
    if not bpps:
        return "\n".join([*parts[:2], "<p>No bpp budget in this run: the PSNRs inside and outside the region at "
                           "the token budgets are in <code>results.csv</code> (<code>psnr_roi</code>, "
                           "<code>psnr_out</code>).</p>"])
    parts += [f"<th>{_e(_budget_label(k, budget_text(k, b)))}<br>whole / inside / outside</th>" for k, b in bpps]
    parts.append("</tr>")
    for m in ev.methods:
        cells = []
        for k, b in bpps:
            st = stats.get((m.name, k, budget_text(k, b)))
            if st is None or not st["n"]:
                cells.append("<td>-</td>" if st is None else "<td>cannot</td>")
                continue
            partial = _note(met_count(st))
            inside, outside = (f"<span class='note'>{n}</span>" if (n := side_count(st, c)) else "" for c in REGION_COLUMNS)
            cells.append(f"<td data-psnr='{st['psnr']:.3f}' data-psnr-roi='{st['psnr_roi']:.3f}' "
                         f"data-psnr-out='{st['psnr_out']:.3f}'>{st['psnr']:.2f} / <b>{st['psnr_roi']:.2f}</b>{inside} / "
                         f"{st['psnr_out']:.2f}{outside} @ {st['bpp']:.3f}{partial}</td>")
        parts.append(f"<tr data-method='{_e(m.name)}'><td class='l'>{_e(m.label)}</td>{''.join(cells)}</tr>")
    parts.append("</table><div class='plots'>")
    labels = {m.name: m.label for m in ev.methods}
    for stem in ("psnr_bpp", *REGION_PLOTS):
        if stem in plots:
            parts.append(_plot_figure(stem, *plots[stem], labels, order, "" if stem in REGION_PLOTS else "-region"))
    parts.append("</div>")
    return "\n".join(parts)


def _caption(row: dict[str, str] | None, label: str, show_tokens: bool, stream: bool = False) -> str:
    """A picture's caption: its method, tokens, size, bpp and quality. ``stream``: the run counted
    bpp on the token stream (``--stream``), so a tokenizer's caption gives the stream's bytes, which
    its bpp counts, beside the file's."""
    if row is None:
        return f"{_e(label)}"
    if row["bpp"] == "":
        return f"{_e(label)}<br><span class='note'>{_e(row['note'])}</span>"
    tok = f"{counted(int(row['tokens']), 'token')} · " if show_tokens and row["tokens"] else ""
    if stream and row.get("stream_bytes", "") != "":
        size = (f"<span data-col='stream_bytes'>{row['stream_bytes']}</span> bytes of tokens "
                f"(<span data-col='bytes'>{row['bytes']}</span> in the file)")
    else:
        size = f"<span data-col='bytes'>{row['bytes']}</span> bytes"
    return (f"<b>{_e(label)}</b><br>{tok}{size} · "
            f"<span data-col='bpp'>{row['bpp']}</span> bpp<br><span data-col='psnr'>{row['psnr']}</span> dB"
            f"{' (exact)' if row['psnr'] == 'inf' else ''} · "
            f"SSIM <span data-col='ssim'>{row['ssim']}</span>")


def _images_section(ev: Evaluation, by_key: dict, order: list[str]) -> str:
    stream = ev.config.get("bpp_counts") == "stream"
    bpps = [b for k, b in ev.budgets if k == "bpp"]
    mid = ("bpp", sorted(bpps)[(len(bpps) - 1) // 2]) if bpps else ev.budgets[(len(ev.budgets) - 1) // 2]
    mid_s = budget_text(*mid)
    shown = list(ev.originals)
    parts = [f"<h2>Images</h2><p>The first {len(shown)} of {counted(len(ev.images), 'image')}. Error maps: "
             "absolute error, "
             f"mean over channels, black 0 to white {ERROR_MAP_MAX:g} levels and above (magma). Token maps: where the "
             "sequence's tokens land, each token counted once and spread over the pixels it covers (wavelet tokens: "
             "2<sup>L</sup> x 2<sup>L</sup> pixels at level L; grid tokens: their patch), from dark (none) to "
             "yellow (the densest 0.5 %) (viridis).</p>"]
    for name in shown:
        orig = ev.originals[name]
        h, w, c = orig.shape
        parts.append(f"<section class='image' data-image='{_e(name)}'><h3>{_e(name)} <small>{size_text(orig.shape)}, "
                     f"{'gray' if c == 1 else 'RGB'}</small></h3>")
        parts.append(f"<div class='rowlabel'>every method at {_e(_budget_label(mid[0], mid_s))}</div>"
                     "<div class='strip compare'>")
        parts.append(_figure(_png_uri(_show(orig)), f"<b>original</b><br>{size_text(orig.shape)}"))
        for m in ev.methods:
            shot = ev.shots.get((name, m.name, *mid))
            row = by_key.get((name, m.name, mid[0], mid_s))
            if row is None:
                continue
            if shot is None:
                parts.append(f"<figure class='missing'><figcaption>{_caption(row, m.label, False, stream)}</figcaption></figure>")
            else:
                parts.append(_figure(_png_uri(_show(shot.image)), _caption(row, m.label, m.kind == "tokenizer", stream),
                                     f" data-method='{_e(m.name)}'"))
        parts.append("</div>")
        parts.append(_saliency_row(ev, name, orig, mid))
        for m in ev.methods:
            if m.kind != "tokenizer":
                continue
            recon, errs, heats = [], [], []
            for k, b in ev.budgets:
                bs = budget_text(k, b)
                shot = ev.shots.get((name, m.name, k, b))
                row = by_key.get((name, m.name, k, bs))
                label = _budget_label(k, bs)
                if shot is None:
                    recon.append(f"<figure class='missing'><figcaption>{_caption(row, label, True, stream)}</figcaption></figure>")
                    continue
                attrs = f" data-method='{_e(m.name)}' data-budget='{_e(k)}={_e(bs)}'"
                recon.append(_figure(_png_uri(_show(shot.image)), _caption(row, label, True, stream), attrs))
                err = _show_map(error_map(orig, shot.image), "magma", vmax=ERROR_MAP_MAX)
                mse_txt = f"error · {row['psnr']} dB" if row else "error"
                errs.append(_figure(_png_uri(err), _e(f"{label}: {mse_txt}"), attrs))
                heat = token_heatmap(shot.seq) if shot.seq is not None else None
                if heat is not None:
                    n = len(shot.seq)
                    top = float(np.percentile(heat, 99.5)) or None
                    heats.append(_figure(_png_uri(_show_map(heat, "viridis", vmax=top)),
                                         _e(f"{label}: first {counted(n, 'token')}"), attrs))
            parts.append(f"<div class='tokenizer' data-method='{_e(m.name)}'>")
            parts.append(f"<div class='rowlabel'><b>{_e(m.label)}</b>: reconstructions at growing budgets</div>"
                         f"<div class='strip recon'>{''.join(recon)}</div>")
            if errs:
                parts.append(f"<div class='rowlabel'>error maps</div><div class='strip errors'>{''.join(errs)}</div>")
            if heats:
                parts.append(f"<div class='rowlabel'>where the tokens land</div>"
                             f"<div class='strip heat'>{''.join(heats)}</div>")
            parts.append("</div>")
        parts.append("</section>")
    return "\n".join(parts)


def _results_table(rows: Sequence[dict[str, str]]) -> str:
    region = [c for c in REGION_COLUMNS if any(r.get(c, "") != "" for r in rows)]
    cols = ["image", "method", "budget_kind", "budget", "tokens", "bytes", "bpp", "psnr", "ssim", "ms_ssim",
            *region, "encode_s", "decode_s", "setting", "note"]
    parts = [f"<h2>All results</h2><details><summary>the {len(rows)} rows of <code>results.csv</code></summary>",
             "<table id='results-table'><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for r in rows:
        attrs = " ".join(f"data-{c.replace('_', '-')}='{_e(r[c])}'" for c in cols if c != "note")
        cells = "".join(f"<td{' class=l' if c in ('image', 'method', 'note') else ''}>{_e(r[c])}</td>" for c in cols)
        parts.append(f"<tr {attrs}>{cells}</tr>")
    parts.append("</table></details>")
    return "\n".join(parts)
