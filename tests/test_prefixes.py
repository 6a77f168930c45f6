"""adatok.wavelet.prefixes: every prefix of one sequence decodes to what ``decode`` of that prefix
gives, and its noted file size is the size of that prefix's ``.atk`` bytes."""

from __future__ import annotations

import numpy as np
import pytest

import adatok
from adatok import InvalidTokensError, TokenSequence
from adatok.datasets import sample_images
from adatok.wavelet.prefixes import Prefixes


def _cases():
    photo = sample_images(["astronaut"], max_side=48)[0][1]
    gray = sample_images(["camera"], max_side=40)[0][1]
    blocky = np.repeat(np.repeat(photo[:12, :16], 4, axis=0), 4, axis=1)  # coded at 1/4 x 1/4 (params["rep"])
    roi = np.zeros(photo.shape[:2], bool)
    roi[8:30, 10:40] = True
    return [("wavelet", photo, None), ("wavelet-lossless", photo, None), ("wavelet", gray, None),
            ("wavelet-lossless", gray, None), ("wavelet", blocky, None), ("wavelet", photo, roi),
            ("wavelet-lossless", photo, roi)]


@pytest.mark.parametrize("case", range(len(_cases())))
def test_every_prefix_is_decode_and_to_bytes(case):
    name, img, roi = _cases()[case]
    tok = adatok.load(name)
    (seq,) = tok.encode([img], roi=None if roi is None else [roi])
    p = Prefixes(tok, seq)
    assert p.step == 1 and list(p.cuts) == list(range(len(seq) + 1))
    rng = np.random.default_rng(case)
    ks = sorted({0, 1, 2, 5, len(seq) - 1, len(seq), *rng.integers(0, len(seq), 12).tolist()})
    for k in ks:
        cut = seq.prefix(k)
        assert np.array_equal(p.image(k), tok.decode([cut])[0]), k
        data = cut.to_bytes()
        assert p.nbytes(k) == len(data), k
        assert p.sequence(k).to_bytes() == data
        assert np.array_equal(p.sequence(k).pos, seq.pos[:k]) and p.sequence(k).params == seq.params
        assert np.array_equal(tok.decode([TokenSequence.from_bytes(data)])[0], p.image(k))


def test_cuts_every_step_and_byte_limits():
    tok = adatok.load("wavelet")
    img = sample_images(["coffee"], max_side=40)[0][1]
    (seq,) = tok.encode([img])
    p = Prefixes(tok, seq, step=10)
    assert p.cuts[0] == 0 and p.cuts[-1] == len(seq) and np.all(np.diff(p.cuts)[:-1] == 10)
    for k, size in zip(p.cuts[::37], p.sizes[::37]):
        assert size == len(seq.prefix(int(k)).to_bytes())
    assert p.nbytes(13) == len(seq.prefix(13).to_bytes())  # between cuts: coded again
    assert p.snap(13) == 10 and p.snap(len(seq)) == len(seq) and p.snap(0) == 0
    for limit in (0, int(p.sizes[0]), int(p.sizes[5]) + 3, int(p.sizes[-1]) - 1, int(p.sizes[-1]) + 100):
        k = p.longest(limit)
        assert k in set(p.cuts.tolist())
        i = int(np.searchsorted(p.cuts, k))
        if k > 0:
            assert p.sizes[: i + 1].max() <= limit  # every cut up to it fits
        if i + 1 < len(p.cuts):
            assert p.sizes[: i + 2].max() > limit  # the next one does not


def test_out_of_range_and_other_tokenizers():
    tok = adatok.load("wavelet")
    img = sample_images(["camera"], max_side=24)[0][1]
    (seq,) = tok.encode([img])
    p = Prefixes(tok, seq)
    for bad in (-1, len(seq) + 1, 2.5, True, "3"):
        with pytest.raises(InvalidTokensError):
            p.image(bad)
    with pytest.raises(adatok.TokenizerMismatchError):
        Prefixes(adatok.load("wavelet-lossless"), seq)
