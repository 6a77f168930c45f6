"""adatok.generate on wavelet words (``WordLanguage`` over ``wavelet-w8``): the features a model reads
are the same from a training sequence and from the stepper, and a tiny generator trained for
seconds samples valid word sequences, with and without its cache, and completes a cut file."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adatok  # noqa: E402
import adatok.datasets  # noqa: E402
from adatok import Quality, TokenSequence  # noqa: E402
from adatok.generate.languages import KIND_END, WordLanguage, build_corpus, language_from  # noqa: E402
from adatok.generate.sample import complete, load_generator, sample  # noqa: E402
from adatok.generate.train import GenTrainConfig, model_config_for, train_generator  # noqa: E402


@pytest.mark.parametrize("context,canvas", [(False, False), (True, False), (False, True)])
def test_training_rows_are_what_the_stepper_gives(context, canvas):
    """The rows of a training sequence (ids, then the features of every next word, END after the
    last) are the features the stepper gives when the same words are pushed; with the decoder's
    state (``context``, ``canvas``), the state found by replaying the whole batch too, and the
    canvas is the image the prefix decodes to."""
    lang = WordLanguage("wavelet-w8", (28, 28, 1), Quality(psnr=20), context=context, canvas=canvas)
    back = language_from(lang.describe())
    assert lang.vocab_size == 3**8 and isinstance(back, WordLanguage) and back.int_sizes == lang.int_sizes
    assert back.canvas_fields == lang.canvas_fields == (74 if canvas else 0)
    imgs = adatok.datasets.load("fashion-mnist", "test", limit=3).images
    pairs = lang.encode(imgs)
    for full, n in pairs:
        assert 0 < n < len(full)
        for k in (n, len(full)):  # a quality prefix, and the whole stream
            state = lang.states([(full, k)])[0] if lang.reads_state else None
            if lang.reads_state:  # replayed in a batch of sequences that stop at other lengths: the same rows
                again = lang.states([(full, k), *pairs])[0]
                assert all(np.array_equal(a, b) for a, b in zip(state, again))
            ids, ints, floats = lang.rows(full, k, state)
            assert len(ids) == k and len(ints) == len(floats) == k + 1 and floats.shape[1] == 2 + lang.canvas_fields
            st = lang.stepper(1)
            for j in range(k + 1):
                a, f = lang.step_features(st)
                assert np.array_equal(a[0], ints[j]) and np.array_equal(f[0], floats[j])
                if j < k:
                    st.push([ids[j]])
            assert (ints[k, 4] == KIND_END) == (k == len(full))  # END after the whole stream only
            if context:  # the next coefficient's own state is known before it ends, none after
                assert (ints[:k, 5] > 0).all() and (ints[k, 5:] == 0).all() == (k == len(full))
                assert len(np.unique(ints[:, 5:])) > 5  # states vary along the sequence
            if canvas:  # the whole image in 7 x 7 blocks of 4 x 4 pixels, as the prefix decodes
                img = lang.decode([full.prefix(k)])[0].reshape(28, 28).astype(np.float32) / 255 - 0.5
                assert np.allclose(floats[k, 2:51], img.reshape(7, 4, 7, 4).mean((1, 3)).ravel(), atol=1e-6)
                assert np.ptp(floats[:, 2:51], 0).max() > 0.1  # and it changes as words come
    corpus = build_corpus(lang, imgs, np.arange(3))
    assert len(corpus) == 3 and corpus.ints.shape[1] == len(lang.int_sizes)


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    lang = WordLanguage("wavelet-w8", (28, 28, 1), Quality(psnr=16))
    out = tmp_path_factory.mktemp("words") / "gen"
    cfg = model_config_for(lang, 32, 1, 2, 512)
    train_generator(out, lang, cfg, GenTrainConfig(minutes=0.05, limit=24, val_images=8, batch=4, eval_every=1e9),
                    log=lambda *a: None)
    return out


@pytest.fixture(scope="module")
def trained(trained_folder):
    return load_generator(trained_folder)


def test_word_samples_are_valid_sequences(trained):
    gen = trained
    assert isinstance(gen.lang, WordLanguage)
    seqs, images = sample(gen, [0, 3, None, 9], seed=5, cfg=2.0, max_tokens=30)
    assert all(0 < len(s) <= 30 for s in seqs) and all(s.tokenizer == "wavelet-w8" for s in seqs)
    for seq, img in zip(seqs, images):
        back = TokenSequence.from_bytes(seq.to_bytes())
        assert np.array_equal(back.ids, seq.ids)
        assert np.array_equal(gen.lang.decode([back])[0], img)
    a = sample(gen, [1, 2], seed=3, max_tokens=20)[1]
    b = sample(gen, [1, 2], seed=3, max_tokens=20, kv_cache=False)[1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_model_reading_the_decoders_state_samples_valid_sequences(tmp_path):
    """A generator given the decoder's state (context and canvas), with digit embeddings, trains, is loaded back reading it,
    samples valid sequences, the same with and without its cache, and completes a cut sequence."""
    lang = WordLanguage("wavelet-w8", (28, 28, 1), Quality(psnr=16), context=True, canvas=True)
    out = tmp_path / "gen"
    train_generator(out, lang, model_config_for(lang, 32, 1, 2, 512, digits=True),
                    GenTrainConfig(minutes=0.03, limit=16, val_images=4, batch=4, eval_every=1e9), log=lambda *a: None)
    gen = load_generator(out)
    assert gen.lang.context and gen.lang.canvas and gen.model.cfg.int_sizes == lang.int_sizes
    assert gen.model.cfg.canvas == lang.canvas_fields and gen.model.cfg.digits == (8, 3)
    seqs, images = sample(gen, [0, 7, None], seed=2, cfg=2.0, max_tokens=25)
    for seq, img in zip(seqs, images):
        assert 0 < len(seq) <= 25
        assert np.array_equal(gen.lang.decode([TokenSequence.from_bytes(seq.to_bytes())])[0], img)
    b = sample(gen, [0, 7, None], seed=2, cfg=2.0, max_tokens=25, kv_cache=False)[1]
    assert all(np.array_equal(x, y) for x, y in zip(images, b))
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    cut = gen.lang.tok.with_top_plane(gen.lang.tok.encode([img])[0]).prefix(9)
    done, _ = complete(gen, cut, 2, seed=1, max_tokens=20)  # reads the cut with its context, then writes
    assert all(np.array_equal(s.ids[:9], cut.ids) for s in done)


def test_word_completion_keeps_the_prefix(trained):
    gen = trained
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    full = gen.lang.tok.encode([img])[0]
    cut = TokenSequence.from_bytes(full.to_bytes()[: len(full.to_bytes()) * 3 // 4])  # a cut file
    seqs, _ = complete(gen, cut, 3, seed=1, max_tokens=len(cut) + 15)
    cut = gen.lang.tok.with_top_plane(cut)
    for s in seqs:
        assert np.array_equal(s.ids[: len(cut)], cut.ids)


def test_reading_words_counts_words(trained_folder, tmp_path):
    """The evaluation's reading table of a word model, alone (no models sampled): its lengths are
    the decision lengths of the decision models over the 8 decisions of a word."""
    import json

    from adatok.generate.evaluate import main

    main(["--models", "", "--samples", "6", "--limit", "30", "--out", str(tmp_path), "--reading", str(trained_folder)])
    reading = json.loads((tmp_path / "results.json").read_text())["reading"]
    assert reading["decisions_per_token"] == 8 and reading["lengths"] == [1, 3, 5, 11, 22, 44]
    assert all(0 <= a <= 1 for a in reading["accuracy"].values())
    assert "<th>decisions</th>" in (tmp_path / "index.html").read_text()


def test_languages_refuse_other_trees_and_malformed_configs():
    """Completion walks the language's tree: a replicated or region-coded prefix is refused (it was
    completed on another tree, its positions out of range); a checkpoint's malformed language is
    an AdatokError, not a KeyError / IndexError later."""
    lang = WordLanguage("wavelet-w8", (28, 28, 1))
    tok = adatok.load("wavelet-w8")
    blank = tok.encode([np.zeros((28, 28, 1), np.uint8)])[0]  # a blank image: pixel replication
    assert "rep" in blank.params
    with pytest.raises(adatok.AdatokError, match="pixel replication"):
        lang.stepper(prefixes=[blank])
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    ok = tok.encode([img], fixed_header=True)[0]
    assert lang.stepper(prefixes=[ok.prefix(3)]) is not None
    for bad in ({"tokenizer": "wavelet", "shape": [28, 28]}, {"language": "bogus"},
                {"language": "slot", "tokenizer": "wavelet"},
                {"language": "words", "tokenizer": "wavelet", "shape": [28, 28, 1]},
                {"language": "wavelet", "tokenizer": "wavelet-w8", "shape": [28, 28, 1]}):
        with pytest.raises(adatok.AdatokError):
            language_from(bad)
