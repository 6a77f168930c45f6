"""Sampling from a generator, grammar-constrained: at every step the logits are masked to the ids
the tokenizer's stepper says may stand next (and END), so every sample is a valid sequence that
decodes and survives ``to_bytes`` / ``from_bytes``.

Class-conditional with classifier-free guidance (``cfg``: the logits ``u + cfg * (c - u)`` of the
conditional ``c`` and unconditional ``u`` passes, one batch of both), temperature, top-k and top-p
(nucleus) filtering, a maximum length (by default the longest training sequence) and a minimum,
and a key/value cache (``kv_cache=False`` recomputes the whole prefix every step: the benchmark's
baseline). Seeded per sample: sample i of a run depends only on the seed and i (not on ``batch``,
``-n`` or the samples beside it), the same arguments giving the same samples. :func:`complete` samples
the rest of a real image's prefix (a cut ``.atk`` file).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.checks import is_bool, is_whole, shown
from ..core.errors import AdatokError
from ..core.sequence import TokenSequence, parse_container
from ..neural.folder import load_weights, read_json, unseeded
from .folders import CHECKPOINT_DIR, generator_folder, shipped  # noqa: F401 (also imported from here)
from .languages import language_from, rows_of
from .model import GPT, GPTConfig


@dataclass
class Generator:
    """A trained generator: the model, its language, and its checkpoint's config."""

    model: GPT
    lang: object
    config: dict

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def class_names(self) -> list[str] | None:
        """Its classes' names by number (Fashion-MNIST's, a folder's class sub-folders), or None
        (token shards' numbered labels, and folders' checkpoints from before 2026-12-02)."""
        names = self.config.get("class_names")
        if names is None and (self.config.get("train") or {}).get("data", "fashion-mnist") == "fashion-mnist":
            from adatok.datasets import FASHION_MNIST_CLASSES  # (a checkpoint from before names were kept)

            names = list(FASHION_MNIST_CLASSES)
        return list(names) if isinstance(names, list) and len(names) == self.model.cfg.classes else None

    def class_number(self, label: str | int) -> int:
        """The number of class ``label``, as :func:`sample` takes classes. A whole number (``int``,
        numpy's) is the class's number, 0..classes-1, as in ``sample(gen, [1])``. A string (what
        ``--class`` gives) is one of :attr:`class_names`, or a number written out (``"3"``) where no
        class name is a number: once one is (class folders named ``1``, ``2``, ..., numbered 0, 1,
        ... in sorted order), a string is a name only, so ``"1"`` is the folder ``1`` (number 0)
        and ``"0"``, no folder's name, is refused rather than taken as the folder ``1`` too.
        :class:`~adatok.AdatokError` for anything else, naming what it takes."""
        classes, names = self.model.cfg.classes, self.class_names or []
        if is_whole(label) and 0 <= int(label) < classes:
            return int(label)
        numbered = any(_is_number(n) for n in names)
        if isinstance(label, str):
            if label in names:
                return names.index(label)
            if not numbered and _is_number(label.strip()) and 0 <= int(label) < classes:
                return int(label)
        listed = ", ".join(repr(n) for n in names[:12]) + (" ..." if len(names) > 12 else "")
        if isinstance(label, str) and numbered:
            raise AdatokError(f"a class of {self.name} is one of its classes' names, {listed}; got {label!r} (its "
                              f"names are numbers, so a number given as a string is read as a name only; the "
                              f"classes' numbers, 0..{classes - 1} in that order, are for sample() in Python)")
        raise AdatokError(f"a class of {self.name} is a number 0..{classes - 1}"
                          f"{', or one of ' + listed if names else ''}; got {label!r}")


def _is_number(text: str) -> bool:
    """Whether ``text`` is a whole number written out (``"3"``, ``"-1"``)."""
    return text.lstrip("-").isdigit() and text.isascii()


