"""Training a generator: ``adatok train-generator`` and :func:`train_generator`.

One loop, top to bottom: the training split is tokenized once into a :class:`Corpus` (cached next
to the checkpoint, ``corpus-train.npz``); each step draws a random batch of sequences, feeds
``[class token, ids...]`` with the position of every next token, and minimises the cross-entropy
of the next id (END after the last). A share of the rows (``p_uncond``) get "no class" instead of
their class: that trains the unconditional model classifier-free guidance needs, and on those rows
the reading head learns to classify from a random prefix. AdamW; the learning rate warms up, then
follows a cosine over the **time budget** (``minutes``), so that two models given the same
minutes get the same schedule whatever their speed. The budget counts the training process's CPU
time (``time.process_time``: on an idle machine with one thread, its wall time), so that models
trained side by side on a shared machine get the same compute, not the same share of a crowd. Validation loss on held-out test images is
logged. Checkpoints (``config.json`` + ``model.safetensors`` + ``train_state.safetensors``) are
written every ``save_every`` seconds, at the end, and when the run is interrupted (Ctrl-C; SIGTERM or
SIGHUP under the ``adatok`` command, which raises them as KeyboardInterrupt): the steps trained since
the last one are kept; ``resume`` goes on from one. ``steps``
trains that many steps instead, the schedule following the step count.

Data-parallel: the same command under ``torchrun --nproc_per_node N`` (gloo on CPUs, NCCL on
GPUs). Every process draws the same global batch (the same seeded generators) and takes every
N-th sequence of it; its losses are its sums over the global batch's counts (tokens, "no class"
rows), and the gradients are summed over the processes, so a step is the one-process step of
the same batch. Rank 0 builds the token cache (the others wait, then read it), validates, logs
and writes the checkpoint. With a time budget, each step counts the slowest process's CPU time,
so that the processes stop together: ``minutes`` is then each process's budget.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import is_finite_number, is_whole
from ..core.errors import AdatokError
from ..datasets import folder_classes
from ..neural.folder import (CHECKPOINT_FILES, allocated, check_fresh_start, check_overrides, held_interrupts,
                             hold_run_folder, out_of_memory, read_json, restore_training, write_folder)
from ..neural.model import count_params
from .languages import Corpus, build_corpus, gather_corpus, language_from, rows_of
from .model import GPT, GPTConfig

FAMILY = "generator"


@dataclass
class GenTrainConfig:
    """Training settings; stored in ``config.json`` under ``"train"``."""

    minutes: float = 30.0  # of the process's CPU time (see the module docstring)
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.1
    p_uncond: float = 0.15
    read_weight: float = 0.5
    seed: int = 0
    limit: int | None = None  # training images (None: all 60,000)
    data: str = "fashion-mnist"  # or a folder of token shards or of images: see corpus_for
    val_images: int = 500
    eval_every: float = 120.0  # seconds
    save_every: float = 300.0  # seconds
    threads: int = 1
    steps: int | None = None  # train this many steps (the schedule follows them) instead of ``minutes``
    #: weight of the next-token loss; 0 trains a **reader**: the same backbone, only its reading head's
    #: loss (with ``p_uncond=1``: every row reads); it classifies prefixes and cannot generate
    gen_weight: float = 1.0

    def __post_init__(self) -> None:
        """Settings no run can follow are refused here, before any data is tokenized (a NaN or
        negative learning rate failed in AdamW after it; 0 or NaN minutes wrote an untrained model
        marked final)."""
        for what, v in (("learning rate", self.lr), ("minutes", self.minutes)):
            if not (is_finite_number(v) and v > 0):
                raise AdatokError(f"the {what} must be a finite number > 0, got {v!r}")
        for what, v in (("weight decay", self.weight_decay), ("reading weight", self.read_weight),
                        ("generation weight", self.gen_weight)):
            if not (is_finite_number(v) and v >= 0):
                raise AdatokError(f"the {what} must be a finite number >= 0, got {v!r}")
        for what, v in (("eval_every", self.eval_every), ("save_every", self.save_every)):  # (inf: at the end only)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise AdatokError(f"{what} must be a number of seconds >= 0, got {v!r}")
        if not (is_finite_number(self.p_uncond) and 0 <= self.p_uncond <= 1):
            raise AdatokError(f"p_uncond is a share in [0, 1], got {self.p_uncond!r}")
        for what, v, low in (("warmup", self.warmup, 0), ("batch", self.batch, 1), ("val_images", self.val_images, 1),
                             ("threads", self.threads, 1), ("steps", self.steps, 1), ("limit", self.limit, 1)):
            if v is None and what in ("steps", "limit"):
                continue  # (no step count: minutes decide; no limit: every image)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise AdatokError(f"{what} must be a whole number >= {low}, got {v!r}")


def corpus_key(lang, split: str, limit: int | None, data: str) -> str:
    """What a cached corpus was made from, as JSON: the language (tokenizer, its version, shape,
    target), the split, the limit and the data: Fashion-MNIST, or a folder's absolute path and
    what it holds (a token shard folder's manifest; an image folder's files, sizes and times)."""
    from ..datasets import data_source

    tok = getattr(lang, "tok", None)
    source = data_source(data)
    return json.dumps({"language": lang.describe(), "version": getattr(tok, "version", None), "split": split,
                       "limit": limit, **source}, sort_keys=True)


def corpus_for(lang, split: str, limit: int | None, cache: Path | None, progress=None,
               data: str = "fashion-mnist", log=None) -> Corpus:
    """Fashion-MNIST ``split`` (its first ``limit`` images) in ``lang``, read from ``cache`` when it
    was made from the same language, images and limit (:func:`corpus_key`), else built and written
    there. ``data``: a folder of token shards instead (:func:`shard_corpus`), or a folder of images
    (:func:`image_folder`; ``log`` gets a line naming the files it left out, when it builds the
    corpus). (The cache was once taken whenever its length matched: a run with another target in
    the same folder trained on the old target's sequences.)"""
    from ..datasets import load

    key = corpus_key(lang, split, limit, data)
    if cache is not None and cache.is_file() and Corpus.load_key(cache) == key:
        with contextlib.suppress(*Corpus.UNREADABLE):  # (a damaged cache is made again, as a stale one is)
            return Corpus.load(cache)
    if data == "fashion-mnist":
        ds = load("fashion-mnist", split=split, limit=limit)
        corpus = build_corpus(lang, ds.images, ds.labels, progress)
    elif data_kind(data) == "shards":
        corpus = shard_corpus(lang, data, split, limit, progress)
    else:
        notes: list = []
        images, labels, _, _ = image_folder(data, lang.shape, split, notes)
        if log is not None and notes:
            from ..datasets import left_out_line

            log("warning: " + left_out_line(notes, data))
        if split == "train" and limit is not None and limit < len(images):
            gone = sorted(set(labels.tolist()) - set(labels[:limit].tolist()))
            if gone:  # (a folder is in sorted order, class after class: the first N were the first classes only)
                classes = folder_classes(data)
                raise AdatokError(f"--limit {limit} takes the first {limit} of the {len(images)} training images of "
                                  f"{data}, in sorted order, class after class: the class"
                                  f"{'es' if len(gone) > 1 else ''} {', '.join(classes[g] for g in gone[:3])} "
                                  f"would get none: the model would never train on "
                                  f"{'them' if len(gone) > 1 else 'it'}; give a larger --limit (or none), or a folder "
                                  "with fewer images")
        corpus = build_corpus(lang, images[:limit], labels[:limit], progress)
    if cache is not None:
        corpus.save(cache, key)
    return corpus


def data_kind(data: str | Path) -> str:
    """What ``--data`` names: ``"fashion-mnist"``, ``"shards"`` (a folder written by ``adatok
    tokenize-dataset``: it has a ``manifest.json``) or ``"images"`` (any other folder)."""
    if str(data) == "fashion-mnist":
        return "fashion-mnist"
    from ..datasets import check_not_in_shards, is_token_shards

    check_not_in_shards(data)
    return "shards" if is_token_shards(data) else "images"


def class_names(data: str | Path) -> list[str] | None:
    """The names of a generator's classes, by their numbers: Fashion-MNIST's (its token shards' too),
    a folder's class sub-folders (sorted, as they are numbered: ``0, 1, 10, 2``), None for other token
    shards (their labels are numbers). Kept in the checkpoint, so that ``--class`` takes a name and a
    number can be looked up after (a folder of classes kept only their count)."""
    from ..datasets import FASHION_MNIST_CLASSES, read_manifest

    kind = data_kind(data)
    if kind == "images":
        return folder_classes(data)
    source = {} if kind == "fashion-mnist" else ((read_manifest(data) or {}).get("plan") or {}).get("source") or {}
    if source.get("kind") == "folder" and isinstance(source.get("classes"), list):
        return [str(c) for c in source["classes"]]  # (tokenize-dataset --labels folders: the class sub-folders)
    return list(FASHION_MNIST_CLASSES) if kind == "fashion-mnist" or source.get("kind") == "fashion-mnist" else None


def image_folder(folder: str | Path, shape: tuple[int, ...], split: str | None = None, notes: list | None = None
                 ) -> tuple[list[np.ndarray], np.ndarray, list[str], int]:
    """A folder of your own images as a generator's training data, at the language's ``shape``
    (S x S x C): ``(images, labels, classes, left_out)``.

    Classes: the sub-folders (``FOLDER/CLASS/*.png``, sorted names, one label each), or one class
    when every image lies in the folder itself. Each image is cut to its centre square and resized
    to S x S (Pillow, Lanczos), converted to gray (C = 1) or RGB (C = 3). Left out and counted:
    files that are not readable images, and images whose shorter side is under S (enlarging would
    invent detail). ``split``: ``"test"`` is every 20th image (the 20th, 40th, ... in sorted order,
    so every class has some), ``"train"`` the others, ``None`` all. ``notes``: a list that gets
    ``(id, reason)`` of each file left out.

    A class sub-folder without a usable image, or whose only images are held out, is refused: the
    model would have a class it never trained on, numbered among the others (a folder of notes, or
    of images all under S, was silently class 0, and every real class's number moved up one).
    """
    from PIL import Image

    from ..datasets import folder_label, held_out, load

    classes = folder_classes(folder)
    ds = load(folder)
    parts = [Path(i).parts for i in ds.ids]
    size, channels = int(shape[0]), int(shape[2]) if len(shape) == 3 else 1
    images, labels, small = [], [], 0
    for img, p in zip(ds.images, parts, strict=True):
        h, w = img.shape[:2]
        if min(h, w) < size:
            small += 1
            if notes is not None:
                notes.append((Path(*p).as_posix(), f"{w} x {h}: smaller than {size} x {size}"))
            continue
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        im = Image.fromarray(img[y : y + side, x : x + side].squeeze(2) if img.shape[2] == 1 else
                             img[y : y + side, x : x + side])
        im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.LANCZOS)
        images.append(np.asarray(im, np.uint8).reshape(size, size, channels))
        labels.append(folder_label(Path(*p), classes))  # (an image: folder_classes checked the layout)
    if not images:
        raise AdatokError(f"{folder} holds no readable image of at least {size} x {size} pixels "
                          f"({len(ds.skipped)} unreadable, {small} smaller)")
    if len(images) < 2:
        raise AdatokError(f"{folder}: one usable image; training and validation need at least 2")
    test = set(np.flatnonzero(held_out(len(images))).tolist())
    have = np.bincount([labels[i] for i in range(len(images)) if i not in test], minlength=len(classes))
    if (have == 0).any():
        held = np.bincount(labels, minlength=len(classes))
        empty = [classes[c] for c in np.nonzero(held == 0)[0]]
        late = [classes[c] for c in np.nonzero((have == 0) & (held > 0))[0]]
        many = len(empty) > 1
        why = (f"the class folder{'s' if many else ''} {', '.join(empty[:3])} hold{'' if many else 's'} "
               f"no readable image of at least {size} x {size} pixels" if empty else
               f"the class {late[0]}'s only image{'s are' if held[classes.index(late[0])] > 1 else ' is'} held out for "
               "validation (every 20th image)")
        raise AdatokError(f"{folder}: {why}; the model would have a class it never trained on (the classes are the "
                          "sorted sub-folders, numbered from 0): add images to it, or move it out of the folder")
    if notes is not None:
        notes.extend(ds.skipped)
    keep = [i for i in range(len(images)) if split is None or ((i in test) == (split == "test"))]
    return [images[i] for i in keep], np.array([labels[i] for i in keep], np.int64), classes, \
        small + len(ds.skipped)


