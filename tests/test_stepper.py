"""Tests of the token grammar: every tokenizer's stepper (``tok.stepper``), and the fixed header
the wavelet tokenizers give a generator (``top_plane``, ``encode(..., fixed_header=True)``,
``with_top_plane``).

The wavelet stepper must follow the encoder exactly: stepped with the encoder's own ids it makes
the encoder's ids and positions, offers those ids and only ids the decoder accepts, and decodes
every prefix as ``decode`` does. ``benchmarks/stepper_check.py`` runs :func:`replay_encoder` on
every bundled photo at full size and 200 Fashion-MNIST images; here it runs on smaller sets.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adatok
from adatok import ImageFormatError, InvalidTokensError, Stepper, TokenizerMismatchError, TokenSequence
from adatok.datasets import load as load_dataset
from adatok.datasets import sample_images
from adatok.wavelet import header
from adatok.wavelet.tokenizer import _magnitudes

NAMES = ("wavelet", "wavelet-lossless")
SIG0, SIG_POS, SIG_NEG, D0, D1, L0, L1, REF0, REF1 = range(9)


def tok(name: str):
    return adatok.load(name)


def noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def fashion(n: int) -> list[np.ndarray]:
    return load_dataset("fashion-mnist", split="test", limit=n).images


# ------------------------------------------------------------------------------------------------
# Stepping with the encoder's ids
# ------------------------------------------------------------------------------------------------


def replay_encoder(t, imgs: list[np.ndarray], fixed_header: bool = False, n_images: int = 10) -> int:
    """Encode ``imgs`` and grow them again in one stepper, pushing the encoder's own ids. At every
    step, every sequence's ``next_pos`` must be the encoder's position of its next token, the
    encoder's id must be legal and ``done`` must say where the sequence ends; at ``n_images``
    lengths per image (from 0 to the full length) the stepper's image must equal ``decode`` of
    that prefix; at the end the sequences must be the encoder's (ids, positions, header) and
    survive their bytes. Returns the number of tokens stepped."""
    seqs = t.encode(imgs, fixed_header=fixed_header)
    b = len(seqs)
    lens = np.array([len(s) for s in seqs])
    n = int(lens.max())
    ids = np.full((b, n + 1), -1, np.int64)
    pos = np.full((b, n + 1, 6), -1, np.int32)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s.ids
        pos[i, : len(s)] = s.pos
    if fixed_header:  # the header of a shape: started from the shapes alone
        stepper = t.stepper([np.shape(im) for im in imgs])
    else:  # each image's own header (nmax, pixel replication): started from the empty prefixes
        stepper = t.stepper([s.prefix(0) for s in seqs])
    checks = {}
    for i, m in enumerate(lens):
        for k in np.unique(np.linspace(0, m, n_images).round().astype(int)):
            checks.setdefault(int(k), []).append(i)
    rows = np.arange(b)
    for k in range(n + 1):
        assert np.array_equal(stepper.next_pos(), pos[:, k]), f"next position at token {k}"
        legal = stepper.legal()
        live = lens > k
        assert np.array_equal(stepper.done, ~live)
        assert legal[rows[live], ids[live, k]].all(), f"the encoder's token {k} is not offered"
        assert not legal[~live].any()
        if k in checks:
            got = stepper.images(checks[k])
            want = t.decode([seqs[i].prefix(k) for i in checks[k]])
            for i, g, w in zip(checks[k], got, want):
                assert np.array_equal(g, w), f"image {i} at {k} tokens"
        if k < n:
            stepper.push(ids[:, k])
    for s, made in zip(seqs, stepper.sequences()):
        assert np.array_equal(made.ids, s.ids) and np.array_equal(made.pos, s.pos)
        assert dict(made.params) == dict(s.params) and made.shape == s.shape
        back = TokenSequence.from_bytes(made.to_bytes())
        assert np.array_equal(back.ids, s.ids)
    return int(lens.sum())


@pytest.mark.parametrize("name", NAMES)
def test_stepping_the_encoders_ids_on_sample_photos(name):
    imgs = [img for _, img in sample_images(max_side=40)]
    assert replay_encoder(tok(name), imgs) > 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fixed_header", [False, True], ids=["own header", "fixed header"])
def test_stepping_the_encoders_ids_on_fashion_mnist(name, fixed_header):
    assert replay_encoder(tok(name), fashion(24), fixed_header) > 24 * 1000


@pytest.mark.parametrize("name", NAMES)
def test_stepping_odd_shapes_in_one_batch(name):
    """Shapes of every kind in one stepper (one walk group per shape), with a replicated image."""
    rep = np.repeat(np.repeat(noise((8, 9, 3), 5), 2, axis=0), 2, axis=1)  # coded at 8x9 (params["rep"])
    imgs = [noise((1, 1), 1), noise((1, 7), 2), noise((7, 1, 3), 3), noise((13, 17), 4), rep,
            np.zeros((5, 5), np.uint8)]
    assert "rep" in tok(name).encode([rep])[0].params
    replay_encoder(tok(name), imgs)


@pytest.mark.parametrize("name", NAMES)
def test_going_on_from_a_prefix(name):
    """A stepper started from a prefix is where the encoder was: it goes on to the full sequence."""
    img = fashion(1)[0]
    (seq,) = tok(name).encode([img])
    k = len(seq) // 3
    stepper = tok(name).stepper([seq.prefix(k), seq.prefix(0), seq])
    assert list(stepper.lengths) == [k, 0, len(seq)]
    assert list(stepper.done) == [False, False, True]
    assert np.array_equal(stepper.next_pos()[0], seq.pos[k])
    assert np.array_equal(stepper.images([0])[0], tok(name).decode([seq.prefix(k)])[0])
    while not stepper.done[0]:
        stepper.push([seq.ids[stepper.lengths[0]], -1, -1])  # -1 holds the second sequence
    made = stepper.sequences()
    assert np.array_equal(made[0].ids, seq.ids) and np.array_equal(made[0].pos, seq.pos)
    assert len(made[1]) == 0 and np.array_equal(made[2].ids, seq.ids)


@pytest.mark.parametrize("name", NAMES)
def test_going_on_with_a_region_of_interest(name):
    """A sequence coded with a region of interest (its own shifts) steps like any other."""
    img = noise((20, 24, 3), 9)
    roi = np.zeros((20, 24), np.float32)
    roi[4:12, 6:18] = 1
    (seq,) = tok(name).encode([img], roi=[roi])
    assert "roi" in seq.params
    stepper = tok(name).stepper([seq.prefix(0), (20, 24, 3)])
    for k in range(len(seq)):
        assert np.array_equal(stepper.next_pos()[0], seq.pos[k])
        stepper.push([seq.ids[k], -1])
    assert stepper.done[0] and np.array_equal(stepper.sequences()[0].ids, seq.ids)
    assert np.array_equal(stepper.images([0])[0], tok(name).decode([seq])[0])


# ------------------------------------------------------------------------------------------------
# Random legal walks
# ------------------------------------------------------------------------------------------------


def random_walks(t, shape, n: int, rng: np.random.Generator, longest: int) -> adatok.Stepper:
    """``n`` sequences of ``shape`` grown with uniformly random legal ids, each to its own random
    length (up to ``longest``, or its stream's end). Checks that no sequence is offered nothing
    before its end. Returns the stepper."""
    stepper = t.stepper([shape] * n)
    target = rng.integers(0, longest + 1, n)
    while True:
        legal = stepper.legal()
        done = stepper.done
        assert legal[~done].any(1).all(), "a sequence is offered no id before its end"
        assert not legal[done].any()
        live = ~done & (stepper.lengths < target)
        if not live.any():
            return stepper
        pick = (rng.random(legal.shape) * legal).argmax(1)  # a uniformly random legal id
        stepper.push(np.where(live, pick, -1))


@pytest.mark.parametrize("name", NAMES)
def test_random_legal_walks_decode_and_survive_bytes(name):
    """1,000 random legal sequences of random lengths (two shapes): every one decodes, the
    stepper's images are decode's, and the bytes give back the same ids and positions."""
    t = tok(name)
    rng = np.random.default_rng(13)
    total = 0
    for shape, n, longest in (((28, 28), 600, 3000), ((37, 53, 3), 400, 1500)):
        stepper = random_walks(t, shape, n, rng, longest)
        seqs = stepper.sequences()
        assert len({len(s) for s in seqs}) > n // 10  # lengths of every kind
        assert all(dict(s.params) == header.fixed_params(t, shape) for s in seqs)
        imgs = t.decode(seqs)
        some = rng.choice(n, 50, replace=False)
        for b, img in zip(some, stepper.images(some)):
            assert np.array_equal(img, imgs[b])
        for s in seqs:
            back = TokenSequence.from_bytes(s.to_bytes())
            assert np.array_equal(back.ids, s.ids) and np.array_equal(back.pos, s.pos)
        total += n
    assert total == 1000


def _state(stepper) -> tuple:
    seqs = stepper.sequences()
    return (stepper.next_pos(), stepper.legal(), stepper.lengths, stepper.done, [s.ids for s in seqs],
            [s.pos for s in seqs], stepper.images())


def _same_state(a: tuple, b: tuple) -> None:
    for x, y in zip(a, b):
        if isinstance(x, list):
            assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y))
        else:
            assert np.array_equal(x, y)


@pytest.mark.parametrize("name", NAMES)
def test_illegal_ids_are_refused_and_change_nothing(name):
    """At random places of random walks, an illegal id in one sequence of the batch raises and
    leaves every sequence as it was; the walk then goes on."""
    t = tok(name)
    rng = np.random.default_rng(5)
    stepper = t.stepper([(28, 28)] * 6 + [(11, 7, 3)] * 2)  # two walk groups
    refused = set()
    for _ in range(60):
        for _ in range(rng.integers(1, 40)):
            legal = stepper.legal()
            stepper.push(np.where(stepper.done, -1, (rng.random(legal.shape) * legal).argmax(1)))
        legal = stepper.legal()
        live = np.nonzero(~stepper.done)[0]
        if not len(live):
            break
        b = int(rng.choice(live))
        bad_ids = [v for v in range(-3, 12) if v != -1 and not (0 <= v < 9 and legal[b, v])]
        ids = (rng.random(legal.shape) * legal).argmax(1)
        before = _state(stepper)
        for v in rng.choice(bad_ids, 3, replace=False):
            ids[b] = v
            with pytest.raises(InvalidTokensError, match=f"cannot stand next in sequence {b}"):
                stepper.push(ids)
            refused.add(int(v))
            _same_state(before, _state(stepper))
    assert {SIG0, D0, L0, REF0} & refused and {-2, 9} & refused


def test_every_offered_id_and_only_those_is_accepted_by_decode():
    """The mask is the decoder's grammar, both ways: at every place of a few random walks, each
    offered id extends the prefix into a sequence decode accepts, and each other id into one it
    refuses ("cannot stand there")."""
    for name in NAMES:
        t = tok(name)
        for shape, seed in (((6, 5), 1), ((5, 7, 3), 2)):
            stepper = random_walks(t, shape, 4, np.random.default_rng(seed), 10_000)
            for seq in stepper.sequences():
                check = t.stepper([seq.prefix(0)])
                for k in range(len(seq) + 1):
                    legal = check.legal()[0]
                    for v in range(9):
                        ids = np.append(seq.ids[:k], v)
                        cand = TokenSequence(ids, np.zeros((k + 1, 6), np.int32), seq.shape, seq.tokenizer,
                                             seq.version, seq.params, seq.pos_fields)
                        if legal[v]:
                            t.decode([cand])
                        else:
                            with pytest.raises(InvalidTokensError, match="cannot stand there|past the end"):
                                t.decode([cand])
                    if k < len(seq):
                        check.push([seq.ids[k]])


# ------------------------------------------------------------------------------------------------
# Properties (hypothesis)
# ------------------------------------------------------------------------------------------------


@st.composite
def images(draw):
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    c = draw(st.sampled_from([None, 1, 3]))
    shape = (h, w) if c is None else (h, w, c)
    seed = draw(st.integers(0, 2**16))
    smooth = draw(st.booleans())
    img = noise(shape, seed)
    if smooth:  # a smooth image: few significant coefficients, long runs of zeros
        img = np.sort(img, axis=0)
    return img


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=images(), name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_property_random_legal_choices(img, name, seed):
    """From a random image's own header, random legal ids: never an empty mask before the end,
    every id accepted, and the sequence decodes (to the stepper's image) and survives its bytes."""
    t = tok(name)
    (seq,) = t.encode([img])
    rng = np.random.default_rng(seed)
    stepper = t.stepper([seq.prefix(0)])
    while not stepper.done[0]:
        legal = stepper.legal()[0]
        assert legal.any()
        stepper.push([rng.choice(np.nonzero(legal)[0])])
    assert not stepper.legal().any() and (stepper.next_pos() == -1).all()
    (made,) = stepper.sequences()
    assert np.array_equal(t.decode([made])[0], stepper.images()[0])
    back = TokenSequence.from_bytes(made.to_bytes())
    assert np.array_equal(back.ids, made.ids) and np.array_equal(back.pos, made.pos)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=images(), name=st.sampled_from(NAMES), fixed=st.booleans())
def test_property_encoders_ids_reproduce_encode(img, name, fixed):
    replay_encoder(tok(name), [img], fixed, n_images=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=images(), name=st.sampled_from(NAMES))
def test_property_fixed_header_is_the_own_sequence_re_expressed(img, name):
    """No image's top plane is above top_plane; the fixed-header sequence is the image's own
    sequence with the planes above in front (with_top_plane), and every prefix of the own
    sequence decodes as the same prefix after those planes."""
    t = tok(name)
    layout, coef, _ = t._analyze(img if img.ndim == 3 else img[:, :, None])
    own = int(_magnitudes(coef, t._shifts(layout)[0])[2]).bit_length() - 1
    assert own <= t.top_plane(img.shape)
    (fixed,) = t.encode([img], fixed_header=True)
    assert "rep" not in fixed.params and fixed.params["nmax"] == t.top_plane(img.shape)
    (seq,) = t.encode([img])
    if "rep" in seq.params:
        return  # coded at another size: its own sequence cannot be re-expressed at this shape's header
    up = t.with_top_plane(seq)
    assert np.array_equal(up.ids, fixed.ids) and np.array_equal(up.pos, fixed.pos)
    extra = len(up) - len(seq)
    assert set(up.ids[:extra].tolist()) <= {SIG0, D0}
    for k in sorted({0, len(seq) // 2, len(seq)}):
        assert np.array_equal(t.decode([up.prefix(extra + k)])[0], t.decode([seq.prefix(k)])[0])


# ------------------------------------------------------------------------------------------------
# The top plane
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(28, 28), (37, 53, 3), (1, 1), (4, 4, 3), (1, 7), (7, 1, 3), (13, 17),
                                   (256, 256, 3), (100, 1300), (2, 3000, 3)])
def test_top_plane_is_reached_by_its_witness(name, shape):
    """top_plane is an upper bound (from the transforms) that an 8-bit image reaches: the bound
    is tight, not just safe. (Axes over 1152 samples are bounded through a shorter axis.)"""
    t = tok(name)
    layout = t._layout(shape, header.fixed_params(t, shape))
    reached = -1
    for flip in (False, True):
        img = header.witness(t, layout, flip)
        assert img.shape[:2] == shape[:2] and img.dtype == np.uint8
        lay, coef, _ = t._analyze(img)
        reached = max(reached, int(_magnitudes(coef, t._shifts(lay)[0])[2]).bit_length() - 1)
    assert reached == t.top_plane(shape)


def test_top_plane_of_a_long_axis_is_that_of_the_exact_analysis(monkeypatch):
    """The shorter axis a long one is bounded with gives the same l1 norms as the whole axis."""
    for n in (1153, 1200, 1300, 1279):
        short = header._axis(n, 6, "9/7")[0]
        header._axis.cache_clear()
        monkeypatch.setattr(header, "_LONG_AXIS", 10**6)
        full = header._axis(n, 6, "9/7")[0]
        header._axis.cache_clear()
        monkeypatch.undo()
        flat = (lambda norms: np.array([v for level in norms for pair in level for v in pair]))
        assert np.allclose(flat(short), flat(full), rtol=1e-9), n


def test_top_plane_of_real_images():
    """The top plane of Fashion-MNIST's shape, and how many tokens the fixed header costs there."""
    imgs = fashion(50)
    for name in NAMES:
        t = tok(name)
        own = [s.params["nmax"] for s in t.encode(imgs)]
        assert max(own) <= t.top_plane((28, 28, 1)) == t.top_plane((28, 28))


# ------------------------------------------------------------------------------------------------
# Errors and the other tokenizers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*NAMES, "wavelet-w8"])
def test_images_of_some_sequences_index_as_a_list(name):
    """images(which) took a dict lookup: -1 and past-the-end were raw KeyErrors (a list's indexing,
    as the other steppers have, now)."""
    stepper = adatok.load(name).stepper([(4, 4), (6, 5)])
    assert stepper.images([-1])[0].shape == stepper.images([1])[0].shape == (6, 5)
    assert [im.shape for im in stepper.images(np.array([1, 0]))] == [(6, 5), (4, 4)]
    for bad in ([2], [-3], [0.0], ["0"], [True], [np.bool_(True)], 0, "01", np.array(1)):  # (raw errors before)
        with pytest.raises(InvalidTokensError, match="images"):
            stepper.images(bad)
    assert stepper.images([np.array(1)])[0].shape == stepper.images(np.array([np.uint8(1)]))[0].shape == (6, 5)
    torch = pytest.importorskip("torch")  # any integer a list takes: torch's too
    assert stepper.images(torch.tensor([1]))[0].shape == stepper.images([torch.tensor(-1)])[0].shape == (6, 5)
    for bad in ([torch.tensor(True)], torch.tensor([True, False])):  # a mask is no list of indices
        with pytest.raises(InvalidTokensError, match="images"):
            stepper.images(bad)


@pytest.mark.parametrize("name", NAMES)
def test_stepper_errors(name):
    t = tok(name)
    stepper = t.stepper([(8, 8), (8, 8)])
    for bad in ([0], [[0, 0]], [0.0, 1.0], "ab"):
        with pytest.raises(InvalidTokensError, match=r"push takes one integer id per sequence"):
            stepper.push(bad)
    for bad in ((0, 5), (5, 5, 2), (5,), "55", (5.0, 5), 7,
                b"\x09\x0b", bytearray(b"\x09\x0b\x03"), memoryview(b"\x08\x08")):  # (bytes: a cut .atk file)
        with pytest.raises(ImageFormatError, match="not an image shape"):
            t.stepper([bad])
    with pytest.raises(ImageFormatError, match="over the limit"):
        t.stepper([(100_000, 100_000)])
    for bad in ([], (8, 8), 2, None, t.encode([noise((8, 8))])[0]):
        with pytest.raises(ImageFormatError, match="stepper takes a non-empty list"):
            t.stepper(bad)
    other = tok("wavelet-lossless" if name == "wavelet" else "wavelet").encode([noise((8, 8))])[0]
    with pytest.raises(TokenizerMismatchError):
        t.stepper([other])
    (seq,) = t.encode([noise((8, 8))])
    ids = seq.ids.copy()
    ids[0] = D0
    edited = TokenSequence(ids, seq.pos, seq.shape, seq.tokenizer, seq.version, seq.params, seq.pos_fields)
    with pytest.raises(InvalidTokensError, match=r"start 0: token D0 \(id 3\) at index 0 cannot stand there"):
        t.stepper([edited])
    ids[0] = 300
    edited = TokenSequence(ids, seq.pos, seq.shape, seq.tokenizer, seq.version, seq.params, seq.pos_fields)
    with pytest.raises(InvalidTokensError, match=r"start 0: token id 300 at index 0 is out of range"):
        t.stepper([edited])
    longer = TokenSequence(np.append(seq.ids, 0), np.zeros((len(seq) + 1, 6)), seq.shape, seq.tokenizer,
                           seq.version, seq.params, seq.pos_fields)
    with pytest.raises(InvalidTokensError, match="has 1 token past the end of its stream"):
        t.stepper([longer])
    with pytest.raises(ImageFormatError, match=r"start 0: b'.{60,}\.\.\. is not an image shape") as e:
        t.stepper([seq.to_bytes() * 100])  # (a whole file's repr in the message: 38,525 characters)
    assert len(str(e.value)) < 200
    with pytest.raises(ImageFormatError, match="no region of interest"):
        t.encode([noise((8, 8))], roi=[np.ones((8, 8))], fixed_header=True)
    with pytest.raises(InvalidTokensError, match="can only gain planes above its own"):
        t.with_top_plane(seq, seq.params["nmax"] - 1)
    # an nmax argument is said to be one (it said "in the sequence")
    with pytest.raises(InvalidTokensError, match="invalid top bit-plane 70 given as nmax"):
        t.stepper([(8, 8)], nmax=70)
    with pytest.raises(InvalidTokensError, match="invalid top bit-plane 30 given as nmax: no 8-bit image"):
        t.stepper([(8, 8)], nmax=30)
    with pytest.raises(InvalidTokensError, match="invalid top bit-plane 30 given as nmax: no 8-bit image"):
        t.with_top_plane(seq, 30)


@pytest.mark.parametrize("name", NAMES)
def test_pushes_that_move_no_row_do_not_grow_the_buffers(name):
    """Held (-1) and ignored pushes (after the end) move no row, so they need no room: each push
    counted as a token of the longest row, and 200,000 of them grew the buffers to 262,144 tokens."""
    t = tok(name)
    stepper = t.stepper([(4, 4), (4, 4)])
    while not stepper.done[0]:
        stepper.push(np.array([int(np.argmax(stepper.legal()[0])), -1]))  # row 0 to its end, row 1 held
    (g,) = stepper._groups
    cap, lengths = g.cap, stepper.lengths
    for _ in range(3 * cap):
        stepper.push(np.array([0, -1]))  # ignored (ended), held
    assert g.cap == cap and np.array_equal(stepper.lengths, lengths)
    while not stepper.done[1]:  # the held row still grows, and round-trips
        stepper.push(np.array([-1, int(np.argmax(stepper.legal()[1]))]))
    for seq, img in zip(stepper.sequences(), stepper.images()):
        assert np.array_equal(t.decode([TokenSequence.from_bytes(seq.to_bytes())])[0], img)


def test_a_lower_nmax_and_an_all_zero_image():
    """A stepper from a shape takes another top plane; -1 is an empty stream (a mid-gray image)."""
    t = tok("wavelet-lossless")
    gray = np.full((6, 6), 128, np.uint8)
    (seq,) = t.encode([gray])
    assert seq.params["nmax"] == -1 and len(seq) == 0
    stepper = t.stepper([(6, 6), seq], nmax=-1)
    assert stepper.done.all()
    assert all(np.array_equal(img, gray) for img in stepper.images())
    low = t.stepper([(6, 6)], nmax=2)
    assert low.next_pos()[0, 0] == 2 and low.sequences()[0].params["nmax"] == 2


def test_a_grid_checks_what_it_is_given():
    """The grid baseline refused little: another fitted grid's sequences decoded to a wrong image
    (the version was "1" for every grid), bytes with an impossible header, bad shapes and params and
    stepper starts reached numpy (ValueError, MemoryError), and seq.to_bytes() named the registry."""
    import dataclasses
    import struct

    from adatok import ContainerError, UnknownTokenizerError
    from adatok.eval import GridTokenizer

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)
    a = GridTokenizer.fit([img], patch=(8, 4), codebook=16)
    b = GridTokenizer.fit([255 - img], patch=(8, 4), codebook=16)
    again = GridTokenizer.fit([img], patch=(8, 4), codebook=16)
    assert a.version != b.version and a.version == again.version  # the version names the codebooks
    (seq,) = a.encode([img])
    assert np.array_equal(again.decode([seq])[0], a.decode([seq])[0])
    for other in (b, dataclasses.replace(seq, version="1")):
        with pytest.raises(TokenizerMismatchError, match="another grid"):
            b.decode([seq]) if other is b else a.decode([other])
    for bad in (dataclasses.replace(seq, shape=(9, 9, 4)), dataclasses.replace(seq, params={"patch": "x"}),
                dataclasses.replace(seq, params={"patch": 4.0}), dataclasses.replace(seq, shape=(10**5, 10**5, 3))):
        with pytest.raises(InvalidTokensError):
            a.decode([bad])
    data = a.to_bytes(seq)
    h, w, c, p, n = struct.unpack_from(">IIBBI", data)
    assert a.decode([a.from_bytes(data)])[0].tolist() == a.decode([seq])[0].tolist()
    for head in ((h, w, 5, p, n), (2**30, 2**30, c, p, n), (0, w, c, p, n)):
        with pytest.raises(ContainerError, match="no image"):
            a.from_bytes(struct.pack(">IIBBI", *head) + data[14:])
    for start in (("28", "28"), (10**6, 10**6), (28.0, 28)):
        with pytest.raises(ImageFormatError):
            a.stepper([start])
    for patch in ("x", [4], 4.9, "4", True):
        with pytest.raises(adatok.AdatokError, match="no codebook"):
            a.stepper([(8, 8)], patch=patch)
    assert a.stepper([(8, 8)], patch=np.int64(4)).sequences()[0].params["patch"] == 4
    from adatok.core import imageio

    real = imageio.MAX_PIXELS
    try:  # the pixel limit is read when checking, as everywhere (it was read once, at import)
        imageio.MAX_PIXELS = 50
        with pytest.raises(InvalidTokensError, match="at most 50 pixels"):
            a.decode([seq])
        with pytest.raises(ContainerError, match="no image"):
            a.from_bytes(data)
    finally:
        imageio.MAX_PIXELS = real
    with pytest.raises(UnknownTokenizerError, match=r"grid.to_bytes\(seq\), with the grid that made it"):
        seq.to_bytes()


