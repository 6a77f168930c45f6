"""Images per second of ``adatok tokenize-dataset``: the Ray Data pipeline with 1 and with 2 workers
against the plain single-process loop, in the same run.

Two corpora:

* Fashion-MNIST, all 70,000 images (28x28 gray; ``--fashion-limit N`` for the first N), shards of
  1,000 images;
* a folder of photos: ``--photos N`` (default 400) 256x256 RGB crops, at random places (seeded),
  of scikit-image's sample photos, written as PNG files to a temporary folder, shards of 20.

Each is tokenized with ``wavelet`` at ``Bpp(2.0)`` (``--bpp``) into Parquet shards, three ways, in
turn, ``--repeat`` times (medians):

* ``plain``: ``tokenize_dataset(..., workers=0)``: the same shard work (read, encode, decode for
  the PSNR, ``.atk`` bytes, Parquet) in a loop in this process, no Ray;
* ``ray 1`` / ``ray 2``: a local Ray of 1 / 2 CPUs started for the run (``start_ray``), then
  ``tokenize_dataset(..., workers=n)``.

Wall-clock times (parallel work is what is measured). Printed per corpus and way: the seconds of
the pipeline (``tokenize_dataset``'s call; for Ray it includes the workers' start, which loads
adatok and the tokenizer, but not the cluster's start, printed apart), its images per second, and
that time cut in two from the shards' records: the warm-up (until a worker began its first shard:
planning the shards, starting the workers) and the work (from then until the last shard was
written), with the images per second of the work. The ratios the goals are about, ``ray 1 /
plain`` (goal: at least 0.9, within 10% of the plain loop) and ``ray 2 / ray 1`` (goal: at least
1.7 on 2 cores), are printed for both. The load average (``os.getloadavg``) before and after is
printed: speed-ups mean little on a machine that other work keeps busy (above ~1.5 on 2 cores).
Run it (about 5 minutes per repeat on an idle 2-core machine):

    .venv/bin/python benchmarks/scale_speed.py
    .venv/bin/python benchmarks/scale_speed.py --fashion-limit 2000 --photos 40 --repeat 1   # a quick check
    .venv/bin/python benchmarks/scale_speed.py --start-costs   # what a run's start is made of
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import adatok
from adatok.scale import tokenize_dataset
from adatok.scale.pipeline import start_ray, stop_ray

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle_left",
          "colorwheel")


def make_photos(folder: Path, n: int, side: int = 256, seed: int = 0) -> None:
    """``n`` ``side`` x ``side`` RGB crops of scikit-image's sample photos, as PNG files."""
    import skimage.data

    rng = np.random.default_rng(seed)
    sources = []
    for name in PHOTOS:
        try:
            img = adatok.core.imageio.as_image(np.asarray(getattr(skimage.data, name)()))
        except Exception:  # noqa: BLE001  (a photo this scikit-image lacks, or one it must download)
            continue
        if img.shape[2] == 3 and min(img.shape[:2]) >= side:
            sources.append(img)
    for i in range(n):
        img = sources[i % len(sources)]
        y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        Image.fromarray(img[y : y + side, x : x + side]).save(folder / f"{i:05d}.png")


def run(src, shard_size: int, workers: int, budget, limit: int | None, scratch: Path) -> dict:
    """One way over one corpus: ``seconds`` of the pipeline (call to return), ``start`` (seconds to
    start the Ray cluster, before it), ``warm_up`` (from the call until a worker began its first
    shard: planning, and for Ray the workers' start), ``span`` (from then until the last shard was
    written: the work, from the shards' records) and ``images`` written."""
    out = Path(tempfile.mkdtemp(dir=scratch)) / "out"
    started, tmp, start_s = False, None, 0.0
    try:
        if workers:
            t0 = time.perf_counter()
            started, tmp = start_ray(workers, None)
            start_s = time.perf_counter() - t0
        wall0, t0 = time.time(), time.perf_counter()
        manifest = tokenize_dataset(src, out, "wavelet", budget, workers=workers, shard_size=shard_size, limit=limit)
        seconds = time.perf_counter() - t0
        records = [json.loads(f.read_text()) for f in (out / "_shards").glob("*.json")]
    finally:
        stop_ray(started, tmp)
        shutil.rmtree(out.parent, ignore_errors=True)
    first = min(r["began"] for r in records)
    last = max(r["began"] + r["seconds"] for r in records)
    return {"seconds": seconds, "start": start_s, "warm_up": first - wall0, "span": last - first,
            "images": manifest["counts"]["written"]}