def shard_classes(folder: str | Path, labels: set[int]) -> int:
    """The number of classes of a generator trained on a token shard folder whose rows hold ``labels``:
    Fashion-MNIST's ten for shards of it, else the numbers 0 to the largest label, every one of which
    must be a label (labels 0 and 5 made classes 1 to 4, which were sampled and labelled as if they were
    classes; a class folder with no image is refused the same way, :func:`image_folder`). A negative
    label is no class (it was refused later as "outside the model's classes 0..0")."""
    from ..datasets import read_manifest

    negative = sorted(lab for lab in labels if lab < 0)
    if negative:
        raise AdatokError(f"{folder} holds label {negative[0]}: a generator's classes are numbered 0, 1, 2, ...; "
                          "tokenize the images with labels from 0")
    source = ((read_manifest(folder) or {}).get("plan") or {}).get("source") or {}
    if source.get("kind") == "fashion-mnist":  # (its own classes, however few rows a --limit took)
        return 10
    named = source.get("classes") if source.get("kind") == "folder" else None
    if isinstance(named, list) and named:  # (tokenize-dataset --labels folders: every class must have rows)
        empty = [str(named[c]) for c in range(len(named)) if c not in labels]
        if empty:
            raise AdatokError(f"{folder} holds no image of the class{'es' if len(empty) > 1 else ''} "
                              f"{', '.join(empty[:3])}{' ...' if len(empty) > 3 else ''} (its classes are the source's "
                              "sub-folders): the model would have classes it never trained on; tokenize a folder "
                              "whose every class sub-folder holds images")
        return len(named)
    if labels and len(labels) != max(labels) + 1:
        missing = sorted(set(range(min(max(labels) + 1, len(labels) + 3))) - labels)[:3]
        raise AdatokError(f"{folder} holds {len(labels)} labels from 0 to {max(labels)}, none of "
                          f"{', '.join(map(str, missing))}{' ...' if max(labels) + 1 - len(labels) > len(missing) else ''}: "
                          "the classes are the numbers 0 to the largest label, so the model would have classes it "
                          "never trained on; tokenize the images with labels 0, 1, 2, ... (one a class, none left out)")
    return max(labels, default=0) + 1


