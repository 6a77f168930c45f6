"""A halting head: each image's prefix length for a quality target, predicted in one pass.

The exact search (``Quality(psnr=..)`` in :class:`~adatok.neural.tokenizer.NeuralTokenizer`)
decodes all K + 1 prefixes of every image. The halting head, as in KARL, instead reads the
image's codes once and predicts the PSNR every prefix length would reach; the length for a target
is the first k whose prediction clears it (plus an optional safety margin). A small MLP over all
K tokens (:class:`~adatok.neural.model.CodeFeatures`: FSQ values, a projection of a k-means first
token's centroid), trained on PSNR curves of training images measured by the frozen
tokenizer (regression in dB, the exact images' ``inf`` clipped at ``CLIP_DB``).

    python -m adatok.neural.halting fashion-mnist-32 [--train-images 5000] [--test-images 1000]

trains one on the Fashion-MNIST train split and compares it with the exact search on the test
split: mean tokens, how many images reach the target, and the time of each.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import Autoencoder, CodeFeatures, train_head
from .tokenizer import count, fashion_mnist_tokenizer, shortest_reaching

#: Curves are clipped here (an exact reconstruction has infinite PSNR).
CLIP_DB = 60.0


class HaltingHead(nn.Module):
    """Codes ``(N, K)`` -> predicted PSNR (dB) of each prefix length ``0..K``: ``(N, K + 1)``."""

    def __init__(self, model: Autoencoder, hidden: int = 256):
        super().__init__()
        cfg = model.cfg
        self.features = CodeFeatures(model)
        self.net = nn.Sequential(nn.Linear(self.features.width, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, cfg.tokens + 1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(codes))


def fit(codes: np.ndarray, curves: np.ndarray, model: Autoencoder, steps: int = 3000, batch: int = 256,
        lr: float = 2e-3, seed: int = 0) -> HaltingHead:
    """Train a halting head on codes ``(N, K)`` and their measured PSNR curves ``(N, K + 1)``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    head = HaltingHead(model)
    c = torch.from_numpy(codes.astype(np.int64))
    y = torch.from_numpy(np.minimum(curves, CLIP_DB).astype(np.float32))
    return train_head(head, len(c), lambda idx: F.smooth_l1_loss(head(c[idx]), y[idx]), steps, batch, lr, 0.01, gen)


@torch.no_grad()
def predict_lengths(head: HaltingHead, codes: np.ndarray, psnr: float, margin: float = 0.0) -> np.ndarray:
    """Each image's predicted shortest prefix whose PSNR clears ``psnr + margin`` (K if none)."""
    return shortest_reaching(head(torch.from_numpy(codes.astype(np.int64))).numpy(), psnr + margin)


def main(argv: list[str] | None = None) -> None:
    from adatok.datasets import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tokenizer", nargs="?", default="fashion-mnist-32")
    ap.add_argument("--train-images", type=count, default=5000)
    ap.add_argument("--test-images", type=count, default=1000)
    ap.add_argument("--steps", type=count, default=3000)
    ap.add_argument("--targets", default="16,18,20")
    ap.add_argument("--margins", default="0,0.5,1")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    tok = fashion_mnist_tokenizer(args.tokenizer)
    train = [np.asarray(im) for im in load("fashion-mnist", split="train", limit=args.train_images).images]
    test = [np.asarray(im) for im in load("fashion-mnist", split="test", limit=args.test_images).images]
    ctrain = tok._codes(train)
    head = fit(ctrain, tok.quality_curves(train, ctrain), tok.model, steps=args.steps)
    print(f"halting head trained on {len(train)} images in {time.time() - t0:.0f} s")

    t = time.perf_counter()
    ctest = tok._codes(test)
    t_codes = time.perf_counter() - t
    t = time.perf_counter()
    curves = tok.quality_curves(test, ctest)  # what the exact search decodes
    t_exact = time.perf_counter() - t
    K = tok.tokens
    print(f"{len(test)} test images; encoder {1000 * t_codes / len(test):.2f} ms an image, then the exact search "
          f"{1000 * t_exact / len(test):.2f} ms (K + 1 = {K + 1} decodes)")
    for target in (float(v) for v in args.targets.split(",")):
        exact = shortest_reaching(curves, target)
        print(f"PSNR {target:g} dB: exact search mean {exact.mean():.2f} tokens, "
              f"{(curves >= target).any(1).mean():.1%} reach it")
        for margin in (float(v) for v in args.margins.split(",")):
            t = time.perf_counter()
            pred = predict_lengths(head, ctest, target, margin)
            t_head = time.perf_counter() - t
            reached = curves[np.arange(len(test)), pred] >= target
            print(f"  halting head, margin {margin:g} dB: mean {pred.mean():.2f} tokens, {reached.mean():.1%} reach "
                  f"it, |k - exact| mean {np.abs(pred - exact).mean():.2f}, {1000 * t_head / len(test):.3f} ms an image")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