def warm(photos: Path, budget, scratch: Path) -> None:
    """Every compiled function the runs use, compiled (and cached for the Ray workers) before any
    timing: the plain way over a few photos and Fashion-MNIST images (encode, decode, Parquet).
    And Ray Data imported (0.5 s, once a process): otherwise the first Ray way timed pays it and
    no other way does, as the plain way's imports are paid here too."""
    import ray.data  # noqa: F401

    for src, limit in ((photos, 4), ("fashion-mnist", 4)):
        run(src, 2, 0, budget, limit, scratch)


def start_costs() -> None:
    """What a run's start is made of, measured apart: a local Ray of 1 CPU, then the same one-row
    ``map_batches`` pipeline twice (the first starts Ray Data's own actors), and the import of
    adatok in a new process (what each worker does before its tokenizer loads)."""
    import subprocess

    import ray.data

    from adatok.scale.pipeline import start_ray, stop_ray

    t0 = time.perf_counter()
    started = start_ray(1, None)
    print(f"start costs: a local Ray of 1 CPU {time.perf_counter() - t0:.2f} s", end="")
    try:
        for which in ("first", "second"):
            t0 = time.perf_counter()
            ray.data.from_items([{"a": 1}]).map_batches(lambda b: b, batch_size=1).count()
            print(f"; Ray Data's {which} one-row pipeline {time.perf_counter() - t0:.2f} s", end="")
    finally:
        stop_ray(*started)
    code = "import time; t = time.perf_counter(); import adatok.scale.shards; print(time.perf_counter() - t)"
    took = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    print(f"; importing adatok in a new process {took:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fashion-limit", type=int, default=None, help="first N Fashion-MNIST images (default: all)")
    ap.add_argument("--photos", type=int, default=400, help="photos in the folder")
    ap.add_argument("--bpp", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--start-costs", action="store_true", help="only measure what a run's start is made of")
    args = ap.parse_args()
    if args.start_costs:
        start_costs()
        return
    budget = adatok.Bpp(args.bpp)
    print(f"adatok {adatok.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"wavelet at {budget}; {' '.join(sys.argv)}")
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="adatok-bench-") as scratch:
        scratch = Path(scratch)
        photos = scratch / "photos"
        photos.mkdir()
        make_photos(photos, args.photos)
        warm(photos, budget, scratch)
        corpora = [("fashion-mnist", "fashion-mnist", 1000, args.fashion_limit), (f"{args.photos} photos", photos, 20, None)]
        ways = (("plain", 0), ("ray 1", 1), ("ray 2", 2))
        for label, src, shard, limit in corpora:
            runs = {w: [] for w, _ in ways}
            for _ in range(args.repeat):
                for way, workers in ways:
                    runs[way].append(run(src, shard, workers, budget, limit, scratch))
            print(f"\n{label} ({shard} a shard), medians of {args.repeat}:")
            print(f"{'way':8} {'images':>7} {'pipeline s':>10} {'images/s':>9} {'ray start s':>11} {'warm-up s':>9} "
                  f"{'work s':>7} {'working images/s':>16}")
            rate, working = {}, {}
            for way, _ in ways:
                med = {k: statistics.median(r[k] for r in runs[way]) for k in ("seconds", "start", "warm_up", "span")}
                n = runs[way][0]["images"]
                rate[way], working[way] = n / med["seconds"], n / med["span"]
                print(f"{way:8} {n:7d} {med['seconds']:10.2f} {rate[way]:9.0f} {med['start']:11.2f} "
                      f"{med['warm_up']:9.2f} {med['span']:7.2f} {working[way]:16.0f}")
            for name, r in (("images/s", rate), ("working images/s", working)):
                print(f"{name:>16}: ray 1 / plain {r['ray 1'] / r['plain']:.2f} (goal >= 0.90), "
                      f"ray 2 / ray 1 {r['ray 2'] / r['ray 1']:.2f} (goal >= 1.70)")
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if max(load_before[0], load_after[0]) > 1.5:
        print("warning: the machine was busy (1-minute load average above 1.5 on 2 cores): re-measure on a quiet one")


if __name__ == "__main__":
    main()
