"""Do longer prefixes decode to better images? And is ``Quality`` the shortest prefix?

Four measurements, the first three with the wavelet decoder as it is (quiet roots held: see
``adatok.wavelet.spiht.reconstruct``) and as it was (every coefficient centred,
``hold_roots = False``), on the same token sequences:

1. **Falls**: for every image of a synthetic set (``adatok.eval.synthetic``: flat, saturated,
   gradients, checkerboards, stripes, text-like, binary, noise, tiny, pixel art, dots, photo crops)
   and the bundled sample photos, PSNR at k = 1, 2, 4, ... tokens and at the full length; a fall is
   a step from k to 2k (or to the full length) that loses more than ``--margin`` dB. Counted per
   tokenizer, with the images listed.
2. **Rate-distortion** of the held-out photos (scikit-image and opencv-doc, never tuned on) at
   ``--rates`` bits per pixel: the same bytes, decoded both ways (mean PSNR; an exact image counts
   as 100 dB).
3. **Quality against brute force** (``--brute N`` small images): the length ``encode(...,
   Quality(...))`` returns against the shortest prefix found by decoding every prefix, with the
   exact check and with the bisection alone (as before).
4. **Fashion-MNIST** (``--fashion N`` test images; 0: skip): mean PSNR at 128 and 370 tokens and the
   mean length at ``Quality(psnr=20)`` (the generator's target), as the decoder is. A change to the
   decoder that helps photos and synthetic images can cost these images, whose black backgrounds
   lie at the end of the pixel range (docs/wavelet-language.md, "Longer prefixes").

    python benchmarks/monotonicity.py [--n 300] [--seed 0] [--max-side 64] [--margin 0.5]
        [--rates 0.1,0.25,0.5,1] [--brute 200] [--fashion 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import adatok
from adatok import Bpp, Quality
from adatok.core.imageio import read_image
from adatok.core.metrics import psnr, quality_score
from adatok.datasets import sample_images
from adatok.eval.metrics import mean_psnr  # (an exact decode counts as EXACT_PSNR, 100 dB, as in eval's report)
from adatok.eval.synthetic import synthetic_images

sys.path.insert(0, str(Path(__file__).parent))
from rate_distortion import HOLDOUT_OPENCV, HOLDOUT_SKIMAGE, OPENCV, load_images  # noqa: E402

TOKENIZERS = ("wavelet", "wavelet-lossless")


def falls(tok, images, margin: float) -> list[tuple[str, int, float, float]]:
    """``(name, k, PSNR at k, PSNR at 2k)`` of every fall of more than ``margin`` dB."""
    out = []
    for name, img in images:
        seq, = tok.encode([img])
        ks = [2**j for j in range(64) if 2**j < len(seq)] + [len(seq)]
        q = [psnr(img, tok.decode([seq.prefix(k)])[0]) for k in ks]
        out += [(name, ks[j], q[j], q[j + 1]) for j in range(len(ks) - 1) if q[j + 1] < q[j] - margin]
    return out


def holdout_photos() -> list[tuple[str, np.ndarray]]:
    images = load_images([], list(HOLDOUT_SKIMAGE))
    for name in HOLDOUT_OPENCV:
        path = Path(OPENCV) / name
        if path.exists():
            images.append((name, read_image(path)))
    return images


def brute_force(tok, images, targets) -> tuple[int, int, list]:
    """(cases, cases where Quality was not the shortest, those cases)."""
    cases, wrong = 0, []
    for name, img in images:
        full, = tok.encode([img])
        outs = [tok.decode([full.prefix(k)])[0] for k in range(len(full) + 1)]
        for q in targets:
            goal = q.psnr if q.psnr is not None else q.ssim
            shortest = next((k for k, o in enumerate(outs) if quality_score(img, o, q) >= goal), len(full))
            got = len(tok.encode([img], q)[0])
            cases += 1
            if got != shortest:
                wrong.append((name, q, shortest, got))
    return cases, len(wrong), wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="synthetic images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-side", type=int, default=64)
    ap.add_argument("--margin", type=float, default=0.5, help="dB a step from k to 2k may lose")
    ap.add_argument("--rates", default="0.1,0.25,0.5,1")
    ap.add_argument("--brute", type=int, default=200, help="small images for the Quality check (0: skip)")
    ap.add_argument("--fashion", type=int, default=1000, help="Fashion-MNIST test images (0: skip)")
    args = ap.parse_args(argv)
    synth = synthetic_images(args.n, args.seed, args.max_side)
    photos = sample_images()
    print(f"1. falls of more than {args.margin} dB from k to 2k: {args.n} synthetic images (seed {args.seed}, "
          f"sides 1..{args.max_side}) and {len(photos)} sample photos")
    for name in TOKENIZERS:
        tok = adatok.load(name)
        for hold in (False, True):
            tok.hold_roots = hold
            fs, fp = falls(tok, synth, args.margin), falls(tok, photos, args.margin)
            label = "quiet roots held" if hold else "all centred (before)"
            print(f"  {name:17s} {label:21s} synthetic: {len(fs):3d} falls in {len({f[0] for f in fs}):3d} images; "
                  f"photos: {len(fp)}")
            if hold:
                for f in fs + fp:
                    print(f"      {f[0]:16s} k={f[1]:<6d} {f[2]:6.2f} -> {f[3]:6.2f} dB")
        tok.hold_roots = True
    rates = [float(r) for r in args.rates.split(",")]
    hold_out = holdout_photos()
    print(f"2. mean PSNR of {len(hold_out)} held-out photos, the same bytes decoded both ways")
    for name in TOKENIZERS:
        tok = adatok.load(name)
        for rate in rates:
            seqs = tok.encode([img for _, img in hold_out], Bpp(rate))
            row = []
            for hold in (False, True):
                tok.hold_roots = hold
                row.append(mean_psnr([psnr(img, out) for (_, img), out in zip(hold_out, tok.decode(seqs))])[0])
            tok.hold_roots = True
            print(f"  {name:17s} {rate:5.2f} bpp: before {row[0]:.3f} dB, now {row[1]:.3f} dB "
                  f"({row[1] - row[0]:+.3f})")
    if args.brute:
        small = synthetic_images(args.brute, args.seed + 1, 24)
        targets = (Quality(psnr=30), Quality(psnr=40), Quality(ssim=0.9))
        print(f"3. Quality against brute force: {args.brute} synthetic images (sides 1..24), targets "
              "PSNR 30, 40 dB and SSIM 0.9")
        from adatok.wavelet import tokenizer as wavelet_tokenizer

        exact = wavelet_tokenizer.EXACT_SEARCH
        for name in TOKENIZERS:
            for limit, label in ((0, "bisection alone (before)"), (exact, "bisection + exact check")):
                wavelet_tokenizer.EXACT_SEARCH = limit
                cases, n_wrong, wrong = brute_force(adatok.load(name), small, targets)
                print(f"  {name:17s} {label:25s} shortest in {cases - n_wrong} of {cases} cases")
                for w in wrong[:5] if limit else []:
                    print(f"      {w[0]:16s} {w[1]}: shortest {w[2]}, got {w[3]}")
            wavelet_tokenizer.EXACT_SEARCH = exact
    if args.fashion:
        from adatok.datasets import load

        images = list(load("fashion-mnist", "test", limit=args.fashion))
        print(f"4. Fashion-MNIST: {len(images)} test images")
        for name in TOKENIZERS:
            tok = adatok.load(name)
            full = tok.encode(images)
            at = {k: np.mean([psnr(img, out) for img, out in zip(images, tok.decode([s.prefix(k) for s in full]))])
                  for k in (128, 370)}
            length = np.mean([len(s) for s in tok.encode(images, Quality(psnr=20))])
            print(f"  {name:17s} mean PSNR {at[128]:.3f} dB at 128 tokens, {at[370]:.3f} dB at 370; "
                  f"mean length at Quality(psnr=20) {length:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
