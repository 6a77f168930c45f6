"""Tests of the wavelet words (``wavelet-w8``, ``wavelet-lossless-w8``; ``adatok/wavelet/words.py``):
a word is ``n`` decisions of the decision tokenizer, so everything is checked against it.

* The words of an encoding are its decisions, ``n`` at a time, for every budget, and their bytes
  are the decisions' bytes (the same payload; the header names the word tokenizer and counts words).
* Every whole-word prefix decodes as its decisions do; a cut of the bytes gives the longest
  whole-word prefix the decision tokenizer reads from them.
* The stepper's legal words are exactly the words whose digits the decision stepper takes one
  after another (checked against a brute force over every word), the mask leaves the walk's
  state as it was, random legal word walks decode and survive their bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

import adatok
from adatok import (Bpp, InvalidTokensError, Lossless, Quality, Stepper, TokenizerMismatchError, Tokens,
                    TokenSequence, UnknownTokenizerError)
from adatok.core.metrics import psnr
from adatok.core.registry import remember
from adatok.core.sequence import parse_container
from adatok.datasets import load as load_dataset
from adatok.wavelet.words import DIGIT, KIND_OF_ID, WordTokenizer

PAIRS = (("wavelet-w8", "wavelet"), ("wavelet-lossless-w8", "wavelet-lossless"))


def noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def fashion(n: int) -> list[np.ndarray]:
    return load_dataset("fashion-mnist", split="test", limit=n).images


def plain(seq: TokenSequence) -> TokenSequence:
    """``seq`` without anything cached (as a user or a loader would build it)."""
    return TokenSequence(seq.ids, seq.pos, seq.shape, seq.tokenizer, seq.version, seq.params, seq.pos_fields)


def small_words(base: str, n: int) -> WordTokenizer:
    """A word tokenizer of ``n`` decisions over ``base`` (remembered, so its bytes read back)."""
    w = WordTokenizer(adatok.load(base), n, f"{base}-w{n}")
    remember(w)
    return w


def check_words_of(w, words: TokenSequence, dec: TokenSequence) -> None:
    """``words`` are the decisions ``dec``, ``n`` at a time (ids, positions, header)."""
    n = w.n
    assert len(words) == -(-len(dec) // n)
    digits = np.zeros(len(words) * n, np.int64)
    digits[: len(dec)] = DIGIT[dec.ids]
    assert np.array_equal(words.ids, digits.reshape(-1, n) @ (3 ** np.arange(n - 1, -1, -1)))
    assert np.array_equal(words.pos[:, :6], dec.pos[::n])
    assert np.array_equal(words.pos[:, 6], KIND_OF_ID[dec.ids[::n]])
    assert dict(words.params) == dict(dec.params) and words.shape == dec.shape
    assert words.tokenizer == w.name and words.pos_fields[-1] == "kind"
    assert np.array_equal(w.to_decisions(plain(words)).ids, dec.ids)


# ------------------------------------------------------------------------------------------------
# Words are decisions: encode, budgets, bytes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wname,dname", PAIRS)
def test_words_are_the_decisions_n_at_a_time(wname, dname):
    """For every budget the words are the decision tokenizer's decisions in whole words, and a
    word sequence's bytes are its decisions' bytes: the same payload, a header that names the
    word tokenizer and counts words."""
    w, d = adatok.load(wname), adatok.load(dname)
    imgs = fashion(3) + [noise((13, 11, 3), 1), noise((5, 9), 2)]
    roi = [None] * 4 + [np.pad(np.ones((2, 3), np.float32), ((1, 2), (3, 3)))]
    fulls = d.encode(imgs, roi=roi)
    for budget in (None, Tokens(5), Tokens(37), Tokens(10**15)):
        for words, full in zip(w.encode(imgs, budget, roi=roi), fulls, strict=True):
            k = len(full) if budget is None else min(8 * budget.k, len(full))
            dec = full.prefix(k)
            check_words_of(w, words, dec)
            hw, pw = parse_container(words.to_bytes())
            hd, pd = parse_container(dec.to_bytes())
            assert pw == pd  # the same bytes
            assert hw["tokenizer"] == wname and hw["n_tokens"] == len(words)
            assert {k: v for k, v in hw.items() if k not in ("tokenizer", "n_tokens")} == \
                   {k: v for k, v in hd.items() if k not in ("tokenizer", "n_tokens")}
            back = TokenSequence.from_bytes(words.to_bytes())
            assert back.tokenizer == wname and np.array_equal(back.ids, words.ids)
            assert np.array_equal(back.pos, words.pos)
            assert np.array_equal(w.decode([back])[0], d.decode([dec])[0])
    fixed = w.encode(imgs[:3], fixed_header=True)
    for words, dec in zip(fixed, d.encode(imgs[:3], fixed_header=True)):
        check_words_of(w, words, dec)
    if d.lossless:
        for words, img in zip(w.encode(imgs, Lossless()), imgs):
            assert np.array_equal(w.decode([words])[0], img.reshape(w.decode([words])[0].shape))


@pytest.mark.parametrize("wname,dname", PAIRS)
def test_bpp_is_the_longest_whole_word_prefix_that_fits(wname, dname):
    w, d = adatok.load(wname), adatok.load(dname)
    imgs = fashion(2) + [noise((16, 20, 3), 3)]
    for x, header in ((4.0, True), (6.0, True), (100.0, True), (0.5, False), (1.5, False)):
        budget = Bpp(x, header=header)
        if True:
            for img, words, full in zip(imgs, w.encode(imgs, budget), d.encode(imgs)):
                limit = budget.nbytes(img.shape)

                def size(k: int) -> int:  # bytes of the first k words
                    seq = w.from_decisions(full.prefix(min(8 * k, len(full))))
                    data = seq.to_bytes()
                    return len(data) if header else len(parse_container(data)[1])

                assert size(len(words)) <= limit
                assert np.array_equal(words.ids, w.from_decisions(full.prefix(8 * len(words))).ids)
                if 8 * len(words) < len(full):
                    assert size(len(words) + 1) > limit  # one more word does not fit
                else:
                    assert len(to := w.to_decisions(words)) == len(full) and np.array_equal(to.ids, full.ids)


def test_quality_is_the_shortest_whole_word_prefix_that_reaches_it():
    w, d = adatok.load("wavelet-w8"), adatok.load("wavelet")
    imgs = fashion(4)
    for target in (20.0, 27.5):
        for img, words, full in zip(imgs, w.encode(imgs, Quality(psnr=target)), d.encode(imgs)):
            quality = [psnr(img, w.decode([w.from_decisions(full.prefix(8 * k))])[0])
                       for k in range(-(-len(full) // 8) + 1)]
            reached = [k for k, q in enumerate(quality) if q >= target]
            assert len(words) == reached[0]
            assert np.array_equal(words.ids, w.from_decisions(full.prefix(8 * len(words))).ids)


@pytest.mark.parametrize("wname,dname", PAIRS)
def test_every_whole_word_prefix_and_every_cut_decodes(wname, dname):
    """Each whole-word prefix (no cached state: its words are walked again) decodes as its
    decisions do, and bytes cut anywhere past the header give the longest whole-word prefix of
    what the decision tokenizer reads from the same cut."""
    w, d = adatok.load(wname), adatok.load(dname)
    for img in (fashion(1)[0], noise((9, 14, 3), 4)):
        (words,) = w.encode([img])
        (full,) = d.encode([img])
        for k in range(len(words) + 1):
            dec = full.prefix(min(8 * k, len(full)))
            assert np.array_equal(w.decode([plain(words.prefix(k))])[0], d.decode([dec])[0])
        data, ddata = words.to_bytes(), full.to_bytes()
        head, dhead = len(data) - len(parse_container(data)[1]), len(ddata) - len(parse_container(ddata)[1])
        for cut in range(0, len(data) - head + 1, 7):
            got = TokenSequence.from_bytes(data[: head + cut])
            dec = TokenSequence.from_bytes(ddata[: dhead + cut])
            k = len(dec) if len(dec) == len(full) else len(dec) // 8 * 8
            assert np.array_equal(got.ids, words.ids[: -(-k // 8)])
            assert np.array_equal(w.decode([got])[0], d.decode([dec.prefix(k)])[0])


def test_conversions_and_errors():
    from adatok.core.registry import known, names

    w, d = adatok.load("wavelet-w8"), adatok.load("wavelet")
    assert known("wavelet-w8") and "wavelet-w8" not in names()  # a view: adatok demo does not measure it twice
    img = fashion(1)[0]
    (full,) = d.encode([img])
    assert np.array_equal(w.from_decisions(full.prefix(21)).ids, w.from_decisions(full.prefix(16)).ids)
    assert len(w.from_decisions(full)) == -(-len(full) // 8)
    (short,) = d.encode([img], Tokens(100))
    raised = w.with_top_plane(w.from_decisions(short))
    assert raised.params["nmax"] == w.top_plane(img.shape)
    assert np.array_equal(w.to_decisions(raised).ids, d.with_top_plane(short).ids[: len(raised) * 8])
    (words,) = w.encode([img], Tokens(30))
    with pytest.raises(InvalidTokensError, match="out of range"):
        w.decode([TokenSequence(np.append(words.ids, 6561), np.zeros((31, 7)), words.shape, w.name, w.version,
                                words.params, words.pos_fields)])
    bad = words.ids.copy()
    first_kinds = words.pos[:, 6]
    at = int(np.flatnonzero(first_kinds != 0)[0])
    bad[at] = 2 * 3**7
    with pytest.raises(InvalidTokensError, match=f"at index {at} cannot stand"):
        w.decode([TokenSequence(bad, words.pos, words.shape, w.name, w.version, words.params, words.pos_fields)])
    (tiny,) = w.encode([noise((3, 3), 1)])
    longer = np.append(tiny.ids, [0, 0])
    with pytest.raises(InvalidTokensError, match="2 words past the end"):
        w.decode([TokenSequence(longer, np.zeros((len(longer), 7)), tiny.shape, w.name, w.version, tiny.params,
                                tiny.pos_fields)])
    with pytest.raises(InvalidTokensError, match="has 1 word past the end"):
        w.decode([TokenSequence(longer[:-1], np.zeros((len(longer) - 1, 7)), tiny.shape, w.name, w.version,
                                tiny.params, tiny.pos_fields)])
    with pytest.raises(TokenizerMismatchError, match="from_decisions takes a sequence of 'wavelet' decisions: it is "
                                                     r"words already \(to_decisions gives its decisions\)"):
        w.from_decisions(words)
    with pytest.raises(TokenizerMismatchError, match="it was made by 'wavelet-lossless'; encode the image with "
                                                     r"adatok.load\('wavelet'\)"):
        w.from_decisions(adatok.load("wavelet-lossless").encode([img])[0])
    with pytest.raises(adatok.ImageFormatError, match=r"start 0: b'.{60,}\.\.\. is not an image shape") as e:
        w.stepper([words.to_bytes()])
    assert len(str(e.value)) < 200
    with pytest.raises(TokenizerMismatchError):
        w.decode([full])
    with pytest.raises(TokenizerMismatchError):
        d.decode([words])
    for n in (0, 11, 8.0, True):
        with pytest.raises(adatok.AdatokError, match="1 to 10"):
            WordTokenizer(d, n)


def test_words_are_made_of_a_wavelet_tokenizers_decisions_only():
    """WordTokenizer(wavelet-w8, 2) was taken and remembered by name (every encode then an
    AttributeError); a learned tokenizer as the base an AttributeError."""
    from adatok.core.registry import known

    for base in (adatok.load("wavelet-w8"), object()):
        with pytest.raises(adatok.AdatokError, match="decisions of a wavelet tokenizer"):
            WordTokenizer(base, 2)
    assert not known("wavelet-w8-w2")


def test_a_word_tokenizer_of_its_own_writes_and_reads_its_bytes():
    """``WordTokenizer(base, 4)`` could not write bytes (its name was not registered), and named
    ``wavelet-w8`` it wrote 4-decision words that read back as 8-decision ones, another image."""
    d = adatok.load("wavelet")
    with pytest.raises(adatok.AdatokError, match="named 'wavelet-w4', not 'wavelet-w8'"):
        WordTokenizer(d, 4, "wavelet-w8")
    w4 = WordTokenizer(d, 4)
    assert w4.name == "wavelet-w4" and WordTokenizer(d, 8).name == "wavelet-w8"
    img = noise((12, 10, 3), 3)
    seq, = w4.encode([img], Tokens(10))
    back = TokenSequence.from_bytes(seq.to_bytes())
    assert back.tokenizer == "wavelet-w4" and np.array_equal(back.ids, seq.ids)
    assert np.array_equal(adatok.load(back.tokenizer).decode([back])[0], w4.decode([seq])[0])


# ------------------------------------------------------------------------------------------------
# The stepper: the grammar over words
# ------------------------------------------------------------------------------------------------


def takes(d, prefix: TokenSequence, word: int, n: int) -> bool:
    """Whether the decision stepper takes the digits of ``word`` one after another after ``prefix``:
    a digit stands for the legal decision with that digit; after the end, digits must be 0."""
    st = d.stepper([prefix])
    for j in range(n):
        digit = word // 3 ** (n - 1 - j) % 3
        if st.done[0]:
            if j == 0 or digit != 0:
                return False
            continue
        ids = [i for i in np.flatnonzero(st.legal()[0]) if DIGIT[i] == digit]
        if not ids:
            return False
        st.push(ids)
    return True


def brute_force_legal(d, prefix: TokenSequence, n: int) -> set[int]:
    """Every word the decision stepper takes after ``prefix``."""
    return {word for word in range(3**n) if takes(d, prefix, word, n)}


@pytest.mark.parametrize("dname,n,start", [("wavelet", 3, (6, 7)), ("wavelet", 4, (4, 5, 3)),
                                          ("wavelet-lossless", 3, (5, 7)), ("wavelet-lossless", 4, (4, 4, 3)),
                                          ("wavelet-lossless", 3, "roi")])
def test_legal_words_are_exactly_the_decision_walks(dname, n, start):
    """Along random legal word walks to the end of the stream (from the fixed header, from a
    lower top plane, from a region-of-interest sequence's prefix), the mask is exactly the brute
    force's set of words at every checked step."""
    d = adatok.load(dname)
    w = small_words(dname, n)
    rng = np.random.default_rng(n)
    if start == "roi":
        img = noise((8, 10, 3), 5)
        roi = np.zeros((8, 10), np.float32)
        roi[2:6, 3:8] = 1
        (seq,) = d.encode([img], Tokens(40), roi=[roi])
        starts = [w.from_decisions(seq)]
    else:
        starts = [start, start]
    for nmax in (None, 3):
        st = w.stepper(starts, nmax=nmax if start != "roi" else None)
        checked = 0
        while not st.done.all():
            mask = st.legal()
            if checked < 40 or rng.random() < 0.25:
                for b, seq in enumerate(st.decisions.sequences()):
                    assert set(np.flatnonzero(mask[b]).tolist()) == brute_force_legal(d, seq, n)
                    checked += 1
            st.push(np.where(st.done, -1, (rng.random(mask.shape) * mask).argmax(1)))
        assert not st.legal().any()
        for seq, img in zip(st.sequences(), st.images()):
            back = TokenSequence.from_bytes(seq.to_bytes())
            assert np.array_equal(back.ids, seq.ids) and np.array_equal(w.decode([back])[0], img)


def _arrays(st) -> list[np.ndarray]:
    """The state of every walk of a (one-group) stepper: its lists and knowledge, the LSP up to its
    length (the walk only appends to it, and a path walked leaves its entries past the end)."""
    from adatok.wavelet.spiht import WS_NLSP

    g = st.decisions._groups[0]
    lsp = [g.lsp[r, : g.ws[r, WS_NLSP]].copy() for r in range(len(g.rows))]
    return [a.copy() for a in (g.ws, g.value, g.low, g.neg, g.lip, g.lis, g.lis_b, g.lis_f)] + lsp


@pytest.mark.parametrize("wname,dname", PAIRS)
def test_stepping_the_encoders_words(wname, dname):
    """Pushed the encoder's words, the stepper makes them again: at every step ``next_pos`` is the
    word's position and the word is legal; computing the mask leaves every array of the walk as
    it was (the journal undoes each path); the images are decode's."""
    w = adatok.load(wname)
    imgs = fashion(3) + [noise((28, 28, 1), 6)]  # (one walk group)
    seqs = w.encode(imgs, fixed_header=True)
    st = w.stepper([im.shape for im in imgs])
    n = max(len(s) for s in seqs)
    for k in range(n + 1):
        pos = st.next_pos()
        before = _arrays(st)
        mask = st.legal()
        assert all(np.array_equal(a, b) for a, b in zip(before, _arrays(st)))
        ids = np.array([s.ids[k] if k < len(s) else -1 for s in seqs])
        for b, s in enumerate(seqs):
            if k < len(s):
                assert np.array_equal(pos[b], s.pos[k]) and mask[b, s.ids[k]]
            else:
                assert (pos[b] == -1).all() and not mask[b].any() and st.done[b]
        st.push(ids)
    assert st.done.all() and list(st.lengths) == [len(s) for s in seqs]
    for made, s, img in zip(st.sequences(), seqs, st.images()):
        assert np.array_equal(made.ids, s.ids) and np.array_equal(made.pos, s.pos)
        assert np.array_equal(img, w.decode([s])[0])


@pytest.mark.parametrize("wname", ["wavelet-w8", "wavelet-lossless-w8"])
def test_random_legal_word_walks_decode_and_survive_bytes(wname):
    """Random legal word walks of random lengths and to the end (two shapes, one stepper): each
    decodes to the stepper's image, survives its bytes, and its decisions are ones the decision
    tokenizer takes."""
    w = adatok.load(wname)
    rng = np.random.default_rng(11)
    shapes = [(28, 28)] * 24 + [(9, 7, 3)] * 8
    st = w.stepper(shapes)
    assert isinstance(st, Stepper)
    target = np.append(rng.integers(0, 300, 24), [10**9] * 8)  # the colour ones to the end of the stream
    while True:
        mask = st.legal()
        assert mask[~st.done].any(1).all() and not mask[st.done].any()
        live = ~st.done & (st.lengths < target)
        if not live.any():
            break
        if rng.random() < 0.05:  # some offered words and some others, each against the decision stepper
            b = int(rng.choice(np.flatnonzero(live)))
            prefix = st.decisions.sequences()[b]
            offered, others = np.flatnonzero(mask[b]), np.flatnonzero(~mask[b])
            assert all(takes(w.base, prefix, int(v), 8) for v in rng.choice(offered, min(10, len(offered))))
            assert not any(takes(w.base, prefix, int(v), 8) for v in rng.choice(others, min(10, len(others))))
        st.push(np.where(live, (rng.random(mask.shape) * mask).argmax(1), -1))
    seqs = st.sequences()
    assert len({len(s) for s in seqs}) > 10 and st.done[24:].all()
    for s, img in zip(seqs, st.images()):
        back = TokenSequence.from_bytes(s.to_bytes())
        assert np.array_equal(back.ids, s.ids) and np.array_equal(back.pos, s.pos)
        assert np.array_equal(w.decode([plain(s)])[0], img)
        dec = w.to_decisions(plain(s))
        assert np.array_equal(w.base.decode([plain(dec)])[0], img)


def test_illegal_words_are_refused_and_change_nothing():
    w = adatok.load("wavelet-w8")
    rng = np.random.default_rng(2)
    st = w.stepper([(28, 28)] * 3 + [(7, 9, 3)])  # two walk groups
    refused = 0
    for _ in range(12):
        for _ in range(rng.integers(1, 15)):
            mask = st.legal()
            st.push(np.where(st.done, -1, (rng.random(mask.shape) * mask).argmax(1)))
        mask = st.legal()
        live = np.flatnonzero(~st.done)
        if not len(live):
            break
        b = int(rng.choice(live))
        ids = (rng.random(mask.shape) * mask).argmax(1)
        before = ([s.ids for s in st.sequences()], st.next_pos(), mask)
        illegal = np.flatnonzero(~mask[b])  # (none in a stretch of the LIP: every word is legal there)
        for v in ([int(rng.choice(illegal))] if len(illegal) else []) + [-2, w.vocab_size]:
            ids[b] = v
            with pytest.raises(InvalidTokensError, match=f"cannot stand next in sequence {b}"):
                st.push(ids)
            after = ([s.ids for s in st.sequences()], st.next_pos(), st.legal())
            assert all(np.array_equal(x, y) for x, y in zip(before[0], after[0]))
            assert np.array_equal(before[1], after[1]) and np.array_equal(before[2], after[2])
            refused += len(illegal) > 0


    assert refused > 3


def _whole(st, w) -> None:
    """Every sequence of a word stepper round-trips: its bytes give its ids, and its ids (nothing
    cached) decode to the stepper's image."""
    for s, img in zip(st.sequences(), st.images()):
        assert np.array_equal(TokenSequence.from_bytes(s.to_bytes()).ids, s.ids)
        assert np.array_equal(w.decode([plain(s)])[0], img)


def test_decisions_pushed_directly_go_on_only_from_whole_words():
    """A decision pushed to ``st.decisions`` left a word unfinished, and the word stepper went on:
    its sequence's ids came back from their bytes as other ids, and decoded without the cached
    decisions raised. Now the word stepper refuses to go on while a sequence stands inside a word,
    and takes the decisions in once the word is whole (its mask made again)."""
    w = adatok.load("wavelet-w8")
    st = w.stepper([(8, 8), (8, 8)])
    st.push([5, 5])
    st.legal()  # (a mask made before the decisions moved)
    dec = st.decisions
    dec.push(np.array([int(np.flatnonzero(dec.legal()[0])[-1]), -1]))
    for call in (st.legal, st.next_pos, st.sequences, lambda: st.push([0, 0])):
        with pytest.raises(InvalidTokensError, match=r"sequence 0 holds 9 decisions, 1 into a word of 8: decisions "
                                                     r"were pushed to the word stepper's .decisions directly. Push "
                                                     "the word's other 7 there too"):
            call()
    for _ in range(7):
        dec.push(np.array([int(np.flatnonzero(dec.legal()[0])[-1]), -1]))
    assert list(st.lengths) == [2, 1]
    (fresh,) = w.stepper([st.sequences()[0]]).legal()
    assert np.array_equal(st.legal()[0], fresh)  # the mask of the state the decisions left
    for _ in range(4):
        st.push(st.legal().argmax(1))
    _whole(st, w)


def test_a_push_the_walk_refuses_changes_nothing():
    """Changed under its mask (the state moved between ``legal()`` and ``push()``: another thread),
    the walk refused an offered word half-way, with an AssertionError, rows before it pushed. Now
    it is an InvalidTokensError and every row is put back."""
    w = adatok.load("wavelet-w8")
    rng = np.random.default_rng(4)
    st = w.stepper([(12, 12), (12, 12)])
    for _ in range(6):
        st.push((rng.random((2, w.vocab_size)) * st.legal()).argmax(1))
    old = st.legal()
    (g,) = st.decisions._groups
    for _ in range(8):  # a word in row 1, stepped behind the word stepper's back (its count not raised)
        g.step(np.array([-1, int(np.flatnonzero(g.legal[1])[0])]))
    before = [s.ids.copy() for s in st.decisions.sequences()], st.decisions.next_pos(), st.decisions.images()
    now = set(np.flatnonzero(w.stepper([st.sequences()[1]]).legal()[0]).tolist())
    stale = [v for v in np.flatnonzero(old[1]) if v not in now]
    refused = 0
    for v in stale[:: max(1, len(stale) // 20)]:
        st._mask = old.copy()  # (a refused push drops the mask: the next one is made from the state)
        with pytest.raises(InvalidTokensError, match=f"word {v} was offered by legal.. but does not walk in sequence "
                                                     "1 now.*nothing was pushed"):
            st.push([int(np.flatnonzero(old[0])[-1]), v])  # row 0 walks first, then row 1 fails
        after = [s.ids for s in st.decisions.sequences()], st.decisions.next_pos(), st.decisions.images()
        assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0]))
        assert np.array_equal(before[1], after[1]) and all(np.array_equal(a, b) for a, b in zip(before[2], after[2]))
        refused += 1
    assert refused > 3
    while not st.done.all():  # and it goes on from there
        st.push(np.where(st.done, -1, (rng.random((2, w.vocab_size)) * st.legal()).argmax(1)))
    _whole(st, w)


