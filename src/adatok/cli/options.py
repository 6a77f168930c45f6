"""Options that more than one command takes, defined once as ``Annotated`` aliases.

A command declares ``quiet: Quiet = False`` or ``tokens: TokensBudget = None`` instead of
repeating the typer boilerplate; :func:`adatok.cli.common.budget` turns the five budget options
into one :class:`adatok.Budget`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

#: ``--quiet``: nothing on stdout when the command succeeds.
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")]

#: ``--quiet`` of the long-running commands: no progress bar.
NoProgress = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

#: ``--tokens``: a token-count budget.
TokensBudget = Annotated[int | None, typer.Option(
    "--tokens", "-k", metavar="N", help="Budget: at most N tokens.", show_default=False)]

#: ``--psnr``: a quality budget in PSNR.
PsnrBudget = Annotated[float | None, typer.Option(
    "--psnr", metavar="DB", show_default=False,
    help="Budget: a prefix reaching this PSNR (dB): the shortest, checked exactly up to a size (a bisection's answer "
         "on larger images; docs/wavelet-language.md).")]

#: ``--ssim``: a quality budget in SSIM.
SsimBudget = Annotated[float | None, typer.Option(
    "--ssim", metavar="S", show_default=False,
    help="Budget: a prefix reaching this SSIM, 0 < S <= 1: the shortest up to a size, as for --psnr.")]

#: ``--lossless``: the full, bit-exact sequence.
LosslessBudget = Annotated[bool, typer.Option(
    "--lossless", help="Budget: the full, bit-exact sequence (needs a lossless tokenizer).")]

#: ``--bpp``: a bit budget per pixel of the file.
BppBudget = Annotated[float | None, typer.Option(
    "--bpp", metavar="X", help="Budget: at most X bits per pixel (H x W) of the file.", show_default=False)]

#: ``--tokenizer FOLDER`` of the commands that read ``.atk`` files.
CheckpointFolder = Annotated[str | None, typer.Option(
    "--tokenizer", "-t", metavar="FOLDER", show_default=False,
    help="A checkpoint folder to load first, for files made by a learned tokenizer of your own "
         "(shipped and built-in tokenizers are found by the name in the file); a file it did not make is "
         "refused.")]

def force_option(also: str = "") -> Any:
    """``--force`` of a command that writes one file OUT: replace one already there (``also``: what
    else it lets through, said in its help)."""
    return typer.Option("--force", help=f"Replace an OUT that exists (a symbolic link of its name is replaced, not "
                                        f"what it points to){also}. An output that is one of the inputs is refused "
                                        "even so.")


#: ``--force``: replace an output that exists (never an input).
Force = Annotated[bool, force_option()]

#: ``--resume`` and ``--force`` of the trainers: what to do with a checkpoint already in ``--out``.
Resume = Annotated[bool, typer.Option("--resume", help="Continue the checkpoint in --out.")]
StartOver = Annotated[bool, typer.Option(
    "--force", help="Start over in an --out that holds a checkpoint, replacing it (without --resume or --force, "
                    "such an --out is refused).")]

#: ``--saliency``: how ``--roi auto`` makes its map.
SaliencyMethod = Annotated[str, typer.Option(
    "--saliency", metavar="METHOD", help="Saliency for --roi auto: auto, spectral, gradient or centre.")]


def out_dir(help: str, **kwargs: Any) -> Any:
    """The ``--out``/``-o DIR`` option of a command that writes a folder, with its own help text."""
    return typer.Option("--out", "-o", metavar="DIR", help=help, **kwargs)
