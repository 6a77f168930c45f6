"""Measuring generators: the table of ``docs/generation.md`` and the HTML report.

For each generator: ``--samples`` class-conditional samples (classes in turn, guidance ``--cfg``),
their **FD-fmnist** against the 10,000 test images and their **class accuracy** by the judge
(:mod:`adatok.generate.judge`), the mean generated length (tokens), the mean length per class, and
sampling speed (images per second, batch 64, key/value cache). Beside them, the ceilings of the
token languages (the tokenizers' reconstructions of the test images: wavelet at the generator's
training target, ``fashion-mnist-32`` at the learned generator's mean generated length) and the
floor (as many training images as samples against the test images; the judge's test accuracy).
The ceilings reconstruct as many test images as samples drawn (FD-fmnist depends on the count). Then the
reading head of the wavelet generator: accuracy from the first n tokens of test images, beside the
learned tokenizer's prefix classifier at the same number of bits.

    python -m adatok.generate.evaluate --models fmnist-gpt-wavelet,fmnist-gpt-learned,FOLDER \\
        --samples 10000 --jobs 2 --reading fmnist-gpt-wavelet --out out/generation

Each model's measurement is kept in ``OUT/measured/`` (keyed by the model, its weights and the arguments), so
a run stopped after sampling (the long part) picks up from there.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import pickle
import shlex
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

import adatok
from adatok import Quality, Tokens, TokenSequence

from ..core.checks import is_whole
from ..core.errors import AdatokError
from ..core.imageio import atomic_write_bytes
from ..datasets import is_token_shards, read_manifest
from ..neural.folder import read_json, weights_digest
from ..neural.tokenizer import count
from .judge import JUDGE_DIR, accuracy, fd_fmnist, features, frechet_distance, load_judge
from .languages import build_corpus, language_from
from .report import write_report
from .sample import SAMPLER_REVISION, check_options, complete, generator_folder, load_generator, sample


def _as_gray(images) -> np.ndarray:
    return np.stack([np.asarray(im, np.uint8).reshape(28, 28, 1) for im in images])


def _say(message: str) -> None:
    print(message, flush=True)  # (worker processes of --jobs share the terminal)


def measure_model(gen, judge, test_feats: np.ndarray, n: int, cfg: float, seed: int, progress=_say,
                  batch: int = 64, temperature: float = 1.0, top_p: float = 1.0, min_tokens: int = 0,
                  early_temperature: float = 1.0, early_tokens: int = 0) -> dict:
    """Samples of one generator (``batch`` at a time; guidance ``cfg``, ``temperature``, nucleus
    ``top_p``, at least ``min_tokens`` tokens, the first ``early_tokens`` at ``early_temperature``)
    and what the judge says of them."""
    labels = [i % 10 for i in range(n)]
    t0 = time.time()
    seqs, images = sample(gen, labels, seed=seed, cfg=cfg, batch=batch, temperature=temperature, top_p=top_p,
                          min_tokens=min_tokens, early_temperature=early_temperature, early_tokens=early_tokens,
                          progress=lambda done, total: progress(f"{gen.name}: {done}/{total} samples, "
                                                                f"{time.time() - t0:.0f} s"))
    seconds = time.time() - t0
    images = _as_gray(images)
    lengths = np.array([len(s) for s in seqs])
    lab = np.array(labels)
    drawn = [c for c in range(10) if (lab == c).any()]
    survived = prefixes = None
    if hasattr(gen.lang, "tok"):  # a token language (not the pixel baseline)
        back = [TokenSequence.from_bytes(s.to_bytes()) for s in seqs]  # every sample survives its bytes
        again = _as_gray(gen.lang.decode(back))
        survived = sum(bool(np.array_equal(a.ids, b.ids) and np.array_equal(x, y))
                       for a, b, x, y in zip(seqs, back, images, again, strict=True))
        # how recognisable the samples are as they are written
        prefixes = prefix_accuracy(gen.lang, seqs, lab, judge, doublings(int(lengths.max())))
    out = {"name": gen.name, "params": int(gen.config["params"]), "train_minutes": gen.config["elapsed"] / 60,
           "fd": frechet_distance(features(judge, images), test_feats), "accuracy": accuracy(judge, images, lab),
           "mean_length": float(lengths.mean()), "images_per_s": n / seconds,
           "length_per_class": {c: float(lengths[lab == c].mean()) for c in drawn},
           "lengths": {c: lengths[lab == c].tolist() for c in drawn},
           "grids": {c: [images[i] for i in np.nonzero(lab == c)[0][:10]] for c in drawn},
           "language": gen.config["language"], "samples": n, "cfg": cfg, "seed": seed, "batch": batch,
           "temperature": temperature, "top_p": top_p, "min_tokens": min_tokens, "early_temperature": early_temperature,
           "early_tokens": early_tokens,
           "round_trips": survived, "prefix_accuracy": prefixes}
    progress(f"{gen.name}: FD-fmnist {out['fd']:.2f}, accuracy {100 * out['accuracy']:.1f}%, "
             f"mean length {out['mean_length']:.1f}, {out['images_per_s']:.2f} images/s"
             + ("" if survived is None else f", {survived}/{n} decode the same from their bytes"))
    return out


def doublings(longest: int) -> list[int]:
    """1, 2, 4, ... below ``longest``."""
    return [2**j for j in range(max(1, longest).bit_length()) if 2**j < longest]


def prefix_accuracy(lang, seqs, labels: np.ndarray, judge, lengths: list[int]) -> dict[int, float]:
    """The judge's class accuracy of the images the first n tokens of ``seqs`` decode to (all of a
    shorter one), for each n of ``lengths``: of samples, how far into its writing a generator's
    images stay recognisable; of test images' sequences, what those prefixes can reach."""
    return {n: accuracy(judge, _as_gray(lang.decode([s.prefix(min(n, len(s))) for s in seqs])), labels)
            for n in lengths}


