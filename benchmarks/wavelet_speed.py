"""Speed of the wavelet tokenizers beside Pillow's JPEG 2000 (OpenJPEG), measured in the same process.

The image is a 768 x 512 (W x H) RGB photo. By default it is ``skimage.data.astronaut()``
(512 x 512) resized to 768 x 512 with Pillow's Lanczos filter. ``--image hubble`` uses a
512 x 768 crop of ``skimage.data.hubble_deep_field()`` instead. The script:

1. warms numba and reports that first call on its own (loading the on-disk cache, or compiling);
2. times, as the median of ``--repeat`` runs, the encode and decode of ``wavelet`` and
   ``wavelet-lossless`` at full length, at 1/8 of the full token count and at ``Bpp(1.0)``;
3. times Pillow's JPEG 2000 on the same image beside each row:
   - ``wavelet``, full: irreversible 9/7 with ``mct=1``, ``quality_mode='rates'`` and
     ``quality_layers=[1]`` (no truncation);
   - ``wavelet-lossless``, full: reversible 5/3, lossless;
   - the 1/8 rows: the same wavelet truncated at the rate whose PSNR is closest to the adatok
     prefix's PSNR, found by bisection (``--j2k-rate`` fixes it instead);
   - the 1 bpp rows (``Bpp(1.0)``, the budget of issue 4's speed target): the same wavelet at
     ``quality_layers=[24]``, 1 bit per pixel;
4. when ``TokenSequence.to_bytes`` / ``TokenSequence.from_bytes`` exist, also times encode to
   bytes and decode from bytes. Pillow's rows are the same, since JPEG 2000 always makes bytes.
   These four are timed in turn (adatok encode, Pillow encode, adatok decode, Pillow decode, and
   again), so that a load that comes and goes on a shared machine slows both alike; the Pillow
   times of every row of that budget are the ones of this pairing. A last line per budget gives
   encode to bytes plus decode from bytes against Pillow's encode plus decode.

It prints a table with the times, ratio = adatok / Pillow (above 1: adatok is slower), each decode's
PSNR, and the byte sizes. Timing claims belong here, never in tests. Run it:

    .venv/bin/python benchmarks/wavelet_speed.py --repeat 5
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, features

import adatok
from adatok import Bpp, TokenSequence, Tokens
from adatok.core.metrics import psnr

W, H = 768, 512


def load_image(which: str) -> tuple[np.ndarray, str]:
    import skimage.data

    if which == "astronaut":
        src = skimage.data.astronaut()
        img = np.asarray(Image.fromarray(src).resize((W, H), Image.Resampling.LANCZOS))
        what = "skimage.data.astronaut() 512x512, resized with Pillow (LANCZOS) to 768x512 (W x H)"
    else:
        src = skimage.data.hubble_deep_field()
        y0, x0 = (src.shape[0] - H) // 2, (src.shape[1] - W) // 2
        img = src[y0:y0 + H, x0:x0 + W]
        what = f"skimage.data.hubble_deep_field() {src.shape[1]}x{src.shape[0]}, centre crop 768x512 (W x H)"
    img = np.ascontiguousarray(img, dtype=np.uint8)
    assert img.shape == (H, W, 3)
    return img, what


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (after none: warm-up is the caller's job), and the last result."""
    return paired_times([fn], repeat)[0]


def paired_times(fns: list[Callable[[], object]], repeat: int) -> list[tuple[float, object]]:
    """The median wall time of ``repeat`` calls of each of ``fns`` (and its last result), the calls
    taken in turn (a, b, c, a, b, c, ...), so that a machine whose load changes over the run slows
    them alike and their ratios hold."""
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - t)
    return [(statistics.median(ts), out) for ts, out in zip(times, outs)]


# --- Pillow JPEG 2000 ------------------------------------------------------------------------------