@pytest.mark.parametrize("wname,shape,roi", [("wavelet-w8", (28, 28), False), ("wavelet-lossless-w8", (12, 10, 3), True)])
def test_a_journal_too_small_for_a_path_grows_and_the_masks_are_the_same(wname, shape, roi):
    """The journal holds what a path changes, not room for the whole image (336 bytes a
    coefficient, 1 GB for a 1024x1024 RGB image): a path that overflows it has its row walked
    again from its tokens and the journal grows. Started with room for one entry, a stepper gives
    the masks, positions and sequences of one with the usual journal, along random walks to the end."""
    from adatok.wavelet.words import journal

    w = adatok.load(wname)
    rng = np.random.default_rng(9)
    if roi:
        img, region = noise(shape, 2), np.zeros(shape[:2])
        region[3:8, 2:6] = 1
        starts = [w.encode([img], Tokens(3), roi=[region])[0]] * 3
    else:
        starts = [shape] * 3
    small, usual = w.stepper(starts), w.stepper(starts)
    small._journals = [journal(1)]
    while not usual.done.all():
        mask = usual.legal()
        assert np.array_equal(small.legal(), mask) and np.array_equal(small.next_pos(), usual.next_pos())
        ids = np.where(usual.done, -1, (rng.random(mask.shape) * mask).argmax(1))
        small.push(ids)
        usual.push(ids)
    assert small.done.all() and len(small._journals[0]) > len(journal(1))
    for a, b in zip(small.sequences(), usual.sequences()):
        assert np.array_equal(a.ids, b.ids)
    _whole(small, w)
    big = w.stepper([(256, 256, 3)])
    big.legal()
    assert big._journals[0].nbytes < 10_000  # (it was 66 MB)


