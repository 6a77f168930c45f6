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
written every ``save_every`` seconds and at the end; ``resume`` goes on from one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import AdatokError
from ..neural.folder import read_json, restore_training, write_folder
from .languages import Corpus, build_corpus, language_from
from .model import GPT, GPTConfig, count_params

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
    val_images: int = 500
    eval_every: float = 120.0  # seconds
    save_every: float = 300.0  # seconds
    threads: int = 1


def corpus_for(lang, split: str, limit: int | None, cache: Path | None, progress=None) -> Corpus:
    """Fashion-MNIST ``split`` (its first ``limit`` images) in ``lang``, read from ``cache`` when it
    holds the same language and images, else built and written there."""
    from ..datasets import load

    if cache is not None and cache.is_file():
        corpus = Corpus.load(cache)
        if limit is None or len(corpus) == limit:
            return corpus
    ds = load("fashion-mnist", split=split, limit=limit)
    corpus = build_corpus(lang, ds.images, ds.labels, progress)
    if cache is not None:
        corpus.save(cache)
    return corpus


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


def losses(model: GPT, corpus: Corpus, idx: np.ndarray, uncond: np.ndarray, gen: torch.Generator):
    """(next-token loss, reading loss or None) of a batch; ``uncond`` marks the rows given "no class"."""
    cfg = model.cfg
    labels = np.where(uncond, cfg.null_class, corpus.labels[idx])
    inputs, targets, ints, floats, steps = batch_tensors(corpus, idx, labels, cfg.vocab_size, cfg.end)
    h = model.hidden(inputs, ints, floats if cfg.float_fields else None)
    loss = F.cross_entropy(model.logits(h).flatten(0, 1), targets.flatten(), ignore_index=-100)
    rows = torch.from_numpy(np.nonzero(uncond)[0])
    if len(rows) == 0:
        return loss, None
    k = 1 + (torch.rand(len(rows), generator=gen) * steps[rows]).long().clamp(max=steps[rows] - 1)
    read = F.cross_entropy(model.read_prefixes(h[rows], k), torch.from_numpy(corpus.labels[idx][uncond.astype(bool)]))
    return loss, read


@torch.no_grad()
def validation_loss(model: GPT, corpus: Corpus, batch: int = 50) -> float:
    """Mean next-token cross-entropy (nats a token, END included) over ``corpus``, conditional."""
    model.eval()
    total, count = 0.0, 0
    for at in range(0, len(corpus), batch):
        idx = np.arange(at, min(at + batch, len(corpus)))
        inputs, targets, ints, floats, _ = batch_tensors(corpus, idx, corpus.labels[idx], model.cfg.vocab_size,
                                                         model.cfg.end)
        logits = model(inputs, ints, floats if model.cfg.float_fields else None)
        total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((targets != -100).sum())
    model.train()
    return total / max(count, 1)


def model_config_for(lang, d_model: int, n_layer: int, n_head: int, max_len: int, position: str | None = None,
                     tie: bool = False) -> GPTConfig:
    """The generator shape for ``lang``; ``position="index"`` is the ablation without next positions;
    ``tie`` shares the id embeddings with the output layer."""
    position = position or lang.position
    if position == "index":
        return GPTConfig(vocab_size=lang.vocab_size, max_len=max_len, d_model=d_model, n_layer=n_layer,
                         n_head=n_head, position="index", int_sizes=(max_len + 1,), float_fields=0, tie=tie)
    return GPTConfig(vocab_size=lang.vocab_size, max_len=max_len, d_model=d_model, n_layer=n_layer, n_head=n_head,
                     position=position, int_sizes=lang.int_sizes, float_fields=lang.float_fields, tie=tie)


def index_positions(corpus: Corpus) -> Corpus:
    """The same corpus with the step number as its only position (the "ids only" ablation)."""
    steps = np.concatenate([np.arange(n + 1) for n in corpus.lengths]).astype(np.int16)[:, None]
    return Corpus(corpus.ids, corpus.starts, steps, np.zeros((len(steps), 0), np.float32), corpus.labels)


