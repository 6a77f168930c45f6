"""``adatok tokenize-dataset``: tokenize an image corpus into Parquet / WebDataset shards with Ray Data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from adatok import AdatokError

from .app import app
from .common import (EvalProgress, budget, check_at_least, check_link_loop, counted, default_tokenizer,
                     invoked_command, reporting_errors)
from .options import BppBudget, LosslessBudget, NoProgress, PsnrBudget, SsimBudget, TokensBudget


@app.command("tokenize-dataset")
@reporting_errors
def tokenize_dataset_cmd(
    src: Annotated[str, typer.Argument(metavar="SRC", help="A folder of images (searched recursively), a Parquet "
                                                           "file or folder with an image-bytes column, or fashion-mnist.")],
    dst: Annotated[Path, typer.Argument(metavar="DST", help="Output folder (shards, manifest.json); a folder of an "
                                                            "unfinished run of the same command is resumed.")],
    tokenizer: Annotated[str | None, typer.Option(
        "--tokenizer", "-t", metavar="NAME", show_default=False,
        help="A tokenizer name or checkpoint folder; default: wavelet-lossless with --lossless, else wavelet "
             "(as for adatok encode).")] = None,
    tokens: TokensBudget = None,
    bpp: BppBudget = None,
    psnr_db: PsnrBudget = None,
    ssim: SsimBudget = None,
    lossless: LosslessBudget = False,
    address: Annotated[str | None, typer.Option(
        "--address", metavar="ADDR", show_default=False,
        help="An existing Ray cluster (ray://HOST:10001, or auto); default: a local Ray, started and stopped here. "
             "The cluster's workers need adatok installed and DST on a shared file system.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", metavar="N", show_default=False,
        help="Ray workers (default: every CPU, of this machine or of the cluster); 0: no Ray, this process alone.")] = None,
    formats: Annotated[list[str] | None, typer.Option(
        "--format", metavar="parquet|webdataset", show_default=False,
        help="Output format, parquet (default) or webdataset (.tar shards); give it twice for both.")] = None,
    shard_size: Annotated[int, typer.Option("--shard-size", metavar="N", help="Images per shard.")] = 1000,
    limit: Annotated[int | None, typer.Option("--limit", metavar="N", show_default=False,
                                              help="Only the first N images of SRC.")] = None,
    image_column: Annotated[str | None, typer.Option("--image-column", metavar="NAME", show_default=False,
                                                     help="Parquet SRC: the column of image-file bytes "
                                                          "(default: image, or the binary column).")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", metavar="NAME", show_default=False,
                                                     help="Parquet SRC: an integer label column (default: label, "
                                                          "if there is one); none: no labels.")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", metavar="folders|none", show_default=False,
        help="A folder SRC: folders labels each image by its class sub-folder (SRC/CLASS/..., classes sorted, "
             "numbered from 0, their names in the manifest); default none.")] = None,
    quiet: NoProgress = False,
) -> None:
    """Tokenize every image of SRC into shards under DST (one row per image: ids, .atk bytes, PSNR, label),
    with Ray Data; images that cannot be read are counted and listed in DST/manifest.json."""
    check_link_loop(Path(src))
    check_link_loop(dst)
    check_at_least(workers, "--workers", 0)
    check_at_least(shard_size, "--shard-size", 1)
    check_at_least(limit, "--limit", 1)
    wanted = budget(tokens, psnr_db, ssim, lossless, bpp)
    tokenizer = tokenizer if tokenizer is not None else default_tokenizer(lossless)
    command = invoked_command()
    try:
        from adatok.scale import tokenize_dataset

        if workers != 0:
            # No Ray started implicitly in this process (read when Ray is imported): a thread of Ray Data's that
            # called Ray after the run had stopped it started a new default cluster (see adatok.scale.pipeline)
            os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
            import ray  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise AdatokError(f"tokenize-dataset needs the scale extra ({exc.name} is missing): "
                          "pip install 'adatok[scale]'") from None
    with EvalProgress(quiet) as progress:
        manifest = tokenize_dataset(src, dst, tokenizer, wanted, workers=workers, address=address,
                                    formats=tuple(formats or ("parquet",)), shard_size=shard_size, limit=limit,
                                    image_column=image_column, label_column=label_column, labels=labels, command=command,
                                    progress=lambda done, total, what: progress(done, total, f"tokenizing {what}"))
    c = manifest["counts"]
    if not quiet:
        typer.echo(f"{dst}: {counted(c['written'], 'image')} in {counted(c['shards'], 'shard')}, "
                   f"{counted(c['tokens'], 'token')}"
                   + (f"; {counted(c['bad'], 'bad input')} listed in {dst / 'manifest.json'}" if c["bad"] else "")
                   + (f" ({counted(c['resumed_shards'], 'shard')} already written)" if c["resumed_shards"] else ""))
    if not c["written"]:  # (a run that wrote nothing said "0 images in 0 shards", exit 0, and no more)
        why = (f"found no input in {src} (no file, or no Parquet row)" if not c["images"] else
               f"none of the {c['images']:,} inputs of {src} could be used (each listed with its reason in "
               f"{dst / 'manifest.json'})")
        typer.echo(f"warning: no image written: {why}; readers of {dst} will find no rows", err=True)