def ceiling(tokenizer: str, images: np.ndarray, budget, judge, test_feats, labels, fixed_header: bool = False) -> dict:
    """The judge on a tokenizer's reconstructions of ``images`` under ``budget`` (wavelet tokens:
    with the fixed header of their shape, as a generator's training sequences and samples have)."""
    tok = adatok.load(tokenizer)
    seqs = tok.encode(list(images), budget, **({"fixed_header": True} if fixed_header else {}))
    recon = _as_gray(tok.decode(seqs))
    return {"fd": frechet_distance(features(judge, recon), test_feats), "accuracy": accuracy(judge, recon, labels),
            "mean_length": float(np.mean([len(s) for s in seqs]))}


def reading_accuracy(gen, images: np.ndarray, labels: np.ndarray, lengths: list[int]) -> dict[int, float]:
    """Accuracy of ``gen``'s reading head from the first n tokens of each image (its training-target
    sequence; all of a shorter one), for each n."""
    from .train import read_corpus, rows_for

    classes = gen.model.cfg.classes
    labels = np.asarray(labels)
    if len(images) == 0 or labels.shape != (len(images),) or not np.isin(labels, np.arange(classes)).all():
        raise AdatokError(f"reading needs one or more images and a class 0..{classes - 1} for each, got "
                          f"{len(images)} images and labels of shape {labels.shape}")  # (a miscount was read silently)
    if isinstance(lengths, str) or not len(lengths) or not all(is_whole(n) and n >= 1 for n in lengths):
        raise AdatokError(f"the lengths read are whole numbers >= 1, got {lengths!r}")
    return read_corpus(gen.model, rows_for(gen.model.cfg, build_corpus(gen.lang, list(images), labels)), lengths)