def test_every_tokenizer_has_a_stepper():
    """The wavelet and grid tokenizers' steppers follow the Stepper protocol (the learned one:
    tests/test_neural.py); the grid's is every id at every patch, in raster order."""
    from adatok.eval import GridTokenizer

    imgs = fashion(20)
    grid = GridTokenizer.fit(imgs, patch=(7, 4), codebook=16)
    assert isinstance(grid, adatok.Tokenizer)
    (seq,) = grid.encode(imgs[:1])
    stepper = grid.stepper([(28, 28, 1), seq.prefix(10)])
    assert isinstance(stepper, Stepper) and stepper.legal().all()
    assert np.array_equal(stepper.next_pos(), np.stack([seq.pos[0], seq.pos[10]]))
    k = 0
    while not stepper.done.all():
        stepper.push([seq.ids[k], seq.ids[min(k + 10, len(seq) - 1)]])
        k += 1
    assert k == len(seq) and (stepper.next_pos() == -1).all() and not stepper.legal().any()
    made = stepper.sequences()
    assert np.array_equal(made[0].ids, seq.ids) and np.array_equal(made[0].pos, seq.pos)
    assert np.array_equal(stepper.images()[0], grid.decode([seq])[0])
    with pytest.raises(InvalidTokensError, match="out of range"):
        grid.stepper([(28, 28)]).push([16])
    for name in NAMES:
        assert isinstance(tok(name).stepper([(3, 3)]), Stepper)


