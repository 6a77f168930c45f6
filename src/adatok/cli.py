"""The ``adatok`` command line: a thin shell over the library.

    adatok encode photo.png photo.atk --psnr 38       # image -> token file
    adatok decode photo.atk preview.png --tokens 5000  # any prefix -> image
    adatok info photo.atk                              # what is in a token file
    adatok eval --data samples --out out/eval          # rate-distortion against codecs, HTML report
    adatok eval --data samples --roi masks/ --out out/roi   # ... with PSNR inside and outside a region
    adatok demo --out out/demo                         # eval of both wavelet tokenizers on the sample photos

Every failure a user can cause (:class:`adatok.AdatokError`) is printed as one line
``error: <message>`` on stderr and exits with code 2, without a traceback; files are written
atomically, so a failed command leaves no partial output and never clobbers an existing file.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

import adatok
from adatok import AdatokError, BudgetError, Bpp, Lossless, Quality, TokenSequence, Tokens
from adatok.core.imageio import atomic_write_bytes, read_image, write_image
from adatok.core.metrics import psnr
from adatok.core.sequence import parse_container

__all__ = ["app", "token_table"]

app = typer.Typer(
    name="adatok",
    help="Images as ordered, variable-length, prefix-decodable token sequences.\n\n"
         "Errors print one line `error: <message>` on stderr and exit with code 2.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

F = TypeVar("F", bound=Callable[..., Any])



# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _reporting_errors(fn: F) -> F:
    """Turn an :class:`AdatokError` raised by a command into ``error: <message>`` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdatokError as exc:
            message = re.sub(r"\s*\n\s*", " ", str(exc).strip()) or type(exc).__name__
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _read_bytes(path: Path) -> bytes:
    """The bytes of a file, with missing / unreadable files as :class:`AdatokError`."""
    if not path.exists():
        raise AdatokError(f"no such file: {path}")
    if path.is_dir():
        raise AdatokError(f"{path} is a folder, not an .atk file; give the path of a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AdatokError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _budget(tokens: int | None, psnr_db: float | None, ssim: float | None, lossless: bool,
            bpp: float | None) -> adatok.Budget | None:
    """The one budget the options ask for (``None``: the full sequence)."""
    given = {"--tokens": tokens, "--psnr": psnr_db, "--ssim": ssim, "--lossless": lossless or None,
             "--bpp": bpp}
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) > 1:
        raise BudgetError(f"give at most one budget option, got {' and '.join(given)}")
    try:
        if tokens is not None:
            return Tokens(tokens)
        if psnr_db is not None:
            return Quality(psnr=psnr_db)
        if ssim is not None:
            return Quality(ssim=ssim)
        if lossless:
            return Lossless()
        if bpp is not None:
            return Bpp(bpp)
    except BudgetError as exc:
        option, value = next(iter(given.items()))
        raise BudgetError(f"bad {option} {value}: {exc}") from exc
    return None


def _check_count(value: int | None, option: str) -> None:
    if value is not None and value < 0:
        raise AdatokError(f"{option} needs a whole number >= 0, got {value}")


def _fmt_psnr(value: float) -> str:
    return "exact" if math.isinf(value) else f"{value:.2f}"


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _bpp(n_bytes: int, seq: TokenSequence) -> float:
    return 8 * n_bytes / seq.num_pixels


def token_table(seq: TokenSequence) -> Table | None:
    """A table of how many of ``seq``'s tokens fall on each bit-plane (rows) and level (columns).

    For sequences whose ``pos_fields`` lack ``plane`` or ``level``, a one-column table of the
    counts per value of the first position field. ``None`` if the sequence has no position fields.
    """
    fields = list(seq.pos_fields)
    if "plane" in fields and "level" in fields:
        plane = seq.pos[:, fields.index("plane")]
        level = seq.pos[:, fields.index("level")]
        planes = sorted(set(plane.tolist()), reverse=True)  # coded top plane first
        levels = sorted(set(level.tolist()), reverse=True)  # coarse to fine
        if "levels" in seq.params:  # every level of the image, even those with no tokens yet
            levels = sorted(set(levels) | set(range(1, int(seq.params["levels"]) + 1)), reverse=True)
        table = Table(title="tokens per bit-plane and level", caption="level 1 is the finest")
        table.add_column("plane", justify="right")
        for lev in levels:
            table.add_column(f"L{lev}", justify="right")
        table.add_column("total", justify="right", style="bold")
        for p in planes:
            row = level[plane == p]
            counts = [int((row == lev).sum()) for lev in levels]
            table.add_row(str(p), *[f"{c:,}" for c in counts], f"{len(row):,}")
        table.add_section()
        table.add_row("total", *[f"{int((level == lev).sum()):,}" for lev in levels], f"{len(seq):,}",
                      style="bold")
        return table
    if not fields:
        return None
    name = fields[0]
    values, counts = np.unique(seq.pos[:, 0], return_counts=True)
    table = Table(title=f"tokens per {name}")
    table.add_column(name, justify="right")
    table.add_column("tokens", justify="right")
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        table.add_row(str(v), f"{c:,}")
    table.add_section()
    table.add_row("total", f"{len(seq):,}", style="bold")
    return table


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"adatok {adatok.__version__}")
        raise typer.Exit()


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the adatok version and exit.")] = False,
) -> None:
    """Images as ordered, variable-length, prefix-decodable token sequences."""