def load_generator(name_or_folder: str | Path) -> Generator:
    """A shipped generator by name (``fmnist-gpt-wavelet``, ...) or a checkpoint folder."""
    if not isinstance(name_or_folder, str | os.PathLike):  # (3 or None: a raw TypeError from pathlib)
        raise AdatokError(f"a generator is a shipped name or a checkpoint folder, got {name_or_folder!r}")
    folder = generator_folder(name_or_folder)
    config = read_json(folder)
    if config.get("family") != "generator":
        raise AdatokError(f"{folder} is not a generator checkpoint (family {config.get('family')!r})")
    model = load_weights(folder, unseeded(lambda: GPT(GPTConfig(**config["model"]))))
    return Generator(model, language_from(config["language"]), config)


def _filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the ``top_k`` largest logits and the smallest set whose probability reaches ``top_p``."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, -1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, -1, descending=True)
        probs = sorted_logits.softmax(-1)
        cut = probs.cumsum(-1) - probs >= top_p  # drop a token once those before it already reach top_p
        sorted_logits = sorted_logits.masked_fill(cut, -torch.inf)
        logits = torch.full_like(logits, -torch.inf).scatter(-1, order, sorted_logits)
    return logits


def _check_labels(classes: int, labels) -> list:
    """``labels`` as a list, each a class ``0..classes-1`` or ``None`` / ``-1`` (no class)."""
    if isinstance(labels, str | bytes) or not hasattr(labels, "__iter__"):  # (7: a raw "not iterable")
        raise AdatokError(f"labels are a list of classes (one a sample; None: no class), got {labels!r}")
    labels = list(labels)
    bad = [lab for lab in labels if lab is not None and not (is_whole(lab) and -1 <= lab < classes)]
    if bad:
        raise AdatokError(f"a class is a whole number 0..{classes - 1} (or None / -1: none), got {_shown(bad[0])}")
    return labels


