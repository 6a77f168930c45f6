"""The legal-word mask of the word steppers (``wavelet-w8``, ``wavelet-lossless-w8``) against one
decision step of the decision steppers, measured in the same run.

For each word tokenizer, three cases (as ``benchmarks/stepper_speed.py``), each grown the way a
sampling loop grows it:

* ``28x28, B=1``: the full sequence of one Fashion-MNIST test image (``fixed_header=True``);
* ``28x28, B=64``: the full sequences of 64 Fashion-MNIST test images, one stepper for all;
* ``256x256x3, B=1``: the first 100,000 decisions (12,500 words) of ``skimage.data.astronaut()``
  resized to 256x256 with Pillow's Lanczos filter.

Timed in turn, ``--repeat`` times (medians of the process's CPU time, which other work on a shared
machine disturbs less than the wall clock; all of it runs in one thread): the decision stepper stepping the decisions
(``next_pos()``, ``legal()``, ``push()`` once per decision), and the word stepper stepping the
words of the same sequences (``next_pos()``, ``legal()``, ``push()`` once per word), with the
time of ``legal()`` alone (the mask: every path of 8 decisions below each sequence's state) kept
apart. Printed per step: the decision step, the mask, ``mask / decision step``, the whole word
step, and ``word step / 8 decision steps`` (the cost of the grammar per decision, words against
decisions); then the mean number of legal words and of paths walked per sequence and step. Run it:

    .venv/bin/python benchmarks/words_speed.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
from PIL import Image

import adatok
from adatok.datasets import load


def table(seqs) -> np.ndarray:
    """The ids of ``seqs`` as a B x n array, -1 past each one's end."""
    ids = np.full((len(seqs), max(len(s) for s in seqs)), -1, np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s.ids
    return ids


def decision_steps(tok, starts, ids: np.ndarray) -> float:
    """Seconds per step, stepping ``ids`` the way a sampling loop does."""
    st = tok.stepper(starts)
    t0 = time.process_time()
    for k in range(ids.shape[1]):
        st.next_pos()
        st.legal()
        st.push(ids[:, k])
    return (time.process_time() - t0) / ids.shape[1]


def word_steps(tok, starts, ids: np.ndarray) -> tuple[float, float, float, float]:
    """Seconds per word step and of its ``legal()`` alone; legal words and paths per sequence-step."""
    st = tok.stepper(starts)
    mask_time, legal_words = 0.0, 0
    t0 = time.process_time()
    for k in range(ids.shape[1]):
        st.next_pos()
        t = time.process_time()
        mask = st.legal()
        mask_time += time.process_time() - t
        legal_words += int(mask.sum())
        st.push(ids[:, k])
    total = time.process_time() - t0
    live = int((ids >= 0).sum())
    return total / ids.shape[1], mask_time / ids.shape[1], legal_words / live, st.walked / live


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per timing; the median is reported (default 5)")
    args = ap.parse_args()
    import skimage.data

    print(f"python {platform.python_version()}, numpy {np.__version__}, adatok {adatok.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}; CPU time, median of {args.repeat} runs, decisions and words "
          "in turn")
    fm = load("fashion-mnist", split="test", limit=64).images
    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS))
    head = (f"{'tokenizer':20} {'case':15} {'words':>6} {'decision us':>11} {'mask us':>8} {'mask/dec':>8} "
            f"{'word us':>8} {'word/8 dec':>10} {'legal words':>11} {'paths':>6}")
    print(head)
    print("-" * len(head))
    for name in ("wavelet-w8", "wavelet-lossless-w8"):
        words = adatok.load(name)
        dec = words.base
        cases = [("28x28, B=1", fm[:1], None), ("28x28, B=64", fm, None), ("256x256x3, B=1", [photo], 100_000)]
        for label, imgs, limit in cases:
            dseqs = dec.encode(imgs, fixed_header=True)
            if limit is not None:
                dseqs = [s.prefix(limit) for s in dseqs]
            wseqs = [words.from_decisions(s) for s in dseqs]
            starts = [im.shape for im in imgs]
            dids, wids = table(dseqs), table(wseqs)
            decision_steps(dec, starts, dids[:, :200])  # warm
            word_steps(words, starts, wids[:, :25])
            d_runs, w_runs = [], []
            for _ in range(args.repeat):
                d_runs.append(decision_steps(dec, starts, dids))
                w_runs.append(word_steps(words, starts, wids))
            d = statistics.median(d_runs)
            w, m = (statistics.median(r[i] for r in w_runs) for i in (0, 1))
            legal, paths = w_runs[-1][2:]
            print(f"{name:20} {label:15} {wids.shape[1]:6d} {d * 1e6:11.2f} {m * 1e6:8.1f} {m / d:8.1f} "
                  f"{w * 1e6:8.1f} {w / (8 * d):10.2f} {legal:11.0f} {paths:6.1f}")
    print("per step (B=64: for the whole batch): decision us = next_pos(), legal(), push() of the decision "
          "stepper; mask us = legal() of the word stepper; word us = its next_pos(), legal(), push(); "
          "legal words, paths: per sequence and word step.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
