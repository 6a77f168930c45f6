"""The fuzz targets: each takes any bytes, and either gets an :class:`~adatok.AdatokError` from
adatok or checks that what adatok returned is right. Anything else (another exception, a failed
check, a crash, a hang, running out of memory) is a bug.

* ``container``: ``TokenSequence.from_bytes`` on the bytes, then ``decode`` with the tokenizer that
  made them (every registered one, the word views ``wavelet-w8`` included: the container names it).
* ``crafted``: a container built field by field from the bytes (``fuzz/craft.py``), starting from
  a seed container, with valid checksums: the header values reach the decoder's own checks.
* ``image``: ``read_image`` on the bytes as a file (an upload), then, for a small image, a
  ``wavelet-lossless`` round trip.
* ``stepper``: a token stepper of a registered tokenizer (word views included) fed ids drawn from
  the bytes, legal and not.

* ``serve_image``: the web server's image upload (``adatok serve``: ``state.read_upload``), in-process.
* ``serve_atk``: the web server's ``.atk`` upload (a completion job's prefix: ``app._prefix_for``
  and the language's decode, what the handler does before the job runs), for a wavelet, a wavelet
  word and a learned generator's language.

A new handler of untrusted bytes gets a target here: a function of the bytes that calls it
in-process, added to :data:`TARGETS` (with seeds in ``fuzz/corpus/NAME/``); ``make fuzz`` and
``tests/test_fuzz.py`` then run it like the others.

Run one with atheris (``fuzz/run.py``), or call it (``tests/test_fuzz.py`` replays the seed corpus
and seeded mutations of it through every target, without atheris's coverage loop).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

import adatok
from adatok import AdatokError, ContainerError, InvalidTokensError, TokenSequence
from adatok.core import imageio
from adatok.core.registry import maker, names
from adatok.core.sequence import header_size, parse_container

try:  # the package (tests) or the folder on sys.path (fuzz/run.py)
    from . import craft
except ImportError:
    import craft  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"

#: The largest image (H * W) while fuzzing. Any image up to ``MAX_PIXELS`` decodes within memory
#: linear in its pixels (docs/reliability.md), so a header may legitimately ask for gigabytes; the
#: fuzzers look for wrong answers, and a smaller limit keeps each input fast.
FUZZ_MAX_PIXELS = 1 << 16
#: Images this small (H * W) read by the ``image`` target are also encoded and decoded.
ROUND_TRIP_PIXELS = 4096
#: How far a learned tokenizer's pixel may move with what else is in its batch: the model's float
#: arithmetic (torch's matrix products) rounds differently for different batch sizes, and a value
#: that close to a level's edge rounds the other way (2 pixels of 1,024 test images decoded in a
#: batch of 1,024 and one by one: docs/reliability.md). The wavelet tokenizers' pixels never move.
LEARNED_BATCH_LEVELS = 1


@contextlib.contextmanager
def limits() -> Iterator[None]:
    """The fuzzers' pixel limit (:data:`FUZZ_MAX_PIXELS`) while the block runs."""
    saved = imageio.MAX_PIXELS
    imageio.MAX_PIXELS = FUZZ_MAX_PIXELS
    try:
        yield
    finally:
        imageio.MAX_PIXELS = saved


def _provider(data: bytes):
    import atheris

    return atheris.FuzzedDataProvider(data)


# --- containers ----------------------------------------------------------------------------------