def _shown(value) -> str:
    """``value`` as a message shows it: a numpy scalar as the number it holds (not ``np.int64(10)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


#: How samples are drawn from a seed; changed whenever the same arguments give other samples (2: a
#: random stream a sample, 2026-12-03; 1: one stream a batch). Kept measurements are keyed by it.
SAMPLER_REVISION = 2

#: The seeds taken: any whole number of 64 bits, signed (mixed as ``seed % 2**64``, so no two share samples).
SEEDS = range(-(2**63), 2**63)


def _check_seed(seed, flags: bool = False) -> None:
    # (1.5 was truncated to 1; 2**64 gave seed 0's samples. int(): `in` a range tries a numpy integer
    # against each of its 2**64 numbers)
    if not (is_whole(seed) and int(seed) in SEEDS):
        raise AdatokError(f"{_named('seed', flags)} is a whole number from -2**63 to 2**63 - 1, got {_shown(seed)}")


#: Each sampling option as messages name it: by its argument (``max_tokens``), and as ``adatok
#: generate`` takes it (``--max-tokens``), for the checks a command runs with ``flags=True``.
NAMES = {"cfg": ("the guidance weight", "--cfg"), "temperature": ("the temperature", "--temperature"),
         "early_temperature": ("the early temperature", "--early-temperature"), "top_k": ("top-k", "--top-k"),
         "top_p": ("top-p", "--top-p"), "max_tokens": ("max_tokens", "--max-tokens"),
         "min_tokens": ("min_tokens", "--min-tokens"), "early_tokens": ("early_tokens", "--early-tokens"),
         "seed": ("the seed", "--seed")}


def _named(option: str, flags: bool) -> str:
    """``option`` (a key of :data:`NAMES`) as a message names it: its argument, or its flag."""
    return NAMES[option][1 if flags else 0]


def _check_whole(what: str, value, least: int = 1) -> None:
    if not (is_whole(value) and value >= least):
        raise AdatokError(f"{what} is a whole number >= {least}, got {_shown(value)}")


#: The largest guidance weight or temperature taken: larger ones overflow float32 logits (to NaN).
MAX_WEIGHT = 1e6


def _real(value) -> float | None:
    """``value`` as a float if it is a real number (a 0-d array or tensor too), else ``None`` (a
    string or a bool is not: ``"2"`` or ``True`` are no guidance weight)."""
    try:
        return None if isinstance(value, str | bytes) or is_bool(value) else float(value)
    except (TypeError, ValueError):
        return None


def check_options(classes: int, labels, cfg: float, temperature: float, top_k: int, top_p: float,
                  max_tokens: int | None, min_tokens: int, early_temperature: float = 1.0, early_tokens: int = 0,
                  *, seed: int | None = None, kv_cache: bool = True, flags: bool = False) -> None:
    """Refuse sampling options no sampling can follow, with an :class:`AdatokError` naming them
    (a label of ``classes`` drew unconditional samples, one past it was a raw torch error; a NaN
    guidance or temperature ended in torch.multinomial; ``cfg="2"`` a raw TypeError). ``seed``:
    one of :data:`SEEDS` (``None``: not checked). ``flags``: name each option as ``adatok
    generate`` takes it (``--max-tokens``), not as the argument it is (:data:`NAMES`)."""
    _check_labels(classes, labels)
    weight = _real(cfg)
    if weight is None or not (math.isfinite(weight) and abs(weight) <= MAX_WEIGHT):  # (1e39: float32 overflow)
        raise AdatokError(f"{_named('cfg', flags)} is a number from -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}, got {_shown(cfg)}")
    for what, t in (("temperature", temperature), ("early_temperature", early_temperature)):
        value = _real(t)
        if value is None or not (math.isfinite(value) and 0 <= value <= MAX_WEIGHT):
            raise AdatokError(f"{_named(what, flags)} is a number from 0 (the likeliest id) to {MAX_WEIGHT:g}, "
                              f"got {_shown(t)}")
    nucleus = _real(top_p)
    if nucleus is None or not 0 < nucleus <= 1:
        raise AdatokError(f"{_named('top_p', flags)} is a number in (0, 1], got {_shown(top_p)}")
    if not isinstance(kv_cache, bool | np.bool_):  # ("no" was taken as true)
        raise AdatokError(f"kv_cache is True or False, got {kv_cache!r}")
    if seed is not None:
        _check_seed(seed, flags)
    for what, v, least in (("top_k", top_k, 0), ("min_tokens", min_tokens, 0), ("max_tokens", max_tokens, 1),
                           ("early_tokens", early_tokens, 0)):
        if v is not None:
            _check_whole(_named(what, flags), v, least)


def check_lengths(gen: Generator, max_tokens: int | None = None, min_tokens: int = 0, prefix: int = 0, *,
                  flags: bool = False) -> None:
    """Refuse lengths ``gen`` cannot sample to, before any sampling, with an :class:`AdatokError`
    naming the option (``flags``: as ``adatok generate`` takes it, ``--max-tokens``) and the limit:
    a ``max_tokens`` or ``min_tokens`` past the last step a model of step numbers (trained with
    ``--position index``) has a position for (a raw IndexError once a sample got there), and a
    ``max_tokens`` (default: the model's longest training sequence) that leaves no token to write
    after a completion's ``prefix`` tokens (the prefix came back n times as its "completions")."""
    mc = gen.model.cfg
    if mc.position == "index":
        last = mc.int_sizes[0] - 1  # (a sample of k tokens reads position k before its next token, or END)
        for what, v in (("max_tokens", max_tokens), ("min_tokens", min_tokens)):
            if is_whole(v) and v > last:
                raise AdatokError(f"{_named(what, flags)} {v} is past the last step {gen.name} has a position for: "
                                  f"it reads each step's number (trained with --position index), up to {last}; "
                                  f"give {_named(what, flags)} {last} or less")
    cap = gen.config.get("longest") if max_tokens is None else max_tokens
    if max_tokens is None and is_whole(cap) and is_whole(min_tokens) and min_tokens > cap:
        # (every sample stopped at the cap, the minimum silently without effect)
        raise AdatokError(f"{_named('min_tokens', flags)} {min_tokens} is past {cap}, the longest {gen.name} samples "
                          f"to unless {_named('max_tokens', flags)} says otherwise (its longest training sequence): "
                          f"give {_named('max_tokens', flags)} {min_tokens} or more as well, or a smaller minimum")
    if prefix and is_whole(cap) and cap <= prefix:
        given = _named("max_tokens", flags) if max_tokens is not None else "the model's longest training sequence"
        raise AdatokError(f"the prefix holds {prefix} tokens and {given} is {cap} (it counts the prefix): no token is "
                          f"left to sample; give {_named('max_tokens', flags)} above {prefix}, or a shorter prefix")


@torch.no_grad()
def run(gen: Generator, st, labels: np.ndarray, *, cfg: float = 1.0, temperature: float = 1.0, top_k: int = 0,
        top_p: float = 1.0, max_tokens: int | None = None, min_tokens: int = 0, early_temperature: float = 1.0,
        early_tokens: int = 0, seed: int = 0, first: int = 0, kv_cache: bool = True, prefix: tuple | None = None,
        on_step: Callable | None = None) -> np.ndarray:
    """Grow the sequences of stepper ``st`` until each writes END (or its stream ends, or it
    reaches ``max_tokens``; default: the longest training sequence, from the checkpoint's
    ``longest``: the model never learned where to stand past it). ``min_tokens``: END is not
    drawn before a sequence holds that many tokens (unless its stream ends first; ``max_tokens``
    wins): a model that learned to stop at its training target then writes on, past it.
    ``early_tokens``: a sequence's first that many tokens are drawn at ``early_temperature``
    (the rest at ``temperature``): a word model's first words draw its image's coarse shape
    (docs/generation.md). These three count the whole sequence, a completion's prefix included.
    ``labels``: a class per sequence (``None`` entries or -1: no class).
    ``prefix``: model inputs of tokens already in ``st`` (``(ids, ints, floats)`` of one prefix,
    the same for every sequence), read first. Returns the number of tokens each sequence got.

    Seeded per sequence: row j draws from a random stream of its own, keyed by ``seed`` and
    ``first + j`` (its index in the whole run: ``first`` is that of row 0), its t-th draw the
    t-th number of that stream; so a sequence's tokens depend on the seed, its index and its
    own inputs alone, not on the batch it is in or the rows that end beside it."""
    model, lang = gen.model, gen.lang
    mc = model.cfg
    if gen.config.get("train", {}).get("gen_weight", 1.0) == 0:
        raise AdatokError(f"{gen.name} is a reader (trained with --reader to classify prefixes): it cannot generate")
    check_lengths(gen, max_tokens, min_tokens)  # (before the default: a minimum past it is refused there)
    if max_tokens is None:
        max_tokens = gen.config.get("longest")
    check_options(mc.classes, labels, cfg, temperature, top_k, top_p, max_tokens, min_tokens, early_temperature,
                  early_tokens, kv_cache=kv_cache)
    if not is_whole(seed):  # (a run's seed: sample() and complete() mix the one they were given into it)
        raise AdatokError(f"the seed is a whole number, got {_shown(seed)}")
    _check_whole("first", first, 0)
    model.eval()
    B = len(st)
    keys = np.array([batch_seed(seed, first + j) for j in range(B)], np.uint64)  # each row's stream
    draws = 0  # the draws each row still growing has taken (one a step)
    labels = np.array([mc.null_class if (lab is None or lab < 0) else lab for lab in labels], np.int64)
    guided = cfg != 1.0
    cls = np.concatenate([labels, np.full(B, mc.null_class)]) if guided else labels
    rows = len(cls)
    caches = [dict() for _ in range(mc.n_layer)] if kv_cache else None
    finished = np.zeros(B, bool)

    def features() -> tuple[np.ndarray, np.ndarray]:
        if mc.position == "index":
            steps = np.asarray(st.lengths, np.int64)
            return steps.reshape(-1, 1), np.zeros((B, 0), np.float32)
        return lang.step_features(st)

    # the first input: the class token, then (for a completion) the prefix's ids
    tokens = torch.from_numpy(cls + mc.vocab_size)[:, None]
    if prefix is not None:
        ids, p_ints, p_floats = prefix  # rows for the class step and each prefix token but the last position
        tokens = torch.cat([tokens, torch.from_numpy(np.tile(ids, (rows, 1)).astype(np.int64))], 1)
        pre_ints = torch.from_numpy(np.tile(p_ints, (rows, 1, 1)).astype(np.int64))
        pre_floats = torch.from_numpy(np.tile(p_floats, (rows, 1, 1)).astype(np.float32))
    else:
        pre_ints = torch.zeros((rows, 0, len(mc.int_sizes)), dtype=torch.long)
        pre_floats = torch.zeros((rows, 0, mc.float_width))
    hist_tok, hist_ints, hist_floats = tokens, pre_ints, pre_floats
    feed_tok, feed_ints, feed_floats = tokens, pre_ints, pre_floats
    counts = np.array(st.lengths, np.int64)  # (a completion's prefix counts)
    active = np.arange(B)  # the sequences still growing: finished ones leave the batch (and the caches)
    with model.fixed_weights():  # (the tied output layer is built once for the whole run)
        while len(active):
            ints, floats = features()
            ints_t = torch.from_numpy(np.asarray(ints, np.int64)[active])
            floats_t = torch.from_numpy(np.asarray(floats, np.float32)[active])
            if guided:
                ints_t, floats_t = torch.cat([ints_t, ints_t]), torch.cat([floats_t, floats_t])
            step_ints = torch.cat([feed_ints, ints_t[:, None]], 1)
            step_floats = torch.cat([feed_floats, floats_t[:, None]], 1)
            if kv_cache:
                logits = model(feed_tok, step_ints, step_floats if mc.float_width else None, caches)[:, -1]
            else:
                all_ints = torch.cat([hist_ints, ints_t[:, None]], 1)
                all_floats = torch.cat([hist_floats, floats_t[:, None]], 1)
                logits = model(hist_tok, all_ints, all_floats if mc.float_width else None)[:, -1]
                hist_ints, hist_floats = all_ints, all_floats
            n = len(active)
            if guided:
                logits = logits[n:] + cfg * (logits[:n] - logits[n:])
            # ids, and END: anywhere in a variable-length language, else only once the stream has ended
            end_ok = np.ones((B, 1), bool) if lang.variable_length else np.asarray(st.done, bool)[:, None]
            allowed = np.concatenate([np.asarray(st.legal(), bool), end_ok], 1)[active]
            if max_tokens is not None:
                full = counts[active] >= max_tokens  # the maximum length: END only (the pixel baseline: the rest black)
                allowed[full, :-1] = False
                allowed[full, -1] = True
            if min_tokens:  # too short for END, while an id may still stand
                short = (counts[active] < min_tokens) & allowed[:, :-1].any(1)
                allowed[short, -1] = False
            heat = max(temperature, 1e-6)
            if early_tokens:
                heat = torch.from_numpy(np.where(counts[active] < early_tokens, max(early_temperature, 1e-6),
                                                 heat).astype(np.float32))[:, None]
            logits = logits.masked_fill(~torch.from_numpy(allowed), -torch.inf) / heat
            logits = _filter(logits, top_k, top_p)
            picked = _draw(logits.softmax(-1), _uniforms(keys[active], draws))
            draws += 1
            chosen = np.full(B, mc.end, np.int64)
            chosen[active] = picked
            ending = chosen == mc.end
            st.push(np.where(ending, -1, chosen))
            counts += ~ending  # (a finished sequence's id is END)
            finished |= ending
            if on_step is not None:
                on_step(st, finished)
            keep = ~ending[active]
            if not keep.all():  # drop the rows that ended from the batch, the caches and the history
                active = active[keep]
                rows_kept = torch.from_numpy(np.concatenate([keep, keep]) if guided else keep)
                for cache in caches or ():
                    for key in ("k", "v", "class"):
                        if key in cache:
                            cache[key] = cache[key][rows_kept]
                if not kv_cache:
                    hist_tok, hist_ints, hist_floats = hist_tok[rows_kept], hist_ints[rows_kept], hist_floats[rows_kept]
            nxt = chosen[active]
            nxt = np.concatenate([nxt, nxt]) if guided else nxt
            feed_tok = torch.from_numpy(nxt.astype(np.int64))[:, None]
            feed_ints = torch.zeros((len(feed_tok), 0, len(mc.int_sizes)), dtype=torch.long)
            feed_floats = torch.zeros((len(feed_tok), 0, mc.float_width))
            if not kv_cache:
                hist_tok = torch.cat([hist_tok, feed_tok], 1)
    return counts


def sample(gen: Generator, labels: Sequence[int | None], *, seed: int = 0, batch: int = 64, progress=None,
           **options) -> tuple[list, list[np.ndarray]]:
    """Sample one sequence per entry of ``labels`` (a class, or None for none), ``batch`` at a time.
    Returns the sequences (``TokenSequence``; pixel arrays for the pixel baseline) and their images.
    ``options``: ``cfg``, ``temperature``, ``top_k``, ``top_p``, ``max_tokens``, ``min_tokens``,
    ``early_temperature``, ``early_tokens``, ``kv_cache`` (see :func:`run`). Sample i depends on
    the seed, i and its label alone: not on ``batch``, nor on how many samples are drawn with it."""
    seqs, images = [], []
    labels = _check_labels(gen.model.cfg.classes, labels)  # (before they are made whole numbers below)
    _check_whole("batch", batch)  # (-1 gave no samples, silently)
    _check_seed(seed)
    _check_names(options)
    for at in range(0, len(labels), batch):
        part = np.array([-1 if lab is None else int(lab) for lab in labels[at : at + batch]], np.int64)
        st = gen.lang.stepper(len(part))
        run(gen, st, part, seed=batch_seed(seed, 0), first=at, **options)
        seqs += _sequences(st)
        images += st.images() if hasattr(st, "images") else gen.lang.decode(_sequences(st))
        if progress is not None:
            progress(min(at + batch, len(labels)), len(labels))
    return seqs, images


#: The sampling options :func:`sample` and :func:`complete` pass on to :func:`run`.
OPTIONS = ("cfg", "temperature", "top_k", "top_p", "max_tokens", "min_tokens", "early_temperature", "early_tokens",
           "kv_cache", "on_step")


def _check_names(options: dict) -> None:
    unknown = sorted(set(options) - set(OPTIONS))  # (a misspelt one was a raw TypeError naming run())
    if unknown:
        raise AdatokError(f"unknown sampling option {unknown[0]!r}: the options are {', '.join(OPTIONS)}")


def _uniforms(keys: np.ndarray, t: int) -> np.ndarray:
    """The ``t``-th number in [0, 1) of the random stream of each of ``keys`` (uint64): SplitMix64
    of the key and the counter, so any row's draw is computed alone, at no cost of the others (a
    generator shared by the batch gave a row other numbers when another row ended, or when it was
    in another batch). Written here because no library draws a batch of independent counter-based
    streams in one call: numpy's Philox is counter-based too, but one Generator object a row, advanced
    and drawn from row by row, costs a Python call a row a step (B = 64 at every step)."""
    z = keys + np.uint64((t + 1) * 0x9E3779B97F4A7C15 % 2**64)  # (uint64 arrays wrap, as the hash wants)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _draw(probs: torch.Tensor, u: np.ndarray) -> np.ndarray:
    """One id per row of ``probs`` (rows of probabilities), by inverting its cumulative sum at ``u``
    (a number in [0, 1) per row): an id of probability 0 is never drawn."""
    cdf = probs.double().cumsum(-1)
    at = torch.from_numpy(u)[:, None] * cdf[:, -1:]
    picked = torch.searchsorted(cdf, at, right=True)[:, 0]
    last = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1)  # (u * total rounded up to the total)
    return torch.minimum(picked, last).numpy()


