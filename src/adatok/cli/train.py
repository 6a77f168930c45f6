"""``adatok train``: train a learned (neural) tokenizer into a checkpoint folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from adatok import AdatokError

from .app import app
from .common import check_at_least, check_link_loop, reporting_errors, resume_overrides
from .options import NoProgress, Resume, StartOver, out_dir

#: Steps of a new run when --steps is not given.
DEFAULT_STEPS = 9000

#: What each option of ``adatok train`` is in a checkpoint's config.json: on --resume an option given
#: must say what the checkpoint has (or be one a resumed run may change: ``trainer.RESUMABLE``).
KEPT_ON_RESUME = {
    "data": lambda c: c["train"]["data"],
    "image_size": lambda c: c["train"].get("crop"),
    "tokens": lambda c: c["model"]["tokens"],
    "batch": lambda c: c["train"]["batch"],
    "lr": lambda c: c["train"]["lr"],
    "dim": lambda c: c["model"]["dim"],
    "depth": lambda c: c["model"]["enc_depth"],
    "patch": lambda c: c["model"]["patch"],
    "levels": lambda c: ",".join(map(str, c["model"]["levels"])),
    "linear_skip": lambda c: bool(c["model"].get("linear_skip")),
    "vq_first": lambda c: bool(c["model"].get("vq_first")),
    "loss": lambda c: c["train"].get("loss", "mse"),
    "ssim_weight": lambda c: c["train"].get("ssim_weight", 0.0),
    "name": lambda c: c["name"],
    "seed": lambda c: c["train"]["seed"],
}


@app.command("train")
@reporting_errors
def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, out_dir("Checkpoint folder (config.json, model.safetensors).")],
    data: Annotated[str, typer.Option("--data", metavar="fashion-mnist|FOLDER",
                                      help="Training images: fashion-mnist, a folder of images (searched "
                                           "recursively; every 20th held out for evaluation), or a folder of token "
                                           "shards from adatok tokenize-dataset (their decodings: use --lossless "
                                           "shards to train on the images themselves).")] = "fashion-mnist",
    image_size: Annotated[int | None, typer.Option(
        "--image-size", metavar="S", show_default=False,
        help="Train on random S x S crops (and flips) of the images (a folder's may have any size; "
             "Fashion-MNIST's too); images smaller than S are left out and counted. Without it a folder's "
             "images must share one square size.")] = None,
    tokens: Annotated[int, typer.Option("--tokens", "-k", metavar="K", help="Latent tokens per image.")] = 32,
    steps: Annotated[int | None, typer.Option(
        "--steps", metavar="N", show_default=False,
        help=f"Optimizer steps in all (default {DEFAULT_STEPS}; with --resume the checkpoint's, or N to "
             "train on to step N).")] = None,
    batch: Annotated[int, typer.Option("--batch", metavar="B", help="Images per step (over all processes).")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (warm-up, then cosine decay).")] = 2e-3,
    dim: Annotated[int, typer.Option("--dim", help="Transformer width.")] = 96,
    depth: Annotated[int, typer.Option("--depth", help="Blocks in the encoder and in the decoder.")] = 3,
    patch: Annotated[int, typer.Option("--patch", help="Patch side in pixels.")] = 7,
    levels: Annotated[str, typer.Option("--levels", metavar="L,L,..", help="FSQ levels (vocabulary = product).")] = "8,8,6,5",
    linear_skip: Annotated[bool, typer.Option(
        "--linear-skip/--no-linear-skip",
        help="A linear path image -> latents -> image beside the transformers (+2.9 dB at k = 32 after "
             "400 steps; docs/learned-tokenizer.md).")] = True,
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
    resume: Resume = False,
    force: StartOver = False,
    quiet: NoProgress = False,
) -> None:
    """Train a learned (neural) tokenizer: nested-dropout 1-D tokens, FSQ codes.

    Works the same under `torchrun --nproc_per_node N adatok train ...` (data-parallel, gloo on CPUs).
    The image size and channels are taken from the data.
    """
    try:
        from adatok.neural.model import ModelConfig
        from adatok.neural.trainer import TrainConfig, load_images, report_left_out, train
    except ImportError as exc:
        raise AdatokError(f"training needs the neural extra ({exc.name} is missing): "
                          "pip install 'adatok[neural]'") from None
    check_link_loop(out)
    check_link_loop(Path(data))
    for option, value in (("--tokens", tokens), ("--steps", steps), ("--batch", batch), ("--dim", dim),
                          ("--depth", depth), ("--patch", patch), ("--eval-every", eval_every), ("--threads", threads)):
        check_at_least(value, option, 1)
    if vq_first and tokens < 2 and not resume:
        raise AdatokError("--tokens needs at least 2 with --vq-first (one k-means token, then FSQ tokens); "
                          "or pass --no-vq-first")
    try:
        level_list = [int(v) for v in levels.split(",")]
        if not level_list or min(level_list) < 2:
            raise ValueError
    except ValueError:
        raise AdatokError(f"--levels needs whole numbers >= 2 separated by commas, got {levels!r}") from None
    check_at_least(image_size, "--image-size", 1)
    from adatok.neural.folder import check_fresh_start
    from adatok.neural.trainer import FAMILY, RESUMABLE

    # (before the data is read: a folder that holds another checkpoint, or cannot be made, refused at once)
    check_fresh_start(out, resume, force, FAMILY)
    overrides = resume_overrides(ctx, out, RESUMABLE, KEPT_ON_RESUME, FAMILY) if resume else None
    mcfg = tcfg = None
    images = eval_images = None
    if not resume:
        tcfg = TrainConfig(data=data, crop=image_size, steps=steps or DEFAULT_STEPS, batch=batch, lr=lr, seed=seed,
                           eval_every=eval_every, threads=threads, loss=loss, ssim_weight=ssim_weight)
        left_out: list = []
        images = load_images(data, "train", image_size, skipped=left_out)
        if os.environ.get("RANK", "0") == "0":  # (under torchrun: once)
            report_left_out(left_out, data, out)
        eval_images = load_images(data, "test", image_size)[: tcfg.eval_images]
        size, _, channels = images.shape[1:]
        if size % patch:
            raise AdatokError(f"the images are {size}x{size}: --patch must divide {size}, got {patch}")
        heads = max(1, dim // 32)
        if dim % heads:
            raise AdatokError(f"--dim {dim} must be a multiple of 32 (or below 32)")
        try:  # (--levels 65536,65536: more codes than int32 ids hold, said by the config)
            mcfg = ModelConfig(image_size=size, channels=channels, patch=patch, tokens=tokens, dim=dim,
                               enc_depth=depth, dec_depth=depth, heads=heads, levels=level_list,
                               linear_skip=linear_skip, vq_first=vq_first)
        except ValueError as exc:
            raise AdatokError(str(exc)) from None
    metrics = train(out, mcfg, tcfg, name=name, resume=resume, quiet=quiet, images=images, eval_images=eval_images,
                    force=force, overrides=overrides, images_of_data=not resume)
    if not quiet:
        typer.echo(f"{out}: " + " ".join(f"{k}={v}" for k, v in metrics.items()))
