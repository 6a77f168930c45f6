"""Decoding bytes takes bounded memory: at most :func:`bound` bytes of address space beyond what the
process had, a linear function of the decoded image's size and of the bytes (docs/reliability.md).

The decoders run in a subprocess under ``resource.setrlimit(RLIMIT_AS, ...)`` set, for each
container, to the address space it has then (numba's and torch's own, measured after a warm-up
that decodes one small container of every kind) plus twice the bound: a decoder that allocated
from a header value it had not checked, or kept what it should not, raises MemoryError there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import adatok
from adatok import Tokens, TokenSequence
from adatok.core.sequence import parse_container
from adatok.wavelet.tokenizer import max_coded_tokens, max_stream_tokens
from adatok.wavelet.transforms import default_levels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fuzz import craft  # noqa: E402

# The bound (bytes), measured and rounded up: decoding 256x256 to 1024x1024 images, full, cut,
# empty and hostile, took 71 to 79 bytes of address space a coefficient (an empty payload), 10 to 17
# a token and about 2 a byte of input (docs/reliability.md, "Memory"; 109 to 115 a coefficient until
# 2026-12-03, when the layout kept every node's position and the weights were per node); a token can
# take up to 36 when a cut stream's buffers are doubled while two walks are alive.
PER_COEFFICIENT = 120  # the layout, the walk's lists and knowledge, the synthesis
PER_TOKEN = 40  # the token buffers (ids, nodes, planes), doubled as they fill
PER_SAMPLE = 4  # each decoded pixel and channel: the image, and its enlargement (pixel replication)
PER_BYTE = 8  # copies of the input
FIXED = 32 << 20
#: The learned tokenizer's decode: its model's activations for one image (a constant).
LEARNED_FIXED = 64 << 20
#: The limit is this many times the bound, over the address space the process had.
SLACK = 2


def bound(data: bytes) -> int:
    """The most address space decoding ``data`` may take (bytes), from its header: the image's
    coefficients N (at the size it was coded at), its decoded samples, the tokens the decoder can
    produce (the header's count, at most what the image can hold, and for a cut payload at most
    what its bytes can determine) and the bytes."""
    header, payload = parse_container(data)
    if header["tokenizer"] == "fashion-mnist-32":
        return LEARNED_FIXED + PER_BYTE * len(data)
    h, w, *c = header["shape"]
    fy, fx = header["params"].get("rep", (1, 1))
    n = (h // fy) * (w // fx) * (c[0] if c else 1)
    tokens = min(header["n_tokens"], max_stream_tokens(n, header["params"]["nmax"]))
    if len(payload) < header["payload_len"]:
        tokens = min(tokens, max_coded_tokens(len(payload) + 4))
    return FIXED + PER_COEFFICIENT * n + PER_TOKEN * tokens + PER_SAMPLE * h * w * (c[0] if c else 1) + PER_BYTE * len(data)


CHILD = r"""
import json, resource, sys
import numpy as np
import adatok
from adatok import AdatokError, TokenSequence
from adatok.core.registry import maker

def address_space():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

cases = json.load(sys.stdin)
for warm in cases["warm"]:  # every code path once, small: numba's functions and torch's threads
    seq = TokenSequence.from_bytes(open(warm, "rb").read())
    maker(seq).decode([seq])
