"""``adatok encode``, ``adatok decode`` and ``adatok info``: images to token files and back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

import adatok
from adatok import AdatokError, BudgetError, Quality
from adatok.core.errors import naming_image
from adatok.core.imageio import atomic_write_bytes, read_image_noting, write_image
from adatok.core.registry import names, pattern_names
from adatok.core.metrics import psnr, quality_mask, quality_score

from .app import app
from .common import (budget, check_at_least, check_output, check_saliency, checkpoint_inputs, counted,
                     default_tokenizer, file_bpp, fmt_psnr, fmt_shape, model_card, read_token_file, reporting_errors,
                     shipped_checkpoints)
from .options import (BppBudget, CheckpointFolder, Force, LosslessBudget, PsnrBudget, Quiet, SaliencyMethod, SsimBudget,
                      TokensBudget, force_option)
from .tables import output_console, token_table


@app.command()
@reporting_errors
def encode(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="Image file to encode (PNG, JPEG, WebP, TIFF, ...).",
                                          show_default=False)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Token file to write (.atk); written atomically.",
                                        show_default=False)],
    tokenizer: Annotated[str | None, typer.Option(
        "--tokenizer", "-t", metavar="NAME", show_default=False,
        help=f"Tokenizer name ({', '.join(names(views=True) + pattern_names())}) or checkpoint folder; "
             "default: wavelet-lossless with --lossless, else wavelet.")] = None,
    tokens: TokensBudget = None,
    psnr_db: PsnrBudget = None,
    ssim: SsimBudget = None,
    lossless: LosslessBudget = False,
    bpp: BppBudget = None,
    roi: Annotated[str | None, typer.Option(
        "--roi", metavar="auto|METHOD|MASK.png", show_default=False,
        help="Region of interest whose tokens come first: 'auto' (a saliency map, see --saliency), a saliency "
             "method's name (spectral, gradient, centre), or a mask PNG of the image's size (brighter = more "
             "important).")] = None,
    saliency_method: SaliencyMethod = "auto",
    region: Annotated[bool, typer.Option(
        "--in-roi", help="Measure --psnr/--ssim inside the region of interest (mask >= 0.5) only.")] = False,
    quiet: Quiet = False,
    force: Annotated[bool, force_option("; also write the .atk bytes to an OUT whose suffix names an image (.png)")
                     ] = False,
) -> None:
    """Encode an image to a token file (.atk).

    Give at most one budget option; without one the full sequence is kept.
    """
    from adatok.core.saliency import is_method

    check_saliency(roi, saliency_method)
    # a method's name, even where a file has that name (as roi_from takes it: ./spectral for the file; a file
    # of a method's name won here, and auto's did not); was read as a mask file, refused, naming methods
    spec = saliency_method if roi == "auto" else roi if is_method(roi) else roi and Path(roi)
    check_output(out, image, *([spec] if isinstance(spec, Path) else []),
                 *checkpoint_inputs(tokenizer), force=force)
    chosen = budget(tokens, psnr_db, ssim, lossless, bpp)
    if region:
        if not isinstance(chosen, Quality) or roi is None:
            raise BudgetError("--in-roi goes with --psnr or --ssim and --roi")
        chosen = Quality(psnr=chosen.psnr, ssim=chosen.ssim, region="roi")
    name = tokenizer if tokenizer is not None else default_tokenizer(lossless)
    tok = adatok.load(name)
    img, notes = read_image_noting(image)
    roi_map = None
    if roi is not None:
        from adatok.core import saliency as sal

        roi_map = sal.roi_from(spec, img)
    try:
        seq = tok.encode([img], chosen, roi=None if roi_map is None else [roi_map])[0]
    except AdatokError as exc:
        raise naming_image(exc, str(image)) from None
    data = seq.to_bytes()
    atomic_write_bytes(out, data, replace_link=True)
    if notes.transparent:  # (documented, yet "PSNR exact" of --lossless said nothing was lost: the flattened image's)
        typer.echo(f"warning: {image} has transparency (alpha), flattened onto white: {out} holds the flattened "
                   "image, not the alpha", err=True)
    if notes.frames > 1:  # (an animated GIF / PNG / WebP, a multi-page TIFF: the others went without a word)
        typer.echo(f"warning: {image} has {notes.frames:,} frames: only the first is encoded", err=True)
    decoded = tok.decode([seq])[0] if not quiet or isinstance(chosen, Quality) else None
    mask = quality_mask(chosen, roi_map) if isinstance(chosen, Quality) else None
    if not quiet:  # (with --in-roi the PSNR inside the region, which it targeted: the whole image's was printed)
        where = "" if mask is None else " inside the region of interest"
        typer.echo(f"{out}: {counted(len(seq), 'token')}, {counted(len(data), 'byte')}, "
                   f"{file_bpp(len(data), seq):.4f} bpp, "
                   f"PSNR{where} {fmt_psnr(psnr(img, decoded, mask=mask))} ({seq.tokenizer}, {fmt_shape(seq.shape)})")
    if isinstance(chosen, Quality):  # no prefix reached it: the full sequence is kept (as documented), and said
        reached = quality_score(img, decoded, chosen, mask)
        goal = chosen.psnr if chosen.psnr is not None else chosen.ssim
        if reached < goal - 1e-9:
            option, measure = (("--psnr", f"PSNR {fmt_psnr(reached)}") if chosen.psnr is not None
                               else ("--ssim", f"SSIM {reached:.4f}"))
            where = " inside the region of interest" if chosen.region else ""
            typer.echo(f"warning: {option} {goal:g} not reached: the full sequence reaches {measure}{where}", err=True)


@app.command()
@reporting_errors
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
    tokenizer: CheckpointFolder = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Decode a token file (or a prefix of it) to an image."""
    check_output(out, src, *checkpoint_inputs(tokenizer), image=True, force=force)
    check_at_least(tokens, "--tokens")
    check_at_least(n_bytes, "--bytes")
    # only the tokens asked for are decoded; a file cut short says so (a copy cut off in transfer decoded without
    # a word), with --bytes too when the file ends before them (a pipeline passing the bytes received so far was
    # never told)
    data, header, note, seq = read_token_file(src, tokenizer, n_bytes, max_tokens=tokens)
    from adatok.core.registry import maker

    img = maker(seq).decode([seq])[0]
    write_image(out, img, replace_link=True)
    count = f"{len(seq):,} of {counted(int(header['n_tokens']), 'token')}" if note else counted(len(seq), "token")
    if not quiet:
        typer.echo(f"{out}: {fmt_shape(img.shape)} from {count} ({seq.tokenizer}{'; ' + note if note else ''})")
    if note:  # a file cut short is a warning on stderr, under --quiet too, as encode's are (with -q it decoded
        # without a word: an outside user's review)
        typer.echo(f"warning: {src}: {note}; {out} is decoded from {count}", err=True)


