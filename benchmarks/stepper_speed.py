"""Speed of the wavelet steppers (``tok.stepper``) against one-shot decoding, measured in the same run.

For ``wavelet`` and ``wavelet-lossless``, three cases, each stepped token by token the way a
sampling loop does it (``next_pos()``, ``legal()``, then ``push(ids)``, once per token):

* ``28x28, B=1``: the full sequence of one Fashion-MNIST test image (``fixed_header=True``);
* ``28x28, B=64``: the full sequences of 64 Fashion-MNIST test images, one stepper for all (a
  sequence that has ended gets -1);
* ``256x256, B=1``: the first 100,000 tokens of ``skimage.data.astronaut()`` resized to 256x256
  with Pillow's Lanczos filter.

Against: ``decode`` of the same sequences (the same prefixes) in one call. The two are timed in
turn (stepping, decoding, stepping, ...), ``--repeat`` times, and the medians are compared:
``ratio = stepping / decoding``. The per-step cost is also given over the first and the last 10% of
the steps (for B=64, of the shortest sequence, so that every step is over the whole batch):
``last/first`` near 1 means the cost per token does not grow along the sequence. Run it:

    .venv/bin/python benchmarks/stepper_speed.py --repeat 5
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


def step_through(tok, starts, ids: np.ndarray) -> tuple[float, np.ndarray, object]:
    """Step ``ids`` (B x n, -1 past a sequence's end) through a stepper started from ``starts``:
    total seconds, seconds of each step, and the stepper."""
    st = tok.stepper(starts)
    n = ids.shape[1]
    times = np.empty(n)
    t0 = time.perf_counter()
    for k in range(n):
        t = time.perf_counter()
        st.next_pos()
        st.legal()
        st.push(ids[:, k])
        times[k] = time.perf_counter() - t
    return time.perf_counter() - t0, times, st


def case(tok, seqs, starts, limit: int | None, repeat: int) -> dict:
    if limit is not None:
        seqs = [s.prefix(limit) for s in seqs]
    n = max(len(s) for s in seqs)
    ids = np.full((len(seqs), n), -1, np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s.ids
    plain = [adatok.TokenSequence(s.ids, s.pos, s.shape, s.tokenizer, s.version, s.params, s.pos_fields)
             for s in seqs]  # no cached decoder state: decode replays, as it does for a loaded sequence
    step_through(tok, starts, ids[:, : min(n, 50)])  # warm
    tok.decode(plain)
    stepped, decoded, per_step = [], [], []
    for _ in range(repeat):
        total, times, st = step_through(tok, starts, ids)
        stepped.append(total)
        per_step.append(times)
        t = time.perf_counter()
        out = tok.decode(plain)
        decoded.append(time.perf_counter() - t)
    made = st.sequences()
    assert all(np.array_equal(m.ids, s.ids) for m, s in zip(made, seqs))
    assert all(np.array_equal(a, b) for a, b in zip(st.images(), out))
    shortest = min(len(s) for s in seqs)
    tenth = max(1, shortest // 10)
    times = np.median(np.stack(per_step), axis=0)
    return dict(tokens=sum(len(s) for s in seqs), steps=n, step=statistics.median(stepped),
                decode=statistics.median(decoded), first=times[:tenth].mean(),
                last=times[shortest - tenth: shortest].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per timing; the median is reported (default 5)")
    args = ap.parse_args()
    import skimage.data

    print(f"python {platform.python_version()}, numpy {np.__version__}, adatok {adatok.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}; median of {args.repeat} runs, stepping and decoding in turn")
    fm = load("fashion-mnist", split="test", limit=64).images
    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS))
    head = (f"{'tokenizer':17} {'case':14} {'tokens':>8} {'steps':>7} {'stepping ms':>11} {'decode ms':>9} "
            f"{'ratio':>6} {'us/step first 10%':>17} {'last 10%':>8} {'last/first':>10}")
    print(head)
    print("-" * len(head))
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        cases = [
            ("28x28, B=1", tok.encode(fm[:1], fixed_header=True), [fm[0].shape], None),
            ("28x28, B=64", tok.encode(fm, fixed_header=True), [im.shape for im in fm], None),
            ("256x256, B=1", tok.encode([photo], fixed_header=True), [photo.shape], 100_000),
        ]
        for label, seqs, starts, limit in cases:
            r = case(tok, seqs, starts, limit, args.repeat)
            print(f"{name:17} {label:14} {r['tokens']:8d} {r['steps']:7d} {r['step'] * 1e3:11.1f} "
                  f"{r['decode'] * 1e3:9.2f} {r['step'] / r['decode']:6.1f} {r['first'] * 1e6:17.2f} "
                  f"{r['last'] * 1e6:8.2f} {r['last'] / r['first']:10.2f}")
    print("stepping: next_pos(), legal() and push() once per token (B=64: per step, for the whole batch); "
          "decode: one call on the same sequences.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