def shard_corpus(lang, folder: str | Path, split: str, limit: int | None = None, progress=None,
                 chunk: int = 500) -> Corpus:
    """The labelled sequences of a token shard folder (``adatok tokenize-dataset``) as a corpus in
    ``lang``, without tokenizing anything: each sequence is a training sequence as it stands (the
    budget it was tokenized with plays the part of ``lang``'s target), re-expressed with the
    language's fixed header, and the step at which the model writes END gets the position the
    stepper gives after the sequence. Shards of Fashion-MNIST made with ``--psnr Q`` give the corpus
    the images give with ``--target-psnr Q`` (tests/test_scale.py).

    ``split``: ``"train"`` or ``"test"`` (see :func:`adatok.datasets.read_tokens`: Fashion-MNIST's
    own splits, else every 20th row held out); ``limit``: the first rows of the split only.
    """
    from ..datasets import split_rows

    if not hasattr(lang, "tok"):
        raise AdatokError(f"the {lang.name} language has no tokenizer: it cannot be read from token shards")
    rows = split_rows(folder, split)
    rows = rows[:limit] if limit is not None else rows
    first = rows[0].seq
    if first.tokenizer != lang.tok.name:
        from ..core.registry import registered
        from ..datasets import read_manifest

        # a checkpoint's name is no --language: its folder is (the manifest keeps where the workers loaded it)
        made_by = first.tokenizer if registered(first.tokenizer) else str(
            ((read_manifest(folder) or {}).get("tokenizer") or {}).get("reference") or "the checkpoint folder of "
            f"{first.tokenizer}")
        raise AdatokError(f"{folder} holds sequences of {first.tokenizer}, not of {lang.tok.name}: tokenize with "
                          f"-t {lang.tok.name}, or train with --language {made_by}")
    for r in rows:
        if r.label is None:
            raise AdatokError(f"{folder}: {r.source} has no label; the generator is class-conditional (tokenize a "
                              "labelled source: fashion-mnist, Parquet with a label column, or a folder of classes "
                              "with --labels folders)")
        if tuple(r.seq.shape) != tuple(lang.shape):
            raise AdatokError(f"{folder}: {r.source} is {r.seq.shape}, the language's images are {lang.shape}")
    refix = getattr(lang.tok, "with_top_plane", None)

    def gathered():
        for at in range(0, len(rows), chunk):
            seqs = [r.seq for r in rows[at : at + chunk]]
            end_ints, end_floats = lang.step_features(lang.stepper(prefixes=seqs))
            fulls = [refix(seq) if refix is not None else seq for seq in seqs]
            for b, (i, a, f) in enumerate(rows_of(lang, [(full, len(full)) for full in fulls])):
                a[-1], f[-1] = end_ints[b], end_floats[b]  # where the next token would stand: END there
                yield i, a, f
            if progress is not None:
                progress(min(at + chunk, len(rows)), len(rows))

    return gather_corpus(gathered(), [r.label for r in rows], lang.vocab_size)