def train_generator(out: str | Path, lang=None, model_cfg: GPTConfig | None = None,
                    train_cfg: GenTrainConfig | None = None, name: str | None = None, resume: bool = False,
                    progress=None, log=print) -> GPT:
    """Train (or with ``resume``, go on training) a generator into the folder ``out``."""
    out = Path(out)
    if resume:
        config = read_json(out)
        if config.get("family") != FAMILY:
            raise AdatokError(f"{out} is not a generator checkpoint")
        lang = language_from(config["language"])
        model_cfg = GPTConfig(**config["model"])
        train_cfg = GenTrainConfig(**config["train"])
        name = config["name"]
    elif lang is None or model_cfg is None:
        raise AdatokError("train_generator needs a language and a model config (or resume=True)")
    train_cfg = train_cfg or GenTrainConfig()
    name = name or out.name
    torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    t_build = time.time()
    corpus = corpus_for(lang, "train", train_cfg.limit, out / "corpus-train.npz", progress)
    val = corpus_for(lang, "test", train_cfg.val_images, out / "corpus-val.npz")
    if model_cfg.position == "index":
        corpus, val = index_positions(corpus), index_positions(val)
    build_seconds = time.time() - t_build
    if int(corpus.lengths.max()) + 1 > model_cfg.max_len:
        raise AdatokError(f"sequences of up to {int(corpus.lengths.max()) + 1} steps, but max_len is {model_cfg.max_len}")
    model = GPT(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay,
                            betas=(0.9, 0.95))
    step, elapsed, history = 0, 0.0, []
    if resume and (out / "train_state.safetensors").is_file():
        from ..neural.folder import load_weights

        load_weights(out, model).train()
        restore_training(out, model, opt, gen)
        step, elapsed, history = config["step"], config["elapsed"], config.get("history", [])
        rng = np.random.default_rng([train_cfg.seed, step])
    budget = 60.0 * train_cfg.minutes

    def save(final: bool = False) -> None:
        config = {"family": FAMILY, "name": name, "model": model_cfg.to_dict(), "language": lang.describe(),
                  "train": asdict(train_cfg), "step": step, "elapsed": round(elapsed, 1), "history": history,
                  "params": count_params(model), "corpus_seconds": round(build_seconds, 1),
                  "mean_length": float(corpus.lengths.mean()), "final": final}
        write_folder(out, model, config, opt, gen)

    model.train()
    log(f"{name}: {count_params(model):,} parameters, {len(corpus):,} sequences (mean {corpus.lengths.mean():.1f} "
        f"tokens), {train_cfg.minutes:g} minutes")
    last_eval = last_save = elapsed
    while elapsed < budget:
        t0 = time.process_time()
        lr = train_cfg.lr * min(1.0, (step + 1) / train_cfg.warmup) * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(corpus), train_cfg.batch)
        uncond = rng.random(train_cfg.batch) < train_cfg.p_uncond
        loss, read = losses(model, corpus, idx, uncond, gen)
        total = loss if read is None else loss + train_cfg.read_weight * read
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.process_time() - t0
        if progress is not None:
            progress(min(elapsed, budget), budget, f"step {step} loss {loss.item():.3f}")
        if elapsed - last_eval >= train_cfg.eval_every or elapsed >= budget:
            v = validation_loss(model, val)
            history.append({"step": step, "seconds": round(elapsed, 1), "train_loss": round(loss.item(), 4),
                            "val_loss": round(v, 4)})
            log(f"step {step}, {elapsed / 60:.1f} min: train loss {loss.item():.4f}, val loss {v:.4f}")
            last_eval = elapsed
        if elapsed - last_save >= train_cfg.save_every:
            save()
            last_save = elapsed
    save(final=True)
    return model.eval()
