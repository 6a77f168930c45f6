"""Containers with valid checksums and hostile header values (``fuzz/craft.py``): every one is
refused with an AdatokError or decodes, correctly, what its payload holds; none raises anything
else. And the bounds a header's token count is checked against (``max_coded_tokens``,
``max_stream_tokens``) hold for every real stream, so no valid file is refused by them."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import adatok
from adatok import AdatokError, ContainerError, Tokens, TokenSequence
from adatok.core import imageio
from adatok.core.sequence import header_size, parse_container
from adatok.wavelet import spiht
from adatok.wavelet.tokenizer import max_coded_tokens, max_stream_tokens
from adatok.wavelet.transforms import default_levels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fuzz import craft  # noqa: E402
from fuzz.targets import CORPUS, check_container  # noqa: E402

SEEDS = sorted(p for p in (CORPUS / "container").glob("*.atk") if "-cut-" not in p.name)


def outcome(data: bytes) -> str:
    """'refused: <error>' or 'decoded: <n> tokens' (check_container checks what was decoded);
    any other exception propagates."""
    try:
        got = check_container(data)
    except AdatokError as exc:  # check_container lets none through: a decoded sequence must decode
        raise AssertionError(f"read, but then {type(exc).__name__}: {exc}") from exc
    if got is None:
        return "refused"
    return f"decoded: {len(got[0])} tokens"


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.stem)
def test_every_hostile_value_is_refused_or_decoded_correctly(seed):
    base = craft.fields_of(seed.read_bytes())
    failures, outcomes = [], {}
    for label, edit in craft.EDITS:
        data = craft.frame(edit(base))
        try:
            outcomes[label] = outcome(data)
        except Exception as exc:  # noqa: BLE001 - every other exception is a failure, listed
            failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)
    learned = base.tokenizer == "fashion-mnist-32"  # its payload length must match its count exactly
    assert outcomes["n_tokens=0"] == ("refused" if learned and base.payload_len else "decoded: 0 tokens")
    assert outcomes["format version 2"] == "refused"
    assert outcomes["params '[[[[[[[[[[[['"] == "refused"


@pytest.mark.parametrize("name", ["wavelet", "wavelet-lossless"])
def test_shapes_at_the_pixel_limit(name, monkeypatch):
    """A tiny file may ask for the largest image allowed (it decodes, to a flat image); one pixel
    more is refused before anything is allocated for it."""
    monkeypatch.setattr(imageio, "MAX_PIXELS", 96 * 80)
    tok = adatok.load(name)
    base = craft.fields_of(tok.encode([np.full((4, 4, 3), 9, np.uint8)])[0].to_bytes())
    for shape, ok in [((96, 80, 3), True), ((80, 96), True), ((97, 80, 3), False), ((1, 96 * 80 + 1), False)]:
        params = dict(base.params) | {"levels": default_levels(shape[:2])}
        data = craft.frame(replace(base, shape=shape, params=params))
        assert outcome(data).startswith("decoded") == ok, shape


# --- the defects these found, one by one ----------------------------------------------------------


@pytest.fixture(scope="module")
def gray():
    return craft.fields_of(adatok.load("wavelet").encode([np.arange(64, dtype=np.uint8).reshape(8, 8)])[0].to_bytes())


def test_deeply_nested_params_are_a_container_error(gray):
    """Was RecursionError, from json.loads; its message whole, not cut mid-word ("unicode stri")."""
    with pytest.raises(ContainerError, match="malformed header") as err:
        TokenSequence.from_bytes(craft.frame(replace(gray, params=craft.NESTED)))
    assert "RecursionError: 'maximum recursion depth exceeded" in str(err.value)
    assert str(err.value).endswith("'): the file is corrupt"), str(err.value)


def test_a_step_too_large_for_a_float_is_refused(gray):
    """Was OverflowError, from float(10**400 - 1)."""
    with pytest.raises(ContainerError, match="step"):
        TokenSequence.from_bytes(craft.frame(craft._raw_param("step", craft.HUGE_INT)(gray)))


@pytest.mark.parametrize("d", [[1], {"a": 1}, 5])
def test_a_region_grid_that_is_not_a_string_is_refused(gray, d):
    """Was TypeError (unhashable type) from the shift cache's key."""
    with pytest.raises(ContainerError, match="region's grid d"):
        TokenSequence.from_bytes(craft.frame(craft._roi(d=d)(gray)))