def _shown_param(key: str, value) -> str:
    """A sequence parameter as ``adatok info`` prints it: a region of interest in words (its coded
    grid was printed as the header holds it, a base64 blob: found by an outside-user review)."""
    if key == "roi" and isinstance(value, dict) and isinstance(value.get("g"), int) and isinstance(value.get("s"), int):
        side = 1 << value["g"]
        return f"(a region of interest: {side} x {side}-pixel cells, each raised by 0 to {value['s']} bit-planes)"
    return str(value)


@app.command()
@reporting_errors
def info(
    src: Annotated[Path, typer.Argument(metavar="IN|NAME", help="Token file (.atk) to describe, or the name of a "
                                        "shipped checkpoint (its model card).", show_default=False)],
    tokenizer: CheckpointFolder = None,
) -> None:
    """Describe a token file: tokenizer, shape, length, size and where its tokens go. Given the
    name of a shipped checkpoint instead (fashion-mnist-32, a generator, the judge), print the
    summary of its model card."""
    card = model_card(str(src)) if not src.exists() else None
    if card is not None:
        typer.echo(card)
        return
    if not os.path.lexists(src) and not src.suffix and len(src.parts) == 1:  # a name, not a file's path
        raise AdatokError(f"no such file or shipped checkpoint: {src} (the shipped checkpoints, whose model cards "
                          f"info prints: {', '.join(shipped_checkpoints())}; a token file is described from its path)")
    data, header, note, seq = read_token_file(src, tokenizer)
    console = output_console()
    n_full = int(header["n_tokens"])
    cut = f" of {n_full:,} ({note})" if note else ""
    params = " ".join(f"{k}={_shown_param(k, v)}" for k, v in sorted(seq.params.items()))
    for key, value in (("file", str(src)), ("tokenizer", seq.tokenizer), ("version", seq.version),
                       ("shape", fmt_shape(seq.shape)), ("tokens", f"{len(seq):,}{cut}"),
                       ("bytes", f"{len(data):,}"), ("bpp", f"{file_bpp(len(data), seq):.4f}"),
                       ("params", params or "-")):
        console.print(f"{key + ':':<11}{value}", markup=False)
    table = token_table(seq)
    if table is not None:
        console.print(table)