def check_container(data: bytes) -> tuple[TokenSequence, np.ndarray] | None:
    """``from_bytes`` then ``decode``: ``None`` when adatok refuses the bytes with an AdatokError,
    else the sequence and its image, after checking them: the image has the sequence's shape; the
    sequence holds at most the header's token count; the same ids replayed without the decoder's
    state give the same pixels; its bytes read back to the same sequence; and a cut of the bytes
    past the header reads as a prefix of it."""
    try:
        seq = TokenSequence.from_bytes(data)
    except AdatokError:
        return None
    header, payload = parse_container(data)
    tok = maker(seq)
    assert (seq.tokenizer, list(seq.shape)) == (header["tokenizer"], header["shape"])
    assert len(seq) <= header["n_tokens"], (len(seq), header["n_tokens"])
    (img,) = tok.decode([seq])  # a sequence read from bytes always decodes
    assert img.dtype == np.uint8 and img.shape == tuple(seq.shape), (img.dtype, img.shape, seq.shape)
    fresh = TokenSequence(seq.ids, seq.pos, seq.shape, seq.tokenizer, seq.version, seq.params, seq.pos_fields)
    assert np.array_equal(tok.decode([fresh])[0], img), "decoding the bytes and replaying their ids differ"
    back = TokenSequence.from_bytes(seq.to_bytes())
    assert np.array_equal(back.ids, seq.ids) and back.shape == seq.shape and dict(back.params) == dict(seq.params)
    cut = header_size(data) + len(payload) // 2
    try:
        part = TokenSequence.from_bytes(data[:cut])
    except ContainerError as exc:
        # a payload no encoder wrote may hold more bytes than its tokens need: a cut of it that still codes
        # them all is read as a file with bytes lost from inside (no cut of an encoder's payload does that)
        assert "which no cut of it does" in str(exc) and len(seq) == header["n_tokens"], exc
        return seq, img
    assert np.array_equal(part.ids, seq.ids[: len(part)]), "a cut did not read as a prefix"
    return seq, img


def container(data: bytes) -> None:
    """Fuzz target: any bytes as an ``.atk`` container."""
    check_container(data)


# --- containers built field by field --------------------------------------------------------------


def _seed_fields() -> list[craft.Fields]:
    out = []
    for path in sorted((CORPUS / "container").glob("*")):
        with contextlib.suppress(AdatokError):
            out.append(craft.fields_of(path.read_bytes()))
    return out


_SEEDS: list[craft.Fields] = []

_INTS = [0, 1, 2, 3, 7, 8, 61, 62, 63, 255, 256, 511, 512, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**63, 2**64]


def _int(fdp, around: int) -> int:
    """An integer near ``around``, or an interesting or arbitrary one."""
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:
        return around + fdp.ConsumeIntInRange(-3, 3)
    if kind == 1:
        return fdp.PickValueInList(_INTS) * fdp.PickValueInList([1, -1])
    if kind == 2:
        return fdp.ConsumeIntInRange(0, 70)
    return fdp.ConsumeInt(8)


def _value(fdp, around):
    """A JSON value for a params key: near the seed's, or of any kind."""
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind <= 2 and isinstance(around, int) and not isinstance(around, bool):
        return _int(fdp, around)
    if kind == 3:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8))
    if kind == 5:
        return [_int(fdp, 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 6:
        return fdp.PickValueInList([None, True, False, {}, [], {"a": 1}])
    if kind == 7:
        return craft.DELETE
    if kind == 8 and isinstance(around, dict):  # a region of interest: keep its form, change a part
        roi = dict(around)
        key = fdp.PickValueInList(["g", "s", "d"])
        if key == "d" and fdp.ConsumeBool():
            import base64
            import zlib

            roi["d"] = base64.b64encode(zlib.compress(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 600)))).decode()
        else:
            value = _value(fdp, roi.get(key))
            if value is craft.DELETE:
                roi.pop(key, None)
            else:
                roi[key] = value
        return roi
    return around