_, hard = resource.getrlimit(resource.RLIMIT_AS)
for path, limit in cases["cases"]:
    data = open(path, "rb").read()
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    have = address_space()
    resource.setrlimit(resource.RLIMIT_AS, (have + limit, hard))
    try:
        seq = TokenSequence.from_bytes(data)
        img = maker(seq).decode([seq])[0]
        out = f"decoded {len(seq)} tokens, {img.shape}"
    except AdatokError as exc:
        out = f"refused: {type(exc).__name__}"
    except MemoryError:
        out = "MemoryError"
    del data
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    print(json.dumps([path, out, have]), flush=True)
"""


def run_child(warm: list[Path], cases: list[tuple[Path, int]]) -> dict[str, str]:
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    stdin = json.dumps({"warm": [str(p) for p in warm], "cases": [(str(p), int(lim)) for p, lim in cases]})
    done = subprocess.run([sys.executable, "-c", CHILD], input=stdin, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {Path(p).name: out for p, out, _ in map(json.loads, done.stdout.splitlines())}


def _photo(h: int, w: int) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(np.tile(skimage.data.astronaut(), (2, 2, 1))[:h, :w])


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> dict[str, bytes]:
    """Name -> container: real ones (whole, cut, with a region, replicated) and hostile ones."""
    w, wl, fm = (adatok.load(n) for n in ("wavelet", "wavelet-lossless", "fashion-mnist-32"))
    photo = _photo(384, 384)
    roi = np.zeros(photo.shape[:2])
    roi[100:250, 120:300] = 1
    out = {}
    full = wl.encode([photo])[0].to_bytes()
    out["lossless photo 384x384"] = full
    out["lossless photo 384x384, cut"] = full[: len(full) * 2 // 3]
    out["photo 384x384 with a region"] = w.encode([photo], roi=[roi])[0].to_bytes()
    rep = np.repeat(np.repeat(_photo(128, 128), 8, 0), 8, 1)
    out["replicated 8x8 to 1024x1024"] = wl.encode([rep])[0].to_bytes()
    base = craft.fields_of(w.encode([np.full((8, 8), 3, np.uint8)])[0].to_bytes())
    top = w.top_plane((512, 512, 3))  # (a higher plane is refused: no 8-bit image has it)
    big = dict(base.params) | {"nmax": top, "levels": default_levels((512, 512))}
    ones = replace(base, shape=(512, 512, 3), params=big, payload=b"\xfe" + b"\xff" * 255, payload_len=256)
    out["hostile: 256 bytes of ones, every token they can code"] = craft.frame(
        replace(ones, n_tokens=max_coded_tokens(256)))
    out["hostile: 2**32 - 1 tokens"] = craft.frame(replace(ones, n_tokens=craft.U32))
    out["hostile: a cut payload of 2**32 - 1 bytes"] = craft.frame(
        replace(ones, payload_len=craft.U32, n_tokens=max_stream_tokens(512 * 512 * 3, top)))
    flat = dict(base.params) | {"levels": default_levels((1024, 1024))}
    out["empty payload, 1024x1024"] = craft.frame(replace(base, shape=(1024, 1024), params=flat, payload=b"",
                                                           payload_len=0, n_tokens=0))
    huge = dict(base.params) | {"nmax": 61, "levels": default_levels((7000, 7000))}
    out["hostile: 7000x7000x3, 2**32 - 1 tokens"] = craft.frame(replace(ones, shape=(7000, 7000, 3), params=huge,
                                                                          n_tokens=craft.U32))
    small = craft.fields_of(wl.encode([_photo(64, 64)])[0].to_bytes())
    junk = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
    out["8 MB of junk payload"] = craft.frame(replace(small, payload=junk, payload_len=len(junk)))
    shirt = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    learned = fm.encode([shirt])[0].to_bytes()
    out["learned"] = learned
    out["learned, cut"] = learned[:-20]
    out["hostile learned: 2**32 - 1 tokens"] = craft.frame(replace(craft.fields_of(learned), n_tokens=craft.U32))
    return out


REFUSED_EARLY = {"hostile: 2**32 - 1 tokens", "hostile: 7000x7000x3, 2**32 - 1 tokens",
                 "hostile learned: 2**32 - 1 tokens"}


def test_decoding_stays_within_the_bound(containers, tmp_path):
    """Every container decodes (or is refused) under a limit of twice its bound; the refused
    hostile ones under a limit that leaves no room for what their header asks: they are refused
    before anything is allocated from it."""
    wl, w, fm = (adatok.load(n) for n in ("wavelet-lossless", "wavelet", "fashion-mnist-32"))
    warm = []
    rng = np.random.default_rng(2)
    tiny = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    for i, data in enumerate([wl.encode([tiny])[0].to_bytes(), w.encode([tiny], roi=[np.ones((12, 10))])[0].to_bytes(),
                              wl.encode([np.repeat(np.repeat(tiny, 8, 0), 8, 1)])[0].to_bytes(),
                              w.encode([tiny[..., 0]])[0].to_bytes(),
                              fm.encode([rng.integers(0, 256, (28, 28), dtype=np.uint8)])[0].to_bytes()]):
        for j, part in enumerate((data, data[: len(data) - 7])):
            path = tmp_path / f"warm-{i}-{j}.atk"
            path.write_bytes(part)
            warm.append(path)
    cases, names = [], {}
    for i, (name, data) in enumerate(containers.items()):
        path = tmp_path / f"case-{i}.atk"
        path.write_bytes(data)
        names[path.name] = name
        limit = (FIXED + PER_BYTE * len(data)) if name in REFUSED_EARLY else SLACK * bound(data)
        cases.append((path, limit))
    got = {names[k]: v for k, v in run_child(warm, cases).items()}
    assert set(got) == set(containers)
    for name, out in got.items():
        if name in REFUSED_EARLY:
            assert out == "refused: ContainerError", (name, out)
        else:
            assert out.startswith("decoded"), (name, out)


def test_the_limit_bites():
    """The same subprocess, given half of what a decode needs, reports MemoryError: the test above
    can fail."""
    wl = adatok.load("wavelet-lossless")
    data = wl.encode([_photo(256, 256)], Tokens(10**6))[0].to_bytes()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"adatok-memory-{os.getpid()}.atk"
    tmp.write_bytes(data)
    try:
        got = run_child([tmp], [(tmp, PER_COEFFICIENT * 256 * 256 * 3 // 8)])
    finally:
        tmp.unlink()
    assert got[tmp.name] == "MemoryError"


def test_caches_keep_a_bounded_number_of_coefficients():
    """Decoding many shapes keeps at most CACHE_NODES coefficients of layouts, weights and shifts
    (and the newest entry): lru_cache kept 32 layouts of any size, and the shift cache every shape."""
    from adatok.wavelet import layout as layout_module
    from adatok.wavelet import tokenizer as tokenizer_module

    tok = adatok.load("wavelet")
    before = layout_module.CACHE_NODES
    caches = (layout_module._LAYOUTS, tokenizer_module._WEIGHTS, tok._shift_cache)
    try:
        for cache in caches:
            cache.clear()  # (entries of earlier tests would be hits, and hits evict nothing)
            cache.nodes = 20_000
        for side in range(40, 120, 4):  # 20 shapes of 4,800 to 42,000 coefficients
            (seq,) = tok.encode([np.zeros((side, side, 3), np.uint8) + 9], Tokens(10))
            tok.decode([seq])
            for cache in caches:
                assert cache.total <= 20_000 or len(cache) == 1, (cache.total, len(cache))
        assert all(len(cache) >= 1 for cache in caches)
    finally:
        for cache in caches:
            cache.nodes = before


def test_a_completion_upload_is_checked_before_it_is_decoded(monkeypatch):
    """``adatok serve``'s .atk upload (a prefix to complete) decoded the file before checking its
    shape against the generator's: a 95-byte file asking for a 4000x4000x3 image took 17.7 s and
    1.6 GB before it was refused (50 million pixels would take gigabytes more). Now the header is
    checked first, and nothing is built for the shape."""
    from adatok.serve import app
    from adatok.wavelet import layout as layout_module
    from fuzz.targets import _generators

    built = []
    real = layout_module._build_layout
    monkeypatch.setattr(layout_module, "_build_layout", lambda *a: built.append(a) or real(*a))
    gen = _generators()[0]
    base = craft.fields_of(adatok.load("wavelet").encode([np.full((28, 28), 3, np.uint8)])[0].to_bytes())
    params = dict(base.params) | {"levels": default_levels((7000, 7000))}
    data = craft.frame(replace(base, shape=(7000, 7000, 3), params=params, payload=b"", payload_len=0, n_tokens=0))
    with pytest.raises(adatok.AdatokError, match="7000x7000x3 image"):  # (the library's, answered 400)
        app._prefix_for(gen, data, "upload.atk")
    assert not [a for a in built if a[0][0] * a[0][1] > 28 * 28]
    usable = craft.fields_of(adatok.load("wavelet").encode([np.full((28, 28), 3, np.uint8)], fixed_header=True)[0]
                             .to_bytes())  # (the plain coding of a flat image replicates pixels: refused now)
    assert len(app._prefix_for(gen, craft.frame(usable), "upload.atk")) == usable.n_tokens


def test_a_gif_whose_first_frame_is_far_larger_than_its_screen():
    """A 96-byte GIF declaring a 7x0 screen and a first frame of 55,551 x 77,098 pixels (found by
    the image fuzz target): with Pillow's own check switched off while adatok opened it, Pillow
    allocated the frame inside ``Image.open``, before adatok's check of the declared size: gigabytes
    (the fuzzer's 2 GB limit), or MemoryError. Now Pillow's check is set to MAX_PIXELS while
    opening: refused in words, under 256 MB more than the process had."""
    path = ROOT / "fuzz" / "regressions" / "image" / "gif-first-frame-of-4-billion-pixels.gif"
    code = (
        "import resource, sys, adatok\n"
        "size = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize')][0]\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + (256 << 20), resource.RLIM_INFINITY))\n"
        "try:\n"
        "    adatok.read_image(sys.argv[1])\n"
        "except adatok.AdatokError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MALLOC_ARENA_MAX="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ImageFormatError") and "4,282,914,432 pixels" in done.stdout, done.stdout


def test_a_decode_keeps_the_tree_and_per_band_weights_not_per_node_positions_or_weights():
    """The layout a decode keeps cached holds the tree the walk reads, about 18 bytes a coefficient;
    positions are computed for the tokens (not kept for every node: 20 bytes a coefficient, 720 MB
    at 4000 x 3000 x 3), and the weights are one value a band (kept per node: 16 bytes more)."""
    from dataclasses import fields

    from adatok.wavelet import tokenizer as tokenizer_module
    from adatok.wavelet.layout import make_layout

    tok = adatok.load("wavelet")
    img = _photo(120, 90)
    (seq,) = tok.encode([img], Tokens(500))
    data = seq.to_bytes()
    back = TokenSequence.from_bytes(data)
    assert np.array_equal(back.pos, seq.pos)
    tok.decode([back])
    layout = make_layout((120, 90), 3, default_levels((120, 90), tok.max_levels))
    held = sum(getattr(layout, f.name).nbytes for f in fields(layout) if isinstance(getattr(layout, f.name), np.ndarray))
    assert held <= 19 * layout.size, held / layout.size
    assert "node_pos" not in vars(layout)  # (made when a stepper or a region asks for it)
    imp, weights = tokenizer_module._importance_weights(layout.shape, 3, layout.levels, False, tok.step)
    assert imp.shape == weights.shape == (3, len(layout.bands))