def read_payload(lang, images: np.ndarray, lengths: list[int]) -> tuple[dict[int, float], dict[int, float]]:
    """What the reading head reads at each length n: the mean payload bits (arithmetic-coded, no
    header) and the mean tokens of the first n tokens of each image's training-target sequence (all
    of a shorter one), as :func:`reading_accuracy` reads them. (The bits were once counted on the
    images' whole sequences: at 349 decisions, 10% more than what was read.)"""
    tok = lang.tok
    read = [full.prefix(k) for full, k in lang.encode(list(images))]
    cut = {n: [s.prefix(min(n, len(s))) for s in read] for n in lengths}
    return ({n: float(np.mean([8 * len(tok.payload_codec.pack(s)) for s in cut[n]])) for n in lengths},
            {n: float(np.mean([len(s) for s in cut[n]])) for n in lengths})


def _measure_named(name: str, samples: int, cfg: float, seed: int, threads: int = 1, limit: int | None = None,
                   batch: int = 64, temperature: float = 1.0, top_p: float = 1.0, min_tokens: int = 0,
                   early_temperature: float = 1.0, early_tokens: int = 0, judge=None, test=None) -> dict:
    """:func:`measure_model` of the generator ``name`` and, for a token language, a completion strip
    (the first test image cut at a quarter of its tokens, or of the model's longest training
    sequence where that is shorter). Loads the judge and the test split when
    not given (a worker process of ``--jobs``)."""
    from ..datasets import load

    torch.set_num_threads(threads)
    if judge is None:
        judge = load_judge()
    if test is None:
        images = np.stack(load("fashion-mnist", split="test", limit=limit).images)
        test = (images, features(judge, images))
    test_images, test_feats = test
    gen = load_generator(name)
    m = measure_model(gen, judge, test_feats, samples, cfg, seed, batch=batch, temperature=temperature, top_p=top_p,
                      min_tokens=min_tokens, early_temperature=early_temperature, early_tokens=early_tokens)
    m["about"] = (f"{m['params']:,} parameters, {m['train_minutes']:.0f} minutes of training, language "
                  f"{m['language']}; {samples} samples, guidance {cfg}"
                  + (f", temperature {temperature}" if temperature != 1 else "") + (f", top-p {top_p}" if top_p != 1 else "")
                  + (f", at least {min_tokens} tokens" if min_tokens else "")
                  + (f", the first {early_tokens} tokens at temperature {early_temperature}" if early_tokens else ""))
    if hasattr(gen.lang, "tok"):
        wavelet = gen.lang.position == "wavelet"
        full = gen.lang.tok.encode([test_images[0]], **({"fixed_header": True} if wavelet else {}))[0]
        # a quarter of the image's tokens, of no more than the model's longest training sequence
        # (a cut at or past it has nothing left to complete: the prefix came back unchanged)
        longest = gen.config.get("longest") or len(full)
        cut = full.prefix(max(1, min(len(full), longest) // 4 if wavelet else min(4, longest - 1)))
        _, comps = complete(gen, cut, 6, seed=seed, cfg=cfg, temperature=temperature,  # (the run's options)
                            top_p=top_p, min_tokens=min_tokens, early_temperature=early_temperature, early_tokens=early_tokens)
        m["completion"] = {"prefix_tokens": len(cut), "plain": gen.lang.decode([cut])[0],
                           "samples": comps, "original": test_images[0]}
    return m


def _measured_path(out: Path, job: tuple) -> Path:
    """Where the measurement of ``job`` is kept: named by the model and a digest of its arguments,
    of its weights, of the judge's and of the version of the tokenizer that decodes its samples (a
    model trained on in its folder, or shipped anew under its name, once got the old model's
    measurement; a retrained judge would have mixed old rows with new ceilings; a changed decoder
    decodes the same tokens to other images), of how samples are drawn from a seed
    (:data:`~adatok.generate.sample.SAMPLER_REVISION`: measurements of the samples of one stream a
    batch were reused after each sample had its own), and of the threads (its images per second)."""
    (name, samples, cfg, seed, threads, limit, batch, temperature, top_p, min_tokens, early_temperature,
     early_tokens) = job
    folder = generator_folder(name)
    weights = weights_digest(folder / "model.safetensors")
    tokenizer = read_json(folder).get("language", {}).get("tokenizer")  # none for pixels
    key = (str(Path(name).resolve()) if Path(name).is_dir() else name, samples, cfg, seed, limit, batch, weights,
           temperature, top_p, min_tokens, *((early_temperature, early_tokens) if early_tokens else ()), threads,
           weights_digest(JUDGE_DIR / "model.safetensors"), tokenizer, SAMPLER_REVISION,
           *((tok.version, getattr(tok, "decoder_revision", None)) if (tok := tokenizer and adatok.load(tokenizer))
             else ()))
    tag = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    return out / "measured" / f"{Path(name).name}-{tag}.pkl"


def _measured(out: Path, job: tuple) -> dict | None:
    """A model's measurement kept by an earlier run into ``out`` with the same arguments (sampling
    is the long part: an evaluation stopped after it need not sample again), or None."""
    path = _measured_path(out, job)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)  # our own file, written by _keep below


def _keep(out: Path, job: tuple, m: dict) -> dict:
    path = _measured_path(out, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, pickle.dumps(m))
    return m


def labelled(entries: list[str], models: list[dict]) -> list[dict]:
    """The measured ``models`` named as the table shows them: by their checkpoints' names, or where
    two share one (two folders named ``mine``), by the ``--models`` entry each came from (one of
    them was dropped from the prefix table, keyed by name)."""
    clash = Counter(m["name"] for m in models)
    return [dict(m, name=entry) if clash[m["name"]] > 1 else m for entry, m in zip(entries, models, strict=True)]


def _of_fashion_mnist(data: str) -> bool:
    """Whether a generator's training data was Fashion-MNIST: by name, or token shards made from it;
    a folder of images is not; data no longer there (shards removed or moved) is taken on the
    model's shape and classes, the rest of the check."""
    if data == "fashion-mnist" or not Path(data).exists():
        return True
    if is_token_shards(data):
        return (read_manifest(data).get("plan") or {}).get("source", {}).get("kind") == "fashion-mnist"
    return False


def check_arguments(args, names: list[str]) -> None:
    """Refuse, before anything is loaded or sampled, what no evaluation can do: a model named twice,
    a model that is not of Fashion-MNIST (the judge, the FD reference and the class names are its:
    a generator of a folder of images was scored as if its classes were garments), a reading model
    that does not read wavelet tokens, a file as ``--out``, fewer than 2 samples (a Fréchet
    distance of one image), sampling options no sampling can follow."""
    if args.samples < 2:
        raise AdatokError(f"--samples is at least 2 (a Fréchet distance needs two images), got {args.samples}")
    check_options(10, [], args.cfg, args.temperature, 0, args.top_p, None, args.min_tokens, args.early_temperature,
                  args.early_tokens, seed=args.seed)  # (the sampling options: before the judge and test split are read)
    if args.limit is not None and args.limit < 2:
        raise AdatokError(f"--limit is at least 2 test images, got {args.limit}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise AdatokError(f"--out {args.out} is a file: give a folder")
    twice = sorted(n for n, c in Counter(names).items() if c > 1)
    if twice:
        raise AdatokError(f"--models names {', '.join(twice)} twice")
    for name in names + ([args.reading] if args.reading else []):
        config = read_json(generator_folder(name))
        lang = config.get("language", {})
        data = config.get("train", {}).get("data", "fashion-mnist")
        if config.get("family") != "generator":
            raise AdatokError(f"{name} is not a generator checkpoint")
        if tuple(lang.get("shape", ())) != (28, 28, 1) or config.get("model", {}).get("classes") != 10 \
                or not _of_fashion_mnist(data):
            raise AdatokError(f"{name} was not trained on Fashion-MNIST ({data}): the judge, the FD-fmnist reference "
                              "and the classes here are Fashion-MNIST's")
        if name in names and config.get("train", {}).get("gen_weight", 1.0) == 0:
            raise AdatokError(f"{name} is a reader (trained with --reader): it cannot generate; give it as --reading")
        if name == args.reading and lang.get("language") not in ("wavelet", "words"):
            raise AdatokError(f"--reading takes a model of wavelet decisions or words; {name} writes "
                              f"{lang.get('language')}")


def main(argv: list[str] | None = None) -> None:
    from ..datasets import load

    ap = argparse.ArgumentParser(description="Measure generators: FD-fmnist, class accuracy, lengths, speed.")
    ap.add_argument("--models", default="fmnist-gpt-wavelet,fmnist-gpt-learned")
    ap.add_argument("--samples", type=count, default=10000)
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    ap.add_argument("--top-p", type=float, default=1.0, help="nucleus: keep ids up to this probability")
    ap.add_argument("--min-tokens", type=int, default=0, help="no END before this many tokens (0: anywhere)")
    ap.add_argument("--early-temperature", type=float, default=1.0,
                    help="the temperature of each sample's first --early-tokens tokens (the rest: --temperature)")
    ap.add_argument("--early-tokens", type=int, default=0, help="tokens drawn at --early-temperature")
    ap.add_argument("--out", default="out/generation")
    ap.add_argument("--threads", type=count, default=1)
    ap.add_argument("--jobs", type=count, default=1, help="models measured at once, one process each")
    ap.add_argument("--batch", type=count, default=64,
                    help="samples drawn at once (images/s in the table: at this batch)")
    ap.add_argument("--limit", type=count, default=None,
                    help="the first N test images only (FD reference, ceilings, floor, reading): a quick check")
    ap.add_argument("--reading", default="", help="a wavelet generator or reader (--reader; decisions or words) whose reading head to measure")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]  # (none: the reading, ceilings and floor only)
    try:  # before anything is loaded or sampled (a file as --out was found after the first model's sampling)
        check_arguments(args, names)
    except AdatokError as exc:
        ap.error(str(exc))
    torch.set_num_threads(args.threads)
    judge = load_judge()
    train, test = load("fashion-mnist", split="train"), load("fashion-mnist", split="test", limit=args.limit)
    test_images, test_labels = np.stack(test.images), test.labels
    test_feats = features(judge, test_images)
    out = Path(args.out)
    jobs = {name: (name, args.samples, args.cfg, args.seed, args.threads, args.limit, args.batch, args.temperature,
                   args.top_p, args.min_tokens, args.early_temperature, args.early_tokens) for name in names}
    done = {name: m for name in names if (m := _measured(out, jobs[name])) is not None}  # an earlier run's
    todo = [jobs[name] for name in names if name not in done]
    if args.jobs > 1 and len(todo) > 1:  # one process a model: sampling is sequential, batch by batch
        with ProcessPoolExecutor(min(args.jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            running = {pool.submit(_measure_named, *job): job for job in todo}
            failed = None
            for future in as_completed(running):  # each kept as it ends: one model's failure loses no other's
                job = running[future]
                try:
                    done[job[0]] = _keep(out, job, future.result())
                except Exception as exc:  # noqa: BLE001 (raised below, once the others are kept)
                    failed = failed or exc
            if failed is not None:
                raise failed
    else:
        for job in todo:
            done[job[0]] = _keep(out, job, _measure_named(*job, judge=judge, test=(test_images, test_feats)))
    models = labelled(names, [done[name] for name in names])
    table = [{"row": m["name"], "params": f"{m['params']:,}", "train_time": f"{m['train_minutes']:.0f} min",
              "fd": m["fd"], "accuracy": m["accuracy"], "mean_length": m["mean_length"],
              "images_per_s": m["images_per_s"]} for m in models]
    rng = np.random.default_rng(args.seed % 2**64)  # (any whole number, as sampling takes it: -1 failed after sampling)
    few = slice(0, args.samples)  # the ceilings: reconstructions of as many test images as samples drawn
    for m in models:  # the ceilings of the token languages
        lang = m["language"]
        budget = row = None
        if lang["language"] in ("wavelet", "words") and lang.get("target"):
            t = lang["target"]  # (PSNR or SSIM: a target of either trains)
            budget = Quality(psnr=t["psnr"]) if t.get("psnr") is not None else Quality(ssim=t["ssim"])
            what = f"PSNR {t['psnr']:g} dB" if t.get("psnr") is not None else f"SSIM {t['ssim']:g}"
            row = f"{lang['tokenizer']} reconstructions at {what} (ceiling)"
        if lang["language"] == "slot":
            k = int(round(m["mean_length"]))
            budget, row = Tokens(k), f"{lang['tokenizer']} reconstructions at {k} tokens (ceiling)"
        if row is not None and not any(r["row"] == row for r in table):  # (one ceiling for models that share it)
            c = ceiling(lang["tokenizer"], test_images[few], budget, judge, test_feats, test_labels[few],
                        **({"fixed_header": True} if lang["language"] != "slot" else {}))
            table.append({"row": row, **c})
    prefixes = {}  # the samples' prefixes beside the same prefixes of test images' sequences
    for m in models:
        if m.get("prefix_accuracy"):
            lang = language_from(m["language"])
            real = [full for full, _ in lang.encode(list(test_images[few]))]  # (a wavelet language's fixed header)
            lengths = list(m["prefix_accuracy"])
            prefixes[m["name"]] = {"lengths": lengths, "samples": m["prefix_accuracy"],
                                   "test": prefix_accuracy(lang, real, test_labels[few], judge, lengths)}
    # as many training images as the models drew samples: FD-fmnist grows as the sets shrink
    pick = rng.choice(len(train.images), min(args.samples, len(train.images)), replace=False)
    floor = fd_fmnist(judge, np.stack([train.images[i] for i in pick]), test_images)
    table.append({"row": f"{len(pick):,} training images vs the test split (floor)", "fd": floor,
                  "accuracy": accuracy(judge, test_images, test_labels)})
    results = {"classes": list(test.classes), "table": table, "models": models, "prefixes": prefixes,
               "command": shlex.join(["python", "-m", "adatok.generate.evaluate",
                                      *(sys.argv[1:] if argv is None else argv)]),
               "note": "FD-fmnist: Fréchet distance of the project's own judge's features (a proxy, not FID). "
                       "Class accuracy: the judge's agreement with the class asked for."}
    if args.reading:
        gen = load_generator(args.reading)
        # the learned tokenizer's prefix classifier reads k = 1..32 tokens of 10.9 bits (one of 1,920
        # codes); a wavelet decision is one of 2 or 3 legal ids: these lengths are k * 10.9
        # decisions (words of n decisions: k * 10.9 / n words), and the arithmetic-coded payload
        # bits they take are measured beside
        tok = gen.lang.tok
        per = getattr(tok, "n", 1)  # decisions per token: a word tokenizer's n, else 1
        lengths = [max(1, round(k * np.log2(1920) / per)) for k in (1, 2, 4, 8, 16, 32)]
        sub = slice(0, 2000)
        bits, read = read_payload(gen.lang, test_images[:500], lengths)
        results["reading"] = {"model": args.reading, "lengths": lengths, "images": len(test_images[sub]),
                              "decisions_per_token": per, "payload_bits": bits, "tokens_read": read,
                              "accuracy": reading_accuracy(gen, test_images[sub], test_labels[sub], lengths)}
    path = write_report(Path(args.out), results)
    for row in table:
        print(row)
    for name, p in prefixes.items():
        print(f"{name}: class accuracy of the first n tokens, samples / test images: "
              + ", ".join(f"{n}: {100 * p['samples'][n]:.1f}% / {100 * p['test'][n]:.1f}%" for n in p["lengths"]))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