def crafted(data: bytes) -> None:
    """Fuzz target: a seed container's fields changed by the bytes, framed with valid checksums."""
    if not _SEEDS:
        _SEEDS.extend(_seed_fields())
    fdp = _provider(data)
    f = _SEEDS[fdp.ConsumeIntInRange(0, len(_SEEDS) - 1)]
    if fdp.ConsumeBool():
        f = replace(f, n_tokens=_int(fdp, f.n_tokens) & craft.U32)
    if fdp.ConsumeBool():
        f = replace(f, payload_len=_int(fdp, f.payload_len) & craft.U32)
    if fdp.ConsumeBool():
        ndim = fdp.PickValueInList([2, 3, 3, 3, 0, 1, 4])
        shape = list(f.shape[:ndim]) + [1] * max(0, ndim - len(f.shape))
        for i in range(ndim):
            if fdp.ConsumeBool():
                shape[i] = max(0, _int(fdp, shape[i]))
        f = replace(f, shape=tuple(shape))
    if fdp.ConsumeBool() and isinstance(f.params, dict):
        params = dict(f.params)
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            key = fdp.PickValueInList(["levels", "nmax", "step", "rep", "roi", "x"])
            value = _value(fdp, params.get(key))
            if value is craft.DELETE:
                params.pop(key, None)
            else:
                params[key] = value
        f = replace(f, params=params)
    if fdp.ConsumeBool():
        kind = fdp.ConsumeIntInRange(0, 3)
        payload = f.payload
        if kind == 0:
            payload = payload[: fdp.ConsumeIntInRange(0, len(payload))]
        elif kind == 1 and payload:
            at = fdp.ConsumeIntInRange(0, len(payload) - 1)
            payload = payload[:at] + bytes([fdp.ConsumeIntInRange(0, 255)]) + payload[at + 1 :]
        elif kind == 2:
            payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048))
        else:
            payload = payload + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
        if fdp.ConsumeBool():  # keep the header's length consistent with the new bytes
            f = replace(f, payload_len=len(payload))
        f = replace(f, payload=payload)
    if fdp.ConsumeIntInRange(0, 15) == 0:  # another seed's maker
        other = _SEEDS[fdp.ConsumeIntInRange(0, len(_SEEDS) - 1)]
        f = replace(f, tokenizer=other.tokenizer, version=other.version, codec=other.codec)
    check_container(craft.frame(f))


# --- images -------------------------------------------------------------------------------------

_SCRATCH: list[Path] = []


def _scratch() -> Path:
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="adatok-fuzz-")) / "upload")
    return _SCRATCH[0]


def image(data: bytes) -> None:
    """Fuzz target: any bytes as an image file, as an upload would give them."""
    path = _scratch()
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():  # Pillow warns about what it skips in damaged files
            warnings.simplefilter("ignore")
            img = adatok.read_image(path)
    except AdatokError:
        return
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    check_image(img, imageio.MAX_PIXELS)


def check_image(img, max_pixels: int) -> None:
    """What an image read from any bytes must be: uint8, contiguous, H x W x 1 or 3, at least one
    pixel and at most ``max_pixels``; a small one comes back exactly from lossless tokens."""
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert img.ndim == 3 and img.shape[2] in (1, 3) and min(img.shape[:2]) >= 1, img.shape
    assert img.shape[0] * img.shape[1] <= max_pixels
    if img.shape[0] * img.shape[1] <= ROUND_TRIP_PIXELS:
        tok = adatok.load("wavelet-lossless")
        (seq,) = tok.encode([img])
        assert np.array_equal(tok.decode([TokenSequence.from_bytes(seq.to_bytes())])[0], img)


# --- the stepper ----------------------------------------------------------------------------------