@pytest.mark.parametrize("s", ["4", 4.0, True])
def test_a_region_shift_of_another_type_is_refused(gray, s):
    """Was taken when int(s) == 4 (a string "4")."""
    with pytest.raises(ContainerError):
        TokenSequence.from_bytes(craft.frame(craft._roi(s=s)(gray)))


@pytest.mark.parametrize("name, side", [("wavelet", 256), ("wavelet-lossless", 512)])
def test_a_token_count_a_payload_cannot_code_is_refused(name, side):
    """64 bytes of 0xff said to hold 2**32 - 1 tokens of a 256x256x3 image decoded 10.9 million
    tokens (0.7 s, 330 MB); 256 bytes of a 512x512x3 lossless one, 46.6 million (5.1 s, 740 MB),
    and the count grows with the image, not the file. Now the count is checked against what the
    payload can code, and a count that it can is decoded."""
    tok = adatok.load(name)
    base = craft.fields_of(tok.encode([np.full((8, 8), 3, np.uint8)])[0].to_bytes())
    payload = b"\xfe" + b"\xff" * 63  # (four 0xff bytes first are refused outright)
    params = dict(base.params) | {"nmax": tok.top_plane((side, side, 3)), "levels": default_levels((side, side))}
    f = replace(base, shape=(side, side, 3), params=params, payload=payload, payload_len=64, n_tokens=craft.U32)
    with pytest.raises(ContainerError, match="more than 64 payload bytes"):
        TokenSequence.from_bytes(craft.frame(f))
    most = max_coded_tokens(64)
    seq = TokenSequence.from_bytes(craft.frame(replace(f, n_tokens=most)))
    assert 100_000 < len(seq) <= most  # decoded, to the count or to the end of the stream it codes


@pytest.mark.parametrize("name", ["wavelet", "wavelet-lossless", "wavelet-w8"])
def test_a_top_plane_no_8_bit_image_reaches_is_refused(name):
    """A header's nmax above what the transforms can give an 8-bit image of its shape (a region
    adds ROI_SHIFT planes) was accepted up to 61: planes of tokens no image has, 156 million tokens
    from 16 KB of payload. One plane over the bound is allowed (a margin for its float sums)."""
    from adatok.wavelet.roi import ROI_SHIFT

    tok = adatok.load(name)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    roi = np.zeros((40, 48))
    roi[10:30, 10:30] = 1
    for kw, lift in (({}, 0), ({"roi": [roi]}, ROI_SHIFT)):
        (seq,) = tok.encode([img], Tokens(300), **kw)
        top = tok.top_plane(img.shape) if name != "wavelet-w8" else tok.base.top_plane(img.shape)
        assert seq.params["nmax"] <= top + lift
        base = craft.fields_of(seq.to_bytes())
        for nmax, ok in ((top + lift + 1, True), (top + lift + 2, False), (61, False)):
            data = craft.frame(replace(base, params=dict(base.params) | {"nmax": nmax}))
            if ok:
                TokenSequence.from_bytes(data)  # (other tokens, as the planes moved: a valid stream all the same)
            else:
                # (the limit is one plane above what images reach: the message said that plane was what they reach)
                with pytest.raises(ContainerError, match=f"invalid top bit-plane {nmax}.*above plane {top + lift} .*"
                                                         f"the highest allowed is {top + lift + 1}"):
                    TokenSequence.from_bytes(data)
                hand = TokenSequence(seq.ids, seq.pos, seq.shape, seq.tokenizer, seq.version,
                                     dict(seq.params) | {"nmax": nmax}, seq.pos_fields)
                with pytest.raises(adatok.InvalidTokensError, match="invalid top bit-plane"):
                    tok.decode([hand])