def test_pushes_that_move_no_row_do_not_grow_the_buffers():
    """Each held or ignored push counted as 8 decisions of the longest row: 200,000 of them grew
    the buffers of 4 sequences to 2,097,152 decisions (50 MB)."""
    w = adatok.load("wavelet-w8")
    st = w.stepper([(4, 4), (4, 4)])
    while not st.done[0]:
        st.push([int(np.argmax(st.legal()[0])), -1])
    (g,) = st.decisions._groups
    cap, lengths = g.cap, st.lengths
    for _ in range(cap):
        st.push([7, -1])  # ignored (ended), held
    assert g.cap == cap and np.array_equal(st.lengths, lengths)
    while not st.done[1]:
        st.push([-1, int(np.argmax(st.legal()[1]))])
    _whole(st, w)


def test_going_on_from_a_word_prefix():
    w = adatok.load("wavelet-lossless-w8")
    img = noise((10, 12, 3), 8)
    (seq,) = w.encode([img])
    st = w.stepper([seq.prefix(7), (10, 12, 3)])
    assert st.lengths[0] == 7
    for k in range(7, len(seq)):
        assert np.array_equal(st.next_pos()[0], seq.pos[k])
        st.push([seq.ids[k], -1])
    assert st.done[0] and np.array_equal(st.images([0])[0], img)
    assert np.array_equal(st.sequences()[0].ids, seq.ids)