def stepper(data: bytes) -> None:
    """Fuzz target: a stepper of a registered tokenizer, started from shapes or sequences, fed ids
    from the bytes (mostly legal ones, some not: each refused without changing anything); what it
    made must decode as its images, keep the positions it announced, and survive bytes."""
    fdp = _provider(data)
    tok = adatok.load(fdp.PickValueInList(names(views=True)))
    learned = not hasattr(tok, "top_plane")
    starts = []
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        if learned:
            shape = tok.expects if fdp.ConsumeBool() else tok.expects[:2]
        else:
            shape = (fdp.ConsumeIntInRange(1, 12), fdp.ConsumeIntInRange(1, 12), *((3,) if fdp.ConsumeBool() else ()))
        if fdp.ConsumeIntInRange(0, 3) == 0:  # go on from a prefix of a real image's sequence
            img = np.frombuffer(fdp.ConsumeBytes(int(np.prod(shape))).ljust(int(np.prod(shape)), b"\x80"),
                                np.uint8).reshape(shape)
            (seq,) = tok.encode([img])
            starts.append(seq.prefix(fdp.ConsumeIntInRange(0, len(seq))))
        else:
            starts.append(shape)
    try:
        nmax = None if learned or fdp.ConsumeBool() else _int(fdp, 4)
        st = tok.stepper(starts) if nmax is None else tok.stepper(starts, nmax=nmax)
    except AdatokError:
        return
    b = len(starts)
    first = st.lengths.copy()
    said: list[list[np.ndarray]] = [[] for _ in range(b)]  # the pos rows announced for each pushed token
    for _ in range(4096):
        if st.done.all() or fdp.remaining_bytes() == 0:
            break
        legal, pos, lengths, done = st.legal(), st.next_pos(), st.lengths, st.done.copy()
        ids = np.empty(b, np.int64)
        for i in range(b):
            choice = np.flatnonzero(legal[i])
            kind = fdp.ConsumeIntInRange(0, 15)
            if kind == 0 or len(choice) == 0:
                ids[i] = fdp.PickValueInList([-1, -2, st.vocab_size, st.vocab_size + 1, 2**40, -(2**40)])
            elif kind == 1:
                ids[i] = fdp.ConsumeIntInRange(-1, st.vocab_size)
            else:
                ids[i] = choice[fdp.ConsumeIntInRange(0, len(choice) - 1)]
        ok = [done[i] or ids[i] == -1 or (0 <= ids[i] < st.vocab_size and legal[i, ids[i]]) for i in range(b)]
        try:
            st.push(ids)
        except InvalidTokensError:
            assert not all(ok), "a legal id was refused"
            assert np.array_equal(st.lengths, lengths) and np.array_equal(st.legal(), legal)
            assert np.array_equal(st.next_pos(), pos), "a refused push changed the stepper"
            continue
        assert all(ok), f"an illegal id was taken: {ids}"
        moved = st.lengths - lengths
        for i in range(b):
            assert moved[i] == (0 if done[i] or ids[i] == -1 else 1), (i, moved[i], ids[i])
            if moved[i]:
                said[i].append(pos[i])
    seqs = st.sequences()
    assert [len(s) for s in seqs] == st.lengths.tolist()
    images = st.images()
    for i, (seq, im) in enumerate(zip(seqs, images)):
        alone = tok.decode([seq])[0]
        if learned:  # the model's float arithmetic depends a little on the batch: a level at most
            assert np.abs(alone.astype(np.int16) - im).max(initial=0) <= LEARNED_BATCH_LEVELS, "batch changed pixels"
        else:
            assert np.array_equal(alone, im), "the stepper's image is not the decoded sequence's"
        if said[i]:
            assert np.array_equal(seq.pos[first[i]:], np.array(said[i])), "a token stands where next_pos did not say"
        back = TokenSequence.from_bytes(seq.to_bytes())
        assert np.array_equal(back.ids, seq.ids)


# --- the web server's uploads ---------------------------------------------------------------------


def serve_image(data: bytes) -> None:
    """Fuzz target: the bytes as an image uploaded to ``adatok serve``."""
    from adatok.serve import state

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = state.read_upload(data, "upload.png", state.Limits(max_pixels=FUZZ_MAX_PIXELS))
    except AdatokError:
        return
    check_image(img, FUZZ_MAX_PIXELS)


_LANGUAGES: list = []


def _generators() -> list:
    """A wavelet, a wavelet word and a learned generator's language, as ``adatok serve`` holds them
    (the model itself is not read before a job runs, so none is loaded)."""
    if not _LANGUAGES:
        from adatok.generate.languages import SlotLanguage, WaveletLanguage, WordLanguage
        from adatok.generate.sample import Generator

        _LANGUAGES.extend(Generator(None, lang, {"name": f"fuzz-{lang.name}"}) for lang in
                          (WaveletLanguage("wavelet", (28, 28)), WordLanguage("wavelet-w8", (28, 28)),
                           SlotLanguage("fashion-mnist-32")))
    return _LANGUAGES


def serve_atk(data: bytes) -> None:
    """Fuzz target: the bytes as a cut ``.atk`` file uploaded to ``adatok serve`` to complete."""
    from adatok.serve import app, state

    for gen in _generators():
        try:
            prefix = app._prefix_for(gen, data, "upload.atk")
        except AdatokError:
            continue
        picture = np.asarray(gen.lang.decode([prefix])[0])
        assert picture.dtype == np.uint8 and picture.size == int(np.prod(prefix.shape))
        assert state.png_uri(picture.reshape(prefix.shape[0], prefix.shape[1], -1)).startswith("data:image/png")


#: Every target by name (``fuzz/run.py NAME``, ``make fuzz``; seeds in ``fuzz/corpus/NAME/``).
TARGETS = {"container": container, "crafted": crafted, "image": image, "stepper": stepper,
           "serve_image": serve_image, "serve_atk": serve_atk}
