"""Sampling speed of the generators, with and without the key/value cache, in one run.

For each generator: ``--n`` class-conditional samples (guidance ``--cfg``, batch ``--batch``)
with the cache, then the same samples without it (every step recomputes the whole prefix); images
per second of each and their ratio. The two runs give the same images (checked).

    python benchmarks/generate_speed.py [--models fmnist-gpt-wavelet,fmnist-gpt-learned,fmnist-gpt-pixels]
        [--n 64] [--batch 64] [--cfg 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from adatok.generate.sample import load_generator, sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="fmnist-gpt-wavelet,fmnist-gpt-learned,fmnist-gpt-pixels")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = [i % 10 for i in range(args.n)]
    print(f"{args.n} samples a run, batch {args.batch}, guidance {args.cfg}, {args.threads} thread(s)")
    for name in [m for m in args.models.split(",") if m]:
        gen = load_generator(name)
        rates, images = [], []
        for cache in (True, False):
            t0 = time.perf_counter()
            seqs, imgs = sample(gen, labels, seed=0, batch=args.batch, cfg=args.cfg, kv_cache=cache)
            rates.append(args.n / (time.perf_counter() - t0))
            images.append(imgs)
        same = all(np.array_equal(a, b) for a, b in zip(*images))
        mean_len = np.mean([len(s) for s in seqs])
        print(f"{name:22s} mean length {mean_len:7.1f}: with cache {rates[0]:7.2f} images/s, without "
              f"{rates[1]:7.2f} images/s, ratio {rates[0] / rates[1]:5.1f}x (same images: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
