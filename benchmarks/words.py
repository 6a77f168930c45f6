"""Tokens per image at equal quality: wavelet decisions against wavelet words, and words against
byte-pair merging (the measurement that chose the words of ``docs/words.md``).

1. **Decisions and words at equal PSNR** (``wavelet`` and ``wavelet-w8``, fixed header, as a
   generator reads them): the tokens of each image's shortest prefix (for words, its shortest
   whole-word prefix) reaching ``Quality(psnr=25)`` and ``Quality(psnr=30)`` on the first
   ``--fashion`` Fashion-MNIST test images, and ``Quality(psnr=35)`` on the bundled photos
   (``adatok.datasets.load("samples")``, full size).
2. **Which words** (Fashion-MNIST, 25 and 30 dB): words of n = 4, 6, 8, 10 decisions (vocabulary
   3**n) against byte-pair merging learned on decision streams (the merges of the most frequent
   adjacent pair, learned on the first 2,000 decisions of the first ``--train`` training images'
   fixed-header sequences until the vocabulary is 65,536 or no pair occurs twice; each test
   prefix is merged alone). Per candidate: the vocabulary, tokens per image, and a proxy of how
   well a model could predict them: the cross-entropy per image of the test prefixes' tokens
   under their unigram frequencies in the training images' prefixes at the same target (add-1/2
   smoothing). The arithmetic coder's context model, which sees far more than a unigram, codes
   the same decisions in the payload bits given last.

Run it (about 15 minutes on the 2-core development machine):

    .venv/bin/python benchmarks/words.py --fashion 500 --train 300
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from numba import njit

import adatok
from adatok import Quality
from adatok.core.sequence import parse_container
from adatok.datasets import load
from adatok.wavelet.words import DIGIT, WordTokenizer


@njit(cache=True)
def _merge(x, a, b, new):
    """``x`` with every non-overlapping pair ``a, b`` (left to right) replaced by ``new``."""
    out = np.empty_like(x)
    j = 0
    i = 0
    while i < x.shape[0]:
        if i + 1 < x.shape[0] and x[i] == a and x[i + 1] == b:
            out[j] = new
            i += 2
        else:
            out[j] = x[i]
            i += 1
        j += 1
    return out[:j]


def learn_merges(streams: list[np.ndarray], vocab: int) -> list[tuple[int, int]]:
    """Byte-pair merges over token streams (ids 0..8): the most frequent adjacent pair becomes a
    new id, until ``vocab`` ids or no pair occurs twice."""
    x = np.concatenate([np.append(s, -1) for s in streams]).astype(np.int64)  # -1 between streams
    merges: list[tuple[int, int]] = []
    while 9 + len(merges) < vocab:
        a, b = x[:-1], x[1:]
        ok = (a >= 0) & (b >= 0)
        pairs, counts = np.unique(a[ok] * vocab + b[ok], return_counts=True)
        k = int(np.argmax(counts))
        if counts[k] < 2:
            break
        pa, pb = divmod(int(pairs[k]), vocab)
        x = _merge(x, pa, pb, 9 + len(merges))
        merges.append((pa, pb))
    return merges


def apply_merges(streams: list[np.ndarray], merges: list[tuple[int, int]]) -> list[np.ndarray]:
    x = np.concatenate([np.append(s, -1) for s in streams]).astype(np.int64)
    for m, (a, b) in enumerate(merges):
        x = _merge(x, a, b, 9 + m)
    return [p[p >= 0] for p in np.split(x, np.flatnonzero(x == -1))[: len(streams)]]


def words_of(ids: np.ndarray, n: int) -> np.ndarray:
    digits = np.zeros(-(-len(ids) // n) * n, np.int64)
    digits[: len(ids)] = DIGIT[ids]
    return digits.reshape(-1, n) @ (3 ** np.arange(n - 1, -1, -1))


def cross_entropy(train: list[np.ndarray], test: list[np.ndarray], vocab: int) -> float:
    """Bits per test sequence under the unigram frequencies of ``train`` (add-1/2)."""
    counts = np.bincount(np.concatenate(train), minlength=vocab).astype(np.float64) + 0.5
    bits = -np.log2(counts / counts.sum())
    return float(np.mean([bits[t].sum() for t in test]))


def stats(lengths) -> str:
    v = np.asarray(lengths, np.float64)
    return f"{v.mean():8.1f} ({np.percentile(v, 90):6.0f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fashion", type=int, default=500, help="Fashion-MNIST test images (default 500)")
    ap.add_argument("--train", type=int, default=300, help="training images for the merges and frequencies")
    args = ap.parse_args()
    t0 = time.time()
    dec, w8 = adatok.load("wavelet"), adatok.load("wavelet-w8")
    test = load("fashion-mnist", split="test", limit=args.fashion).images
    train = load("fashion-mnist", split="train", limit=args.train).images
    photos = load("samples")
    print(f"1. tokens per image at equal PSNR, fixed header: mean (p90); {args.fashion} Fashion-MNIST test images, "
          f"the {len(photos.images)} bundled photos ({', '.join(photos.ids)}) at full size")
    head = f"{'images':22} {'target':>8} {'decisions':>17} {'words (w8)':>17} {'fewer':>6}  vocabulary"
    print(head)
    print("-" * len(head))
    prefixes = {}
    for label, imgs, target in (("Fashion-MNIST test", test, 25.0), ("Fashion-MNIST test", test, 30.0),
                                ("bundled photos", photos.images, 35.0)):
        q = Quality(psnr=target)
        d = dec.encode(imgs, q, fixed_header=True)
        w = w8.encode(imgs, q, fixed_header=True)
        dl, wl = [len(s) for s in d], [len(s) for s in w]
        print(f"{label:22} {target:6.0f}dB {stats(dl)} {stats(wl)} {np.mean(dl) / np.mean(wl):5.2f}x  "
              f"9 / {w8.vocab_size:,}")
        if label.startswith("Fashion"):
            prefixes[target] = d
    print(f"\n2. which words: Fashion-MNIST, {args.fashion} test images; merges and frequencies from {args.train} "
          "training images")
    full_train = dec.encode(train, fixed_header=True)
    merges = learn_merges([s.ids[:2000] for s in full_train], 65_536)
    sizes = sorted({v for v in (729, 6_561, 9 + len(merges)) if v <= 9 + len(merges)})
    print(f"(byte-pair merging learned {len(merges):,} merges: vocabulary {9 + len(merges):,})")
    head = f"{'target':>6} {'tokens':28} {'vocabulary':>10} {'tokens/image':>12} {'x fewer':>7} {'unigram bits/image':>18}"
    print(head)
    print("-" * len(head))
    for target, d in prefixes.items():
        train_prefixes = [s.ids for s in dec.encode(train, Quality(psnr=target), fixed_header=True)]
        test_ids = [s.ids for s in d]
        base = np.mean([len(s) for s in test_ids])
        rows = [("decisions (wavelet)", 9, test_ids, train_prefixes)]
        for n in (4, 6, 8, 10):
            tok = WordTokenizer(dec, n, f"wavelet-w{n}")
            ws = [s.ids for s in tok.encode(test, Quality(psnr=target), fixed_header=True)]
            rows.append((f"words, n = {n}", 3**n, ws, [words_of(s, n) for s in train_prefixes]))
        for v in sizes:
            m = merges[: v - 9]
            rows.append((f"byte-pair merging", v, apply_merges(test_ids, m), apply_merges(train_prefixes, m)))
        for name, vocab, toks, train_toks in rows:
            mean = np.mean([len(t) for t in toks])
            print(f"{target:4.0f}dB {name:28} {vocab:10,} {mean:12.1f} {base / mean:6.2f}x "
                  f"{cross_entropy(train_toks, toks, vocab):18.0f}")
        payload = np.mean([len(parse_container(s.to_bytes())[1]) * 8 for s in d])
        print(f"{target:4.0f}dB {'(the context-coded payload)':28} {'':10} {'':12} {'':7} {payload:18.0f}")
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