@app.command()
@_reporting_errors
def encode(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="Image file to encode (PNG, JPEG, WebP, TIFF, ...).",
                                          show_default=False)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Token file to write (.atk); written atomically.",
                                        show_default=False)],
    tokenizer: Annotated[str | None, typer.Option(
        "--tokenizer", "-t", metavar="NAME", show_default=False,
        help="Tokenizer name (wavelet, wavelet-lossless) or checkpoint folder; "
             "default: wavelet-lossless with --lossless, else wavelet.")] = None,
    tokens: Annotated[int | None, typer.Option(
        "--tokens", "-k", metavar="N", help="Budget: at most N tokens.", show_default=False)] = None,
    psnr_db: Annotated[float | None, typer.Option(
        "--psnr", metavar="DB", help="Budget: the shortest prefix reaching this PSNR (dB).", show_default=False)] = None,
    ssim: Annotated[float | None, typer.Option(
        "--ssim", metavar="S", help="Budget: the shortest prefix reaching this SSIM, 0 < S <= 1.", show_default=False)] = None,
    lossless: Annotated[bool, typer.Option(
        "--lossless", help="Budget: the full, bit-exact sequence (needs a lossless tokenizer).")] = False,
    bpp: Annotated[float | None, typer.Option(
        "--bpp", metavar="X", help="Budget: at most X bits per pixel (H x W) of the file.", show_default=False)] = None,
    roi: Annotated[str | None, typer.Option(
        "--roi", metavar="auto|MASK.png", show_default=False,
        help="Region of interest whose tokens come first: 'auto' (a saliency map, see --saliency) "
             "or a mask PNG of the image's size (brighter = more important).")] = None,
    saliency_method: Annotated[str, typer.Option(
        "--saliency", metavar="METHOD", help="Saliency for --roi auto: auto, spectral, gradient or centre.")] = "auto",
    region: Annotated[bool, typer.Option(
        "--in-roi", help="Measure --psnr/--ssim inside the region of interest (mask >= 0.5) only.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Encode an image to a token file (.atk).

    Give at most one budget option; without one the full sequence is kept.
    """
    budget = _budget(tokens, psnr_db, ssim, lossless, bpp)
    if region:
        if not isinstance(budget, Quality) or roi is None:
            raise BudgetError("--in-roi goes with --psnr or --ssim and --roi")
        budget = Quality(psnr=budget.psnr, ssim=budget.ssim, region="roi")
    name = tokenizer if tokenizer is not None else ("wavelet-lossless" if lossless else "wavelet")
    tok = adatok.load(name)
    img = read_image(image)
    roi_map = None
    if roi is not None:
        from adatok.core import saliency as sal

        roi_map = sal.roi_from(saliency_method if roi == "auto" else Path(roi), img)
    seq = tok.encode([img], budget, roi=None if roi_map is None else [roi_map])[0]
    data = seq.to_bytes()
    atomic_write_bytes(out, data)
    if not quiet:
        quality = psnr(img, tok.decode([seq])[0])
        typer.echo(f"{out}: {len(seq):,} tokens, {len(data):,} bytes, {_bpp(len(data), seq):.4f} bpp, "
                   f"PSNR {_fmt_psnr(quality)} dB ({seq.tokenizer}, {_fmt_shape(seq.shape)})")


#: ``--tokenizer FOLDER`` of the commands that read ``.atk`` files.
_CheckpointFolder = Annotated[str | None, typer.Option(
    "--tokenizer", "-t", metavar="FOLDER", show_default=False,
    help="A checkpoint folder to load first, for files made by a learned tokenizer of your own "
         "(shipped and built-in tokenizers are found by the name in the file).")]


def _load_checkpoint(folder: str | None) -> None:
    """Load a checkpoint folder given with ``--tokenizer`` (remembered in this process, so that files
    naming it are read with its weights)."""
    if folder is not None:
        adatok.load(folder)


@app.command()
@_reporting_errors
def decode(
    src: Annotated[Path, typer.Argument(metavar="IN", help="Token file (.atk) to decode.",
                                        show_default=False)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Image to write; the suffix picks the format (.png is "
                                             "lossless). Written atomically.", show_default=False)],
    tokens: Annotated[int | None, typer.Option(
        "--tokens", "-k", metavar="K", show_default=False,
        help="Decode only the first K tokens (a prefix).")] = None,
    n_bytes: Annotated[int | None, typer.Option(
        "--bytes", metavar="N", show_default=False,
        help="Read only the first N bytes of the file, as if it were cut there (the file is "
             "embedded: any cut past the header decodes).")] = None,
    tokenizer: _CheckpointFolder = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Decode a token file (or a prefix of it) to an image."""
    _check_count(tokens, "--tokens")
    _check_count(n_bytes, "--bytes")
    _load_checkpoint(tokenizer)
    data = _read_bytes(src)
    if n_bytes is not None:
        data = data[:n_bytes]
    seq = TokenSequence.from_bytes(data)
    if tokens is not None:
        seq = seq.prefix(tokens)
    from adatok.core.registry import maker

    img = maker(seq).decode([seq])[0]
    write_image(out, img)
    if not quiet:
        typer.echo(f"{out}: {_fmt_shape(img.shape)} from {len(seq):,} tokens ({seq.tokenizer})")


@app.command()
@_reporting_errors
def info(
    src: Annotated[Path, typer.Argument(metavar="IN", help="Token file (.atk) to describe.",
                                        show_default=False)],
    tokenizer: _CheckpointFolder = None,
) -> None:
    """Describe a token file: tokenizer, shape, length, size and where its tokens go."""
    _load_checkpoint(tokenizer)
    data = _read_bytes(src)
    header, _ = parse_container(data)
    seq = TokenSequence.from_bytes(data)
    console = Console(highlight=False)
    n_full = int(header["n_tokens"])
    cut = f" of {n_full:,} (the file is cut)" if len(seq) < n_full else ""
    params = " ".join(f"{k}={v}" for k, v in sorted(seq.params.items()))
    for key, value in (("file", str(src)), ("tokenizer", seq.tokenizer), ("version", seq.version),
                       ("shape", _fmt_shape(seq.shape)), ("tokens", f"{len(seq):,}{cut}"),
                       ("bytes", f"{len(data):,}"), ("bpp", f"{_bpp(len(data), seq):.4f}"),
                       ("params", params or "-")):
        console.print(f"{key + ':':<11}{value}", markup=False)
    table = token_table(seq)
    if table is not None:
        console.print(table)


def _split_list(text: str | None, option: str, kind: type) -> list:
    """``"0.1,0.25"`` -> ``[0.1, 0.25]`` (empty or ``none`` -> ``[]``)."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = kind(part)
        except ValueError:
            what = "numbers" if kind is float else "whole numbers"
            raise AdatokError(f"{option} takes {what} separated by commas, got {text!r}") from None
        out.append(value)
    return out


class _EvalProgress:
    """A rich progress bar on stderr (transient) for a run; it shows up with the first step, so a
    run that fails before measuring anything prints nothing but its error."""

    def __init__(self, quiet: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), disable=quiet, transient=True)
        self.task = None

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(what[:30], total=total)
        self.progress.update(self.task, completed=done, total=total, description=what[:30])

    def __enter__(self) -> _EvalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()


def _print_eval(ev, report: Path, console: Console) -> None:
    """The terminal summary of a run: skipped files, mean PSNR @ bpp per method and budget, BD-rate."""
    from adatok.eval import bd_rates, read_results, summarize
    from adatok.eval.runner import budget_text

    rows = read_results(report.parent / "results.csv")
    if ev.skipped:
        console.print(f"skipped {len(ev.skipped)}:", markup=False)
        for name, reason in ev.skipped:
            console.print(f"  {name}: {reason}", markup=False, soft_wrap=True)
    stats = summarize(rows)
    rates = bd_rates(rows)
    grid = ev.config.get("grid") or {}
    caption = "n/N: the budget was met on n of N images" + ("; BD-rate: against JPEG 2000, on PSNR" if rates else "")
    if grid.get("fitted_on") == "the evaluated images themselves":
        caption += "; the grid's codebooks were fitted on these very images, which flatters it"
    table = Table(title=f"mean PSNR in dB (mean bits per pixel) over {len(ev.images)} images", caption=caption)
    table.add_column("method", no_wrap=True, min_width=max(len(m.label) for m in ev.methods))
    for kind, b in ev.budgets:
        table.add_column(f"{budget_text(kind, b)} {'bpp' if kind == 'bpp' else 'tokens'}", justify="right")
    if rates:
        table.add_column("BD-rate", justify="right", no_wrap=True)
    for m in ev.methods:
        cells = []
        for kind, b in ev.budgets:
            st = stats.get((m.name, kind, budget_text(kind, b)))
            if st is None:
                cells.append("-")
            elif not st["n"]:
                cells.append("cannot")
            else:
                part = f" {int(st['n'])}/{int(st['images'])}" if st["n"] < st["images"] else ""
                cells.append(f"{st['psnr']:.2f} ({st['bpp']:.2f}){part}")
        if rates:
            v = rates.get(m.name, {}).get("psnr")
            cells.append("ref." if m.name == "jp2" else ("n/a" if v is None or math.isnan(v) else f"{v:+.1f}%"))
        table.add_row(m.label, *cells)
    console.print(table)
    console.print(f"results: {report.parent / 'results.csv'}", markup=False, soft_wrap=True)
    console.print(f"report:  {report}", markup=False, soft_wrap=True)


@app.command("eval")
@_reporting_errors
def eval_(
    data: Annotated[str, typer.Option(
        "--data", "-d", metavar="NAME|FOLDER", show_default=False,
        help="samples (the bundled photos), fashion-mnist, or a folder of images (searched recursively; "
             "unreadable files are skipped and listed).")],
    tokenizer: Annotated[list[str], typer.Option(
        "--tokenizer", "-t", metavar="NAME",
        help="Tokenizer name or checkpoint folder; repeat it or separate names by commas.")] = ["wavelet"],  # noqa: B006
    bpp: Annotated[str | None, typer.Option(
        "--bpp", metavar="X,Y,..", show_default=False,
        help="Budgets in bits per pixel [default: 0.1,0.25,0.5,1 unless --tokens is given].")] = None,
    tokens: Annotated[str | None, typer.Option(
        "--tokens", metavar="K,L,..", show_default=False, help="Budgets in tokens (tokenizers only).")] = None,
    baselines: Annotated[str, typer.Option(
        "--baselines", metavar="LIST", help="Baselines to run beside: any of jpeg,webp,avif,jp2,grid, or none.")
    ] = "jpeg,webp,avif,jp2,grid",
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for results.csv, plots/ and "
                                                                         "report.html.")] = Path("out/eval"),
    split: Annotated[str | None, typer.Option(
        "--split", metavar="NAME", show_default=False,
        help="Dataset split (fashion-mnist: test [default] or train; a folder: a sub-folder).")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", show_default=False, help="Evaluate only the first N images.")] = None,
    max_side: Annotated[int | None, typer.Option(
        "--max-side", metavar="PX", show_default=False,
        help="Shrink images so their longer side is at most PX pixels.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the grid baseline's k-means.")] = 0,
    keep: Annotated[int, typer.Option("--report-images", metavar="N",
                                      help="How many images the report shows.")] = 8,
    target_psnr: Annotated[float | None, typer.Option(
        "--target-psnr", metavar="DB", show_default=False,
        help="Also give every image its own shortest prefix reaching this PSNR and report the lengths "
             "and sizes (OUT/lengths.csv) against the one fixed size that would serve every image.")] = None,
    target_ssim: Annotated[float | None, typer.Option(
        "--target-ssim", metavar="S", show_default=False, help="As --target-psnr, for SSIM.")] = None,
    roi: Annotated[str | None, typer.Option(
        "--roi", metavar="auto|MASK.png|FOLDER", show_default=False,
        help="Region of interest: 'auto' (a saliency map of each image, see --saliency), a mask PNG for "
             "every image, or a folder of masks matched to the images by file stem. Masks must have their "
             "image's size (with --max-side: before shrinking, they are shrunk alike). Wavelet tokenizers "
             "encode with it; every row gets PSNR inside (psnr_roi) and outside (psnr_out) it.")] = None,
    saliency_method: Annotated[str, typer.Option(
        "--saliency", metavar="METHOD", help="Saliency for --roi auto: auto, spectral, gradient or centre.")] = "auto",
    in_roi: Annotated[bool, typer.Option(
        "--in-roi", help="With a target and --roi: measure the target inside the region (map >= 0.5).")] = False,
    stream: Annotated[bool, typer.Option(
        "--stream", help="Count bits per pixel of the token stream alone (container headers excluded), for "
                         "comparing tokenizers on small images; codecs sit out the bpp budgets.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, print nothing on success.")] = False,
) -> None:
    """Rate-distortion of tokenizers beside JPEG, WebP, AVIF, JPEG 2000 and a uniform-grid tokenizer.

    Writes `OUT/results.csv` (one row per image x method x budget: tokens, bytes, bpp, PSNR, SSIM,
    MS-SSIM, encode and decode seconds), `OUT/plots/*.png`, `OUT/bd_rate.csv` (BD-rate against
    JPEG 2000) and `OUT/report.html`, one self-contained page. Files that cannot be read, and
    images under 16 x 16 pixels, are skipped and listed. With `--roi`, results.csv also has the
    PSNR inside and outside the region (`psnr_roi`, `psnr_out`) and the report compares them.
    """
    from adatok.eval import run

    names = [n.strip() for t in tokenizer for n in t.split(",") if n.strip()]
    if not names:
        raise AdatokError("--tokenizer needs at least one name")
    bpps = _split_list(bpp, "--bpp", float)
    token_counts = _split_list(tokens, "--tokens", int)
    if bpp is None and not token_counts:
        bpps = [0.1, 0.25, 0.5, 1.0]
    base = [b.strip() for b in _split_list(baselines, "--baselines", str) if b.strip()]
    for value, option in ((limit, "--limit"), (max_side, "--max-side")):
        if value is not None and value < 1:
            raise AdatokError(f"{option} needs a whole number >= 1, got {value}")
    if keep < 0:
        raise AdatokError(f"--report-images needs a whole number >= 0, got {keep}")
    if (target_psnr is not None) and (target_ssim is not None):
        raise BudgetError("give one of --target-psnr and --target-ssim")
    target = None
    if target_psnr is not None or target_ssim is not None:
        target = Quality(psnr=target_psnr, ssim=target_ssim, region="roi" if in_roi else None)
    if in_roi and (target is None or roi is None):
        raise BudgetError("--in-roi goes with --target-psnr or --target-ssim and --roi")
    if roi is not None and roi != "auto" and not Path(roi).exists():
        raise AdatokError(f"--roi takes 'auto', a mask PNG or a folder of masks; no such file or folder: {roi}")
    tokenizers = [adatok.load(n) for n in names]
    with _EvalProgress(quiet) as step:
        ev, report = run(data, out, tokenizers, bpp=bpps, tokens=token_counts, baselines=base, split=split,
                         limit=limit, max_side=max_side, seed=seed, keep=keep, roi=roi, saliency=saliency_method,
                         stream=stream, progress=step)
    if not quiet:
        console = Console(highlight=False)
        _print_eval(ev, report, console)
        _print_region(ev, report, console)
    if target is not None:
        _eval_lengths(data, split, limit, max_side, tokenizers, target, roi, saliency_method, out, quiet, ev.regions)


def _print_region(ev, report: Path, console: Console) -> None:
    """With a region of interest: mean PSNR inside / outside it per method and bpp budget."""
    from adatok.eval import read_results, summarize
    from adatok.eval.runner import budget_text

    if not ev.config.get("roi"):
        return
    stats = summarize(read_results(report.parent / "results.csv"))
    bpps = [(k, b) for k, b in ev.budgets if k == "bpp"]
    if not bpps:
        return
    table = Table(title=f"mean PSNR in dB inside / outside the region over {len(ev.images)} images",
                  caption=f"region: {ev.config['roi']}; inside: map >= 0.5; + roi: encoded with it")
    table.add_column("method", no_wrap=True)
    for k, b in bpps:
        table.add_column(f"{budget_text(k, b)} bpp", justify="right")
    for m in ev.methods:
        cells = []
        for k, b in bpps:
            st = stats.get((m.name, k, budget_text(k, b)))
            cells.append("-" if st is None else "cannot" if not st["n"] else
                         f"{st['psnr_roi']:.2f} / {st['psnr_out']:.2f}")
        table.add_row(m.label, *cells)
    console.print(table)


def _eval_lengths(data, split, limit, max_side, tokenizers, target, roi, method, out: Path, quiet: bool,
                  known: dict) -> None:
    """The length-per-image part of ``adatok eval``: lengths.csv and a summary table. ``roi`` as for
    ``adatok eval``; ``known`` holds the region maps the rate-distortion run made (by id): only the
    images it left out (too small) get theirs made here."""
    import csv
    import io

    from adatok.datasets import load
    from adatok.eval.lengths import length_report
    from adatok.eval.regions import region_maps

    ds = load(data, split, limit=limit, max_side=max_side)
    maps = None
    if roi is not None:
        need = [(i, img) for i, img in ds.items() if i not in known]
        made = region_maps(roi, need, method, max_side)[0] if need else {}
        maps = [known[i] if i in known else made[i] for i in ds.ids]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["tokenizer", "image", "target", "tokens", "bytes", "bpp", "quality", "reached"])
    table = Table(title=f"length per image for {target}")
    for col in ("tokenizer", "images", "reached", "tokens mean", "tokens min..max", "bpp mean", "fixed bpp",
                "saving (tokens)", "saving (bpp)"):
        table.add_column(col)
    for tok in tokenizers:
        try:
            rep = length_report(tok, ds.images, target, ds.ids, roi=maps)
        except AdatokError as exc:
            table.add_row(tok.name, str(len(ds)), f"left out: {exc}", "", "", "", "", "", "")
            continue
        for i, name in enumerate(rep.names):
            writer.writerow([tok.name, name, str(target), int(rep.tokens[i]), int(rep.nbytes[i]),
                             f"{rep.bpp[i]:.6f}", f"{rep.quality[i]:.4f}", bool(rep.reached[i])])
        s = rep.summary()
        table.add_row(tok.name, str(s["images"]), str(s["reached"]), f"{s['tokens']['mean']:.0f}",
                      f"{s['tokens']['min']:.0f}..{s['tokens']['max']:.0f}", f"{s['bpp']['mean']:.3f}",
                      f"{s['fixed_bpp']:.3f}", f"{s['token_saving']:.2f}x", f"{s['bpp_saving']:.2f}x")
    atomic_write_bytes(out / "lengths.csv", buf.getvalue().encode())
    if not quiet:
        console = Console(highlight=False)
        console.print(table)
        console.print(f"per-image lengths in {out / 'lengths.csv'}", markup=False)


#: The longest side of the sample photos in `adatok demo` (keeps `make demo` quick).
DEMO_MAX_SIDE = 224

#: Token-stream budgets of the demo's learned-tokenizer runs (a 28x28 image: 0.449 bpp is 32 tokens).
LEARNED_BPP = (0.03, 0.06, 0.12, 0.23, 0.45)


@app.command()
@_reporting_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the results and report.")] = Path("out/demo"),
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", show_default=False,
        help="Use only the first N sample photos (for quick runs and tests).")] = None,
    max_side: Annotated[int, typer.Option(
        "--max-side", metavar="PX",
        help="Shrink the photos so their longer side is at most PX pixels.")] = DEMO_MAX_SIDE,
    learned_images: Annotated[int, typer.Option(
        "--learned-images", metavar="N",
        help="Also evaluate each shipped learned checkpoint on N test images of its own dataset (0: skip).")] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate the tokenizers on the bundled sample photos: what `make demo` runs.

    Runs `adatok eval` on the sample photos (scikit-image's astronaut, camera, coffee, chelsea,
    rocket, shrunk to `--max-side`) with every registered tokenizer (wavelet, wavelet-lossless,
    and shipped checkpoints) beside JPEG, WebP, AVIF, JPEG 2000 and the uniform-grid tokenizer,
    at 0.1, 0.25, 0.5 and 1 bits per pixel; prints a summary table and writes `OUT/results.csv`,
    `OUT/plots/`, `OUT/bd_rate.csv` and `OUT/report.html`.

    A learned checkpoint takes only images like its training data: each one whose dataset is here
    (e.g. `fashion-mnist-32` on Fashion-MNIST) gets its own run on `--learned-images` test images,
    beside `wavelet` and the grid baseline, with bpp counted on the token stream (`eval --stream`),
    written to `OUT/NAME/`.
    """
    from adatok.core.registry import names as registered
    from adatok.datasets import DATASETS, SAMPLE_IMAGES
    from adatok.eval import run

    if limit is not None and limit < 1:
        raise AdatokError(f"--limit needs a whole number >= 1, got {limit}")
    if max_side < 1:
        raise AdatokError(f"--max-side needs a whole number >= 1, got {max_side}")
    if learned_images < 0:
        raise AdatokError(f"--learned-images needs a whole number >= 0, got {learned_images}")
    first = ["wavelet", "wavelet-lossless"]
    learned = []
    tokenizers, unavailable = [], []
    for name in first + [n for n in registered() if n not in first]:
        try:
            tok = adatok.load(name)
        except AdatokError as exc:  # e.g. a learned checkpoint without the neural extra installed
            unavailable.append(f"{name}: {exc}")
            continue
        fixed = getattr(tok, "expects", None)  # a learned checkpoint takes one image shape only
        if fixed is not None:
            data = getattr(tok, "trained_on", None)
            if learned_images and data in DATASETS and data != "samples":  # its own (built-in) dataset is here
                learned.append(tok)
            else:
                unavailable.append(f"{name}: takes only {fixed[1]}x{fixed[0]}x{fixed[2]} images, not the sample "
                                   f"photos (adatok eval --data {data or 'DATA'} -t {name} --stream)")
            continue
        tokenizers.append(tok)
    command = f"adatok demo --out {out}" + (f" --limit {limit}" if limit else "") + \
        (f" --max-side {max_side}" if max_side != DEMO_MAX_SIDE else "")
    with _EvalProgress(quiet) as step:
        ev, report = run("samples", out, tokenizers, limit=limit, max_side=max_side, keep=len(SAMPLE_IMAGES),
                         command=command, progress=step)
    console = Console(highlight=False)
    for line in unavailable:
        console.print(f"left out {line}", markup=False, soft_wrap=True)
    _print_eval(ev, report, console)
    for tok in learned:
        sub = out / tok.name
        try:
            with _EvalProgress(quiet) as step:
                sub_ev, sub_report = run(tok.trained_on, sub, [tok, "wavelet"], bpp=LEARNED_BPP, baselines=["grid"],
                                         limit=learned_images, stream=True, progress=step)
        except AdatokError as exc:  # e.g. dataset-fashion-mnist not installed: the sample photos' run stands
            console.print(f"left out {tok.name}: {exc}", markup=False, soft_wrap=True)
            continue
        console.print(f"\n{tok.name} on {tok.trained_on} (bits per pixel of the token stream, headers excluded):")
        _print_eval(sub_ev, sub_report, console)


@app.command("saliency")
@_reporting_errors
def saliency_map(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="Image file (PNG, JPEG, WebP, TIFF, ...).",
                                          show_default=False)],
    out: Annotated[Path, typer.Argument(metavar="OUT.png", help="Map to write as an 8-bit gray PNG "
                                        "(white = salient); written atomically.", show_default=False)],
    method: Annotated[str, typer.Option(
        "--method", "-m", metavar="METHOD",
        help="auto (the three combined), spectral (spectral residual), gradient (multi-scale gradient "
             "and local entropy) or centre (a centred Gaussian).")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Write a training-free saliency map of an image, the same size as the image.

    White (255) is most salient, black (0) least. The methods are those of adatok.core.saliency.
    """
    from adatok.core.saliency import saliency, write_map

    if not str(out).lower().endswith(".png"):
        raise AdatokError(f"{out}: saliency maps are written as PNG; give a path ending in .png")
    img = read_image(image)
    write_map(out, saliency(img, method))
    if not quiet:
        typer.echo(f"{out}: {method} saliency map, {img.shape[0]}x{img.shape[1]}")




@app.command("train")
@_reporting_errors
def train_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR",
                                      help="Checkpoint folder (config.json, model.safetensors).")],
    data: Annotated[str, typer.Option("--data", metavar="fashion-mnist|FOLDER",
                                      help="Training images: fashion-mnist or a folder of same-size square images.")] = "fashion-mnist",
    tokens: Annotated[int, typer.Option("--tokens", "-k", metavar="K", help="Latent tokens per image.")] = 32,
    steps: Annotated[int, typer.Option("--steps", metavar="N", help="Optimizer steps in all.")] = 9000,
    batch: Annotated[int, typer.Option("--batch", metavar="B", help="Images per step (over all processes).")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (warm-up, then cosine decay).")] = 2e-3,
    dim: Annotated[int, typer.Option("--dim", help="Transformer width.")] = 96,
    depth: Annotated[int, typer.Option("--depth", help="Blocks in the encoder and in the decoder.")] = 3,
    patch: Annotated[int, typer.Option("--patch", help="Patch side in pixels.")] = 7,
    levels: Annotated[str, typer.Option("--levels", metavar="L,L,..", help="FSQ levels (vocabulary = product).")] = "8,8,6,5",
    linear_skip: Annotated[bool, typer.Option(
        "--linear-skip/--no-linear-skip",
        help="A linear path image -> latents -> image beside the transformers (+2.9 dB at k = 32 after "
             "400 steps; README).")] = True,
    vq_first: Annotated[bool, typer.Option(
        "--vq-first/--no-vq-first",
        help="The first token is a k-means code of the whole image (vocabulary-size codebook), the rest FSQ.")] = True,
    loss: Annotated[str, typer.Option(
        "--loss", metavar="mse|log-mse", help="mse, or log-mse: the mean over images of log(MSE) (mean PSNR).")] = "mse",
    ssim_weight: Annotated[float, typer.Option(
        "--ssim-weight", metavar="W",
        help="Add W x (1 - SSIM) to the loss (squared error alone lets SSIM fall as tokens are added).")] = 0.1,
    name: Annotated[str | None, typer.Option("--name", show_default=False,
                                             help="Tokenizer name (default DATA-K).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    eval_every: Annotated[int, typer.Option("--eval-every", metavar="N",
                                            help="Evaluate and write the checkpoint every N steps.")] = 200,
    threads: Annotated[int, typer.Option("--threads", help="torch threads per process.")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the checkpoint in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a learned (neural) tokenizer: nested-dropout 1-D tokens, FSQ codes.

    Works the same under `torchrun --nproc_per_node N adatok train ...` (data-parallel, gloo on CPUs).
    The image size and channels are taken from the data.
    """
    try:
        from adatok.neural.model import ModelConfig
        from adatok.neural.trainer import TrainConfig, load_images, train
    except ImportError as exc:
        raise AdatokError(f"training needs the neural extra ({exc.name} is missing): "
                          "pip install 'adatok[neural]'") from None
    for option, value in (("--tokens", tokens), ("--steps", steps), ("--batch", batch), ("--dim", dim),
                          ("--depth", depth), ("--patch", patch), ("--eval-every", eval_every), ("--threads", threads)):
        if value < 1:
            raise AdatokError(f"{option} needs a whole number >= 1, got {value}")
    if vq_first and tokens < 2 and not resume:
        raise AdatokError("--tokens needs at least 2 with --vq-first (one k-means token, then FSQ tokens); "
                          "or pass --no-vq-first")
    try:
        level_list = [int(v) for v in levels.split(",")]
        if not level_list or min(level_list) < 2:
            raise ValueError
    except ValueError:
        raise AdatokError(f"--levels needs whole numbers >= 2 separated by commas, got {levels!r}") from None
    tcfg = TrainConfig(data=data, steps=steps, batch=batch, lr=lr, seed=seed, eval_every=eval_every, threads=threads,
                       loss=loss, ssim_weight=ssim_weight)
    mcfg = None
    images = eval_images = None
    if not resume:
        images = load_images(data, "train")
        eval_images = load_images(data, "test")[: tcfg.eval_images]
        size, _, channels = images.shape[1:]
        if size % patch:
            raise AdatokError(f"the images are {size}x{size}: --patch must divide {size}, got {patch}")
        heads = max(1, dim // 32)
        if dim % heads:
            raise AdatokError(f"--dim {dim} must be a multiple of 32 (or below 32)")
        mcfg = ModelConfig(image_size=size, channels=channels, patch=patch, tokens=tokens, dim=dim,
                           enc_depth=depth, dec_depth=depth, heads=heads, levels=level_list, linear_skip=linear_skip,
                           vq_first=vq_first)
    metrics = train(out, mcfg, tcfg, name=name, resume=resume, quiet=quiet, images=images, eval_images=eval_images)
    if not quiet:
        typer.echo(f"{out}: " + " ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":  # pragma: no cover
    app()