def batch_tensors(corpus: Corpus, idx: np.ndarray, labels: np.ndarray, vocab: int, end: int):
    """Padded model inputs of sequences ``idx``: inputs and targets (B, T) (targets -100 past the
    end), position ints (B, T, F) and floats (B, T, G), lengths (B,) in steps (n + 1)."""
    n = corpus.lengths[idx]
    T = int(n.max()) + 1
    B = len(idx)
    inputs = np.zeros((B, T), np.int64)
    targets = np.full((B, T), -100, np.int64)
    ints = np.zeros((B, T, corpus.ints.shape[1]), np.int64)
    floats = np.zeros((B, T, corpus.floats.shape[1]), np.float32)
    for b, i in enumerate(idx):
        s, m = corpus.starts[i], n[b]
        ids = corpus.ids[s : s + m]
        inputs[b, 0] = vocab + labels[b]  # the class token
        inputs[b, 1 : m + 1] = ids
        targets[b, :m] = ids
        targets[b, m] = end
        ints[b, : m + 1] = corpus.ints[s + i : s + i + m + 1]
        floats[b, : m + 1] = corpus.floats[s + i : s + i + m + 1]
    return (torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(ints), torch.from_numpy(floats),
            torch.from_numpy(n + 1))


def losses(model: GPT, corpus: Corpus, idx: np.ndarray, uncond: np.ndarray, gen: torch.Generator,
           part: tuple[int, int] | None = None, generate: bool = True):
    """(next-token loss, reading loss or None) of a batch; ``uncond`` marks the rows given "no class".
    ``generate=False`` (a reader): the next-token loss is not computed (a zero).

    ``part=(rank, world)``: this process's share of the batch, rows ``rank::world``; its losses are
    its sums divided by the whole batch's counts (tokens, "no class" rows), so that the losses of
    all the shares add up to the batch's, and it draws the same random numbers as one process."""
    if part is not None:
        return _share_losses(model, corpus, idx, uncond, gen, *part, generate=generate)
    cfg = model.cfg
    labels = np.where(uncond, cfg.null_class, corpus.labels[idx])
    inputs, targets, ints, floats, steps = batch_tensors(corpus, idx, labels, cfg.vocab_size, cfg.end)
    h = model.hidden(inputs, ints, floats if cfg.float_width else None)
    loss = (F.cross_entropy(model.logits(h).flatten(0, 1), targets.flatten(), ignore_index=-100) if generate
            else h.new_zeros(()))
    rows = torch.from_numpy(np.nonzero(uncond)[0])
    if len(rows) == 0:
        return loss, None
    k = 1 + (torch.rand(len(rows), generator=gen) * steps[rows]).long().clamp(max=steps[rows] - 1)
    read = F.cross_entropy(model.read_prefixes(h[rows], k), torch.from_numpy(corpus.labels[idx][uncond.astype(bool)]))
    return loss, read