def batch_seed(seed: int, at: int) -> int:
    """``seed`` and the index ``at`` mixed into 64 bits: :func:`sample` and :func:`complete` give
    :func:`run` ``batch_seed(seed, 0)`` as its seed (as the server does), and run keys the random
    stream of the sample of index i with ``batch_seed(that, i)``. Mixed, so that no two (seed,
    index) pairs share their samples (``seed + at`` gave samples 64.. of seed 0 to seed 64's
    first batch)."""
    return int(np.random.SeedSequence([int(seed) % 2**64, int(at)]).generate_state(1, np.uint64)[0])


def _sequences(st) -> list:
    if hasattr(st, "sequences"):
        return st.sequences()
    return [row[:n].copy() for row, n in zip(st.ids, st.lengths, strict=True)]


def prefix_from_bytes(gen: Generator, data: bytes, name: str = "the file") -> TokenSequence:
    """The prefix the bytes of a (cut) ``.atk`` file hold, for :func:`complete` with ``gen``: the
    header is checked against what ``gen`` writes before the payload is read (a file of a hundred
    bytes may ask for an image of 50 million pixels, whose layout reading it builds first: 22 s
    and 5 GB before a 4096 x 4096 file was refused as not 28 x 28). ``name`` names the file in
    messages. :class:`~adatok.AdatokError` for a file ``gen`` cannot go on from."""
    header, _ = parse_container(data)
    lang = gen.lang
    tok = getattr(lang, "tok", None)
    if tok is None:
        raise AdatokError(f"{gen.name} writes pixels, not tokens: completion takes a generator of a tokenizer")
    if header["tokenizer"] != tok.name:
        raise AdatokError(f"{name} was made by {shown(header['tokenizer'])}; {gen.name} writes "
                          f"{tok.name!r} tokens: choose a generator of that tokenizer")
    shape, have = tuple(lang.shape), tuple(header["shape"])
    if have != shape and have + (1,) != shape:  # (a gray H x W image is H x W x 1)
        raise AdatokError(f"{name} is of a {'x'.join(map(str, have))} image; {gen.name} writes "
                          f"{'x'.join(map(str, shape))} images")
    params = header.get("params") or {}
    # (the language's stepper refuses these too, advising Python's encode(..., fixed_header=True): a file's
    # reader, on the command line or the server, is told what its file is and what to encode instead)
    if "roi" in params:
        raise AdatokError(f"{name} was encoded with a region of interest, whose tokens stand elsewhere than "
                          f"{gen.name}'s: encode the image again without one")
    if "rep" in params:
        raise AdatokError(f"{name} is of an image the tokenizer coded by pixel replication (a blank image, or an "
                          f"exact enlargement of a smaller one), whose tokens stand elsewhere than {gen.name}'s: it "
                          "cannot be completed; give a file of another image")
    return TokenSequence.from_bytes(data)


