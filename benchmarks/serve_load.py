"""adatok serve on loopback: how fast a slider move is, and a bounded load test.

The script starts ``adatok serve`` as a process on 127.0.0.1 and a free port (nothing else is ever
addressed), uploads a 768 x 512 RGB photo (``skimage.data.astronaut()`` resized with Pillow's
Lanczos filter, as benchmarks/wavelet_speed.py does) and encodes it with each tokenizer asked for
(the full sequence, once; the time is reported). Then:

1. **Slider moves.** For cuts spread over the whole sequence (0, 0.1 %, 1 %, 10 %, 25 %, 50 %, 75 %,
   100 % of the tokens), and for slider values in bytes and in target PSNR, it asks for the frame
   ``--repeat`` times in turn (each cut once per round, so a load that comes and goes hits all
   alike) and reports the median and largest server time (the ``Server-Timing`` the server
   measures from the request's arrival to its pixels) and round trip. A move to a cut asked for
   before is answered from a small cache, so each round asks for a cut shifted by a few tokens.
   With ``--details``, it also times the second request the page makes after each move (SSIM, the
   error map and the token heat map) at 1 %, 10 % and 100 % of the tokens.
2. **Load.** ``--requests`` slider requests (random cuts, spread as the page's logarithmic slider
   spreads them) from ``--clients`` concurrent clients (httpx + asyncio), at most ``--seconds``
   long: throughput, p50 / p99 latency, errors (anything but 200), and the server process's
   resident memory (VmRSS) before and after. ``--rounds`` runs it again (new random cuts): memory
   that settles after the first round is the server's working set, memory that grows each round
   would be a leak.

Timing claims belong here, never in tests. Run it (about two minutes on 2 cores):

    .venv/bin/python benchmarks/serve_load.py --requests 2000 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 1.0)


def photo() -> bytes:
    import skimage.data
    from PIL import Image

    big = Image.fromarray(skimage.data.astronaut()).resize((768, 512), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    big.save(buf, "PNG")
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "adatok.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_up(http, proc) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if http.get("/api/info").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("adatok serve did not start")
        time.sleep(0.3)


def timed(http, url: str) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    r = http.get(url)
    rt = (time.perf_counter() - t0) * 1e3
    if r.status_code != 200:
        raise SystemExit(f"{url}: {r.status_code} {r.text}")
    n = json.loads(r.headers["X-Adatok-Frame"])
    return float(r.headers["Server-Timing"].split("dur=")[1]), rt, n


def slider(http, coding: dict, repeat: int) -> list[tuple[str, str, float, float, float, float]]:
    """(what, cut, server median, server max, round trip median, tokens) per slider value."""
    total, step = coding["tokens"], coding["step"]
    values = [("tokens", f"{f:.1%}", lambda r, f=f: f"tokens={min(total, int(f * total) + r * step)}") for f in FRACTIONS]
    values += [("bytes", f"{b:,}", lambda r, b=b: f"bytes={b + r}") for b in (2_000, 20_000, 49_152, 200_000)]
    values += [("psnr", f"{p} dB", lambda r, p=p: f"psnr={p + r / 1000}") for p in (25, 30, 35, 40)]
    times = {i: ([], [], None) for i in range(len(values))}
    for r in range(repeat):
        for i, (_, _, query) in enumerate(values):
            s, rt, n = timed(http, f"/api/codings/{coding['coding']}/frame?{query(r)}")
            times[i][0].append(s)
            times[i][1].append(rt)
            times[i] = (times[i][0], times[i][1], n)
    out = []
    for i, (kind, label, _) in enumerate(values):
        s, rt, n = times[i]
        out.append((kind, label, statistics.median(s), max(s), statistics.median(rt), n["tokens"]))
    return out


async def load(url: str, coding: dict, requests: int, clients: int, seconds: float, seed: int) -> dict:
    import httpx

    rng = np.random.default_rng(seed)
    total = coding["tokens"]
    ks = np.minimum(total, np.round(np.power(total + 1.0, rng.random(requests)) - 1)).astype(int)
    queue: asyncio.Queue = asyncio.Queue()
    for k in ks:
        queue.put_nowait(int(k))
    latencies, errors = [], []
    deadline = time.monotonic() + seconds

    async def client(http):
        while not queue.empty() and time.monotonic() < deadline:
            k = queue.get_nowait()
            t0 = time.perf_counter()
            try:
                r = await http.get(f"/api/codings/{coding['coding']}/frame?tokens={k}")
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:100]}")
                else:
                    latencies.append((time.perf_counter() - t0) * 1e3)
            except httpx.HTTPError as exc:
                errors.append(repr(exc))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    done = len(latencies) + len(errors)
    return {"requests": done, "wall": wall, "throughput": done / wall, "errors": errors,
            "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99)),
            "max": float(np.max(latencies))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizers", default="wavelet,wavelet-lossless")
    ap.add_argument("--repeat", type=int, default=7, help="rounds of slider moves")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=300, help="the load test stops after this, done or not")
    ap.add_argument("--rounds", type=int, default=2, help="load test rounds (0: none)")
    ap.add_argument("--details", action="store_true", help="time the details request too")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port)
    try:
        with httpx.Client(base_url=url, timeout=300) as http:
            wait_up(http, proc)
            print(f"# adatok serve on {url}, pid {proc.pid}; {platform.processor() or platform.machine()}, "
                  f"{os.cpu_count()} cores; python {platform.python_version()}")
            iid = http.post("/api/images", files={"file": ("astronaut-768x512.png", photo(), "image/png")}).json()["image"]
            codings = {}
            for tok in args.tokenizers.split(","):
                t0 = time.perf_counter()
                r = http.post("/api/codings", data={"image": iid, "tokenizer": tok})
                if r.status_code != 200:
                    raise SystemExit(r.text)
                codings[tok] = r.json()
                print(f"# {tok}: encode + every prefix at hand: {time.perf_counter() - t0:.2f} s, "
                      f"{codings[tok]['tokens']:,} tokens, {codings[tok]['bytes']:,} bytes, step {codings[tok]['step']}")
            print("\n## slider moves on a 768x512 RGB photo (ms; server: request in to pixels out)\n")
            print("| tokenizer | slider | value | tokens | server median | server max | round trip median |")
            print("|---|---|---|---|---|---|---|")
            worst = 0.0
            for tok, coding in codings.items():
                for kind, label, med, mx, rt, k in slider(http, coding, args.repeat):
                    worst = max(worst, mx) if kind != "psnr" else worst
                    print(f"| `{tok}` | {kind} | {label} | {k:,} | {med:.1f} | {mx:.1f} | {rt:.1f} |")
            print(f"\nlargest server time of a tokens or bytes move: {worst:.1f} ms")
            if args.details:
                print("\n## details after a move: SSIM, error map, token heat map (round trip, ms)\n")
                print("| tokenizer | tokens | median | max |")
                print("|---|---|---|---|")
                for tok, c in codings.items():
                    for f in (0.01, 0.1, 1.0):
                        k = int(f * c["tokens"]) // c["step"] * c["step"] if f < 1 else c["tokens"]
                        times = []
                        for _ in range(args.repeat):
                            t0 = time.perf_counter()
                            assert http.get(f"/api/codings/{c['coding']}/details?tokens={k}").status_code == 200
                            times.append((time.perf_counter() - t0) * 1e3)
                        print(f"| `{tok}` | {k:,} | {statistics.median(times):.0f} | {max(times):.0f} |")
            coding = codings[args.tokenizers.split(",")[0]]
            for _ in range(20):  # warm-up, then the memory before
                http.get(f"/api/codings/{coding['coding']}/frame?tokens={np.random.randint(coding['tokens'])}")
            before = rss_mb(proc.pid)
        print(f"\n## load: {args.requests:,} slider requests a round ({coding['tokenizer']}, random cuts), "
              f"{args.clients} concurrent clients\n")
        print("| round | requests | wall | throughput | p50 | p99 | max | errors | server RSS before | after |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in range(args.rounds):
            res = asyncio.run(load(url, coding, args.requests, args.clients, args.seconds, args.seed + r))
            after = rss_mb(proc.pid)
            print(f"| {r + 1} | {res['requests']:,} | {res['wall']:.1f} s | {res['throughput']:.1f} req/s | "
                  f"{res['p50']:.0f} ms | {res['p99']:.0f} ms | {res['max']:.0f} ms | {len(res['errors'])} | "
                  f"{before:.0f} MB | {after:.0f} MB |", flush=True)
            for e in res["errors"][:5]:
                print("error:", e)
            before = after
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