def _share_losses(model: GPT, corpus: Corpus, idx: np.ndarray, uncond: np.ndarray, gen: torch.Generator,
                  rank: int, world: int, generate: bool = True):
    """:func:`losses` of the rows ``rank::world`` of a batch, as shares of the batch's losses."""
    cfg = model.cfg
    all_rows = np.nonzero(uncond)[0]
    all_steps = torch.from_numpy(corpus.lengths[idx] + 1)
    k_all = 1 + (torch.rand(len(all_rows), generator=gen) * all_steps[all_rows]).long().clamp(
        max=all_steps[all_rows] - 1)  # drawn for the whole batch, as one process does
    tokens = int(all_steps.sum())  # targets of the whole batch: its ids and an END each
    mine = np.arange(rank, len(idx), world)
    idx, uncond = idx[mine], uncond[mine]
    labels = np.where(uncond, cfg.null_class, corpus.labels[idx])
    inputs, targets, ints, floats, _ = batch_tensors(corpus, idx, labels, cfg.vocab_size, cfg.end)
    h = model.hidden(inputs, ints, floats if cfg.float_width else None)
    loss = (F.cross_entropy(model.logits(h).flatten(0, 1), targets.flatten(), ignore_index=-100,
                            reduction="sum") / tokens if generate else h.new_zeros(()))
    if len(all_rows) == 0:
        return loss, None
    local = torch.from_numpy(np.nonzero(uncond)[0])
    if len(local) == 0:
        return loss, h.sum() * 0.0  # a zero share (the reading head gets no gradient from here)
    k = k_all[torch.from_numpy(all_rows % world == rank)]
    read = F.cross_entropy(model.read_prefixes(h[local], k), torch.from_numpy(corpus.labels[idx][uncond]),
                           reduction="sum") / len(all_rows)
    return loss, read


def _sum_gradients(model: GPT) -> None:
    """Sum the gradients over the processes (one all-reduce of one flat buffer)."""
    import torch.distributed as dist

    params = list(model.parameters())
    has = torch.tensor([float(p.grad is not None) for p in params])
    dist.all_reduce(has)  # a parameter no process gave a gradient keeps none (AdamW leaves it alone)
    params = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    dist.all_reduce(flat)
    at = 0
    for p in params:
        n = p.numel()
        p.grad = flat[at : at + n].view_as(p).clone()
        at += n


@torch.no_grad()
def read_corpus(model: GPT, corpus: Corpus, lengths: list[int], batch: int = 250) -> dict[int, float]:
    """Accuracy of the reading head from the first n tokens of each sequence of ``corpus`` (all of a
    shorter one), for each n of ``lengths``, the sequences given "no class"."""
    was = model.training
    model.eval()
    right = dict.fromkeys(lengths, 0)
    for at in range(0, len(corpus), batch):
        idx = np.arange(at, min(at + batch, len(corpus)))
        null = np.full(len(idx), model.cfg.null_class)
        inputs, _, ints, floats, steps = batch_tensors(corpus, idx, null, model.cfg.vocab_size, model.cfg.end)
        h = model.hidden(inputs, ints, floats if model.cfg.float_width else None)  # once for every n (causal)
        for n in lengths:
            k = torch.clamp(torch.full_like(steps, n + 1), max=steps)  # the class step and n tokens
            right[n] += int((model.read_prefixes(h, k).argmax(1).numpy() == corpus.labels[idx]).sum())
    model.train(was)
    return {n: right[n] / len(corpus) for n in lengths}


@torch.no_grad()
def validation_loss(model: GPT, corpus: Corpus, batch: int = 50) -> float:
    """Mean next-token cross-entropy (nats a token, END included) over ``corpus``, conditional."""
    model.eval()
    total, count = 0.0, 0
    for at in range(0, len(corpus), batch):
        idx = np.arange(at, min(at + batch, len(corpus)))
        inputs, targets, ints, floats, _ = batch_tensors(corpus, idx, corpus.labels[idx], model.cfg.vocab_size,
                                                         model.cfg.end)
        logits = model(inputs, ints, floats if model.cfg.float_width else None)
        total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((targets != -100).sum())
    model.train()
    return total / max(count, 1)


def model_config_for(lang, d_model: int, n_layer: int, n_head: int, max_len: int, position: str | None = None,
                     tie: bool = False, digits: bool = False) -> GPTConfig:
    """The generator shape for ``lang``; ``position="index"`` is the ablation without next positions;
    ``tie`` shares the id embeddings with the output layer; ``digits`` (words only) embeds each word
    with its decisions' digits too (``GPTConfig.digits``)."""
    if digits and getattr(lang, "per_token", 1) == 1:
        raise AdatokError("digit embeddings are for word languages (wavelet-w8)")
    word = (lang.per_token, 3) if digits else ()
    position = position or lang.position
    if position == "index":
        return GPTConfig(vocab_size=lang.vocab_size, max_len=max_len, d_model=d_model, n_layer=n_layer,
                         n_head=n_head, position="index", int_sizes=(max_len + 1,), float_fields=0, tie=tie,
                         digits=word)
    return GPTConfig(vocab_size=lang.vocab_size, max_len=max_len, d_model=d_model, n_layer=n_layer, n_head=n_head,
                     position=position, int_sizes=lang.int_sizes, float_fields=lang.float_fields, tie=tie,
                     canvas=getattr(lang, "canvas_fields", 0), digits=word)


