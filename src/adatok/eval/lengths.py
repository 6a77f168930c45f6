"""Length per image: what a quality target costs each image, against one fixed size for all.

With a quality target (``Quality(psnr=..)``, ``Quality(ssim=..)``, optionally inside the region
of interest), a tokenizer picks each image's own shortest prefix. The alternative a pipeline
without adaptive length has is one fixed size for every image; the smallest fixed size that
brings *every* image to the target is the largest of the per-image sizes. The saving is that
fixed size over the mean adaptive size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.budget import Quality
from ..core.metrics import quality_mask, quality_score


@dataclass(frozen=True)
class LengthReport:
    """Per-image chosen lengths under one quality target, and the fixed-size comparison."""

    target: Quality
    names: tuple[str, ...]
    tokens: np.ndarray  # chosen tokens per image
    nbytes: np.ndarray  # bytes of each image's .atk file
    bpp: np.ndarray  # bits per pixel of each file
    quality: np.ndarray  # reached quality per image (over the region when the target says so)
    reached: np.ndarray  # bool per image

    @property
    def fixed_tokens(self) -> int:
        """The one token count that brings every image to the target: the largest chosen one."""
        return int(self.tokens.max())

    @property
    def fixed_bpp(self) -> float:
        """The one rate (bits per pixel) that brings every image to the target."""
        return float(self.bpp.max())

    @property
    def token_saving(self) -> float:
        """Fixed token count over the mean adaptive one (1.0: no saving)."""
        return self.fixed_tokens / max(float(self.tokens.mean()), 1e-12)

    @property
    def bpp_saving(self) -> float:
        """Fixed rate over the mean adaptive rate (1.0: no saving)."""
        return self.fixed_bpp / max(float(self.bpp.mean()), 1e-12)

    def summary(self) -> dict:
        """Distribution of lengths and sizes, and the savings, as plain numbers."""
        def dist(v: np.ndarray) -> dict:
            q = np.percentile(v, [0, 25, 50, 75, 100])
            return {"mean": float(v.mean()), "min": float(q[0]), "p25": float(q[1]), "median": float(q[2]),
                    "p75": float(q[3]), "max": float(q[4])}

        return {"images": len(self.names), "reached": int(self.reached.sum()), "tokens": dist(self.tokens),
                "bpp": dist(self.bpp), "fixed_tokens": self.fixed_tokens, "fixed_bpp": self.fixed_bpp,
                "token_saving": self.token_saving, "bpp_saving": self.bpp_saving}


def length_report(tokenizer, images: Sequence[np.ndarray], target: Quality, names: Sequence[str] | None = None,
                  roi: Sequence[np.ndarray | None] | None = None) -> LengthReport:
    """Encode ``images`` under ``target`` (one call: each image gets its own shortest prefix) and
    measure what each got. ``roi`` steers a tokenizer that steers by region (``supports_roi``); one
    that does not runs as without (it is still needed, and refused, for ``region="roi"``)."""
    steer = roi is not None and (getattr(tokenizer, "supports_roi", False) or target.region == "roi")
    seqs = tokenizer.encode(list(images), target, roi=roi) if steer else tokenizer.encode(list(images), target)
    outs = tokenizer.decode(seqs)
    tokens, nbytes, bpp, qual = [], [], [], []
    for i, (img, seq, out) in enumerate(zip(images, seqs, outs, strict=True)):
        img = np.asarray(img).reshape(out.shape)
        mask = quality_mask(target, roi[i] if roi is not None else None, f"image {i}")
        q = quality_score(img, out, target, mask)
        data = seq.to_bytes()
        tokens.append(len(seq))
        nbytes.append(len(data))
        bpp.append(8 * len(data) / (img.shape[0] * img.shape[1]))
        qual.append(q)
    goal = target.psnr if target.psnr is not None else target.ssim
    qual_a = np.array(qual, dtype=np.float64)
    return LengthReport(target, tuple(names or [f"image {i}" for i in range(len(images))]),
                        np.array(tokens), np.array(nbytes), np.array(bpp), qual_a, qual_a >= goal - 1e-9)