def test_the_grid_stepper_pickles():
    """The grid tokenizer's stepper, like the learned one's, made each sequence with a lambda (a raw
    "Can't pickle local object"); it pickles, and its copy goes on as it does."""
    import pickle

    from adatok.eval import GridTokenizer

    imgs = fashion(20)
    grid = GridTokenizer.fit(imgs, patch=(7, 4), codebook=16)
    stepper = grid.stepper([(28, 28, 1), (28, 28)])
    stepper.push([3, 4])
    copy = pickle.loads(pickle.dumps(stepper))
    for st in (stepper, copy):
        st.push([5, 6])
    assert [s.ids.tolist() for s in copy.sequences()] == [[3, 5], [4, 6]]
    assert [s.shape for s in copy.sequences()] == [(28, 28, 1), (28, 28)]
    assert all(np.array_equal(a, b) for a, b in zip(stepper.images(), copy.images()))


def test_top_plane_refusals_say_the_limit_and_why():
    """The stepper's nmax refusal said "no 8-bit image of shape (28, 28) has a coefficient above plane
    11" where ``top_plane((28, 28))`` is 10: the limit is one plane of margin above it, and the
    message says so. ``with_top_plane`` on a pixel-replicated sequence said an nmax the caller never
    gave was refused: its default is of images coded at their own shape, and the message names the
    replication. Which values are taken is unchanged."""
    t = tok("wavelet")
    assert t.top_plane((28, 28)) == 10
    assert t.stepper([(28, 28)], nmax=11).next_pos()[0, 0] == 11  # one plane of margin, as before
    with pytest.raises(InvalidTokensError, match=r"^invalid top bit-plane 12 given as nmax: no 8-bit image of shape "
                                                 r"\(28, 28\) has a coefficient above plane 10 \(top_plane\), and one "
                                                 r"plane more is let through as a margin .*: the highest allowed "
                                                 r"is 11$"):
        t.stepper([(28, 28)], nmax=12)
    small = noise((16, 16), 3)
    big = np.kron(small, np.ones((3, 3), np.uint8))  # an exact 3x enlargement: coded at 16x16
    (seq,) = t.encode([big])
    assert seq.params["rep"] == [3, 3] and t.top_plane((48, 48)) == 11 and t.top_plane((16, 16)) == 9
    with pytest.raises(InvalidTokensError) as e:
        t.with_top_plane(seq)
    message = str(e.value)
    assert "given as nmax" not in message and "3x3 pixel replication" in message and "coded at 16x16" in message
    assert "top_plane((48, 48)) = 11" in message and "above plane 9" in message and "nmax up to 10" in message
    assert "fixed_header=True" in message
    assert t.with_top_plane(seq, 10).params["nmax"] == 10  # an nmax given within the limit is taken, as before
    with pytest.raises(InvalidTokensError, match=r"invalid top bit-plane 11 given as nmax: no 8-bit image of shape "
                                                 r"\(48, 48\) \(a 3x3 pixel replication, coded at 16x16\) has a "
                                                 r"coefficient above plane 9 \(top_plane\(\(16, 16\)\)\)"):
        t.with_top_plane(seq, 11)
    (plain,) = t.encode([big], fixed_header=True)
    assert "rep" not in plain.params and plain.params["nmax"] == 11


def test_an_empty_tokenizer_name_is_said_to_be_empty():
    """``adatok.load("")`` read the working folder as a checkpoint: " is not a checkpoint folder"."""
    from adatok import UnknownTokenizerError

    with pytest.raises(UnknownTokenizerError, match=r"^the tokenizer name is empty: use one of .*wavelet.* or a "
                                                    r"checkpoint folder \('\.' for the working folder\)$"):
        adatok.load("")
