"""The fuzz targets' smoke test (``make test``): every target of ``fuzz/targets.py`` on its seed
corpus, on every regression input found by fuzzing (``fuzz/regressions/TARGET/``), and on a fixed
number of seeded mutations of the corpus, without atheris's coverage loop: deterministic, seconds.
A target raises for a bug (anything but an AdatokError from adatok, or a failed check), so each
input passing is the test. The long runs are ``make fuzz`` (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fuzz import corpus, targets  # noqa: E402

#: Mutated inputs per target: the cheap targets get more.
MUTATIONS = {"container": 400, "crafted": 300, "image": 300, "stepper": 40, "serve_image": 100, "serve_atk": 200}
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF)


def mutate(rng: np.random.Generator, data: bytes, others: list[bytes]) -> bytes:
    """One to four of: flip a bit, set an interesting byte, insert random bytes, delete a run,
    cut the end, splice in part of another input (what libFuzzer's mutators do, simply)."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 6))
        at = int(rng.integers(0, len(out) + 1))
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and out:
            out[min(at, len(out) - 1)] = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
        elif op == 2:
            out[at:at] = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        elif op == 3:
            del out[at : at + int(rng.integers(1, 33))]
        elif op == 4:
            del out[at:]
        else:
            other = others[int(rng.integers(0, len(others)))]
            start = int(rng.integers(0, len(other) + 1))
            out[at:] = other[start : start + int(rng.integers(1, 65))] + out[at:]
    return bytes(out)


def inputs(target: str) -> list[bytes]:
    folder = targets.CORPUS / target
    return [p.read_bytes() for p in sorted(folder.iterdir())]


@pytest.fixture(autouse=True)
def fuzz_limits():
    with targets.limits():
        yield


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_seed_corpus(target):
    seeds = inputs(target)
    assert seeds, f"no seeds in fuzz/corpus/{target}"
    for data in seeds:
        targets.TARGETS[target](data)


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_seeded_mutations(target):
    seeds = inputs(target)
    rng = np.random.default_rng(sorted(targets.TARGETS).index(target) + 17)
    for _ in range(MUTATIONS[target]):
        targets.TARGETS[target](mutate(rng, seeds[int(rng.integers(0, len(seeds)))], seeds))


REGRESSIONS = sorted(p for p in targets.REGRESSIONS.glob("*/*") if p.is_file())


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_inputs(path):
    """Inputs on which a target once failed (docs/reliability.md lists what each was)."""
    targets.TARGETS[path.parent.name](path.read_bytes())


def test_every_target_has_seeds_and_the_container_seeds_are_current():
    """The checked-in ``.atk`` seeds are exactly what ``fuzz/corpus.py`` makes on this machine
    (the wavelet tokenizers' bytes do not depend on the machine); after a change to a tokenizer's
    bytes, run ``python fuzz/corpus.py``."""
    assert sorted(p.name for p in targets.CORPUS.iterdir()) == sorted(targets.TARGETS)
    made = corpus.containers()
    have = {p.name: p.read_bytes() for p in (targets.CORPUS / "container").iterdir()}
    assert sorted(have) == sorted(made)
    stale = [name for name in made if made[name] != have[name] and not name.startswith("fashion")]
    assert not stale, f"stale seeds (run python fuzz/corpus.py): {stale}"
    size = sum(p.stat().st_size for p in targets.CORPUS.rglob("*") if p.is_file())
    assert size < 200_000, f"the seed corpus is {size:,} bytes: keep it small"


def test_a_broken_target_is_caught():
    """The smoke test can fail: a decoder that returned a wrong image is reported by the checks."""
    from adatok.wavelet import WaveletTokenizer

    data = inputs("container")[0]
    real = WaveletTokenizer.decode
    try:
        WaveletTokenizer.decode = lambda self, seqs: [np.zeros((1, 1), np.uint8) for _ in seqs]
        with pytest.raises(AssertionError):
            for d in inputs("container"):
                targets.container(d)
    finally:
        WaveletTokenizer.decode = real
    targets.container(data)


def test_the_upload_target_checks_images_as_the_image_target_does(monkeypatch):
    """serve_image checked only dtype, dims and pixel count: an empty or non-contiguous image from
    the upload reader passed it (the docs say it checks "as image")."""
    from adatok.serve import state

    for bad in (np.zeros((0, 5, 3), np.uint8), np.asfortranarray(np.zeros((4, 5, 3), np.uint8))):
        monkeypatch.setattr(state, "read_upload", lambda data, name, limits, bad=bad: bad)
        with pytest.raises(AssertionError):
            targets.serve_image(b"x")
    monkeypatch.setattr(state, "read_upload", lambda data, name, limits: np.zeros((4, 5, 3), np.uint8))
    targets.serve_image(b"x")


def test_a_campaign_adds_to_its_summary_and_refuses_unknown_targets(tmp_path, monkeypatch, capsys):
    """summary.json was replaced by each campaign (the rows of earlier targets lost) and written only
    once a target's sessions were over; a misspelt target ran, failed, and counted as crashes; a
    failing input's path was cut at its first space."""
    from fuzz import campaign

    ends = iter(["ok", "crash"] + ["ok"] * 20)
    monkeypatch.setattr(campaign, "session", lambda target, seconds, out: {
        "runs": 10, "peak_rss_mb": 100, "end": (e := next(ends)), "artifact": None if e == "ok" else "x y"})
    clock = iter(range(1000))  # two sessions a target in 10 "seconds"
    monkeypatch.setattr(campaign.time, "monotonic", lambda: next(clock))
    campaign.main(["--seconds", "10", "--out", str(tmp_path), "container"])
    first = json.loads((tmp_path / "summary.json").read_text())
    assert first["container"]["sessions"] == 2 and first["container"]["crash"] == 1
    campaign.main(["--seconds", "10", "--out", str(tmp_path), "container", "image"])
    both = json.loads((tmp_path / "summary.json").read_text())
    assert both["container"]["sessions"] == 4 and both["container"]["runs"] == 40 and both["container"]["crash"] == 1
    assert both["image"]["sessions"] == 2 and both["container"]["artifacts"] == ["x y"]
    with pytest.raises(SystemExit):
        campaign.main(["--out", str(tmp_path), "contaner"])
    assert "unknown target" in capsys.readouterr().err
    log = "#5\tNEW\n==1== ERROR: libFuzzer: deadly signal\nTest unit written to /tmp/with space/out/t-crash-ab12\n"
    assert campaign.ending(log, 1) == {"runs": 5, "peak_rss_mb": 0, "end": "crash",
                                        "artifact": "/tmp/with space/out/t-crash-ab12"}


def test_the_fuzzer_instruments_the_header_checks_and_makes_its_corpus_folder(tmp_path):
    """The modules with numba kernels were left out of the coverage instrumentation whole, the
    wavelet tokenizer's header checks with them (libFuzzer had no signal from them); fuzz/run.py
    stopped at once when its first corpus folder did not exist."""
    pytest.importorskip("atheris")
    code = """
import sys
sys.path.insert(0, "fuzz")
import atheris, numpy as np, run
compiled = run.numba_modules()
with atheris.instrument_imports(include=["adatok"], exclude=compiled):
    import adatok
run.instrument_plain(compiled)
from adatok.wavelet import spiht
from adatok.wavelet.tokenizer import WaveletTokenizer
from adatok.wavelet.words import WordTokenizer
mark = lambda f: "__ATHERIS_INSTRUMENTED__" in f.__code__.co_consts
assert all(map(mark, (WaveletTokenizer._layout, WaveletTokenizer.unpack_sequence, WordTokenizer.unpack_sequence)))
assert not mark(spiht.walk.py_func)
from adatok.wavelet import transforms  # numba's @overload implementation and the lambdas it returns: plain
assert not mark(transforms._rounded_impl)
x = np.arange(64, dtype=np.int64).reshape(8, 8)  # compiled here, from an empty cache
assert (transforms.idwt2(transforms.dwt2(x, 1, "5/3"), "5/3") == x).all()
"""
    cold = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))  # (with the cache warm, numba compiled nothing)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=cold)
    assert done.returncode == 0, done.stderr[-2000:]
    alone = ("import sys; sys.path.insert(0, 'fuzz'); import run; run.instrument_plain(['adatok.wavelet.transforms']); "
             "from adatok.wavelet import transforms; "
             "assert '__ATHERIS_INSTRUMENTED__' not in transforms._rounded_impl.__code__.co_consts")
    done = subprocess.run([sys.executable, "-c", alone], cwd=ROOT, capture_output=True, text=True)  # (not imported first)
    assert done.returncode == 0, done.stderr[-2000:]
    new = tmp_path / "new" / "inputs"
    done = subprocess.run([sys.executable, "fuzz/run.py", "container", "-runs=20", str(new),
                           str(targets.CORPUS / "container")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and new.is_dir(), done.stderr[-2000:]
    seed = sorted((targets.CORPUS / "container").iterdir())[0]  # an input replayed, as libFuzzer prints
    done = subprocess.run([sys.executable, "fuzz/run.py", "container", str(seed)], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0 and "Executed" in done.stderr, done.stderr[-2000:]