def j2k_encode(img: np.ndarray, lossless: bool, rate: float | None) -> bytes:
    buf = io.BytesIO()
    if lossless and rate is None:
        Image.fromarray(img).save(buf, "JPEG2000", irreversible=False)  # reversible 5/3, lossless
    else:
        Image.fromarray(img).save(buf, "JPEG2000", irreversible=not lossless, mct=1, quality_mode="rates",
                                  quality_layers=[1 if rate is None else rate])
    return buf.getvalue()


def j2k_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def j2k_rate_for_psnr(img: np.ndarray, lossless: bool, target: float) -> tuple[float, float]:
    """The compression ratio (``quality_layers`` rate) whose PSNR is closest to ``target``.

    Bisection on log(rate): PSNR falls as the rate rises.
    """
    lo, hi = np.log(1.0), np.log(2000.0)
    best = (float("inf"), 1.0, 0.0)
    for _ in range(14):
        mid = (lo + hi) / 2
        rate = float(np.exp(mid))
        p = psnr(img, j2k_decode(j2k_encode(img, lossless, rate)))
        best = min(best, (abs(p - target), rate, p))
        if p > target:
            lo = mid
        else:
            hi = mid
    return best[1], best[2]


# --- the table -------------------------------------------------------------------------------------


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:9.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per timing; the median is reported (default 5)")
    ap.add_argument("--image", choices=["astronaut", "hubble"], default="astronaut",
                    help="astronaut resized to 768x512 (default) or a 768x512 crop of the Hubble deep field")
    ap.add_argument("--j2k-rate", type=float, default=None,
                    help="JPEG 2000 compression ratio for the 1/8 rows (default: matched to adatok's PSNR)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if not features.check("jpg_2000"):
        print("this Pillow has no JPEG 2000 (OpenJPEG) support; the baseline cannot run", file=sys.stderr)
        return 2

    img, what = load_image(args.image)
    print(f"image: {what}, RGB")
    print(f"python {platform.python_version()}, numpy {np.__version__}, Pillow {Image.__version__} "
          f"(OpenJPEG {features.version('jpg_2000')}), adatok {adatok.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"median of {args.repeat} runs; ratio = adatok time / Pillow time (above 1: adatok is slower)")

    # 1. numba warm-up: the very first calls load the compiled coder from numba's cache (or compile it)
    has_bytes = hasattr(TokenSequence, "to_bytes") and hasattr(TokenSequence, "from_bytes")
    tiny = img[:8, :8]
    first = {}
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        t = time.perf_counter()
        (seq_tiny,) = tok.encode([tiny])
        first["encode"] = first.get("encode", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        tok.decode([seq_tiny])
        first["decode"] = first.get("decode", 0.0) + time.perf_counter() - t
        if has_bytes:  # the byte paths may compile their own specialisations (whole bytes, and a cut)
            t = time.perf_counter()
            blob = seq_tiny.to_bytes()
            TokenSequence.from_bytes(blob)
            TokenSequence.from_bytes(blob[: len(blob) - 1])
            first["bytes"] = first.get("bytes", 0.0) + time.perf_counter() - t
    print("numba first calls (8x8 image, both tokenizers; they load or compile the coder): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in first.items()))
    j2k_decode(j2k_encode(tiny, False, None))  # Pillow's own first call, untimed

    both = []  # (what, adatok encode to bytes + decode from bytes, Pillow encode + decode)
    rows = []  # (operation, tokens, adatok s, Pillow s, psnr adatok, psnr pillow, adatok bytes, pillow bytes, baseline)
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        lossless = name == "wavelet-lossless"
        t = time.perf_counter()
        (seq,) = tok.encode([img])
        first_full = time.perf_counter() - t
        t = time.perf_counter()
        tok.decode([seq])
        first_full_dec = time.perf_counter() - t
        print(f"{name}: first call on the 768x512 image (builds its tree layout): encode {first_full:.3f} s, "
              f"decode {first_full_dec:.3f} s")
        n = len(seq)
        for label, budget in (("full", None), ("1/8", Tokens(n // 8)), ("1 bpp", Bpp(1.0))):
            t_enc, (s,) = median_time(lambda: tok.encode([img], budget), args.repeat)
            t_dec, (out,) = median_time(lambda: tok.decode([s]), args.repeat)
            k = len(s)
            p = psnr(img, out)
            if label == "full":
                rate = None
                base = "reversible 5/3, lossless" if lossless else "irreversible 9/7, mct=1, rates [1]"
            elif label == "1 bpp":  # the same bit budget: 24 bits a pixel compressed 24 times
                rate = 24.0
                base = f"{'reversible 5/3' if lossless else 'irreversible 9/7'}, mct=1, rates [24] (1 bpp)"
            else:
                if args.j2k_rate is not None:
                    rate = args.j2k_rate
                else:
                    rate, _ = j2k_rate_for_psnr(img, lossless, p)
                base = f"{'reversible 5/3' if lossless else 'irreversible 9/7'}, mct=1, rates [{rate:.1f}]"
            data = j2k_encode(img, lossless, rate)  # warm
            jout = j2k_decode(data)
            if not has_bytes:  # (with bytes, the paired timing below gives JPEG 2000's times)
                tj_enc, data = median_time(lambda: j2k_encode(img, lossless, rate), args.repeat)
                tj_dec, jout = median_time(lambda: j2k_decode(data), args.repeat)
            pj = psnr(img, jout)
            nbytes = None
            if has_bytes:
                # The byte rows, each beside its JPEG 2000 twin, calls in turn (see paired_times);
                # the JPEG 2000 times in the table are those of this pairing.
                blob = s.to_bytes()  # warm this size's byte path
                TokenSequence.from_bytes(blob)
                (t_tob, blob), (tj_enc, data), (t_fromb, bout), (tj_dec, _) = paired_times([
                    lambda: tok.encode([img], budget)[0].to_bytes(),
                    lambda: j2k_encode(img, lossless, rate),
                    lambda: tok.decode([TokenSequence.from_bytes(blob)])[0],
                    lambda: j2k_decode(data),
                ], args.repeat)
                assert np.array_equal(bout, out)
                nbytes = len(blob)
            rows.append((f"{name} encode, {label}", k, t_enc, tj_enc, p, pj, None, len(data), base))
            rows.append((f"{name} decode, {label}", k, t_dec, tj_dec, p, pj, None, len(data), base))
            if has_bytes:
                rows.append((f"{name} encode to bytes, {label}", k, t_tob, tj_enc, p, pj, nbytes, len(data), base))
                rows.append((f"{name} decode from bytes, {label}", k, t_fromb, tj_dec, p, pj, nbytes, len(data),
                             base))
                both.append((f"{name}, {label}", t_tob + t_fromb, tj_enc + tj_dec))

    print()
    head = (f"{'operation':<40} {'tokens':>9} {'adatok ms':>9} {'J2K ms':>9} {'ratio':>6} {'PSNR':>6} "
            f"{'J2K PSNR':>8} {'bytes':>9} {'J2K bytes':>9}  JPEG 2000 settings")
    print(head)
    print("-" * len(head))
    for op, k, ta, tj, p, pj, nb, nj, base in rows:
        nb_s = f"{nb:9d}" if nb is not None else f"{'':9}"
        print(f"{op:<40} {k:9d} {fmt_ms(ta)} {fmt_ms(tj)} {ta / tj:6.2f} {p:6.2f} {pj:8.2f} {nb_s} {nj:9d}  {base}")
    if not has_bytes:
        print("(TokenSequence.to_bytes / from_bytes not available: byte rows skipped)")
    for what, ta, tj in both:
        print(f"encode to bytes + decode from bytes, {what}: {ta * 1e3:.1f} ms vs JPEG 2000 {tj * 1e3:.1f} ms, "
              f"ratio {ta / tj:.2f}")
    print("PSNR in dB over the 8-bit RGB image (inf: bit-exact). 'bytes': len(seq.to_bytes()) with the "
          "tokenizer's payload codec, header included.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
