"""Measure a learned tokenizer on the Fashion-MNIST test split (what the README reports).

    python -m adatok.neural.measure fashion-mnist-32 [--limit N] [--quality-images N]

* PSNR and SSIM of the decoded prefixes at k = 1, 2, 4, 8, 16, 32 (mean over the images), with the
  ``.atk`` size of each prefix in bits per pixel (header included) and the payload alone, and the
  share of the pixels black in the original (0) that decode grey (above 0);
* the wavelet tokenizer at the same token-stream size (``Bpp(x, header=False)`` with x the bits per
  pixel of the learned prefix's payload, its whole bytes, as ``adatok eval --stream`` counts them:
  container headers, 60-odd bytes on a 28x28 image, excluded);
* a quality target: mean tokens per image with ``Quality(psnr=T)`` against the fixed length
  that brings every image to T (the shortest fixed k at which all of them reach it);
* codebook health: for each slot, the share of the codes it could use on these images that it
  uses, and its perplexity (``adatok.neural.trainer.code_usage``); a warning under 10%.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from .tokenizer import count, fashion_mnist_tokenizer


def main(argv: list[str] | None = None) -> None:
    import adatok
    from adatok.core.budget import exact_bpp
    from adatok.core.sequence import header_size
    from adatok.neural.tokenizer import shortest_reaching
    from adatok.neural.trainer import prefix_lengths
    from adatok.core.metrics import psnr, ssim
    from adatok.datasets import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tokenizer", nargs="?", default="fashion-mnist-32")
    ap.add_argument("--limit", type=count, default=None, help="test images for PSNR/SSIM per k (default all)")
    ap.add_argument("--quality-images", type=count, default=1000)
    ap.add_argument("--wavelet-images", type=count, default=300)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    tok = fashion_mnist_tokenizer(args.tokenizer)
    imgs = load("fashion-mnist", split="test", limit=args.limit).images
    seqs = tok.encode(imgs)
    K = tok.tokens
    ks = prefix_lengths(K)
    print(f"{tok.name} ({tok.version}), {len(imgs)} test images, vocabulary {tok.vocab_size} "
          f"({tok.bits} bits a token)")
    print("k | PSNR dB | SSIM | .atk bpp | payload bpp | black decoded grey")
    black = np.stack(imgs) == 0
    for k in ks:
        rec = tok.decode([s.prefix(k) for s in seqs])
        p = float(np.mean([psnr(a, b) for a, b in zip(imgs, rec)]))
        q = float(np.mean([ssim(a, b) for a, b in zip(imgs, rec)]))
        nbytes = len(seqs[0].prefix(k).to_bytes())
        grey = float((np.stack(rec)[black] > 0).mean())
        print(f"{k} | {p:.2f} | {q:.4f} | {8 * nbytes / 784:.3f} | {k * tok.bits / 784:.3f} | {grey:.1%}")

    from adatok.neural.trainer import USAGE_WARNING, code_usage

    health = code_usage(np.stack([s.ids for s in seqs]), tok.vocab_size)
    print(f"codebook health on {len(imgs)} images (usage: share of the min(vocabulary, images) codes a slot "
          "could use; perplexity: exp of its code entropy):")
    print(f"  slot 0: usage {health['usage_first']:.1%}, perplexity {health['perplexity_first']:.0f}")
    print(f"  slots 1..{K - 1}: usage mean {health['usage_rest_mean']:.1%} (min {health['usage_rest_min']:.1%}), "
          f"perplexity mean {health['perplexity_rest_mean']:.0f}")
    print("  per slot: " + " ".join(f"{u:.0%}/{p:.0f}" for u, p in zip(health["usage"], health["perplexity"])))
    if health["collapsed"]:
        print(f"  warning: slots {health['collapsed']} are under {USAGE_WARNING:.0%}: codebook collapse")

    wav = adatok.load("wavelet")
    sub = imgs[: args.wavelet_images]
    print(f"wavelet at the same token-stream size, headers excluded ({len(sub)} images):")
    for k in ks:
        data = seqs[0].prefix(k).to_bytes()  # (the learned stream has one size for every image)
        budget = exact_bpp(len(data) - header_size(data), (28, 28), header=False)  # its whole bytes
        x = budget.x
        try:
            wseqs = wav.encode(sub, budget)
            wp = float(np.mean([psnr(a, b) for a, b in zip(sub, wav.decode(wseqs))]))
            wt = float(np.mean([len(s) for s in wseqs]))
            mine = float(np.mean([psnr(a, b) for a, b in zip(sub, tok.decode([s.prefix(k) for s in seqs[: len(sub)]]))]))
            print(f"  {x:.3f} bpp: learned k={k} {mine:.2f} dB, wavelet {wp:.2f} dB ({wt:.0f} tokens)")
        except adatok.AdatokError as exc:
            print(f"  {x:.3f} bpp: wavelet: {exc}")

    qi = [np.asarray(im) for im in imgs[: args.quality_images]]
    # every prefix's PSNR, decoded once: Quality(psnr=T) picks shortest_reaching(curves, T) from these
    curves = tok.quality_curves(qi, np.stack([s.ids for s in seqs[: len(qi)]]))
    for target in (16.0, 18.0, 20.0, 22.0):
        reach = curves >= target
        ok = reach.any(1)  # images that reach the target at some length (the others get all K tokens)
        chosen = shortest_reaching(curves, target)
        # over every image, as Quality gives them (the mean over those that reach it alone flattered: 2.49
        # where Quality(psnr=16) gives 2.84)
        mean_tokens = float(chosen.mean())
        among = f", {float(chosen[ok].mean()):.2f} among the {int(ok.sum())} that reach it" if ok.any() else ""
        fixed = next((k for k in range(K + 1) if reach[ok, k].all()), None) if ok.any() else None
        note = "" if ok.all() else f" ({(~ok).sum()} images never reach it: all {K} tokens)"
        ratio = f"{fixed / mean_tokens:.2f}x fewer" if fixed and mean_tokens else "n/a"
        print(f"Quality(psnr={target:g}) on {len(qi)} images: mean {mean_tokens:.2f} tokens{among}; fixed length "
              f"for every image that reaches it: {fixed} -> {ratio}{note}")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
