"""The measurements behind docs/reliability.md (each prints its numbers):

    python benchmarks/reliability.py flat     # flat gray images 1x1..64x64: falls of PSNR at a doubling
    python benchmarks/reliability.py crops    # 400 crops of the sample photos: the same
    python benchmarks/reliability.py memory   # address space a decode takes, per coefficient and token
    python benchmarks/reliability.py batch    # the learned tokenizer, batched against one by one

``flat``: every shape from 1x1 to 64x64, gray, at value 85 and at one value drawn per shape (seed
0); a fall is a step from k to 2k tokens (k = 1, 2, 4, ..., and the full length) that loses more
than 0.5 dB. ``memory``: each container decoded in a fresh process (after one small decode of each
kind, so that numba's functions are loaded), the peak address space over what it had before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

import adatok
from adatok.core.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _worst_fall(tok, img) -> float:
    (seq,) = tok.encode([img])
    ks = [2**j for j in range(40) if 2**j < len(seq)] + [len(seq)]
    q = [psnr(img, tok.decode([seq.prefix(k)])[0]) for k in ks]
    return max([q[j] - q[j + 1] for j in range(len(ks) - 1)] + [0.0])


def flat() -> None:
    for name in ("wavelet", "wavelet-lossless"):
        tok, rng = adatok.load(name), np.random.default_rng(0)
        falls, n = [], 0
        for h in range(1, 65):
            for w in range(1, 65):
                for v in (85, int(rng.integers(0, 256))):
                    n += 1
                    worst = _worst_fall(tok, np.full((h, w), v, np.uint8))
                    if worst > 0.5:
                        falls.append(((h, w), v, round(worst, 2)))
        print(f"{name}: {len(falls)} of {n} flat gray images lose more than 0.5 dB at some doubling: {falls}")


def crops() -> None:
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.camera(),
              skimage.data.rocket()]
    for name in ("wavelet", "wavelet-lossless"):
        tok, rng = adatok.load(name), np.random.default_rng(0)
        worst = []
        for i in range(400):
            p = photos[i % 5]
            h, w = int(rng.integers(8, 65)), int(rng.integers(8, 65))
            y, x = int(rng.integers(0, p.shape[0] - h)), int(rng.integers(0, p.shape[1] - w))
            img = p[y : y + h, x : x + w]
            worst.append(_worst_fall(tok, img[..., 0] if i % 2 and img.ndim == 3 else img))
        worst = np.array(worst)
        print(f"{name}: {(worst > 0.5).sum()} of 400 crops (8 to 64 pixels a side) lose more than 0.5 dB at some "
              f"doubling; the largest fall {worst.max():.2f} dB")


_CHILD = r"""
import json, sys
import numpy as np
import adatok
from adatok import TokenSequence
from adatok.core.registry import maker

def vm(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

for name in ("wavelet", "wavelet-lossless"):
    tok = adatok.load(name)
    img = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    data = tok.encode([img])[0].to_bytes()
    for part in (data, data[: len(data) // 2]):
        seq = TokenSequence.from_bytes(part)
        tok.decode([seq])
data = open(sys.argv[1], "rb").read()
before = vm("VmSize")
seq = TokenSequence.from_bytes(data)
maker(seq).decode([seq])
print(json.dumps({"extra": vm("VmPeak") - before, "tokens": len(seq)}))
"""


def memory() -> None:
    import skimage.data

    from fuzz import craft
    from adatok.wavelet.tokenizer import max_coded_tokens, max_stream_tokens
    from adatok.wavelet.transforms import default_levels

    wl = adatok.load("wavelet-lossless")
    astro = skimage.data.astronaut()
    cases = {}
    for side in (256, 512, 1024):
        img = np.ascontiguousarray(np.tile(astro, (2, 2, 1))[:side, :side])
        full = wl.encode([img])[0].to_bytes()
        base = craft.fields_of(full)
        cases[f"empty payload {side}x{side}x3"] = craft.frame(replace(base, payload=b"", payload_len=0, n_tokens=0))
        cases[f"photo {side}x{side}x3, whole"] = full
        cases[f"photo {side}x{side}x3, cut at 99%"] = full[: len(full) * 99 // 100]
        params = dict(base.params) | {"nmax": wl.top_plane((side, side, 3)), "levels": default_levels((side, side))}
        ones = b"\xfe" + b"\xff" * 1023
        cases[f"hostile {side}x{side}x3: 1 kB of ones, every token it can code"] = craft.frame(replace(
            base, params=params, payload=ones, payload_len=len(ones),
            n_tokens=min(max_coded_tokens(len(ones)), max_stream_tokens(side * side * 3, params["nmax"]))))
    tmp = ROOT / "out" / "reliability-memory.atk"
    tmp.parent.mkdir(exist_ok=True)
    print(f"{'container':60s} {'bytes':>9s} {'tokens':>10s} {'MB':>8s} {'B/coef':>7s} {'B/token':>8s}")
    print("(B/token: over the empty payload of the same shape)")
    empty = {}
    for label, data in cases.items():
        tmp.write_bytes(data)
        out = json.loads(subprocess.run([sys.executable, "-c", _CHILD, str(tmp)], capture_output=True, text=True,
                                        check=True, env={"MALLOC_ARENA_MAX": "2", **dict(__import__("os").environ)}
                                        ).stdout)
        h = craft.fields_of(data).shape
        coefs = h[0] * h[1] * 3
        if label.startswith("empty"):
            empty[h[0]] = out["extra"]
        base_mb = empty.get(h[0])
        per_token = (out["extra"] - base_mb) / out["tokens"] if base_mb is not None and out["tokens"] else float("nan")
        print(f"{label:60s} {len(data):9d} {out['tokens']:10d} {out['extra'] / 2**20:8.1f} "
              f"{out['extra'] / coefs:7.1f} {per_token:8.1f}")
    tmp.unlink()


def batch() -> None:
    import torch

    from adatok.datasets import load

    torch.set_num_threads(1)
    tok = adatok.load("fashion-mnist-32")
    imgs = list(load("fashion-mnist", "test", limit=1024))
    seqs = tok.encode(imgs)
    single = [tok.encode([im])[0] for im in imgs]
    ids = sum(not np.array_equal(a.ids, b.ids) for a, b in zip(seqs, single))
    many = tok.decode(seqs)
    alone = [tok.decode([s])[0] for s in seqs]
    diff = [int((a != b).sum()) for a, b in zip(many, alone)]
    top = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(many, alone))
    print(f"1,024 Fashion-MNIST test images: ids differ batched/alone in {ids}; decoded pixels differ in "
          f"{sum(d > 0 for d in diff)} images ({sum(diff)} pixels, by at most {top} level)")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    jobs = {"flat": flat, "crops": crops, "memory": memory, "batch": batch}
    if what not in jobs:
        sys.exit(__doc__)
    jobs[what]()
