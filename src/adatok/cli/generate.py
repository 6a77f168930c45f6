"""``adatok train-generator`` and ``adatok generate``: the autoregressive transformer over tokens."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from adatok import AdatokError, ContainerError, InvalidTokensError
from adatok.core.errors import cli_message, naming_file

from .app import app
from .common import (EvalProgress, check_at_least, check_link_loop, check_output, counted, given_options, read_bytes,
                     reporting_errors, resume_overrides)
from .options import NoProgress, Quiet, Resume, StartOver, out_dir

#: What --language takes: a wavelet tokenizer, a learned checkpoint, or the pixel baseline.
LANGUAGE_HELP = ("wavelet, wavelet-lossless (decisions), wavelet-w8, wavelet-lossless-w8 (words of 8 decisions), "
                 "a learned tokenizer (fashion-mnist-32 or a checkpoint folder), or pixels.")


#: The most samples one ``adatok generate`` draws (all are held in memory until written).
MAX_SAMPLES = 1_000_000

#: What each option of train-generator is in a checkpoint's config.json: on --resume an option given
#: must say what the checkpoint has (or be one a resumed run may change: ``train.RESUMABLE``).
KEPT_ON_RESUME = {
    "language": lambda c: c["language"].get("tokenizer", c["language"]["language"]),
    "target_psnr": lambda c: (c["language"].get("target") or {}).get("psnr"),
    "d_model": lambda c: c["model"]["d_model"],
    "layers": lambda c: c["model"]["n_layer"],
    "heads": lambda c: c["model"]["n_head"],
    "tie": lambda c: bool(c["model"].get("tie")),
    "digits": lambda c: bool(c["model"].get("digits")),
    "class_every": lambda c: bool(c["model"].get("class_every")),
    "position": lambda c: "index" if c["model"]["position"] == "index" else None,
    "context": lambda c: bool(c["language"].get("context")),
    "canvas": lambda c: bool(c["language"].get("canvas")),
    "batch": lambda c: c["train"]["batch"],
    "lr": lambda c: c["train"]["lr"],
    "limit": lambda c: c["train"]["limit"],
    "val_images": lambda c: c["train"]["val_images"],
    "seed": lambda c: c["train"]["seed"],
    "data": lambda c: c["train"].get("data", "fashion-mnist"),
    "reader": lambda c: c["train"].get("gen_weight", 1.0) == 0,
    "image_size": lambda c: c["language"]["shape"][0],
    "channels": lambda c: c["language"]["shape"][2],
}


def _import():
    try:
        from adatok.generate import sample, train
    except ImportError as exc:
        raise AdatokError(f"generation needs the neural extra ({exc.name} is missing): "
                          "pip install 'adatok[neural]'") from None
    return sample, train


@app.command("train-generator")
@reporting_errors
def train_generator_cmd(
    ctx: typer.Context,
    out: Annotated[Path, out_dir("Checkpoint folder (config.json, model.safetensors, the token cache).")],
    language: Annotated[str, typer.Option("--language", "-l", metavar="NAME", help=LANGUAGE_HELP)] = "wavelet",
    data: Annotated[str, typer.Option(
        "--data", metavar="fashion-mnist|FOLDER",
        help="Training sequences: Fashion-MNIST's images, tokenized here; a folder of your own images (classes: its "
             "sub-folders, or one; each image's centre square at --image-size; every 20th image held out for "
             "validation); or a folder of token shards written by adatok tokenize-dataset with the language's "
             "tokenizer (each sequence as it stands: its budget takes --target-psnr's place).")] = "fashion-mnist",
    image_size: Annotated[int, typer.Option(
        "--image-size", metavar="S", help="With --data FOLDER of images: the side of the generated images.")] = 28,
    channels: Annotated[int, typer.Option(
        "--channels", metavar="C", help="With --data FOLDER of images: 1 (gray) or 3 (RGB).")] = 1,
    target_psnr: Annotated[float | None, typer.Option(
        "--target-psnr", metavar="DB", show_default=False,
        help="Each training sequence is its image's shortest prefix reaching this PSNR (default: the full "
             "sequence). Not for pixels.")] = None,
    minutes: Annotated[float, typer.Option("--minutes", help="Training time, in minutes of the process's CPU time (the schedule follows it).")] = 30.0,
    steps: Annotated[int | None, typer.Option(
        "--steps", metavar="N", show_default=False,
        help="Train N steps instead of --minutes (the schedule follows the steps).")] = None,
    eval_every: Annotated[float, typer.Option(
        "--eval-every", metavar="S", help="Validate every S seconds of CPU time (0: every step).")] = 120.0,
    d_model: Annotated[int, typer.Option("--dim", help="Transformer width.")] = 192,
    layers: Annotated[int, typer.Option("--layers", help="Transformer blocks.")] = 6,
    heads: Annotated[int, typer.Option("--heads", help="Attention heads.")] = 6,
    batch: Annotated[int, typer.Option("--batch", help="Sequences per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 1e-3,
    limit: Annotated[int | None, typer.Option("--limit", metavar="N", show_default=False,
                                              help="Train on the first N training images only.")] = None,
    val_images: Annotated[int, typer.Option("--val-images", metavar="N",
                                            help="Test images of the validation loss.")] = 500,
    position: Annotated[str | None, typer.Option(
        "--position", metavar="index", show_default=False,
        help="'index': the ablation without next positions (the step number only).")] = None,
    reader: Annotated[bool, typer.Option(
        "--reader", help="Train a reader instead: the same backbone, every sequence given no class, only its "
                         "reading head's loss (a class from any prefix); it cannot generate.")] = False,
    tie: Annotated[bool, typer.Option(
        "--tie", help="Share the id embeddings with the output layer (for large vocabularies: words).")] = False,
    context: Annotated[bool, typer.Option(
        "--context", help="Wavelet languages: each step also reads what the decoder knows around the next decision "
                          "(the next coefficient, its parent, grandparent and neighbours).")] = False,
    digits: Annotated[bool, typer.Option(
        "--digits", help="Word languages: embed each word with its decisions' digits as well as its own vector.")
    ] = False,
    class_every: Annotated[bool, typer.Option(
        "--class-every", help="Add the class's vector to every step's input, not only read it at the first step.")
    ] = False,
    canvas: Annotated[bool, typer.Option(
        "--canvas", help="Wavelet languages: each step also reads the image its prefix decodes to (7x7 blocks, and "
                         "5x5 half-resolution pixels around the next coefficient).")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: Annotated[int, typer.Option("--threads", help="torch threads.")] = 1,
    resume: Resume = False,
    force: StartOver = False,
    quiet: NoProgress = False,
) -> None:
    """Train a class-conditional generator on Fashion-MNIST's training split (or token shards, or a folder of your
    own images), in one token language.

    Works the same under `torchrun --nproc_per_node N adatok train-generator ...` (data-parallel, gloo on
    CPUs): --batch is the global batch, split over the processes.

    --resume continues OUT with the settings it was started with; only --minutes, --steps, --threads and
    --eval-every may change (train on to 75 minutes in all: --resume --minutes 75), and any other option
    given must say what the checkpoint has.
    """
    from adatok import Quality

    _, train = _import()
    from adatok.generate.languages import PixelLanguage, SlotLanguage, WaveletLanguage, WordLanguage

    check_link_loop(out)
    check_link_loop(Path(data))
    for option, value in (("--dim", d_model), ("--layers", layers), ("--heads", heads), ("--batch", batch),
                          ("--threads", threads)):
        check_at_least(value, option, 1)
    check_at_least(limit, "--limit", 1)
    check_at_least(steps, "--steps", 1)
    check_at_least(val_images, "--val-images", 1)
    if eval_every < 0:
        raise AdatokError(f"--eval-every takes seconds >= 0, got {eval_every}")
    if position not in (None, "index"):
        raise AdatokError(f"--position takes 'index' (or nothing), got {position!r}")
    # the data's kind decides the shape and classes of a new run; a resumed one has its checkpoint's (and the
    # options it repeats are checked against them by resume_overrides): --data's default named no kind of it
    kind = train.data_kind(data) if not resume else None
    shape, classes = (28, 28, 1), 10
    if kind not in ("images", None) and {"image_size", "channels"} & set(given_options(ctx)):
        raise AdatokError("--image-size and --channels are for --data FOLDER of images (Fashion-MNIST is 28 x 28 "
                          "gray; token shards have their own shape)")
    if kind == "images":
        check_at_least(image_size, "--image-size", 2)
        if channels not in (1, 3):
            raise AdatokError(f"--channels is 1 or 3, got {channels}")
        shape, classes = (image_size, image_size, channels), len(train.folder_classes(data))
    elif kind == "shards":
        if target_psnr is not None:
            raise AdatokError("--target-psnr does not go with token shards: their sequences were cut when tokenized "
                              "(adatok tokenize-dataset --psnr Q)")
        if language == "pixels":
            raise AdatokError("pixels are not read from token shards: give --data fashion-mnist")
        from adatok.datasets import no_rows_error, token_column

        classes = train.shard_classes(data, {label for label in token_column(data, "label") if label is not None})
        shapes = {tuple(s) + (1,) * (3 - len(s)) for s in token_column(data, "shape")}
        if not shapes:  # (a run over an empty folder wrote none: "images of 0 shapes")
            raise no_rows_error(data)
        if len(shapes) != 1:
            raise AdatokError(f"{data} holds images of {len(shapes)} shapes ({', '.join(map(str, sorted(shapes)[:3]))}"
                              " ...): a generator writes one; tokenize images of one size")
        (shape,) = shapes
    target = Quality(psnr=target_psnr) if target_psnr is not None else None
    if (context or canvas) and not language.startswith("wavelet"):
        raise AdatokError(f"--context and --canvas are for the wavelet languages, not {language}")
    if (context or canvas) and position == "index":
        raise AdatokError("--context and --canvas are read beside the next positions; --position index has none")
    lang = model_cfg = None
    overrides = resume_overrides(ctx, out, train.RESUMABLE, KEPT_ON_RESUME, train.FAMILY) if resume else None
    if not resume:
        if language == "pixels":
            if target is not None:
                raise AdatokError("--target-psnr does not go with pixels: the baseline writes every pixel")
            lang = PixelLanguage(shape)
        elif language in ("wavelet", "wavelet-lossless"):
            lang = WaveletLanguage(language, shape, target, context, canvas)
        elif language in ("wavelet-w8", "wavelet-lossless-w8"):
            lang = WordLanguage(language, shape, target, context, canvas)
        else:
            lang = SlotLanguage(language, target)
            if tuple(lang.shape) != shape:
                if kind == "shards":  # (--image-size is refused with shards: the advice led to another error)
                    raise AdatokError(f"{language} reads {lang.shape} images and {data} holds sequences of {shape} "
                                      f"images: give --language with the tokenizer that wrote them (its manifest.json "
                                      f"names it), or tokenize images of {lang.shape} with -t {language}")
                raise AdatokError(f"{language} reads {lang.shape} images; give --image-size {lang.shape[0]} "
                                  f"--channels {lang.shape[2]}")
        max_len = 8192 if lang.variable_length else len(np.zeros(lang.shape).reshape(-1)) + 1
        if d_model % heads:
            raise AdatokError(f"--dim {d_model} must be a multiple of --heads {heads}")
        model_cfg = dataclasses.replace(train.model_config_for(lang, d_model, layers, heads, max_len, position, tie, digits),
                                        classes=classes, class_every=class_every)
    tcfg = train.GenTrainConfig(minutes=minutes, batch=batch, lr=lr, seed=seed, limit=limit, threads=threads,
                                steps=steps, eval_every=eval_every, val_images=val_images, data=data,
                                **({"gen_weight": 0.0, "p_uncond": 1.0, "read_weight": 1.0} if reader else {}))
    with EvalProgress(quiet) as progress:
        def report(done, total, what=""):
            progress(int(done), int(total), what or "tokenizing")

        train.train_generator(out, lang, model_cfg, tcfg, resume=resume, progress=report,
                              log=(lambda *a: None) if quiet else typer.echo, force=force, overrides=overrides)
    if not quiet and os.environ.get("RANK", "0") == "0":  # (under torchrun: once)
        typer.echo(f"{out}: trained")


@app.command("generate")
@reporting_errors
def generate_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="OUT.png|FOLDER",
                                      help="An image name (.png, .jpg, ...): one grid of the samples (a file or "
                                           "link of that name is refused without --force). A folder (no suffix): one "
                                           "PNG and one .atk per sample, and samples.npz (images; labels: each "
                                           "sample's class number, -1 for completions without --class).")],
    model: Annotated[str, typer.Option("--model", "-m", metavar="NAME|FOLDER",
                                       help="A shipped generator or a checkpoint folder.")] = "fmnist-gpt-learned",
    label: Annotated[str | None, typer.Option("--class", "-c", metavar="C", show_default=False,
                                              help="Class to draw: its name (a class folder's; Fashion-MNIST's: "
                                                   "Sneaker) or its number (0..9 for Fashion-MNIST's); where the "
                                                   "classes' names are numbers (folders 1, 2, ...), a name only: "
                                                   "--class 1 is the folder 1. Default: every class in turn.")] = None,
    n: Annotated[int, typer.Option("-n", metavar="N", help="Samples.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Sample i depends on the seed, i and its class alone (the "
                                                     "first 16 of -n 100 are those of -n 16).")] = 0,
    cfg: Annotated[float, typer.Option("--cfg", metavar="W", help="Classifier-free guidance weight (1: none).")] = 2.0,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="0: the likeliest id at every step.")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Keep the K likeliest ids (0: all).")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus: keep ids up to this probability.")] = 1.0,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", metavar="K", show_default=False,
                                                   help="Stop each sample after K tokens (default: the longest training sequence).")] = None,
    min_tokens: Annotated[int, typer.Option("--min-tokens", metavar="K",
                                            help="No sample ends before K tokens (unless its stream does; --max-tokens wins): "
                                                 "write on past the model's training target.")] = 0,
    early_temperature: Annotated[float, typer.Option(
        "--early-temperature", metavar="T", help="The temperature of each sample's first --early-tokens tokens (a "
                                                 "word model's coarse shape); the rest at --temperature.")] = 1.0,
    early_tokens: Annotated[int, typer.Option("--early-tokens", metavar="K",
                                              help="Tokens drawn at --early-temperature.")] = 0,
    complete: Annotated[Path | None, typer.Option(
        "--complete", metavar="FILE.atk", show_default=False,
        help="Complete this (cut) token file: N samples of its rest, beside its plain decoding (the grid's first "
             "cell, or plain.png in the folder).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace OUT's earlier contents: a grid image (or a symbolic link) of its name, or in a folder "
                        "that holds files, an earlier run's samples (its numbered samples, samples.npz, plain.png; "
                        "nothing else). Without it, both are refused before sampling.")] = False,
    quiet: Quiet = False,
) -> None:
    """Sample images from a generator (grammar-constrained: every sample is a valid token sequence)."""
    sample, _ = _import()
    check_at_least(n, "-n", 1)
    if n > MAX_SAMPLES:  # (every sample is held until written: 10**12 ended in a MemoryError)
        raise AdatokError(f"-n is at most {MAX_SAMPLES:,} a run (every sample is held in memory until they are "
                          f"written), got {n:,}: run several, each with its own --seed and --out")
    check_at_least(top_k, "--top-k", 0)
    check_at_least(max_tokens, "--max-tokens", 1)
    check_at_least(min_tokens, "--min-tokens", 0)
    check_at_least(early_tokens, "--early-tokens", 0)
    sample.check_options(1, [], cfg, temperature, top_k, top_p, max_tokens, min_tokens, early_temperature,
                         early_tokens, seed=seed, flags=True)  # (the library's: a temperature of 0 takes the likeliest id)
    from adatok.generate.folders import generator_folder

    check_output(out, generator_folder(model), *([complete] if complete else []), force=True,
                 one_file=False)  # (a grid or a folder: check_samples_folder)
    from adatok.generate.report import check_samples_folder, check_untouched, write_samples

    check_samples_folder(out, force)  # everything the output needs, before sampling, which can take minutes
    if complete is not None:
        check_untouched(out, n, complete, "the file to complete")
    gen = sample.load_generator(model)
    classes = gen.model.cfg.classes
    if label is not None:
        try:
            label = gen.class_number(label)
        except AdatokError as exc:
            raise AdatokError(f"--class: {exc}") from None
    sample.check_lengths(gen, max_tokens, min_tokens, flags=True)
    options = dict(cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p, max_tokens=max_tokens,
                   min_tokens=min_tokens, early_temperature=early_temperature, early_tokens=early_tokens)
    plain = None
    if complete is not None:
        from adatok.core.registry import maker

        try:
            data = read_bytes(complete)
        except ContainerError as exc:  # (the file's name is in it: say the option too, in the command line's words)
            raise AdatokError(f"--complete: {exc}", cli=f"--complete: {cli_message(exc)}") from None
        try:
            prefix = sample.prefix_from_bytes(gen, data, str(complete))
        except (ContainerError, InvalidTokensError) as exc:  # (of its bytes, naming no file)
            raise naming_file(exc, str(complete)) from None
        sample.check_prefix(gen, prefix, max_tokens, min_tokens, flags=True)
        with EvalProgress(quiet) as progress:
            seqs, images = sample.complete(gen, prefix, n, label, seed=seed,
                                           progress=lambda d, t: progress(d, t, "completing"), **options)
        labels = np.full(n, -1 if label is None else label)  # (no class given: -1 in samples.npz)
        plain = maker(prefix).decode([prefix])[0]  # (the tokens the file holds, zeros for the rest)
    else:
        labels = np.array([label if label is not None else i % classes for i in range(n)])
        with EvalProgress(quiet) as progress:
            seqs, images = sample.sample(gen, labels.tolist(), seed=seed, progress=lambda d, t: progress(d, t, "sampling"),
                                         **options)
    write_samples(out, seqs, images, labels, replace=force, plain=plain)
    if not quiet:
        lengths = [len(s) for s in seqs]
        names = gen.class_names
        drawn = "" if label is None else f" of class {label}" + (f" ({names[label]})" if names else "")
        typer.echo(f"{out}: {counted(n, 'sample')}{drawn} of {gen.name}, {np.mean(lengths):.1f} tokens on average")
