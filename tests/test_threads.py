"""Tokenizers used from several threads at once, as the web server will use them: 8 threads, each
running every job (encode with each kind of budget and with regions, bytes both ways, decode,
steppers) in its own order on mixed images, give the very bytes and pixels one thread gives.
Python switches threads every microsecond here (``sys.setswitchinterval``), so that the threads
interleave inside adatok's own code, not only between calls."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import adatok
from adatok import AdatokError, Bpp, Quality, Tokens, TokenSequence
from adatok.core import registry

THREADS = 8


def _images(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for h, w, c in [(5, 7, 1), (16, 16, 3), (23, 9, 3), (32, 24, 1), (1, 13, 3), (12, 12, 3)]:
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = (128 + 80 * np.sin(xx / 3.0 + seed) * np.cos(yy / 5.0))[..., None] + rng.normal(0, 8, (h, w, c))
        out.append(np.clip(smooth, 0, 255).astype(np.uint8))
    return out


def _roi(shape, k: int) -> np.ndarray:
    """The k-th of many different regions of a shape (each a distinct cache key)."""
    m = np.zeros(shape[:2])
    m[(k * 7) % shape[0], :] = 1.0
    m[:, (k * 3) % shape[1]] = 0.5 + 0.5 * (k % 2)
    return m


def _jobs() -> dict[str, callable]:
    """Label -> a function of no arguments whose result (bytes) must not depend on the thread."""
    jobs = {}
    fashion = np.random.default_rng(9).integers(0, 256, (28, 28), dtype=np.uint8)
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        for i, img in enumerate(_images(1)):
            for budget in (None, Tokens(77), Bpp(3.0), Quality(psnr=32)):
                def run(tok=tok, img=img, budget=budget):
                    try:
                        (seq,) = tok.encode([img], budget)
                    except AdatokError as exc:  # a budget below the header: the same error everywhere
                        return str(exc).encode()
                    data = seq.to_bytes()
                    back = TokenSequence.from_bytes(data)
                    return data + tok.decode([back])[0].tobytes() + back.pos.tobytes()
                jobs[f"{name} image {i} {budget}"] = run
        img = _images(2)[1]
        for k in range(40):  # more regions than the shift cache kept (64 keys over both tokenizers)
            def run(tok=tok, img=img, k=k):
                (seq,) = tok.encode([img], Tokens(300), roi=[_roi(img.shape, k)])
                return seq.to_bytes() + tok.decode([seq])[0].tobytes()
            jobs[f"{name} region {k}"] = run

        def step(tok=tok):
            st = tok.stepper([(9, 6), (4, 4, 3)])
            while not st.done.all():
                st.push(st.legal().argmax(1))
            return b"".join(s.to_bytes() for s in st.sequences()) + b"".join(im.tobytes() for im in st.images())
        jobs[f"{name} stepper"] = step
    learned = adatok.load("fashion-mnist-32")
    for budget in (None, Tokens(7), Bpp(0.9)):
        def run(budget=budget):
            (seq,) = learned.encode([fashion], budget)
            back = TokenSequence.from_bytes(seq.to_bytes())
            return seq.to_bytes() + learned.decode([back])[0].tobytes()
        jobs[f"fashion-mnist-32 {budget}"] = run
    return jobs


@pytest.fixture
def fast_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_eight_threads_give_what_one_thread_gives(fast_switching):
    jobs = _jobs()
    want = {label: job() for label, job in jobs.items()}
    start = threading.Barrier(THREADS)

    def worker(t: int) -> dict[str, bytes]:
        order = list(jobs)
        np.random.default_rng(t).shuffle(order)
        start.wait()
        return {label: jobs[label]() for label in order}

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    for t, got in enumerate(results):
        differ = [label for label in jobs if got[label] != want[label]]
        assert not differ, f"thread {t} differs from one thread on: {differ[:5]}"


def test_threads_making_the_positions_of_shared_sequences(fast_switching):
    """Positions are made on first use (``TokenSequence.pos``): a thread that looked for them just
    before another made them got AttributeError (31 times in 120,000 uses of 50 shared sequences
    by 8 threads, before the fix)."""
    tok = adatok.load("wavelet")
    data = tok.encode([_images(4)[0]], Tokens(20))[0].to_bytes()
    want = TokenSequence.from_bytes(data).pos
    failed = 0
    for _ in range(100):
        shared = [TokenSequence.from_bytes(data) for _ in range(50)]
        start = threading.Barrier(THREADS)

        def worker(t: int, shared=shared) -> int:
            start.wait()
            bad = 0
            for s in shared:
                try:
                    bad += not np.array_equal(s.pos if t % 2 else s.prefix(20).pos, want)
                except AttributeError:
                    bad += 1
            return bad

        with ThreadPoolExecutor(THREADS) as pool:
            failed += sum(pool.map(worker, range(THREADS)))
    assert failed == 0


def test_threads_sharing_sequences(fast_switching):
    """Sequences read from bytes make their positions on first use: 8 threads using the same ones
    at once (positions, prefixes, bytes, decoding) all see the same values."""
    tok = adatok.load("wavelet")
    datas = [s.to_bytes() for s in tok.encode(_images(3))]
    want = [(s.pos.tobytes(), tok.decode([s.prefix(50)])[0].tobytes()) for s in map(TokenSequence.from_bytes, datas)]
    for _ in range(5):
        shared = [TokenSequence.from_bytes(d) for d in datas]
        start = threading.Barrier(THREADS)

        def worker(t: int, shared=shared):
            start.wait()
            out = []
            for s in shared[t % 2 :] + shared[: t % 2]:
                p = s.prefix(50)
                out.append((s.pos.tobytes(), tok.decode([p])[0].tobytes(), s.to_bytes()))
            return out[len(shared) - t % 2 :] + out[: len(shared) - t % 2]

        with ThreadPoolExecutor(THREADS) as pool:
            for got in pool.map(worker, range(THREADS)):
                assert [(a, b) for a, b, _ in got] == want
                assert [c for _, _, c in got] == datas


def test_threads_loading_a_tokenizer_get_one(monkeypatch):
    """``adatok.load`` from 8 threads at once makes the tokenizer once: every thread gets it."""
    monkeypatch.setattr(registry, "_CACHE", {})
    start = threading.Barrier(THREADS)

    def worker(name: str):
        start.wait()
        return registry.load(name)

    for name in ("wavelet", "wavelet-lossless", "fashion-mnist-32"):
        with ThreadPoolExecutor(THREADS) as pool:
            got = list(pool.map(worker, [name] * THREADS))
        assert len({id(t) for t in got}) == 1, name