def check_prefix(gen: Generator, prefix, max_tokens: int | None = None, min_tokens: int = 0, *,
                 flags: bool = False) -> TokenSequence:
    """Refuse a prefix :func:`complete` cannot go on from with ``gen`` (of another kind, shape or
    tree; a whole sequence; one ``max_tokens`` leaves no room after: :func:`check_lengths`, whose
    messages ``flags`` names as ``adatok generate`` does), before any sampling; return it as the
    generator's tokens (a wavelet prefix re-expressed with its shape's fixed header)."""
    lang = gen.lang
    if not hasattr(lang, "tok"):
        raise AdatokError(f"{gen.name} writes pixels: completion takes a token language")
    if not isinstance(prefix, TokenSequence):  # (a list or an array was "the prefix of a shapeless image")
        raise AdatokError(f"the prefix is a TokenSequence (e.g. TokenSequence.from_bytes of a cut .atk file), "
                          f"got {type(prefix).__name__}")
    if prefix.tokenizer != lang.tok.name:  # (else the stepper's "decode it with ..." advice surfaced)
        raise AdatokError(f"the prefix was made by {prefix.tokenizer!r}; {gen.name} writes {lang.tok.name!r} tokens: "
                          "choose a generator of that tokenizer")
    shape = tuple(prefix.shape or ())
    if shape != tuple(lang.shape) and shape + (1,) != tuple(lang.shape):  # (a gray H x W image is H x W x 1)
        raise AdatokError(f"{gen.name} writes {'x'.join(map(str, lang.shape))} images; the prefix is of a "
                          f"{'x'.join(map(str, shape)) or 'shapeless'} image")
    st = lang.stepper(prefixes=[prefix])
    full = st.sequences()[0]  # the prefix as the generator's tokens
    if not np.asarray(st.legal(), bool)[0].any():  # (n copies of it came back as its "completions")
        raise AdatokError(f"the prefix is a whole sequence ({len(full)} tokens: its stream has ended, no token may "
                          "follow), not a cut one: nothing is left to sample; give a prefix of it")
    check_lengths(gen, max_tokens, min_tokens, len(full), flags=flags)
    return full


