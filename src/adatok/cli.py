"""The ``adatok`` command line: a thin shell over the library.

    adatok encode photo.png photo.atk --psnr 38       # image -> token file
    adatok decode photo.atk preview.png --tokens 5000  # any prefix -> image
    adatok info photo.atk                              # what is in a token file
    adatok demo --out out/demo                         # the sample photos, both wavelet tokenizers

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

#: Prefixes the demo decodes, as fractions of the full sequence (1 = all of it).
DEMO_FRACTIONS: tuple[int, ...] = (64, 16, 4, 1)


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Decode a token file (or a prefix of it) to an image."""
    _check_count(tokens, "--tokens")
    _check_count(n_bytes, "--bytes")
    data = _read_bytes(src)
    if n_bytes is not None:
        data = data[:n_bytes]
    seq = TokenSequence.from_bytes(data)
    if tokens is not None:
        seq = seq.prefix(tokens)
    img = adatok.load(seq.tokenizer).decode([seq])[0]
    write_image(out, img)
    if not quiet:
        typer.echo(f"{out}: {_fmt_shape(img.shape)} from {len(seq):,} tokens ({seq.tokenizer})")


@app.command()
@_reporting_errors
def info(
    src: Annotated[Path, typer.Argument(metavar="IN", help="Token file (.atk) to describe.",
                                        show_default=False)],
) -> None:
    """Describe a token file: tokenizer, shape, length, size and where its tokens go."""
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


@app.command()
@_reporting_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the reconstructions.")] = Path("out/demo"),
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", show_default=False,
        help="Use only the first N sample photos (for quick runs and tests).")] = None,
    max_side: Annotated[int | None, typer.Option(
        "--max-side", metavar="PX", show_default=False,
        help="Shrink the photos so their longer side is at most PX pixels (for quick runs and tests).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Tokenize the bundled sample photos with both wavelet tokenizers and decode prefixes.

    For each photo (scikit-image's astronaut, camera, coffee, chelsea, rocket) and tokenizer
    (wavelet, wavelet-lossless) the full sequence is encoded, and its prefixes of 1/64, 1/16, 1/4
    and all of the tokens are decoded to `OUT/TOKENIZER/IMAGE_K.png`, K the number of tokens.
    Tables give the full length and the PSNR (dB) of each prefix. `--limit` and `--max-side`
    make quick runs.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from adatok.datasets import SAMPLE_IMAGES, sample_images

    if limit is not None and limit < 1:
        raise AdatokError(f"--limit needs a whole number >= 1, got {limit}")
    if max_side is not None and max_side < 1:
        raise AdatokError(f"--max-side needs a whole number >= 1, got {max_side}")
    names = SAMPLE_IMAGES[:limit] if limit is not None else SAMPLE_IMAGES
    tokenizers = ("wavelet", "wavelet-lossless")
    for name in tokenizers:
        folder = out / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AdatokError(f"cannot create folder {folder}: {exc.strerror or exc}") from exc

    rows: dict[str, list[list[str]]] = {name: [] for name in tokenizers}
    progress = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), disable=quiet, transient=True)
    with progress:
        task = progress.add_task("images", total=len(names))
        for image_name in names:
            progress.update(task, description=image_name)
            (_, img), = sample_images([image_name], max_side=max_side)
            for tok_name in tokenizers:
                tok = adatok.load(tok_name)
                seq = tok.encode([img])[0]
                n = len(seq)
                cells = []
                for frac in DEMO_FRACTIONS:
                    k = -(-n // frac)  # ceil(n / frac)
                    rec = tok.decode([seq.prefix(k)])[0]
                    write_image(out / tok_name / f"{image_name}_{k}.png", rec)
                    cells.append(_fmt_psnr(psnr(img, rec)))
                rows[tok_name].append([image_name, _fmt_shape(img.shape), f"{n:,}", *cells])
            progress.advance(task)

    console = Console(highlight=False)
    for tok_name in tokenizers:
        table = Table(title=f"{tok_name}: PSNR (dB) of prefixes")
        for col in ("image", "shape", "tokens"):
            table.add_column(col, justify="left" if col == "image" else "right")
        for frac in DEMO_FRACTIONS:
            table.add_column("all" if frac == 1 else f"1/{frac}", justify="right")
        for row in rows[tok_name]:
            table.add_row(*row)
        console.print(table)
    console.print(f"reconstructions in {out}/", markup=False)


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


if __name__ == "__main__":  # pragma: no cover
    app()