def _cut_reference(tok, data: bytes) -> np.ndarray:
    """The tokens a cut payload determines, found as they were until 2026-12-02: both readings
    (the missing bytes as zeros and as ones) walked to the end, and the tokens up to where they part."""
    header, payload = parse_container(data)
    shape, params, layout = tok._from_header(header)
    n = min(int(header["n_tokens"]), max_coded_tokens(len(payload) + 4))
    raw = np.frombuffer(payload, np.uint8).copy()
    ids = [spiht.walk(spiht.SRC_AC, False, int(params["nmax"]), n, -1, np.zeros(0, np.int64), np.zeros(0, np.bool_),
                      np.zeros(0, np.uint8), raw, pad, *tok._walk_args(layout, params))[2] for pad in (0, 255)]
    m = min(map(len, ids))
    differ = np.nonzero(ids[0][:m] != ids[1][:m])[0]
    return ids[0][: int(differ[0]) if len(differ) else m]


def test_a_cut_payload_decodes_the_tokens_both_readings_agree_on():
    """Both readings of a cut payload were walked to its header's count (up to ~23,000 tokens a
    payload byte): 1 KB of random bytes in a 512 x 512 x 3 header took 1.9-6 s (44 s from plane 61)
    for about 8,400 tokens. Now
    the walks grow fourfold from a few tokens a byte until they part: the same tokens, checked
    against the old way on cuts of real files and on random payloads."""
    rng = np.random.default_rng(5)
    for name in ("wavelet", "wavelet-lossless"):
        tok = adatok.load(name)
        for img in (rng.integers(0, 256, (24, 20, 3), dtype=np.uint8), np.zeros((16, 16), np.uint8),
                    np.tile(np.arange(32, dtype=np.uint8) * 8, (12, 1))):
            data = tok.encode([img])[0].to_bytes()
            for cut in sorted(set(rng.integers(header_size(data), len(data), 12).tolist())):
                got = TokenSequence.from_bytes(data[:cut])
                assert np.array_equal(got.ids, _cut_reference(tok, data[:cut])), (name, img.shape, cut)
        base = craft.fields_of(tok.encode([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)])[0].to_bytes())
        for size in (8, 300, 2000):
            payload = b"\x00" + rng.integers(0, 256, size - 1, dtype=np.uint8).tobytes()
            f = replace(base, payload=payload, payload_len=craft.U32,
                        n_tokens=max_stream_tokens(64 * 64 * 3, int(base.params["nmax"])))
            data = craft.frame(f)
            assert np.array_equal(TokenSequence.from_bytes(data).ids, _cut_reference(tok, data)), (name, size)


def test_a_cut_stream_decodes_at_most_what_its_bytes_can_determine():
    """16 bytes of a payload said to hold 2**32 - 1 bytes, and as many tokens as the image can
    have (24.6 million), were decoded as far as the tokens went, twice (the missing bytes read as
    zeros and as ones): 1.1 s and 140 MB for the 79 tokens they determine."""
    tok = adatok.load("wavelet")
    base = craft.fields_of(tok.encode([np.full((8, 8), 3, np.uint8)])[0].to_bytes())
    nmax = tok.top_plane((256, 256, 3))
    params = dict(base.params) | {"nmax": nmax, "levels": default_levels((256, 256))}
    most = max_stream_tokens(256 * 256 * 3, nmax)
    f = replace(base, shape=(256, 256, 3), params=params, payload=b"\xfe" + b"\xff" * 15, payload_len=craft.U32,
                n_tokens=most)
    assert len(TokenSequence.from_bytes(craft.frame(f))) <= max_coded_tokens(16 + 4) < most


def test_empty_payloads_hold_no_tokens(gray):
    with pytest.raises(ContainerError, match="0 payload bytes"):
        TokenSequence.from_bytes(craft.frame(replace(gray, payload=b"", payload_len=0, n_tokens=1)))