def complete(gen: Generator, prefix, n: int = 4, label: int | None = None, *, seed: int = 0, batch: int = 64,
             progress=None, **options) -> tuple[list, list[np.ndarray]]:
    """``n`` completions of one real prefix (a ``TokenSequence`` of the generator's tokenizer, e.g.
    ``TokenSequence.from_bytes`` of a cut ``.atk`` file): the model reads the prefix, then samples
    the rest, ``batch`` at a time (seeded as :func:`sample` is: completion i depends only on the
    seed and i). ``label``: a class, or None / -1 for none. ``max_tokens`` counts the whole
    sequence, the prefix included: it must leave room for a token (:func:`check_prefix`). Returns
    the completed sequences and their images."""
    lang = gen.lang
    if not hasattr(lang, "tok"):
        raise AdatokError(f"{gen.name} writes pixels: completion takes a token language")
    _check_whole("n", n)
    _check_whole("batch", batch)
    _check_seed(seed)
    _check_names(options)
    _check_labels(gen.model.cfg.classes, [label])
    full = check_prefix(gen, prefix, options.get("max_tokens"), options.get("min_tokens", 0))
    m = len(full)
    if gen.model.cfg.position == "index":
        ids, ints, floats = np.asarray(full.ids), np.arange(m).reshape(-1, 1), np.zeros((m, 0), np.float32)
    else:
        ids, ints, floats = next(rows_of(lang, [(full, m)]))
        ints, floats = ints[:m], floats[:m]  # where each prefix token stands (the stepper gives the next)
    seqs, images = [], []
    for at in range(0, n, batch):  # (all n in one batch: 4,096 took 107 s and 2 GB)
        k = min(batch, n - at)
        st = lang.stepper(prefixes=[prefix] * k)
        run(gen, st, np.full(k, -1 if label is None else label), seed=batch_seed(seed, 0), first=at,
            prefix=(np.asarray(ids), ints, floats), **options)
        seqs += _sequences(st)
        images += st.images()
        if progress is not None:
            progress(at + k, n)
    return seqs, images