def test_lossless_on_a_lossy_word_tokenizer_names_it_and_its_lossless_sibling():
    import numpy as np

    import adatok

    with pytest.raises(adatok.BudgetError, match=r"'wavelet-w8' is not lossless; use adatok.load\('wavelet-lossless-w8'\)"):
        adatok.load("wavelet-w8").encode([np.zeros((8, 8), np.uint8)], adatok.Lossless())
    with pytest.raises(adatok.BudgetError, match=r"use adatok.load\('wavelet-lossless-w4'\)"):  # (loads by name)
        WordTokenizer(adatok.load("wavelet"), 4).encode([np.zeros((8, 8), np.uint8)], adatok.Lossless())


def test_words_of_any_n_read_back_in_a_new_process_and_on_the_command_line(tmp_path):
    """A wavelet-w4 file read in another process was refused as "made by tokenizer 'wavelet-w4',
    which is not registered here", with advice (load a checkpoint folder) that did not apply, and
    the command line could not read it at all. Every wavelet-wN / wavelet-lossless-wN loads by name."""
    import subprocess
    import sys

    img = np.arange(96, dtype=np.uint8).reshape(8, 12)
    seq, = WordTokenizer(adatok.load("wavelet"), 4).encode([img], Tokens(7))
    (tmp_path / "w4.atk").write_bytes(seq.to_bytes())
    code = ("import sys, numpy as np, adatok; s = adatok.TokenSequence.from_bytes(open(sys.argv[1], 'rb').read()); "
            "print(s.tokenizer, len(s), adatok.load(s.tokenizer).decode([s])[0].sum())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w4.atk")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["wavelet-w4", "7", str(int(adatok.load("wavelet-w4").decode([seq])[0].sum()))]
    lossless = adatok.load("wavelet-lossless-w3")
    assert lossless.n == 3 and lossless.lossless
    assert (lossless.decode(lossless.encode([img], Lossless()))[0].reshape(img.shape) == img).all()
    for bad in ("wavelet-w0", "wavelet-w11", "wavelet-w08", "wavelet-lossless-w"):
        with pytest.raises(UnknownTokenizerError, match="wavelet-wN / wavelet-lossless-wN"):
            adatok.load(bad)
