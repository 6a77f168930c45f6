"""``adatok eval``, ``adatok demo`` and ``adatok saliency``: measuring tokenizers against codecs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import adatok
from adatok import AdatokError, BudgetError, Quality
from adatok.core.imageio import read_image

from .app import app
from .common import (EvalProgress, check_at_least, check_output, check_link_loop, check_saliency, counted,
                     fmt_shape, invoked_command, reporting_errors, split_list)
from .options import Force, NoProgress, Quiet, SaliencyMethod, out_dir
from .tables import WholeTable, output_console, print_eval, print_region

#: The longest side of the sample photos in `adatok demo` (keeps `make demo` quick).
DEMO_MAX_SIDE = 224
#: Test images each shipped learned checkpoint is measured on in the demo (its own dataset).
DEMO_LEARNED_IMAGES = 100

#: Token-stream budgets of the demo's learned-tokenizer runs (a 28x28 image: 0.449 bpp is 32 tokens).
LEARNED_BPP = (0.03, 0.06, 0.12, 0.23, 0.45)


@app.command("eval")
@reporting_errors
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
    out: Annotated[Path, out_dir("Folder for results.csv, plots/ and report.html.")] = Path("out/eval"),
    split: Annotated[str | None, typer.Option(
        "--split", metavar="NAME", show_default=False,
        help="Dataset split (fashion-mnist: test [default] or train; a folder: a sub-folder).")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", show_default=False, help="Evaluate only the first N images.")] = None,
    max_side: Annotated[int | None, typer.Option(
        "--max-side", metavar="PX", show_default=False,
        help="Shrink images so their longer side is at most PX pixels.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the grid baseline's k-means.")] = 0,
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
    saliency_method: SaliencyMethod = "auto",
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
    from adatok.eval.pipeline import default_split

    names = [n.strip() for t in tokenizer for n in t.split(",") if n.strip()]
    if not names:
        raise AdatokError("--tokenizer needs at least one name")
    check_saliency(roi, saliency_method)
    bpps = split_list(bpp, "--bpp", float)
    token_counts = split_list(tokens, "--tokens", int)
    if bpp is None and not token_counts:
        bpps = [0.1, 0.25, 0.5, 1.0]
    base = [b.strip() for b in split_list(baselines, "--baselines", str) if b.strip()]
    if "none" in (b.lower() for b in base):  # ("none,jpeg" said "unknown baseline 'none'", none being valid alone)
        raise AdatokError(f"--baselines {baselines}: none stands alone (no baseline); give it, or a list of "
                          "baselines without it")
    check_at_least(limit, "--limit", 1)
    check_at_least(max_side, "--max-side", 1)
    check_at_least(keep, "--report-images")
    if (target_psnr is not None) and (target_ssim is not None):
        raise BudgetError("give one of --target-psnr and --target-ssim")
    target = None
    if target_psnr is not None or target_ssim is not None:
        target = Quality(psnr=target_psnr, ssim=target_ssim, region="roi" if in_roi else None)
    if in_roi and (target is None or roi is None):
        raise BudgetError("--in-roi goes with --target-psnr or --target-ssim and --roi")
    for path in (data, out, *([roi] if roi not in (None, "auto") else [])):  # (a loop deep inside: a traceback)
        check_link_loop(Path(path))
    if roi is not None and roi != "auto" and not Path(roi).exists():
        raise AdatokError(f"--roi takes 'auto', a mask PNG or a folder of masks; no such file or folder: {roi}")
    tokenizers = [adatok.load(n) for n in names]
    if data == "samples" and split is not None:  # (load's message names its Python argument, split=None)
        raise AdatokError(f"the sample photos have no splits; leave out --split {split}")
    if data == "fashion-mnist" and split not in (None, "train", "test"):  # (load's offers "None for both": Python's)
        raise AdatokError(f"fashion-mnist has the splits test and train, not {split!r}: give --split test (the "
                          "default) or --split train")
    split = default_split(data, split)  # the rate-distortion run and the lengths measure the same images
    with EvalProgress(quiet) as step:
        ev, report = run(data, out, tokenizers, bpp=bpps, tokens=token_counts, baselines=base, split=split,
                         limit=limit, max_side=max_side, seed=seed, keep=keep, roi=roi, saliency=saliency_method,
                         stream=stream, target=target, command=invoked_command(), progress=step)
    if not quiet:
        console = output_console()
        print_eval(ev, report, console)
        _print_exact(ev, console)
        print_region(ev, report, console)
        if target is not None:
            _print_lengths(ev, target, out, console)


def _print_exact(ev, console: Console) -> None:
    """Below the summary table: which methods reconstructed images exactly, each counted as
    :data:`~adatok.eval.metrics.EXACT_PSNR` dB in the means (its PSNR is infinite)."""
    from adatok.eval import summarize
    from adatok.eval.metrics import EXACT_PSNR

    exact: dict[str, int] = {}
    for (method, _, _), st in summarize(ev).items():
        exact[method] = max(exact.get(method, 0), int(st["exact"]))
    labels = {m.name: m.label for m in ev.methods}
    named = [f"{labels.get(m, m)} {n}" for m, n in exact.items() if n]
    if named:
        console.print(f"exact reconstructions (at most, per budget): {', '.join(named)} of "
                      f"{counted(len(ev.images), 'image')}; "
                      f"each counts as {EXACT_PSNR:g} dB in a mean PSNR", markup=False, soft_wrap=True)


def _print_lengths(ev, target, out: Path, console: Console) -> None:
    """The length-per-image part of ``adatok eval``'s summary (``ev.lengths``, measured by
    :func:`adatok.eval.run` and written to ``OUT/lengths.csv`` and the report with the rest): a
    column per tokenizer, a row per figure, so that it fits 80 columns with names whole (a row per
    tokenizer cut them to ``wavel…``); a tokenizer left out is a line below, with why."""
    from adatok.eval.lengths import SUMMARY_COLUMNS, summary_rows

    rows = summary_rows(ev.lengths, len(ev.images) + len(ev.skipped))
    measured = [row for (_, rep), row in zip(ev.lengths, rows, strict=True) if not isinstance(rep, str)]
    if measured:
        table = WholeTable(title=f"length per image for {target}")
        table.add_column("", no_wrap=True)
        for row in measured:
            table.add_column(row[0], justify="right", no_wrap=True)
        for i, col in enumerate(SUMMARY_COLUMNS[1:], 1):
            table.add_row(col, *[row[i] for row in measured])
        console.print(table)
    for name, rep in ev.lengths:
        if isinstance(rep, str):
            console.print(f"length per image: left out {name}: {rep}", markup=False, soft_wrap=True)
    console.print(f"per-image lengths in {out / 'lengths.csv'}; this table is in the report too", markup=False,
                  soft_wrap=True)


@app.command()
@reporting_errors
def demo(
    out: Annotated[Path, out_dir("Folder for the results and report.")] = Path("out/demo"),
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", show_default=False,
        help="Use only the first N sample photos (for quick runs and tests).")] = None,
    max_side: Annotated[int, typer.Option(
        "--max-side", metavar="PX",
        help="Shrink the photos so their longer side is at most PX pixels.")] = DEMO_MAX_SIDE,
    learned_images: Annotated[int, typer.Option(
        "--learned-images", metavar="N",
        help="Also evaluate each shipped learned checkpoint on N test images of its own dataset (0: skip).")
    ] = DEMO_LEARNED_IMAGES,
    quiet: NoProgress = False,
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
    written to `OUT/NAME/` and linked from `OUT/report.html`; a checkpoint left out (`--learned-images
    0`) has an earlier demo's `OUT/NAME/` report removed (its files only).
    """
    from adatok.core.registry import names as registered
    from adatok.datasets import DATASETS, SAMPLE_IMAGES, load
    from adatok.eval import run
    from adatok.eval.report import remove_report

    check_at_least(limit, "--limit", 1)
    check_at_least(max_side, "--max-side", 1)
    check_at_least(learned_images, "--learned-images")
    check_link_loop(out)  # (found only when its first file was written: a traceback)
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
                unavailable.append(f"{name}: takes only {fmt_shape(fixed)} images (H x W x C), not the sample "
                                   f"photos (adatok eval --data {data or 'DATA'} -t {name} --stream)")
            continue
        tokenizers.append(tok)
    command = shlex.join(["adatok", "demo", "--out", str(out)] + (["--limit", str(limit)] if limit else [])
                         + (["--max-side", str(max_side)] if max_side != DEMO_MAX_SIDE else [])
                         + (["--learned-images", str(learned_images)] if learned_images != DEMO_LEARNED_IMAGES else []))
    console = output_console()
    runs, missing = [], []
    for tok in learned:
        try:  # (only a dataset that is not here leaves a run out: a failed write is an error, exit 2)
            load(tok.trained_on, limit=1)
            runs.append(tok)
        except AdatokError as exc:  # e.g. dataset-fashion-mnist not installed: the sample photos' run stands
            missing.append(f"{tok.name}: {exc}")
    with EvalProgress(quiet) as step:
        ev, report = run("samples", out, tokenizers, limit=limit, max_side=max_side, keep=len(SAMPLE_IMAGES),
                         command=command, progress=step,
                         links=[(f"{t.name} on {t.trained_on}", f"{t.name}/report.html") for t in runs])
    # an earlier demo's report of a learned checkpoint this run leaves out read as this run's (its
    # files only: a folder of the name holding anything else stays)
    for name in registered():
        if name not in {t.name for t in runs} and name not in (".", "..") and "/" not in name:
            remove_report(out / name)
    for line in unavailable:
        console.print(f"left out {line}", markup=False, soft_wrap=True)
    print_eval(ev, report, console)
    _print_exact(ev, console)
    for line in missing:
        console.print(f"left out {line}", markup=False, soft_wrap=True)
    for tok in runs:
        sub = out / tok.name
        with EvalProgress(quiet) as step:
            sub_ev, sub_report = run(tok.trained_on, sub, [tok, "wavelet"], bpp=LEARNED_BPP, baselines=["grid"],
                                     limit=learned_images, stream=True, progress=step)
        console.print(f"\n{tok.name} on {tok.trained_on} (bits per pixel of the token stream, headers excluded):")
        print_eval(sub_ev, sub_report, console)
        _print_exact(sub_ev, console)


@app.command("saliency")
@reporting_errors
def saliency_map(
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="Image file (PNG, JPEG, WebP, TIFF, ...).",
                                          show_default=False)],
    out: Annotated[Path, typer.Argument(metavar="OUT.png", help="Map to write as an 8-bit gray PNG "
                                        "(white = salient); written atomically.", show_default=False)],
    method: Annotated[str, typer.Option(
        "--method", "-m", metavar="METHOD",
        help="auto (the three combined), spectral (spectral residual), gradient (multi-scale gradient "
             "and local entropy) or centre (a centred Gaussian).")] = "auto",
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Write a training-free saliency map of an image, the same size as the image.

    White (255) is most salient, black (0) least. The methods are those of adatok.core.saliency.
    """
    from adatok.core.saliency import saliency, write_map

    check_output(out, image, image=True, force=force)
    if not str(out).lower().endswith(".png"):
        raise AdatokError(f"{out}: saliency maps are written as PNG; give a path ending in .png")
    img = read_image(image)
    write_map(out, saliency(img, method), replace_link=True)
    if not quiet:
        typer.echo(f"{out}: {method} saliency map, {img.shape[0]}x{img.shape[1]}")