def index_positions(corpus: Corpus) -> Corpus:
    """The same corpus with the step number as its only position (the "ids only" ablation)."""
    steps = np.concatenate([np.arange(n + 1) for n in corpus.lengths]).astype(np.int16)[:, None]
    return Corpus(corpus.ids, corpus.starts, steps, np.zeros((len(steps), 0), np.float32), corpus.labels)


def rows_for(cfg: GPTConfig, corpus: Corpus) -> Corpus:
    """``corpus`` as a model of ``cfg`` reads it: with step numbers for the ids-only ablation."""
    return index_positions(corpus) if cfg.position == "index" else corpus


#: The training settings a resumed run may change (``train_generator(..., resume=True, overrides=)``):
#: how long it trains and how; everything else is the checkpoint's.
RESUMABLE = ("minutes", "steps", "threads", "eval_every")


def make_folders(out: Path) -> list[Path]:
    """Make folder ``out`` and its missing parents; return those this call made, outermost first
    (one that another process made meanwhile is not among them)."""
    made = []
    for folder in (*reversed(out.parents), out):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise AdatokError(f"cannot make the folder {folder}: {exc.strerror or exc}") from None
        made.append(folder)
    return made


def _prepare(out: Path, lang, model_cfg: GPTConfig, train_cfg: GenTrainConfig, progress, world: int, rank: int,
             log=None):
    """The training and validation corpora (cached in the folder ``out``), the seconds they took,
    and a new model, each checked against the other."""
    import torch.distributed as dist

    t_build = time.time()
    if world > 1 and rank != 0:
        dist.barrier()  # rank 0 builds the caches, the others read them
    corpus = corpus_for(lang, "train", train_cfg.limit, out / "corpus-train.npz", progress, train_cfg.data, log)
    val = corpus_for(lang, "test", train_cfg.val_images, out / "corpus-val.npz", data=train_cfg.data)
    if world > 1 and rank == 0:
        dist.barrier()
    for part, what in ((corpus, "training"), (val, "validation")):
        bad = np.unique(part.labels[(part.labels < 0) | (part.labels >= model_cfg.classes)])
        if bad.size:  # (a label equal to classes is the model's own "no class" token: never data)
            raise AdatokError(f"{what} labels {', '.join(map(str, bad[:5]))} are outside the model's classes "
                              f"0..{model_cfg.classes - 1}: give the model as many classes as the data has")
    corpus, val = rows_for(model_cfg, corpus), rows_for(model_cfg, val)
    build_seconds = time.time() - t_build
    longest = max(int(corpus.lengths.max()), int(val.lengths.max()))  # (validation too: it ran after training)
    if int(corpus.lengths.max()) == 0:  # (trained, it wrote nothing, and sampling refused max_tokens 0)
        raise AdatokError("every training sequence is empty: each image reaches the target with no token at all "
                          "(what the empty sequence decodes to is near enough); give a higher --target-psnr")
    if longest + 1 > model_cfg.max_len:
        raise AdatokError(f"sequences of up to {longest + 1} steps, but the model takes at most {model_cfg.max_len}: "
                          "give a --target-psnr (shorter prefixes), a word language (wavelet-w8) or smaller images")
    model = allocated(lambda: GPT(model_cfg), f"width {model_cfg.d_model}, {model_cfg.n_layer} blocks",
                      "--dim or --layers")
    return corpus, val, build_seconds, model


def train_generator(out: str | Path, lang=None, model_cfg: GPTConfig | None = None,
                    train_cfg: GenTrainConfig | None = None, name: str | None = None, resume: bool = False,
                    progress=None, log=print, force: bool = False, overrides: dict | None = None) -> GPT:
    """Train (or with ``resume``, go on training) a generator into the folder ``out``. A folder that
    holds a checkpoint already is refused unless ``resume`` or ``force`` (start over, replacing it).

    With ``resume`` the language, model and training settings are the checkpoint's (``lang``,
    ``model_cfg`` and ``train_cfg`` are not read); ``overrides`` changes those of :data:`RESUMABLE`
    (``{"minutes": 75}``: train on to 75 minutes in all). A folder without the training state
    (``train_state.safetensors``: a shipped or copied model) is refused: resuming it would start
    from nothing and replace its weights. The folder is held for the whole run: a second run into it
    at the same time is refused (:func:`~adatok.neural.folder.hold_run_folder`). A run interrupted
    (KeyboardInterrupt) saves a checkpoint of the steps it trained, then lets the interrupt go on; one
    that starts over (``force``) removes the replaced checkpoint's model card (``README.md``) at its first
    save."""
    with contextlib.ExitStack() as hold:
        return _train_generator(hold, out, lang, model_cfg, train_cfg, name, resume, progress, log, force, overrides)