def test_learned_headers_are_checked_before_the_payload_is_read():
    tok = adatok.load("fashion-mnist-32")
    img = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    base = craft.fields_of(tok.encode([img])[0].to_bytes())
    good = TokenSequence.from_bytes(craft.frame(base))
    assert len(good) == 32
    for bad, match in [(replace(base, n_tokens=33), "at most 32"), (replace(base, n_tokens=craft.U32), "at most 32"),
                       (replace(base, payload_len=base.payload_len + 1), "in 45 bytes"),
                       (replace(base, params={"levels": 1}), "parameters"),
                       (replace(base, shape=(56, 56, 1)), "shape")]:
        with pytest.raises(ContainerError, match=match):
            TokenSequence.from_bytes(craft.frame(bad))


# --- the bounds never refuse a real stream ---------------------------------------------------------


def _images():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:48, 0:40]
    return {
        "noise": rng.integers(0, 256, (24, 20, 3), dtype=np.uint8),
        "flat": np.full((64, 64), 3, np.uint8),
        "ramp": ((xx * 5 + yy) % 256).astype(np.uint8),
        "one pixel": np.array([[0]], np.uint8),
        "stripes": np.where((xx // 2) % 2, 255, 0).astype(np.uint8),
    }


@pytest.mark.parametrize("name", ["wavelet", "wavelet-lossless"])
def test_real_streams_are_within_the_bounds(name):
    """Every full stream (with a region, a fixed header, the top plane raised) has at most
    (2 nmax + 3) tokens a coefficient and at most max_coded_tokens(its payload) tokens."""
    tok = adatok.load(name)
    for label, img in _images().items():
        roi = np.zeros(img.shape[:2])
        roi[: img.shape[0] // 2] = 1
        for kw in ({}, {"roi": [roi]}, {"fixed_header": True}):
            (seq,) = tok.encode([img], **kw)
            raised = seq if kw.get("roi") or "rep" in seq.params else tok.with_top_plane(seq, tok.top_plane(seq.shape) + 1)
            for s in (seq, raised):
                nodes = tok._layout(s.shape, s.params).size
                payload = parse_container(s.to_bytes())[1]
                assert len(s) <= max_stream_tokens(nodes, s.params["nmax"]), (label, kw)
                assert len(s) <= max_coded_tokens(len(payload)), (label, kw)


def test_a_stream_of_certain_decisions_stays_within_the_coded_bound():
    """The bound's worst case: the stepper's first legal id at every step of a large flat-shaped
    stream from plane 61 (long runs of the same decision, the cheapest the coder has)."""
    tok = adatok.load("wavelet-lossless")
    st = tok.stepper([(64, 64)], nmax=tok.top_plane((64, 64)) + 1)
    while not st.done.all():
        st.push(st.legal().argmax(1))
    (seq,) = st.sequences()
    payload = parse_container(seq.to_bytes())[1]
    assert len(seq) / max(1, len(payload)) > 100  # many tokens a byte
    assert len(seq) <= max_coded_tokens(len(payload))


def test_the_shipped_priors_are_inside_the_model_clamp():
    """max_coded_tokens assumes every probability in 32..65504 / 65536."""
    for name in ("wavelet", "wavelet-lossless"):
        prior = adatok.load(name).prior
        assert prior[:, 0].min() >= 32 and prior[:, 0].max() <= 65536 - 32
    assert spiht.uniform_prior()[:, 0].min() >= 32


def test_a_cut_past_the_header_still_reads_as_a_prefix_after_the_cap():
    tok = adatok.load("wavelet")
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    (seq,) = tok.encode([img], Tokens(3000))
    data = seq.to_bytes()
    head = header_size(data)
    for cut in range(head, len(data) + 1, 97):
        part = TokenSequence.from_bytes(data[:cut])
        assert np.array_equal(part.ids, seq.ids[: len(part)])
    assert len(TokenSequence.from_bytes(data)) == len(seq)


@pytest.mark.parametrize("name", ["wavelet-w8", "wavelet-lossless-w8"])
def test_a_word_count_is_checked_in_whole_words(name):
    """A word container counts words, the last one padded past its stream's end: a 1 x 1 image at
    top plane 2 codes 5 to 7 decisions, one word of 8, within what the image holds. It was checked
    as 8 decisions against 7 and every such file refused (16 of 256 one-pixel images; found by the
    ``stepper`` target: fuzz/regressions/stepper/words-1x1-padded-last-word). A word more is refused."""
    tok = adatok.load(name)
    for v in range(256):
        (seq,) = tok.encode([np.full((1, 1), v, np.uint8)])
        back = TokenSequence.from_bytes(seq.to_bytes())
        assert np.array_equal(back.ids, seq.ids) and np.array_equal(tok.decode([back])[0], tok.decode([seq])[0])
    (seq,) = tok.encode([np.full((1, 1), 121, np.uint8)])
    f = craft.fields_of(seq.to_bytes())
    assert (f.n_tokens, f.params["nmax"]) == (1, 2)  # 7 decisions at most: one word
    with pytest.raises(ContainerError, match="header says 2 tokens"):
        TokenSequence.from_bytes(craft.frame(replace(f, n_tokens=2)))


# --- cuts of any payload read as prefixes ------------------------------------------------------------


def test_a_payload_that_begins_with_four_0xff_bytes_is_refused(gray):
    """No stream begins so (the decoder's first code would not be below its range). A cut one was
    read as far as its header's count went, while a longer cut of it read 64 tokens: a cut was not
    a prefix (found by the container fuzz target: fuzz/regressions/container/)."""
    for payload_len in (len(gray.payload), 600):
        f = replace(gray, payload=b"\xff" * 4 + gray.payload[4:9], payload_len=payload_len)
        with pytest.raises(ContainerError, match="four 0xff"):
            TokenSequence.from_bytes(craft.frame(f))


@pytest.mark.parametrize("name", ["wavelet", "wavelet-lossless", "wavelet-w8", "wavelet-lossless-w8"])
def test_every_cut_of_any_payload_reads_as_a_prefix(name):
    """Not only the encoder's bytes: arbitrary payloads (random, runs of 0xff and 0xfe, all-0xff
    cuts shorter than four bytes) in a container whose payload was cut (see unpack_sequence); the
    word views read them in whole words."""
    tok = adatok.load(name)
    rng = np.random.default_rng(3)
    base = craft.fields_of(tok.encode([rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)])[0].to_bytes())
    payloads = [b"\xff" * k for k in range(4)] + [b"\xff" * 3 + b"\xfe" + bytes(rng.integers(0, 256, 9, dtype=np.uint8))]
    payloads += [bytes(rng.choice([0, 1, 254, 255], int(rng.integers(1, 20)))) for _ in range(30)]
    payloads += [rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes() for _ in range(30)]
    for payload in payloads:
        data = craft.frame(replace(base, payload=payload, payload_len=600, n_tokens=base.n_tokens))
        try:
            full = TokenSequence.from_bytes(data)
        except ContainerError as exc:  # it codes every token though cut: read as damaged; its tokens but the last
            assert "which no cut of it does" in str(exc)
            full = TokenSequence.from_bytes(data, max_tokens=base.n_tokens - 1)
        head = len(data) - len(payload)
        for cut in range(head, len(data)):
            try:
                part = TokenSequence.from_bytes(data[:cut])
            except ContainerError as exc:
                assert "which no cut of it does" in str(exc) and len(full) >= base.n_tokens - 1
                continue
            assert np.array_equal(part.ids, full.ids[: len(part)]), (payload.hex(), cut - head)


# --- bytes lost from inside a payload (found by review, 2026-12-02) ---------------------------------


def _photo_crop():
    from skimage import data

    return data.astronaut()[100:164, 180:244]


@pytest.mark.parametrize("name", ["wavelet", "wavelet-lossless", "wavelet-w8"])
def test_no_cut_of_an_encoders_payload_codes_all_its_tokens(name):
    """What the check below rests on: the encoder ends a payload with the fewest bytes that pin its
    last token, so every cut of one byte or more loses a token. Over images and budgets."""
    tok = adatok.load(name)
    rng = np.random.default_rng(7)
    images = [_photo_crop(), rng.integers(0, 256, (9, 13, 3), dtype=np.uint8), np.full((16, 16), 77, np.uint8),
              ((np.indices((12, 20)).sum(0) % 2) * 255).astype(np.uint8)]
    for img in images:
        for budget in (None, Tokens(40), Tokens(700), adatok.Bpp(1.5)):
            try:
                (seq,) = tok.encode([img], budget) if budget is not None else tok.encode([img])
            except AdatokError:  # (a budget under the header alone)
                continue
            data = seq.to_bytes()
            for cut in (1, 2, 3):
                if len(data) - cut < header_size(data):
                    continue
                part = TokenSequence.from_bytes(data[:-cut])
                assert len(part) < len(seq) and np.array_equal(part.ids, seq.ids[: len(part)]), (img.shape, budget, cut)


def test_a_byte_lost_from_inside_a_payload_is_never_read_as_the_whole_sequence():
    """A 64x64 photo at Bpp(1.0) has one chunk (428 bytes): a file with one of its bytes deleted read as
    a cut one, and in 294 of the 428 places decoded all its tokens, wrong from the gap on, with
    no word (`adatok info` showed the full count). Now those are refused; the rest read as what they
    are, cut files (their last chunk has no checksum), which `info` and `decode` say."""
    from skimage import data as samples

    tok = adatok.load("wavelet")
    (seq,) = tok.encode([samples.astronaut()[:64, :64]], adatok.Bpp(1.0))
    data = seq.to_bytes()
    h = header_size(data)
    refused = 0
    for i in range(h, len(data)):
        try:
            got = TokenSequence.from_bytes(data[:i] + data[i + 1:])
        except ContainerError as exc:
            assert "bytes are missing from inside it" in str(exc) or "checksum" in str(exc), exc
            refused += 1
            continue
        assert len(got) < len(seq)  # read as a cut file: never as the whole sequence
    assert refused > (len(data) - h) // 3  # (294 of 428 when written)


def test_hand_built_sequences_are_checked_found_by_review():
    pos = np.zeros((1, 1), np.int32)
    with pytest.raises(adatok.InvalidTokensError, match="fit in int32"):  # (float32(2**31) wrapped to -2**31)
        TokenSequence(np.array([2.0**31], np.float32), pos, (8, 8), "x", "1")
    for shape in [(), (8,), (2, 2, 2, 2)]:  # (accepted; num_pixels then raised IndexError)
        with pytest.raises(adatok.InvalidTokensError, match="shape"):
            TokenSequence(np.array([1]), pos, shape, "x", "1")
    with pytest.raises(adatok.InvalidTokensError, match="one row"):  # (flattened into one sequence)
        TokenSequence(np.ones((2, 3), np.int32), np.zeros((6, 1), np.int32), (8, 8), "x", "1")
    deep: dict = {}
    for _ in range(100_000):
        deep = {"a": deep}
    selfish: dict = {}
    selfish["me"] = selfish
    for params in (deep, selfish):  # (RecursionError)
        with pytest.raises(adatok.InvalidTokensError, match="nested too deeply"):
            TokenSequence(np.array([1]), pos, (8, 8), "x", "1", params)


def test_a_region_grid_of_the_wrong_size_is_said_once_in_words(gray):
    """Was: "header parameters are invalid (the region of interest in the header is invalid
    (ValueError('cannot reshape array of size 193 into shape (16,12)')): the file is corrupt): the
    file is corrupt"."""
    import base64
    import zlib

    d = base64.b64encode(zlib.compress(bytes(7))).decode()
    with pytest.raises(ContainerError) as info:
        TokenSequence.from_bytes(craft.frame(craft._roi(d=d)(gray)))
    message = str(info.value)
    assert "does not fit the image" in message and message.count("the file is corrupt") == 1
    assert "Error(" not in message


def test_an_unknown_tokenizer_s_file_names_every_tokenizer_adatok_load_takes(gray):
    """The list left out the word views (`wavelet-w8`, `wavelet-lossless-w8`), which adatok.load takes."""
    with pytest.raises(ContainerError) as info:
        TokenSequence.from_bytes(craft.frame(replace(gray, tokenizer="mystery")))
    assert "wavelet-w8" in str(info.value) and "wavelet-lossless-w8" in str(info.value)