def _train_generator(hold: contextlib.ExitStack, out, lang, model_cfg, train_cfg, name, resume, progress, log, force,
                     overrides) -> GPT:
    from ..datasets import check_out_outside, check_same_data, data_source

    out = Path(out)
    if ".." in out.parts:  # (new/.. is this folder, whose checkpoint is checked, even while new does not exist)
        out = out.resolve()
    main = int(os.environ.get("RANK", "0")) == 0  # (the process that saves: it alone holds the folder)
    held = main and out.is_dir()
    if held:  # before anything is read from it (a resume's checkpoint)
        hold_run_folder(hold, out, resume, force, FAMILY)
    # (its token caches stay: corpus_for rebuilds one made otherwise; the checkpoint of the tokenizer the language
    # reads, as --out, is another family's: refused here)
    check_fresh_start(out, resume, force, FAMILY)
    overrides = check_overrides(overrides, resume, RESUMABLE)
    if resume:
        if not (out / "train_state.safetensors").is_file():
            raise AdatokError(f"nothing to resume in {out}: it has no train_state.safetensors (a shipped or copied "
                              "model keeps only its weights); train without --resume into a new folder to start")
        config = read_json(out)  # (a generator's: check_fresh_start refused any other family)
        try:  # (a hand-edited or other version's config.json: raw KeyError / TypeError before)
            lang = language_from(config["language"])
            model_cfg = GPTConfig(**config["model"])
            train_cfg = GenTrainConfig(**config["train"])
            name, done, spent = config["name"], config["step"], config["elapsed"]
            if not (is_whole(done) and done >= 0 and is_finite_number(spent) and spent >= 0
                    and isinstance(config.get("history", []), list)):
                raise ValueError("its step, elapsed or history")
        except (KeyError, TypeError, ValueError) as exc:
            raise AdatokError(f"{out}/config.json cannot be resumed: {type(exc).__name__} {exc}") from None
        if "minutes" in overrides and "steps" not in overrides:
            overrides["steps"] = None  # a time budget replaces a step count
        train_cfg = replace(train_cfg, **overrides)
        if (done >= train_cfg.steps) if train_cfg.steps is not None else (spent >= 60 * train_cfg.minutes):
            raise AdatokError(f"{out} has trained {done} steps, {spent / 60:.1f} minutes, already: give more to go on "
                              "(--steps N or --minutes M beyond them)")
        check_same_data(config.get("data_source"), train_cfg.data, out)
        source, names = config.get("data_source"), config.get("class_names")
    elif lang is None or model_cfg is None:
        raise AdatokError("train_generator needs a language and a model config (or resume=True)")
    train_cfg = train_cfg or GenTrainConfig()
    check_out_outside(train_cfg.data, out)
    if not resume:  # a folder by its absolute path: a resume from elsewhere reads the same one
        source = data_source(train_cfg.data, times=False)
        train_cfg = replace(train_cfg, data=source["data"])
        names = class_names(train_cfg.data)
    reader = train_cfg.gen_weight == 0
    if reader and train_cfg.p_uncond != 1:
        raise AdatokError("a reader (gen_weight 0) learns from the rows given no class: give p_uncond=1 (every row)")
    name = name or out.name or out.resolve().name  # (a link by its own name; "." by the folder's)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    # starting over on a checkpoint (--force): its model card (README.md, as a shipped checkpoint has) describes
    # the model replaced, and goes with it at this run's first save (it stayed, describing another model)
    card = out / "README.md" if force and not resume and any((out / f).is_file() for f in CHECKPOINT_FILES) else None
    if world > 1:
        import datetime

        import torch.distributed as dist

        if not dist.is_initialized():  # (a long timeout: rank 0 may tokenize a whole split meanwhile)
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                    timeout=datetime.timedelta(hours=6))
        if train_cfg.batch < world:
            raise AdatokError(f"a batch of {train_cfg.batch} cannot be split over {world} processes; give --batch >= {world}")
        if rank != 0:
            progress, log = None, (lambda *a: None)
    torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(train_cfg.seed)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    real = out.resolve()  # (a link's folder, made where it leads)
    made = make_folders(real) if rank == 0 else []  # (rank 0 makes them, and removes them if refused)
    real.mkdir(parents=True, exist_ok=True)
    if main and not held:  # (refused here, the folder is another run's now: not removed)
        hold_run_folder(hold, real, resume, force, FAMILY)
    try:
        def warn(line: str) -> None:  # (on stderr, even with --quiet: files left out of the user's data)
            if rank == 0:
                print(line, file=sys.stderr, flush=True)

        corpus, val, build_seconds, model = _prepare(out, lang, model_cfg, train_cfg, progress, world, rank, warn)
    except BaseException:  # refused before a checkpoint was written: the folders it made are not left behind
        if made and made[-1] == real:  # (out itself made here: only this run's token caches in it)
            shutil.rmtree(real, ignore_errors=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay,
                            betas=(0.9, 0.95))
    step, elapsed, history = 0, 0.0, []
    if resume:
        from ..neural.folder import load_weights

        load_weights(out, model).train()
        restore_training(out, model, opt, gen)
        step, elapsed, history = config["step"], config["elapsed"], config.get("history", [])
    budget = 60.0 * train_cfg.minutes
    by_steps = train_cfg.steps is not None

    saved = step  # the step of the last checkpoint (a resumed run's: the one it started from)

    def save(final: bool = False) -> None:
        nonlocal saved, card
        if rank != 0:
            return
        config = {"family": FAMILY, "name": name, "model": model_cfg.to_dict(), "language": lang.describe(),
                  "train": asdict(train_cfg), "step": step, "elapsed": round(elapsed, 1), "history": history,
                  "params": count_params(model), "corpus_seconds": round(build_seconds, 1),
                  "mean_length": float(corpus.lengths.mean()), "longest": int(corpus.lengths.max()), "final": final,
                  "data_source": source,
                  "class_names": names if names is not None and len(names) == model_cfg.classes else None}
        write_folder(out, model, config, opt, gen)
        saved = step
        if card is not None:
            if card.is_file():
                card.unlink()
                log(f"{name}: removed {card}, the model card of the checkpoint this run replaces")
            card = None

    model.train()
    log(f"{name}: {count_params(model):,} parameters, {len(corpus):,} sequences (mean {corpus.lengths.mean():.1f} "
        f"tokens), " + (f"{train_cfg.steps:,} steps" if by_steps else f"{train_cfg.minutes:g} minutes")
        + (f", {world} processes" if world > 1 else ""))
    last_eval = last_save = elapsed

    def running() -> bool:
        return step < train_cfg.steps if by_steps else elapsed < budget

    cut = False  # (inside a step, before its update)
    try:
        while running():
            t0 = time.process_time()
            drawn, cut = gen.get_state(), True  # (where this step's draws start; a step cut short is drawn again)
            angle = math.pi * step / train_cfg.steps if by_steps else math.pi * elapsed / budget
            warm = min(1.0, (step + 1) / train_cfg.warmup) if train_cfg.warmup else 1.0
            lr = train_cfg.lr * warm * 0.5 * (1 + math.cos(angle))
            for g in opt.param_groups:
                g["lr"] = lr
            # each step's batch from (seed, step) alone: a resumed run draws what the interrupted one would
            # have (one generator drawn from since step 0 was reseeded on resume, and the batches differed)
            rng = np.random.default_rng([train_cfg.seed, step])
            idx = rng.integers(0, len(corpus), train_cfg.batch)
            uncond = rng.random(train_cfg.batch) < train_cfg.p_uncond
            try:
                loss, read = losses(model, corpus, idx, uncond, gen, None if world == 1 else (rank, world), reader is False)
                total = train_cfg.gen_weight * loss if read is None else train_cfg.gen_weight * loss + train_cfg.read_weight * read
                opt.zero_grad(set_to_none=True)
                total.backward()
            except (RuntimeError, MemoryError) as exc:  # (--batch 100000: a raw torch allocator traceback)
                if not out_of_memory(exc):
                    raise
                raise AdatokError(f"a training step of {train_cfg.batch:,} sequences ran out of memory ({str(exc)[:100]}): "
                                  f"give a smaller --batch (the last checkpoint in {out} is kept)") from None
            if reader:  # what the reader learns: its reading loss
                loss = read.detach()
            if world > 1:
                _sum_gradients(model)
                shown = loss.detach().clone()
                dist.all_reduce(shown)  # the whole batch's loss (next-token, or a reader's reading loss)
                loss = shown
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            with held_interrupts():  # the weights and the step count move together
                opt.step()
                step, cut = step + 1, False
            spent = time.process_time() - t0
            if world > 1:  # the slowest process's time, so that every process stops at the same step
                spent_t = torch.tensor([spent], dtype=torch.float64)
                dist.all_reduce(spent_t, op=dist.ReduceOp.MAX)
                spent = float(spent_t)
            elapsed += spent
            if progress is not None:
                if by_steps:
                    progress(step, train_cfg.steps, f"step {step} loss {loss.item():.3f}")
                else:
                    progress(min(elapsed, budget), budget, f"step {step} loss {loss.item():.3f}")
            if rank == 0 and (elapsed - last_eval >= train_cfg.eval_every or not running()):
                acc = read_corpus(model, val, [int(val.lengths.max())])[int(val.lengths.max())]  # whole sequences
                if reader:
                    history.append({"step": step, "seconds": round(elapsed, 1), "read_loss": round(loss.item(), 4),
                                    "val_read_accuracy": round(acc, 4)})
                    log(f"step {step}, {elapsed / 60:.1f} min: reading loss {loss.item():.4f}, "
                        f"validation accuracy {100 * acc:.1f}%")
                else:
                    v = validation_loss(model, val)
                    history.append({"step": step, "seconds": round(elapsed, 1), "train_loss": round(loss.item(), 4),
                                    "val_loss": round(v, 4), "val_read_accuracy": round(acc, 4)})
                    log(f"step {step}, {elapsed / 60:.1f} min: train loss {loss.item():.4f}, val loss {v:.4f}, "
                        f"reading {100 * acc:.1f}%")
                last_eval = elapsed
            if elapsed - last_save >= train_cfg.save_every:
                save()
                last_save = elapsed
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM / SIGHUP under the adatok command): the steps so far are kept
        if cut:  # inside a step, before its update: its draws made again on resume, as they were made here
            gen.set_state(drawn)
        if step > saved:
            save()
            warn(f"{name}: interrupted at step {step}: its checkpoint is saved in {out}; --resume goes on from it")
        raise
    save(final=True)
    if world > 1:
        dist.barrier()  # the checkpoint is written before any process returns
        dist.destroy_process_group()
    return model.eval()
