"""adatok.generate: tiny generators trained for seconds on a few Fashion-MNIST images, so that the
mechanics are checked (not the quality, which docs/generation.md measures): grammar-constrained
samples are valid sequences, the key/value cache changes nothing, guidance, filters, completion,
the reading head, the judge's Fréchet distance, the command line."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adatok  # noqa: E402
from adatok import Quality, Tokens, TokenSequence  # noqa: E402
from adatok.generate.judge import frechet_distance  # noqa: E402
from adatok.generate.languages import PixelLanguage, SlotLanguage, WaveletLanguage  # noqa: E402
from adatok.generate.model import GPT  # noqa: E402
from adatok.generate.sample import _filter, complete, load_generator, sample  # noqa: E402
from adatok.generate.train import GenTrainConfig, model_config_for, train_generator  # noqa: E402

LANGS = {
    "wavelet": lambda: WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=16)),
    "learned": lambda: SlotLanguage("fashion-mnist-32", Quality(psnr=20)),
    "pixels": lambda: PixelLanguage((28, 28, 1)),
}


@pytest.fixture(scope="module", params=sorted(LANGS))
def trained(request, tmp_path_factory):
    lang = LANGS[request.param]()
    out = tmp_path_factory.mktemp(request.param) / "gen"
    cfg = model_config_for(lang, 32, 1, 2, 2048)
    train_generator(out, lang, cfg, GenTrainConfig(minutes=0.05, limit=24, val_images=8, batch=4, eval_every=1e9),
                    log=lambda *a: None)
    return request.param, load_generator(out), out


def test_samples_are_valid_sequences(trained):
    kind, gen, _ = trained
    seqs, images = sample(gen, [0, 3, None, 9], seed=5, cfg=2.0, max_tokens=None if kind == "pixels" else 60)
    assert len(images) == 4 and all(np.asarray(im).size == 784 for im in images)
    if kind == "pixels":
        assert all(len(s) == 784 for s in seqs)  # the baseline always writes every pixel
        assert all(len(s) == 20 for s in sample(gen, [1], seed=5, max_tokens=20)[0])  # unless stopped
        return
    assert all(len(s) <= 60 for s in seqs)
    for seq, img in zip(seqs, images):
        back = TokenSequence.from_bytes(seq.to_bytes())
        assert np.array_equal(back.ids, seq.ids)
        assert np.array_equal(gen.lang.decode([back])[0], img)


def test_min_tokens_writes_on_past_where_the_model_stops(trained):
    kind, gen, _ = trained
    if kind == "pixels":
        pytest.skip("the pixel baseline has one length")
    free = sample(gen, [0, 1, 2, 3], seed=2, max_tokens=60)[0]
    # longer than the shortest stopped by itself, where the language has room (fashion-mnist-32 has 32 slots:
    # a tiny model whose samples all filled them asked for 34, which nothing can write; it failed now and then)
    longest = 32 if kind == "learned" else 60
    k = min(min(len(s) for s in free) + 2, longest)
    seqs, images = sample(gen, [0, 1, 2, 3], seed=2, max_tokens=60, min_tokens=k)
    ended = [not gen.lang.stepper(prefixes=[s]).legal().any() for s in seqs] if hasattr(gen.lang, "tok") else [False] * 4
    assert all(len(s) >= k or e for s, e in zip(seqs, ended))  # unless the stream itself ended
    assert all(len(s) <= 60 for s in sample(gen, [0, 1], seed=2, max_tokens=60, min_tokens=100)[0])  # the cap wins


def test_the_first_tokens_at_their_own_temperature(trained):
    """--early-tokens K --early-temperature T0: the first K tokens are drawn at T0 and the rest at
    --temperature. The random draws do not depend on the temperature, so two runs that differ only
    after K tokens agree on their first K, and one drawn at a near-zero T0 takes the likeliest id
    there, as temperature 0 throughout does."""
    kind, gen, _ = trained
    k = 6
    labels = list(range(8))
    a = sample(gen, labels, seed=3, max_tokens=30, min_tokens=12, early_tokens=k, early_temperature=0.0, temperature=1.0)[0]
    b = sample(gen, labels, seed=3, max_tokens=30, min_tokens=12, early_tokens=k, early_temperature=0.0, temperature=5.0)[0]
    cold = sample(gen, labels, seed=3, max_tokens=30, min_tokens=12, temperature=0.0)[0]
    ids = (lambda s: np.asarray(s)) if kind == "pixels" else (lambda s: s.ids)
    for x, y, z in zip(a, b, cold, strict=True):
        assert np.array_equal(ids(x)[:k], ids(y)[:k]) and np.array_equal(ids(x)[:k], ids(z)[:k])
    assert any(len(ids(x)) > k for x in a + b)  # (so that the rest can differ:)
    assert any(not np.array_equal(ids(x), ids(y)) for x, y in zip(a, b))  # the rest at its own temperature
    assert len(sample(gen, [0], max_tokens=5, temperature=torch.tensor(0.7), early_temperature=np.array(0.5),
                      early_tokens=2)[0]) == 1  # (0-d arrays and tensors, as the guidance weight takes them)
    for bad in ({"early_temperature": float("nan"), "early_tokens": 2}, {"early_tokens": -1},
                {"early_temperature": "0.5", "early_tokens": 2}, {"early_temperature": np.array(True), "early_tokens": 2},
                {"early_tokens": 2.5}, {"early_temperature": True, "early_tokens": 2}):
        with pytest.raises(adatok.AdatokError, match="early"):
            sample(gen, [0], max_tokens=5, **bad)


def test_sampling_stops_at_the_longest_training_sequence(trained):
    kind, gen, _ = trained
    if kind == "pixels":
        pytest.skip("the pixel baseline has one length")
    assert gen.config["longest"] >= 1  # recorded by training
    capped = dataclasses.replace(gen, config={**gen.config, "longest": 7})
    assert all(len(s) <= 7 for s in sample(capped, [0, 1, 2], seed=2)[0])
    # a maximum lifts the cap (a minimum past it makes the samples go on: a model trained for 3 seconds may end
    # every sample by itself within 7 tokens, which failed this now and then on a slow machine)
    assert all(len(s) > 7 for s in sample(capped, [0, 1, 2], seed=2, max_tokens=60, min_tokens=8)[0])


def test_the_cache_changes_nothing_and_the_seed_decides(trained):
    _, gen, _ = trained
    a = sample(gen, [1, 2], seed=3, max_tokens=40)[1]
    b = sample(gen, [1, 2], seed=3, max_tokens=40, kv_cache=False)[1]
    c = sample(gen, [1, 2], seed=4, max_tokens=40)[1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(c) == 2


def test_completion_keeps_the_prefix(trained):
    kind, gen, _ = trained
    if kind == "pixels":
        pytest.skip("the pixel baseline has no token files to complete")
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    full = gen.lang.tok.encode([img])[0]
    cut = TokenSequence.from_bytes(full.to_bytes()[: len(full.to_bytes()) * 3 // 4])  # a cut file
    seqs, images = complete(gen, cut, 3, seed=1, max_tokens=len(cut) + 30)
    if kind == "wavelet":
        cut = gen.lang.tok.with_top_plane(cut)
    for s in seqs:
        assert np.array_equal(s.ids[: len(cut)], cut.ids)
        assert len(s) <= len(cut) + 30  # the limit counts the prefix (was: 30 tokens more than it)
    for other in (np.zeros((32, 32), np.uint8), np.zeros((28, 28, 3), np.uint8)) if kind == "wavelet" else ():
        # a raw IndexError, or (32x32) 32x32 samples from a 28x28 model
        prefix = gen.lang.tok.encode([other])[0].prefix(4)
        with pytest.raises(adatok.AdatokError, match="writes 28x28x1 images"):
            complete(gen, prefix, 2)


def test_a_file_to_complete_is_checked_from_its_header_first(trained, monkeypatch):
    """`adatok generate --complete` read the whole file before comparing its shape: a 0-token file
    of 83 bytes asking for a 4096 x 4096 x 3 image took 22 s and 5.4 GB to be told "writes 28x28x1
    images" (found by review). The header is compared first now, as the server did."""
    import sys
    from dataclasses import replace
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fuzz import craft
    from adatok.generate.sample import prefix_from_bytes
    from adatok.wavelet.transforms import default_levels

    kind, gen, _ = trained
    if kind != "wavelet":
        pytest.skip("the shape of a wavelet file is the case")
    base = craft.fields_of(gen.lang.tok.encode([np.zeros((28, 28), np.uint8)])[0].to_bytes())
    huge = (4096, 4096, 3)
    data = craft.frame(replace(base, shape=huge, params=dict(base.params) | {"levels": default_levels(huge[:2])},
                               n_tokens=0, payload=b"", payload_len=0))
    def not_read(*args, **kwargs):
        raise AssertionError("the payload was read before the header was checked")

    with monkeypatch.context() as m:
        m.setattr(TokenSequence, "from_bytes", not_read)
        with pytest.raises(adatok.AdatokError, match="big.atk is of a 4096x4096x3 image; .* writes 28x28x1 images"):
            prefix_from_bytes(gen, data, "big.atk")
    other = craft.frame(replace(base, tokenizer="wavelet-lossless"))
    with pytest.raises(adatok.AdatokError, match="was made by 'wavelet-lossless'"):
        prefix_from_bytes(gen, other)
    full = gen.lang.tok.encode([adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]])[0].to_bytes()
    assert len(prefix_from_bytes(gen, full[: len(full) // 2])) > 0


def test_grammar_masks_every_step():
    """With uniform logits (an untrained model's), random choices among the legal ids alone still
    decode: the sampler never pushes an id the stepper refuses (it would raise)."""
    lang = LANGS["wavelet"]()
    st = lang.stepper(8)
    rng = np.random.default_rng(0)
    for _ in range(300):
        legal = st.legal()
        if not legal.any():
            break
        st.push(np.where(legal.any(1), np.argmax(legal * rng.random(legal.shape), 1), -1))
    assert all(len(s) > 0 for s in st.sequences())


def test_top_k_and_top_p():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isfinite(_filter(logits, 2, 1.0)).tolist() == [[False, True, True, False]]
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(_filter(p, 0, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(_filter(p, 0, 1.0)).all()


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=0.05)  # |mu_a - mu_b|^2 = 4


def test_command_line(trained, tmp_path):
    from typer.testing import CliRunner

    from adatok.cli import app

    kind, gen, folder = trained
    runner = CliRunner()
    png = tmp_path / "grid.png"
    result = runner.invoke(app, ["generate", "--model", str(folder), "-n", "4", "--max-tokens", "30", "--out", str(png),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert adatok.read_image(png).shape[0] > 28
    out = tmp_path / "samples"
    result = runner.invoke(app, ["generate", "--model", str(folder), "-n", "3", "--class", "7", "--max-tokens", "30",
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with np.load(out / "samples.npz") as z:
        assert z["images"].shape == (3, 28, 28, 1) and z["labels"].tolist() == [7, 7, 7]
    assert len(list(out.glob("*.png"))) == 3
    assert len(list(out.glob("*.atk"))) == (0 if kind == "pixels" else 3)
    # a folder that holds files: refused before sampling (a run of 2 would leave 0002.png of the run
    # of 3 beside its own samples.npz); with --force the earlier run's sample files go, others stay
    (out / "notes.txt").write_text("mine")
    again = ["generate", "--model", str(folder), "-n", "2", "--class", "1", "--max-tokens", "30", "--out", str(out),
             "--quiet"]
    before = sorted(p.name for p in out.iterdir())
    result = runner.invoke(app, again)
    assert result.exit_code == 2 and "not empty" in result.stderr and "--force" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == before
    result = runner.invoke(app, [*again, "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["0000.png", "0001.png"]
    assert (out / "notes.txt").read_text() == "mine"
    with np.load(out / "samples.npz") as z:
        assert z["labels"].tolist() == [1, 1]
    result = runner.invoke(app, ["generate", "--model", str(folder), "--class", "12", "--out", str(tmp_path / "no.png")])
    assert result.exit_code == 2 and "--class" in result.stderr
    if kind != "pixels":  # at least K tokens; below 0 refused
        result = runner.invoke(app, ["generate", "--model", str(folder), "-n", "2", "--min-tokens", "25", "--max-tokens",
                                     "30", "--out", str(tmp_path / "long"), "--quiet"])
        assert result.exit_code == 0, result.output
        assert all(len(TokenSequence.from_bytes(p.read_bytes())) >= 25 for p in (tmp_path / "long").glob("*.atk"))
        result = runner.invoke(app, ["generate", "--model", str(folder), "--min-tokens", "-1", "--out", str(png)])
        assert result.exit_code == 2 and "--min-tokens" in result.stderr
    # the first tokens at their own temperature: the same first 4 ids as temperature 0 throughout
    firsts = []
    for extra in (["--early-tokens", "4", "--early-temperature", "0"], ["--temperature", "0"]):  # (0: the likeliest)
        folder_out = tmp_path / f"early{len(firsts)}"
        result = runner.invoke(app, ["generate", "--model", str(folder), "-n", "2", "--max-tokens", "8", "--out",
                                     str(folder_out), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        if kind == "pixels":  # (the first 4 pixels)
            with np.load(folder_out / "samples.npz") as z:
                firsts.append(z["images"].reshape(2, -1)[:, :4])
        else:
            firsts.append([TokenSequence.from_bytes(p.read_bytes()).ids[:4] for p in sorted(folder_out.glob("*.atk"))])
    assert len(firsts[0]) == len(firsts[1]) == 2  # (a sample may end before 4 tokens, the same in both)
    assert all(np.array_equal(a, b) for a, b in zip(firsts[0], firsts[1], strict=True))
    for bad, said in ((["--early-tokens", "-1"], "--early-tokens"), (["--early-temperature", "-0.5"], "--early-temperature"),
                      (["--temperature", "nan"], "temperature"), (["--top-p", "0"], "top-p")):
        result = runner.invoke(app, ["generate", "--model", str(folder), *bad, "--out", str(tmp_path / "no.png")])
        assert result.exit_code == 2 and said in result.stderr, (bad, result.stderr)
    for bad, said in ((["-n", str(10**12)], "at most 1,000,000"), (["--out", str(tmp_path / "s.atk")], "names a .atk")):
        result = runner.invoke(app, ["generate", "--model", str(folder), "--out", str(tmp_path / "no.png"), *bad])
        assert result.exit_code == 2 and said in result.stderr, result.stderr
    assert not (tmp_path / "no.png").exists() and not (tmp_path / "s.atk").exists()
    result = runner.invoke(app, ["generate", "--model", str(tmp_path / "nothing"), "--out", str(png)])
    assert result.exit_code == 2 and "unknown generator" in result.stderr


def test_the_reading_head_reads_prefixes(trained):
    from adatok.generate.evaluate import reading_accuracy

    kind, gen, _ = trained
    ds = adatok.datasets.load("fashion-mnist", "test", limit=20)
    acc = reading_accuracy(gen, np.stack(ds.images), ds.labels, [1, 5])
    assert set(acc) == {1, 5} and all(0.0 <= a <= 1.0 for a in acc.values())


def test_the_reading_payload_is_that_of_what_is_read(trained):
    """The reading table's bits were counted on the test images' whole sequences while the head read
    their training-target prefixes (10% more bits than read at the longest length): now both come
    from the target sequences, with the mean tokens actually read."""
    from adatok.generate.evaluate import read_payload

    kind, gen, _ = trained
    if not hasattr(gen.lang, "tok"):
        pytest.skip("a token language")
    ds = adatok.datasets.load("fashion-mnist", "test", limit=12)
    images = np.stack(ds.images)
    targets = [full.prefix(k) for full, k in gen.lang.encode(list(images))]
    longest = max(len(s) for s in targets)
    bits, read = read_payload(gen.lang, images, [1, longest, 10 * longest])
    assert read[1] == 1 and read[longest] == read[10 * longest] == np.mean([len(s) for s in targets])
    assert bits[longest] == bits[10 * longest] == np.mean([8 * len(gen.lang.tok.payload_codec.pack(s)) for s in targets])


def test_a_measurement_is_kept_for_one_judge_and_tokenizer(monkeypatch, tmp_path):
    """The kept measurement's key named neither the judge nor the tokenizer that decodes the
    samples: a retrained judge would have had the old judge's rows mixed with new ceilings; nor how
    samples are drawn from a seed (measurements of the old draws were reused after it changed)."""
    from adatok.generate import evaluate

    job = ("fmnist-gpt-learned", 10, 2.0, 0, 1, None, 64, 1.0, 1.0, 0, 1.0, 0)
    first = evaluate._measured_path(tmp_path, job)
    assert evaluate._measured_path(tmp_path, job) == first
    monkeypatch.setattr(evaluate, "weights_digest", lambda path: "other" if "judge" in str(path) else "same")
    assert evaluate._measured_path(tmp_path, job) != first
    assert evaluate._measured_path(tmp_path, (*job[:4], 2, *job[5:])) != evaluate._measured_path(tmp_path, job)
    assert evaluate._measured_path(tmp_path, (*job[:9], 30, *job[10:])) != evaluate._measured_path(tmp_path, job)
    assert evaluate._measured_path(tmp_path, (*job[:10], 0.3, 16)) != evaluate._measured_path(tmp_path, job)
    assert evaluate._measured_path(tmp_path, (*job[:10], 0.3, 0)) == evaluate._measured_path(tmp_path, job)  # unused
    words = ("fmnist-gpt-wavelet-words", *job[1:])
    kept = evaluate._measured_path(tmp_path, words)
    monkeypatch.setattr(adatok.wavelet.WaveletTokenizer, "decoder_revision", 99)  # the same tokens decode otherwise
    assert evaluate._measured_path(tmp_path, words) != kept
    drawn = evaluate._measured_path(tmp_path, job)
    monkeypatch.setattr(evaluate, "SAMPLER_REVISION", evaluate.SAMPLER_REVISION + 1)  # the same seed draws otherwise
    assert evaluate._measured_path(tmp_path, job) != drawn


def test_tied_output_layer():
    """With ``tie`` the output layer is the id embeddings (plus END): fewer parameters, the same
    shapes, and the logits move with the embeddings."""
    from adatok.generate.model import GPT
    from adatok.neural.model import count_params

    lang = LANGS["learned"]()
    plain, tied = (GPT(model_config_for(lang, 32, 1, 2, 64, tie=t)) for t in (False, True))
    assert count_params(plain) - count_params(tied) == 32 * lang.vocab_size
    inputs = torch.tensor([[lang.vocab_size + 3, 5, 7]])
    ints = torch.tensor([[[0], [1], [2]]])
    out = tied(inputs, ints, None)
    assert out.shape == (1, 3, lang.vocab_size + 1)
    with torch.no_grad():
        tied.tokens.weight[5] += 1.0
    assert not torch.equal(tied(inputs, ints, None)[..., 5], out[..., 5])


def test_digit_embeddings():
    """With ``digits`` a word's vector is its own plus one per (place, digit): words that share a
    decision share that vector, in the input and (tied) in the output; only word languages take it."""
    from adatok.generate.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=9, classes=2, d_model=8, n_layer=1, n_head=2, position="slot", int_sizes=(5,),
                          digits=(2, 3), tie=True))
    e, own, d = model.embeddings(), model.tokens.weight, model.digit_table.weight
    assert e.shape == (9 + 3, 8)
    assert torch.allclose(e[5], own[5] + d[0 * 3 + 1] + d[1 * 3 + 2])  # 5 = 1 2 in base 3
    assert torch.equal(e[9:], own[9:])  # class tokens: their own vectors only
    with torch.no_grad():
        d[0 * 3 + 2] += 1.0  # first digit 2: words 6, 7, 8 move, no other
    moved = (model.embeddings() != e).any(1)
    assert moved.tolist() == [False] * 6 + [True] * 3 + [False] * 3
    h = torch.randn(3, 8)
    fresh = model.logits(h)
    with torch.inference_mode(), model.fixed_weights():  # sampling builds the tied output layer once
        assert model.output_vectors() is model.output_vectors()
        assert torch.equal(model.logits(h), fresh)
    with torch.no_grad():
        assert model.output_vectors() is not model.output_vectors()  # outside the scope: built each time
        d[1 * 3 + 0] -= 0.5
    assert not torch.equal(model.logits(h), fresh)
    with pytest.raises(ValueError, match="base"):
        GPTConfig(vocab_size=10, digits=(2, 3))
    with pytest.raises(adatok.AdatokError, match="word languages"):
        model_config_for(LANGS["learned"](), 32, 1, 2, 64, digits=True)


def test_the_evaluation_writes_the_table_and_the_report(trained, tmp_path):
    import json

    from adatok.generate.evaluate import main

    kind, _, folder = trained
    main(["--models", str(folder), "--samples", "6", "--limit", "30", "--out", str(tmp_path),
          *(["--reading", str(folder)] if kind == "wavelet" else [])])
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {r["row"] for r in results["table"]}
    assert folder.name in rows and "6 training images vs the test split (floor)" in rows
    assert len(rows) == (2 if kind == "pixels" else 3)  # a token language has its tokenizer's ceiling
    model = results["table"][0]
    assert results["models"][0]["round_trips"] == (None if kind == "pixels" else 6)
    assert model["fd"] >= 0 and 0 <= model["accuracy"] <= 1
    if kind == "wavelet":
        assert list(results["reading"]["accuracy"]) == ["11", "22", "44", "87", "175", "349"]
        assert "Reading" in (tmp_path / "index.html").read_text()
    assert "<table>" in (tmp_path / "index.html").read_text()
    if kind != "pixels":  # the judge on the samples' prefixes and on the test images' same prefixes
        p = results["prefixes"][folder.name]
        longest = max(max(v) for v in results["models"][0]["lengths"].values())
        assert [int(n) for n in p["lengths"]] == [2**j for j in range(20) if 2**j < longest]
        assert all(0 <= a <= 1 for a in [*p["samples"].values(), *p["test"].values()])
        assert "Class accuracy as" in (tmp_path / "index.html").read_text()
    else:
        assert results["prefixes"] == {}
    kept = list((tmp_path / "measured").iterdir())  # the samples' measurement, for a run stopped later
    assert len(kept) == 1
    main(["--models", str(folder), "--samples", "6", "--limit", "30", "--out", str(tmp_path)])
    assert list((tmp_path / "measured").iterdir()) == kept  # read back, not sampled again
    assert json.loads((tmp_path / "results.json").read_text())["table"][0] == model


def test_a_model_changed_in_its_folder_is_measured_again(trained, tmp_path):
    """The kept measurement was found by the model's name and the arguments alone: a model trained on
    in its folder (--resume) got the old model's numbers."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from adatok.generate.evaluate import main

    kind, _, folder = trained
    if kind != "learned":
        pytest.skip("one language is enough (the learned one samples fastest)")
    model = shutil.copytree(folder, tmp_path / "model")
    args = ["--models", str(model), "--samples", "4", "--limit", "30", "--out", str(tmp_path / "eval")]
    main(args)
    first = json.loads((tmp_path / "eval" / "results.json").read_text())["table"][0]
    weights = load_file(model / "model.safetensors")
    save_file({k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v for k, v in weights.items()},
              model / "model.safetensors")
    main(args)
    assert len(list((tmp_path / "eval" / "measured").iterdir())) == 2  # measured again
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["table"][0] != first
    main([*args, "--temperature", "0.5", "--top-p", "0.9"])  # other sampling: measured apart
    assert len(list((tmp_path / "eval" / "measured").iterdir())) == 3
    m = json.loads((tmp_path / "eval" / "results.json").read_text())["models"][0]
    assert (m["temperature"], m["top_p"]) == (0.5, 0.9) and "temperature 0.5, top-p 0.9" in m["about"]


def test_training_on_a_folder_of_your_own_images(tmp_path):
    import json

    import skimage.data
    from PIL import Image
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.generate.train import image_folder

    photo = skimage.data.astronaut()
    for c, cls in enumerate(("cats", "dogs")):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(photo[40 * i + c : 40 * i + c + 40, 50 * i : 50 * i + 60]).save(tmp_path / "data" / cls / f"{i}.png")
    Image.fromarray(photo[:10, :10]).save(tmp_path / "data" / "dogs" / "small.png")  # under the size: left out
    (tmp_path / "data" / "dogs" / "notes.txt").write_text("not an image")             # left out
    images, labels, classes, left_out = image_folder(tmp_path / "data", (16, 16, 1))
    assert classes == ["cats", "dogs"] and left_out == 2 and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(im.shape == (16, 16, 1) and im.dtype == np.uint8 for im in images)
    train = image_folder(tmp_path / "data", (16, 16, 1), "train")[1]
    test = image_folder(tmp_path / "data", (16, 16, 1), "test")[1]
    assert len(train) == 5 and len(test) == 1  # under 20 images: the last one held out

    out = tmp_path / "gen"
    run = CliRunner().invoke(app, ["train-generator", "--out", str(out), "--data", str(tmp_path / "data"),
                                   "--image-size", "16", "--target-psnr", "18", "--dim", "32", "--layers", "1",
                                   "--heads", "2", "--steps", "2", "--val-images", "1", "-q"])
    assert run.exit_code == 0, run.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["classes"] == 2 and config["language"]["shape"] == [16, 16, 1]
    run = CliRunner().invoke(app, ["generate", "--model", str(out), "--class", "1", "-n", "2", "--max-tokens", "40",
                                   "--out", str(tmp_path / "samples"), "-q"])
    assert run.exit_code == 0, run.output
    assert np.load(tmp_path / "samples" / "samples.npz")["images"].shape == (2, 16, 16, 1)
    run = CliRunner().invoke(app, ["generate", "--model", str(out), "--class", "2", "--out", str(tmp_path / "x.png")])
    assert run.exit_code == 2 and "--class: a class of gen is a number 0..1, or one of 'cats', 'dogs'" in run.output
    # the classes' names are kept (only their count was: folders 0, 1, 10, 2 are numbered 0, 1, 2, 3)
    assert config["class_names"] == ["cats", "dogs"] and load_generator(out).class_number("dogs") == 1
    run = CliRunner().invoke(app, ["generate", "--model", str(out), "--class", "dogs", "-n", "1", "--max-tokens", "40",
                                   "--out", str(tmp_path / "dogs"), "-q"])
    assert run.exit_code == 0 and np.load(tmp_path / "dogs" / "samples.npz")["labels"].tolist() == [1], run.output
    (tmp_path / "data" / "loose.png").write_bytes((tmp_path / "data" / "cats" / "0.png").read_bytes())
    run = CliRunner().invoke(app, ["train-generator", "--out", str(tmp_path / "g2"), "--data", str(tmp_path / "data"),
                                   "--steps", "1", "-q"])
    assert run.exit_code == 2 and "both in itself and in sub-folders" in run.output



def test_cached_steps_are_one_pass():
    """The logits of one pass over a sequence equal those of cached steps fed one at a time, or a
    prefix at once and then several steps at once (each seeing the cache and the steps before it)."""
    from adatok.generate.model import GPT

    lang = LANGS["wavelet"]()
    cfg = model_config_for(lang, 32, 2, 2, 64)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    T = 7
    inputs = torch.tensor([[lang.vocab_size + 2, 1, 0, 2, 1, 1, 0]])
    ints = torch.stack([torch.randint(0, s, (1, T)) for s in cfg.int_sizes], -1)
    floats = torch.rand(1, T, cfg.float_fields)
    with torch.no_grad():
        full = model(inputs, ints, floats)
        caches = [dict() for _ in range(cfg.n_layer)]
        steps = torch.cat([model(inputs[:, t : t + 1], ints[:, t : t + 1], floats[:, t : t + 1], caches)
                           for t in range(T)], 1)
        caches = [dict() for _ in range(cfg.n_layer)]
        chunked = torch.cat([model(inputs[:, a:b], ints[:, a:b], floats[:, a:b], caches)
                             for a, b in ((0, 3), (3, 4), (4, 7))], 1)
    assert torch.allclose(full, steps, atol=1e-5) and torch.allclose(full, chunked, atol=1e-5)


def test_a_reader_learns_to_read_and_refuses_to_generate(tmp_path):
    """``train-generator --reader``: every row given no class, only the reading loss. A short run
    fits its 400 training images (from their first token on: the learned tokens' ids say much; so
    few images leave most ids of the test images unseen, so no claim is made on those); its history
    holds the validation reading accuracy, not a next-token loss; and it cannot sample."""
    import json

    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.generate.languages import Corpus
    from adatok.generate.train import read_corpus

    out = tmp_path / "reader"
    result = CliRunner().invoke(app, ["train-generator", "--language", "fashion-mnist-32", "--target-psnr", "20",
                                      "--dim", "32", "--layers", "1", "--heads", "2", "--limit", "400",
                                      "--val-images", "50", "--steps", "300", "--eval-every", "0", "--lr", "3e-3",
                                      "--out", str(out), "--quiet", "--reader"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["gen_weight"] == 0 and config["train"]["p_uncond"] == 1
    last = config["history"][-1]
    assert "val_loss" not in last and 0 <= last["val_read_accuracy"] <= 1 and last["read_loss"] < 2.0
    reader = load_generator(out)
    acc = read_corpus(reader.model, Corpus.load(out / "corpus-train.npz"), [1, 40])
    assert acc[1] > 0.8 and acc[40] > 0.8  # chance: 0.1
    with pytest.raises(adatok.AdatokError, match="reader"):
        sample(reader, [1])


def test_sampling_options_no_sampling_can_follow_are_refused(trained):
    """A label of `classes` drew unconditional samples silently and one past it was a raw torch
    error; NaN guidance or temperature ended in torch.multinomial."""
    kind, gen, _ = trained
    for labels, options in (([10], {}), ([11], {}), ([2.5], {}), ([True], {}), ([0], {"cfg": float("nan")}),
                            ([0], {"temperature": float("inf")}), ([0], {"top_p": 0.0}), ([0], {"min_tokens": -1}),
                            ([0], {"temperature": 1e39}), ([0], {"cfg": 1e39}), ([0], {"cfg": -1e39})):  # (float32: inf)
        with pytest.raises(adatok.AdatokError):
            sample(gen, labels, max_tokens=5, **options)
    assert len(sample(gen, [np.int64(1), None, -1], max_tokens=5, temperature=0.0)[0]) == 3  # 0: the likeliest


def test_sampling_arguments_of_the_wrong_kind_are_refused():
    """Found by an outside user's review: each was a raw TypeError / IndexError / ValueError, or
    was taken as something else (cfg=True, kv_cache="no"), or returned a wrong number."""
    from adatok.generate.evaluate import reading_accuracy
    from adatok.generate.judge import accuracy, fd_fmnist, load_judge

    gen = load_generator("fmnist-gpt-wavelet-words")
    some = adatok.datasets.load("fashion-mnist", "test", limit=6)
    prefix, = gen.lang.tok.encode([some.images[0]], Tokens(12), fixed_header=True)
    refused = {
        "cfg of a string": lambda: sample(gen, [1], cfg="2"), "cfg of a bool": lambda: sample(gen, [1], cfg=True),
        "kv_cache of a string": lambda: sample(gen, [1], kv_cache="no"),
        "a misspelt option": lambda: sample(gen, [1], tmperature=0.5),
        "labels of an int": lambda: sample(gen, 7), "labels of a string": lambda: sample(gen, "7"),
        "a list as the label": lambda: complete(gen, prefix, n=2, label=[7, 3]),
        "a list as the prefix": lambda: complete(gen, [1, 2, 3]), "an array": lambda: complete(gen, np.arange(3)),
        "max_tokens below the prefix": lambda: complete(gen, prefix, max_tokens=len(prefix) - 1),
        "max_tokens at the prefix": lambda: complete(gen, prefix, max_tokens=len(prefix)),
        "a misspelt completion option": lambda: complete(gen, prefix, tmperature=0.5),
        "a whole sequence (its n copies came back)": lambda: complete(
            gen, gen.lang.tok.encode([some.images[0]], fixed_header=True)[0], n=2, max_tokens=10**6),
        "a generator of a number": lambda: load_generator(3), "of None": lambda: load_generator(None),
    }
    for what, call in refused.items():
        try:
            call()
        except adatok.AdatokError:
            continue
        pytest.fail(f"{what}: taken")
    with pytest.raises(adatok.AdatokError, match=r"0..9 \(or None / -1: none\), got 10$"):  # (not np.int64(10))
        sample(gen, [np.int64(10)])
    # completions come in batches of `batch`, each starting with the prefix; the sequence of a seed
    # does not depend on how many batches there are before it ends
    done, images = complete(gen, prefix, n=3, seed=4, batch=2, max_tokens=len(prefix) + 3, progress=lambda d, t: None)
    assert len(done) == len(images) == 3 and all((s.ids[: len(prefix)] == prefix.ids).all() for s in done)
    assert [s.ids.tolist() for s in done[:2]] == [s.ids.tolist() for s in complete(
        gen, prefix, n=2, seed=4, batch=2, max_tokens=len(prefix) + 3)[0]]
    # the judge and the reader: no images, and labels that do not fit them
    judge = load_judge()
    empty = np.zeros((0, 28, 28, 1), np.uint8)
    images, labels = np.stack(some.images), np.asarray(some.labels)
    for call in (lambda: fd_fmnist(judge, empty, images), lambda: accuracy(judge, empty, [])):
        with pytest.raises(adatok.AdatokError, match="at least one image"):
            call()
    with warnings.catch_warnings():  # (6 images: a singular covariance, as expected)
        warnings.simplefilter("ignore")
        assert fd_fmnist(judge, images, images) == 0.0  # (rounding gave -8e-5)
    for imgs, labs, lengths in ((images, labels[:2], [8]), (images, np.r_[labels, labels], [8]),
                                (images, np.full(6, 42), [8]), (images, np.full(6, -1), [8]), (empty, [], [8]),
                                (images, labels, [0]), (images, labels, [-3]), (images, labels, []),
                                (images, labels, [2.5])):
        with pytest.raises(adatok.AdatokError):
            reading_accuracy(gen, imgs, labs, lengths)


def test_other_seeds_draw_other_samples(trained):
    """Each batch was seeded seed + its first index: seed 0's samples 64.. were seed 64's first."""
    from adatok.generate.sample import batch_seed

    assert len({batch_seed(s, at) for s in range(70) for at in range(0, 640, 64)}) == 700
    kind, gen, _ = trained
    a = sample(gen, [1] * 66, seed=0, batch=64, max_tokens=12)[1][64:]
    b = sample(gen, [1] * 2, seed=64, batch=64, max_tokens=12)[1]
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_top_p_keeps_the_smallest_set_that_reaches_it():
    """Ties of the running sum with top-p kept one token too many."""
    for probs, top_p, kept in (([0.5, 0.25, 0.125, 0.125], 0.5, 1), ([0.25] * 4, 0.5, 2), ([0.5, 0.25, 0.25], 0.75, 2)):
        logits = torch.tensor([probs]).log()
        assert int(torch.isfinite(_filter(logits, 0, top_p)).sum()) == kept


def test_a_folder_of_its_name_does_not_hide_the_shipped_generator(tmp_path, monkeypatch):
    """A run trained into --out fmnist-gpt-learned stood in for the shipped generator, named as it in
    every message: a bare shipped name is the shipped generator, as a tokenizer's name is."""
    from adatok.generate.sample import CHECKPOINT_DIR, generator_folder, shipped

    name = shipped()[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    (tmp_path / name / "0000.png").write_bytes(b"")  # samples written by `adatok generate -m NAME -o NAME`
    assert generator_folder(name) == CHECKPOINT_DIR / name
    (tmp_path / name / "config.json").write_text("{}")  # a checkpoint folder of that name: ./NAME
    assert generator_folder(name) == generator_folder(f"{name}/") == CHECKPOINT_DIR / name
    assert generator_folder(f"./{name}") == Path(f"./{name}")
    monkeypatch.chdir(tmp_path / name)  # no folder of that name here: the shipped one, however written
    assert generator_folder(f"{name}/") == generator_folder(f"./{name}") == CHECKPOINT_DIR / name


@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"lr": float("nan")}, {"minutes": 0.0}, {"minutes": float("nan")},
                                 {"p_uncond": 1.5}, {"weight_decay": -0.1}, {"warmup": -5}, {"steps": 0},
                                 {"batch": 0}, {"val_images": 0}, {"limit": 0}, {"threads": 0}, {"batch": 2.5}])
def test_training_settings_no_run_can_follow_are_refused(bad):
    with pytest.raises(adatok.AdatokError):
        GenTrainConfig(**bad)
    GenTrainConfig(eval_every=float("inf"), save_every=float("inf"))  # (at the end only: taken)


def test_a_resumed_run_goes_on_as_the_interrupted_one_would_have(tmp_path, monkeypatch):
    """The batches after a resume were drawn from a generator reseeded there: the weights of a run
    stopped after its step-2 checkpoint and resumed differed from those of the run not stopped."""
    import shutil

    from adatok.generate import train as train_module
    from adatok.neural.folder import load_weights as load

    lang = SlotLanguage("fashion-mnist-32", Quality(psnr=20))
    cfg = model_config_for(lang, 16, 1, 1, 64)
    tc = GenTrainConfig(steps=4, limit=16, val_images=4, batch=4, eval_every=1e9, save_every=0.0, warmup=1, lr=1e-2)
    train_generator(tmp_path / "whole", lang, cfg, tc, log=lambda *a: None)
    real = train_module.write_folder

    def keep_step_2(out, model, config, *args, **kwargs):
        real(out, model, config, *args, **kwargs)
        if config["step"] == 2:
            shutil.copytree(out, tmp_path / "stopped")

    monkeypatch.setattr(train_module, "write_folder", keep_step_2)
    train_generator(tmp_path / "run", lang, cfg, tc, log=lambda *a: None)
    monkeypatch.setattr(train_module, "write_folder", real)
    train_generator(tmp_path / "stopped", resume=True, log=lambda *a: None)
    a = load(tmp_path / "whole", GPT(cfg)).state_dict()
    b = load(tmp_path / "stopped", GPT(cfg)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_run_into_a_checkpoint_is_refused_unless_resumed_or_forced(tmp_path):
    """A run with another target in the same folder trained on the old target's cached sequences
    (the cache was taken whenever its length matched) and replaced the model without a word."""
    from adatok.generate.languages import Corpus

    def run(target, **kw):
        lang = WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=target))
        train_generator(tmp_path / "g", lang, model_config_for(lang, 16, 1, 1, 2048),
                        GenTrainConfig(steps=1, limit=6, val_images=2, batch=2, eval_every=1e9), log=lambda *a: None, **kw)

    run(16)
    weights = (tmp_path / "g" / "model.safetensors").read_bytes()
    short = Corpus.load(tmp_path / "g" / "corpus-train.npz").lengths.sum()
    with pytest.raises(adatok.AdatokError, match="--resume.*--force"):
        run(30)
    assert (tmp_path / "g" / "model.safetensors").read_bytes() == weights
    run(30, force=True)
    config = load_generator(tmp_path / "g").config
    assert config["language"]["target"]["psnr"] == 30
    assert Corpus.load(tmp_path / "g" / "corpus-train.npz").lengths.sum() > short  # 30 dB needs more tokens


def test_a_second_run_into_a_folder_being_trained_is_refused(tmp_path, monkeypatch, held_elsewhere):
    """Two runs into one folder at once both trained, each save alone locked, and the last to save
    won: the other's model was replaced without a word."""
    from adatok.generate import train as train_module

    lang = SlotLanguage("fashion-mnist-32", Quality(psnr=20))
    cfg = model_config_for(lang, 16, 1, 1, 64)
    tc = GenTrainConfig(steps=2, limit=8, val_images=4, batch=4, eval_every=1e9, warmup=1)
    out = tmp_path / "g"
    out.mkdir()
    with held_elsewhere(out):
        for resume in (False, True):
            with pytest.raises(adatok.AdatokError, match="being written by another training run"):
                train_generator(out, lang, cfg, tc, resume=resume, log=lambda *a: None)
    assert list(out.iterdir()) == []
    # a new folder: held once made; a checkpoint another run saved there since the first check is refused
    real_make = train_module.make_folders

    def another_run_saves_first(folder):
        made = real_make(folder)
        monkeypatch.setattr(train_module, "make_folders", real_make)
        train_generator(folder, lang, cfg, dataclasses.replace(tc, steps=1), log=lambda *a: None)
        return made

    monkeypatch.setattr(train_module, "make_folders", another_run_saves_first)
    with pytest.raises(adatok.AdatokError, match="holds a checkpoint already"):
        train_generator(tmp_path / "new", lang, cfg, tc, log=lambda *a: None)
    assert load_generator(tmp_path / "new").config["step"] == 1  # the other run's, kept
    train_generator(out, lang, cfg, tc, log=lambda *a: None)  # let go: a run trains and saves
    assert load_generator(out).config["step"] == 2


def test_resuming_goes_on_with_the_checkpoints_settings_and_never_replaces_a_model_it_cannot_resume(tmp_path):
    """--resume on a folder without training state (a shipped or copied model) started from nothing
    and replaced the model; the options given with --resume were silently ignored, so a run could
    never be made longer."""
    import json
    import shutil

    from typer.testing import CliRunner

    from adatok.cli import app

    out = tmp_path / "g"
    base = ["train-generator", "--out", str(out), "--language", "wavelet-w8", "--target-psnr", "16", "--dim", "16",
            "--layers", "1", "--heads", "1", "--limit", "6", "--val-images", "2", "--batch", "2", "--quiet"]
    run = CliRunner().invoke(app, [*base, "--steps", "2"])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(app, [*base, "--steps", "4", "--resume"])  # the same options, a longer run
    assert run.exit_code == 0, run.output
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 4 and config["train"]["steps"] == 4
    weights = (out / "model.safetensors").read_bytes()
    for other in (["--digits"], ["--class-every"], ["--dim", "32"], ["--target-psnr", "20"], ["--lr", "0.01"]):
        run = CliRunner().invoke(app, ["train-generator", "--out", str(out), "--resume", "--steps", "6", *other])
        assert run.exit_code == 2 and "differ" in run.output and other[0] in run.output, run.output
    assert (out / "model.safetensors").read_bytes() == weights
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in ("config.json", "model.safetensors"):  # a model without its training state
        shutil.copy(out / f, copy / f)
    run = CliRunner().invoke(app, ["train-generator", "--out", str(copy), "--resume", "--steps", "6"])
    assert run.exit_code == 2 and "nothing to resume" in run.output, run.output
    assert (copy / "model.safetensors").read_bytes() == weights
    with pytest.raises(adatok.AdatokError, match="keeps its checkpoint's lr"):
        train_generator(out, resume=True, overrides={"lr": 0.1}, log=lambda *a: None)
    run = CliRunner().invoke(app, [*base, "--steps", "3", "--context", "--position", "index", "--force"])
    assert run.exit_code == 2 and "--position index" in run.output, run.output


def test_a_cached_corpus_is_used_only_for_what_it_was_made_from(tmp_path):
    from adatok.generate.train import corpus_for

    cache = tmp_path / "corpus.npz"
    at16 = corpus_for(WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=16)), "train", 5, cache)
    again = corpus_for(WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=16)), "train", 5, cache)
    assert np.array_equal(again.ids, at16.ids)
    at30 = corpus_for(WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=30)), "train", 5, cache)
    assert at30.lengths.sum() > at16.lengths.sum()  # rebuilt (was: the 16 dB cache, its length matching)
    words = corpus_for(SlotLanguage("fashion-mnist-32", Quality(psnr=30)), "train", 5, cache)
    assert words.lengths.max() <= 32  # another language: rebuilt too
    assert corpus_for(PixelLanguage((28, 28, 1)), "test", 5, cache).lengths.tolist() == [784] * 5


@pytest.mark.parametrize("keep", [100, 600])
def test_a_damaged_corpus_cache_is_made_again(tmp_path, keep):
    """A corpus file cut short (a copy interrupted, a full disk) ended a run in a raw BadZipFile."""
    from adatok.generate.languages import Corpus
    from adatok.generate.train import corpus_for

    lang = WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=16))
    cache = tmp_path / "corpus.npz"
    whole = corpus_for(lang, "train", 5, cache)
    cache.write_bytes(cache.read_bytes()[:keep])  # (600 bytes: past the key, into the arrays)
    again = corpus_for(lang, "train", 5, cache)
    assert np.array_equal(again.ids, whole.ids) and np.array_equal(Corpus.load(cache).ids, whole.ids)


def test_a_training_step_out_of_memory_says_to_give_a_smaller_batch(tmp_path, monkeypatch):
    """--batch 100000 on a small corpus ended in torch's raw allocator traceback (exit 1)."""
    from adatok.generate import train as train_module

    lang = SlotLanguage("fashion-mnist-32", Quality(psnr=20))
    cfg = model_config_for(lang, 16, 1, 1, 64)
    tc = GenTrainConfig(steps=2, limit=8, val_images=4, batch=4, eval_every=1e9, warmup=1)

    def losses(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 160112800000 bytes")

    monkeypatch.setattr(train_module, "losses", losses)
    with pytest.raises(adatok.AdatokError, match="ran out of memory.*give a smaller --batch"):
        train_generator(tmp_path / "g", lang, cfg, tc, log=lambda *a: None)

    def other(*args, **kwargs):
        raise RuntimeError("shapes do not match")  # (any other error stays what it is)

    monkeypatch.setattr(train_module, "losses", other)
    with pytest.raises(RuntimeError, match="shapes do not match"):
        train_generator(tmp_path / "h", lang, cfg, tc, log=lambda *a: None)


def test_a_corpus_of_empty_sequences_is_refused(tmp_path):
    """Images that all reach the target with no token trained a model that wrote nothing, and
    `adatok generate` then said "max_tokens is a whole number >= 1, got 0" (none was given)."""
    from PIL import Image

    data = tmp_path / "flat"
    data.mkdir()
    for i in range(6):
        Image.fromarray(np.full((16, 16), 128, np.uint8)).save(data / f"{i}.png")
    lang = WaveletLanguage("wavelet", (16, 16, 1), Quality(psnr=10))
    with pytest.raises(adatok.AdatokError, match="every training sequence is empty.*higher --target-psnr"):
        train_generator(tmp_path / "g", lang, model_config_for(lang, 16, 1, 1, 64),
                        GenTrainConfig(data=str(data), steps=1, batch=2, val_images=2, eval_every=1e9),
                        log=lambda *a: None)
    assert not (tmp_path / "g").exists()


def test_a_cached_corpus_of_a_folder_follows_the_folder(tmp_path):
    """The cache of a folder's corpus is rebuilt when the folder's images change (same path)."""
    from PIL import Image

    from adatok.generate.train import corpus_for

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (12, 12), np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    lang, cache = PixelLanguage((8, 8, 1)), tmp_path / "corpus.npz"
    first = corpus_for(lang, None, None, cache, data=str(tmp_path / "imgs"))
    assert len(first) == 6
    Image.fromarray(rng.integers(0, 256, (12, 12), np.uint8)).save(tmp_path / "imgs" / "b" / "3.png")
    assert len(corpus_for(lang, None, None, cache, data=str(tmp_path / "imgs"))) == 7  # was: the 6 cached


def test_a_reader_reads_every_row(tmp_path):
    """A reader learns from the rows given no class only: every row must be one."""
    lang = LANGS["learned"]()
    with pytest.raises(adatok.AdatokError, match="p_uncond=1"):
        train_generator(tmp_path / "r", lang, model_config_for(lang, 32, 1, 2, 64),
                        GenTrainConfig(steps=1, gen_weight=0.0, p_uncond=0.5, limit=8, val_images=4),
                        log=lambda *a: None)


def test_the_ids_only_ablation_reads_step_numbers_in_evaluation_as_in_training(tmp_path):
    """``reading_accuracy`` fed a ``--position index`` model the wavelet position rows (reading a
    plane number as the step) instead of the step numbers it was trained on."""
    from adatok.generate.evaluate import reading_accuracy
    from adatok.generate.languages import build_corpus
    from adatok.generate.train import index_positions, read_corpus

    lang = LANGS["wavelet"]()
    train_generator(tmp_path / "g", lang, model_config_for(lang, 16, 1, 1, 2048, position="index"),
                    GenTrainConfig(steps=2, limit=6, val_images=2, batch=2, eval_every=1e9), log=lambda *a: None)
    gen = load_generator(tmp_path / "g")
    test = adatok.datasets.load("fashion-mnist", "test", limit=40)
    images, labels = np.stack(test.images), np.asarray(test.labels)
    corpus = build_corpus(lang, list(images), labels)
    lengths = [1, 5, 20, 80]
    assert reading_accuracy(gen, images, labels, lengths) == read_corpus(gen.model, index_positions(corpus), lengths)


def test_a_class_folder_beside_files_that_are_not_images(tmp_path):
    """A README beside the class sub-folders is left out, as unreadable files are (it refused the
    folder: 'images both in itself and in sub-folders'); an image there still refuses it."""
    from adatok.generate.train import folder_classes

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        adatok.write_image(tmp_path / cls / "a.png", np.zeros((8, 8, 1), np.uint8))
    (tmp_path / "README.txt").write_text("my pets")
    assert folder_classes(tmp_path) == ["cat", "dog"]
    adatok.write_image(tmp_path / "stray.png", np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(adatok.AdatokError, match="both in itself and in sub-folders"):
        folder_classes(tmp_path)


def test_seeds_are_64_bit_whole_numbers_and_one_named_models_are_told_apart():
    """2**64 was a raw OverflowError from torch in complete() (sample() took it); taken, it drew seed
    0's samples (as 2**64 - 1 drew -1's); 1.5 drew seed 1's, "3" seed 3's, None a raw TypeError."""
    from adatok.generate.evaluate import labelled

    gen = load_generator("fmnist-gpt-learned")
    prefix = sample(gen, [3], seed=0)[0][0].prefix(2)
    for seed in (-(2**63), -1, np.int64(5), 2**63 - 1):
        assert len(complete(gen, prefix, n=1, seed=seed)[0]) == 1
    for seed in (2**63, 2**64, -(2**63) - 1, 2**100, 1.5, "3", True, None, float("nan")):
        for draw in (lambda: complete(gen, prefix, n=1, seed=seed), lambda: sample(gen, [1], seed=seed)):
            with pytest.raises(adatok.AdatokError, match="the seed is a whole number"):
                draw()
    a, b = {"name": "mine", "fd": 1.0}, {"name": "mine", "fd": 2.0}
    assert [m["name"] for m in labelled(["x/mine", "y/mine"], [a, b])] == ["x/mine", "y/mine"]
    assert labelled(["only"], [{"name": "mine"}])[0]["name"] == "mine"


def test_sampling_counts_are_checked_and_gray_prefixes_complete():
    """sample(batch=-1) returned no samples, silently, batch=0 a raw ValueError; complete(n=0) spoke
    of a stepper's starts, n=2.0 a raw TypeError; a prefix of an H x W gray image, which the server
    accepts, was refused by complete (found by review)."""
    from adatok.core.errors import AdatokError

    gen = load_generator("fmnist-gpt-wavelet-words")
    for batch in (-1, 0, 2.0):
        with pytest.raises(AdatokError, match="batch is a whole number"):
            sample(gen, [1, 2], batch=batch)
    img = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    seq, = gen.lang.tok.encode([img], adatok.Tokens(24), fixed_header=True)
    assert seq.shape == (28, 28)
    for n in (0, -1, 2.0):
        with pytest.raises(AdatokError, match="n is a whole number"):
            complete(gen, seq, n=n)
    done, images = complete(gen, seq, n=2, seed=0, max_tokens=40)
    assert len(done) == 2 and all((s.ids[: len(seq)] == seq.ids).all() for s in done)
    assert all(TokenSequence.from_bytes(s.to_bytes()).ids.tolist() == s.ids.tolist() for s in done)


@pytest.mark.parametrize("name", ["wavelet", "wavelet-w8"])
def test_a_region_coded_prefix_is_refused_for_its_region(name):
    """The region's shift lifted the prefix's top plane, and with_top_plane refused it first with
    advice about nmax, which complete() has not (found by review)."""
    from adatok.core.errors import AdatokError
    from adatok.generate.languages import WordLanguage

    lang = (WaveletLanguage if name == "wavelet" else WordLanguage)(name, (28, 28, 1))
    img = np.random.default_rng(1).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    roi = np.zeros((28, 28))
    roi[5:15, 5:15] = 1
    seq, = lang.tok.encode([img], adatok.Tokens(40), roi=[roi])
    with pytest.raises(AdatokError, match="region of interest"):
        lang.stepper(prefixes=[seq])


def test_the_judge_needs_one_class_an_image_and_two_images_a_side():
    """One label for many images was broadcast and -1 counted as a miss; a Fréchet distance of one
    image was a raw scipy error (found by review)."""
    from adatok.core.errors import AdatokError
    from adatok.generate.judge import accuracy, load_judge

    judge = load_judge()
    images = np.zeros((6, 28, 28, 1), np.uint8)
    assert 0 <= accuracy(judge, images, [0, 1, 2, 3, 4, 5]) <= 1
    for labels in ([0], [0, 1, 2, 3, 4, -1], [0, 1, 2, 3, 4, 10], np.zeros((6, 1), int)):
        with pytest.raises(AdatokError, match="one class 0..9"):
            accuracy(judge, images, labels)
    with pytest.raises(AdatokError, match="at least 2"):
        frechet_distance(np.zeros((1, 4)), np.ones((5, 4)))


def test_evaluate_refuses_what_it_cannot_measure_before_sampling(tmp_path, capsys):
    """A generator of a folder of images was judged as Fashion-MNIST; --reading of learned tokens read
    lengths past its 32; a model named twice was sampled twice; a file as --out, --samples 1 and 0
    failed after sampling or loading (found by review)."""
    from PIL import Image

    from adatok.generate.evaluate import main

    imgs = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for c in range(10):
        (imgs / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (28, 28), np.uint8)).save(imgs / f"c{c}" / f"{i}.png")
    lang = PixelLanguage((28, 28, 1))
    cfg = dataclasses.replace(model_config_for(lang, 16, 1, 1, 785), classes=10)
    train_generator(tmp_path / "mine", lang, cfg, GenTrainConfig(steps=1, batch=2, val_images=2, eval_every=1e9,
                                                                 data=str(imgs)), log=lambda *a: None)
    (tmp_path / "file").write_text("x")
    import json
    import shutil

    from adatok.generate.sample import generator_folder

    reader = shutil.copytree(generator_folder("fmnist-gpt-learned"), tmp_path / "reader")
    config = json.loads((reader / "config.json").read_text())
    config["train"]["gen_weight"] = 0.0
    (reader / "config.json").write_text(json.dumps(config))
    out = str(tmp_path / "eval")
    for args, says in ((["--models", str(tmp_path / "mine")], "not trained on Fashion-MNIST"),
                       (["--models", "fmnist-gpt-learned,fmnist-gpt-learned"], "twice"),
                       (["--models", "", "--reading", "fmnist-gpt-learned"], "--reading takes"),
                       (["--models", "fmnist-gpt-learned", "--out", str(tmp_path / "file")], "is a file"),
                       (["--models", "fmnist-gpt-learned", "--samples", "1"], "at least 2"),
                       (["--models", "fmnist-gpt-learned", "--samples", "0"], ">= 1"),
                       (["--models", "nope"], "unknown generator"),
                       (["--models", str(reader)], "is a reader"),
                       (["--models", "fmnist-gpt-learned", "--temperature", "nan"], "temperature is a number"),
                       (["--models", "fmnist-gpt-learned", "--early-tokens", "-2"], "early_tokens")):
        with pytest.raises(SystemExit) as exc:
            main(["--out", out, *args])
        assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_a_generator_with_an_ssim_target_is_measured_with_its_own_ceiling(tmp_path, monkeypatch):
    """The ceiling row formatted the target's PSNR, None for an SSIM target: a raw TypeError after
    sampling (found by review). A negative seed failed after sampling (the report's random pick);
    the completion strip was drawn without the run's sampling options; results.json left out
    min_tokens (found by review)."""
    import json

    from adatok.generate import evaluate

    real, given = evaluate.complete, {}

    def completing(*args, **options):
        given.update(options)
        return real(*args, **options)

    monkeypatch.setattr(evaluate, "complete", completing)
    lang = WaveletLanguage("wavelet", (28, 28, 1), Quality(ssim=0.5))
    train_generator(tmp_path / "gen", lang, model_config_for(lang, 32, 1, 2, 2048),
                    GenTrainConfig(steps=1, limit=24, val_images=8, batch=4, eval_every=1e9), log=lambda *a: None)
    evaluate.main(["--models", str(tmp_path / "gen"), "--samples", "4", "--limit", "20", "--out", str(tmp_path / "eval"),
                   "--seed", "-1", "--temperature", "0.5", "--min-tokens", "3", "--early-tokens", "2",
                   "--early-temperature", "0.1"])
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    rows = [r["row"] for r in results["table"]]
    assert "wavelet reconstructions at SSIM 0.5 (ceiling)" in rows
    assert given == {"seed": -1, "cfg": 2.0, "temperature": 0.5, "top_p": 1.0, "min_tokens": 3, "early_temperature": 0.1,
                     "early_tokens": 2}
    assert '"min_tokens": 3' in json.dumps(results)


def test_with_jobs_a_failing_model_loses_no_other_models_measurement(tmp_path):
    """Measurements were kept while pool.map was read in order: the first model's failure threw
    away the second's finished sampling (found by review)."""
    import shutil

    from adatok.core.errors import AdatokError
    from adatok.generate.evaluate import main
    from adatok.generate.sample import generator_folder

    broken = shutil.copytree(generator_folder("fmnist-gpt-learned"), tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    out = tmp_path / "eval"
    with pytest.raises(AdatokError):
        main(["--models", f"{broken},fmnist-gpt-learned", "--samples", "4", "--limit", "20", "--jobs", "2",
              "--out", str(out)])
    assert [p.name.startswith("fmnist-gpt-learned-") for p in (out / "measured").glob("*.pkl")] == [True]


def test_evaluate_takes_a_generator_whose_fashion_mnist_shards_are_gone(tmp_path):
    """A generator trained on token shards of Fashion-MNIST was refused once the shards were moved
    (found by reviewing the change); one of a folder of images still is."""
    import argparse
    import json
    import shutil

    from adatok.core.errors import AdatokError
    from adatok.generate.evaluate import check_arguments
    from adatok.generate.sample import generator_folder

    model = shutil.copytree(generator_folder("fmnist-gpt-learned"), tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    config["train"]["data"] = str(tmp_path / "shards-moved-away")
    (model / "config.json").write_text(json.dumps(config))
    args = argparse.Namespace(samples=10, seed=0, limit=None, out=str(tmp_path / "eval"), reading="", cfg=2.0, temperature=1.0,
                              top_p=1.0, min_tokens=0, early_temperature=1.0, early_tokens=0)
    check_arguments(args, [str(model)])
    (tmp_path / "imgs").mkdir()
    config["train"]["data"] = str(tmp_path / "imgs")
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(AdatokError, match="not trained on Fashion-MNIST"):
        check_arguments(args, [str(model)])


def test_a_class_added_at_every_step_starts_as_none_and_caches_as_one_pass(tmp_path):
    """``class_every``: its table starts at zero (the logits are those of the same weights without
    it, so a model can be trained on from one without), then with any weights the cached steps give
    the logits of one pass, and sampling with the cache, guidance and rows ending at different
    steps draws what it draws without the cache (the caches keep each row's class and drop it with
    the row)."""
    lang = LANGS["wavelet"]()
    cfg = model_config_for(lang, 32, 2, 2, 64)
    torch.manual_seed(0)
    plain = GPT(cfg).eval()
    every = GPT(dataclasses.replace(cfg, class_every=True)).eval()
    missing = every.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["class_steps.weight"]
    T = 6
    inputs = torch.tensor([[lang.vocab_size + 2, 1, 0, 2, 1, 1], [lang.vocab_size + 5, 0, 0, 1, 2, 1]])
    ints = torch.stack([torch.randint(0, s, (2, T)) for s in cfg.int_sizes], -1)
    floats = torch.rand(2, T, cfg.float_fields)
    with torch.no_grad():
        assert torch.equal(plain(inputs, ints, floats), every(inputs, ints, floats))
        torch.nn.init.normal_(every.class_steps.weight)
        full = every(inputs, ints, floats)
        assert not torch.allclose(full, plain(inputs, ints, floats), atol=1e-3)
        caches = [dict() for _ in range(cfg.n_layer)]
        steps = torch.cat([every(inputs[:, t : t + 1], ints[:, t : t + 1], floats[:, t : t + 1], caches)
                           for t in range(T)], 1)
    assert torch.allclose(full, steps, atol=1e-5)
    with pytest.raises(ValueError, match="class token"):
        every(inputs[:, 1:], ints[:, 1:], floats[:, 1:])

    out = tmp_path / "gen"
    train_generator(out, lang, dataclasses.replace(cfg, max_len=2048, class_every=True),
                    GenTrainConfig(steps=2, limit=16, val_images=4, batch=4, eval_every=1e9), log=lambda *a: None)
    gen = load_generator(out)
    assert gen.model.cfg.class_every
    with torch.no_grad():
        torch.nn.init.normal_(gen.model.class_steps.weight)
        gen.model.head.bias[gen.model.cfg.end] += 2.0  # (END drawn at random steps: rows leave the batch)
    a = sample(gen, [0, 3, 7, 9], seed=1, cfg=2.0, max_tokens=40)[0]
    b = sample(gen, [0, 3, 7, 9], seed=1, cfg=2.0, max_tokens=40, kv_cache=False)[0]
    assert len({len(s) for s in a}) > 1 and all(np.array_equal(x.ids, y.ids) for x, y in zip(a, b))


def test_a_refused_training_run_leaves_no_folder_behind(tmp_path):
    """Found by review: a run refused after its folder was made (sequences longer than the model
    takes, shards of another tokenizer, a model too large to allocate) left --out and the parents it
    made, with megabytes of token caches and no checkpoint; the length error did not say what to do.
    Reviewing the fix: a path through a folder that did not exist (missing/../kept) had the run
    remove a folder it had not made; a link as --out named the model after where it led."""
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from adatok.cli import app

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8)).save(imgs / f"{i}.png")
    base = ["train-generator", "--steps", "1", "--dim", "16", "--layers", "1", "--heads", "1", "--batch", "2",
            "--val-images", "1", "--quiet", "--data", str(imgs), "--image-size", "32", "--channels", "3"]
    run = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "new" / "deep" / "gen")])
    assert run.exit_code == 2 and "--target-psnr" in run.stderr and not (tmp_path / "new").exists()
    run = CliRunner().invoke(app, [*base, "--target-psnr", "12", "--dim", "2000000", "--heads", "1",
                                   "--out", str(tmp_path / "big")])
    assert run.exit_code == 2 and "smaller --dim" in run.stderr and not (tmp_path / "big").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there: left (empty) as it was
    run = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "kept")])
    assert run.exit_code == 2 and (tmp_path / "kept").is_dir()
    (tmp_path / "kept" / "mine.txt").write_text("mine")  # reached through a folder that did not exist (emptied, before)
    run = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "missing" / ".." / "kept")])
    assert run.exit_code == 2 and (tmp_path / "kept" / "mine.txt").read_text() == "mine"
    assert not (tmp_path / "missing").exists()
    (tmp_path / "runs" / "run7").mkdir(parents=True)
    (tmp_path / "mygen").symlink_to(tmp_path / "runs" / "run7")  # a link as --out: the model is named by it
    run = CliRunner().invoke(app, [*base, "--target-psnr", "12", "--out", str(tmp_path / "mygen")])
    assert run.exit_code == 0, run.output
    assert json.loads((tmp_path / "runs" / "run7" / "config.json").read_text())["name"] == "mygen"


def test_a_new_samples_folder_named_with_a_number_after_a_dot_is_taken(tmp_path):
    """Found by review: every new --out with a suffix was refused as a misspelt file, so a folder named
    by a date or a version (runs/2026.12.02, samples-v1.2), taken before, was refused."""
    from adatok.generate.report import check_samples_folder, write_samples

    for name in ("2026.12.02", "samples-v1.2"):
        check_samples_folder(tmp_path / name)
    for name in ("s.atk", "grid.pgn", "samples.npz"):
        with pytest.raises(adatok.AdatokError, match="names a"):
            check_samples_folder(tmp_path / name)
    image = np.tile(np.arange(28, dtype=np.uint8)[:, None, None] * 9, (1, 28, 1))
    seq = adatok.load("wavelet").encode([image], Tokens(50))[0]
    write_samples(tmp_path / "2026.12.02", [seq], [image], [0])
    assert (tmp_path / "2026.12.02" / "samples.npz").is_file()


# --- found by an outside user's review (2026-12-03): outputs, --force, lengths, class names, seeds ----------


def _generate(*args: str):
    from typer.testing import CliRunner

    from adatok.cli import app

    return CliRunner().invoke(app, ["generate", *map(str, args)])


@pytest.fixture
def no_sampling(monkeypatch):
    """Sampling (and completing) fails the test: what is refused is refused before it."""
    from adatok.generate import sample as sample_module

    def sampled(*args, **kwargs):
        raise AssertionError("sampled before the output was checked")

    monkeypatch.setattr(sample_module, "sample", sampled)
    monkeypatch.setattr(sample_module, "complete", sampled)


def test_a_grid_replaces_a_file_or_link_of_its_name_only_with_force(trained, tmp_path, no_sampling):
    """--out photo.png silently replaced a file of that name, and wrote through a link to where it
    led; a dangling link was a raw traceback after sampling. Now a file or any link of that name is
    refused before sampling, and --force replaces it, the link itself and never its target."""
    kind, _, folder = trained
    if kind != "learned":
        pytest.skip("one language is enough")
    photo, target, link, dangling = (tmp_path / n for n in ("photo.png", "target.txt", "link.png", "dangling.png"))
    photo.write_bytes(b"mine")
    target.write_text("the link's target")
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "missing" / "x.png")
    for out, says in ((photo, "photo.png exists: give --force"), (link, "link.png is a symbolic link (to "),
                      (dangling, "dangling.png is a symbolic link (to ")):
        run = _generate("--model", folder, "-n", "2", "--max-tokens", "5", "--out", out, "-q")
        assert run.exit_code == 2 and says in run.stderr and "--force" in run.stderr, run.output
    assert photo.read_bytes() == b"mine" and link.is_symlink() and dangling.is_symlink()


def test_force_replaces_a_grid_and_links_of_its_name_not_their_targets(trained, tmp_path):
    kind, _, folder = trained
    if kind != "learned":
        pytest.skip("one language is enough")
    photo, target, link, dangling = (tmp_path / n for n in ("photo.png", "target.txt", "link.png", "dangling.png"))
    photo.write_bytes(b"mine")
    photo.chmod(0o640)
    target.write_text("the link's target")
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "missing" / "x.png")
    for out in (photo, link, dangling):
        run = _generate("--model", folder, "-n", "2", "--max-tokens", "5", "--out", out, "-q", "--force")
        assert run.exit_code == 0, run.output
        assert not out.is_symlink() and adatok.read_image(out).shape[0] > 28
    assert target.read_text() == "the link's target" and not (tmp_path / "missing").exists()
    assert photo.stat().st_mode & 0o777 == 0o640  # (a file replaced keeps its permissions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.png", "link.png", "photo.png", "target.txt"]


def test_every_output_is_checked_before_sampling_and_says_what_is_wrong(trained, tmp_path, no_sampling):
    """A dangling link as the samples folder was a raw FileExistsError after sampling; a grid whose
    folder is a file was "the folder ... does not exist"."""
    kind, _, folder = trained
    if kind != "learned":
        pytest.skip("one language is enough")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for out, says in (("gone", "gone is a symbolic link to"), ("missing/x.png", "the folder"),
                      ("notes.txt/x.png", "notes.txt is a file, not a folder"),
                      ("notes.txt/sub/x.png", "notes.txt is a file, not a folder"),
                      ("notes.txt/samples", "notes.txt is a file, not a folder")):
        run = _generate("--model", folder, "-n", "2", "--out", tmp_path / out, "-q", "--force")
        assert run.exit_code == 2 and says in run.stderr, (out, run.output)
        assert "Traceback" not in run.output
    run = _generate("--model", folder, "--out", tmp_path / "missing" / "x.png")
    assert f"the folder {tmp_path / 'missing'} does not exist" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone", "notes.txt"]


def test_force_removes_only_the_samples_an_earlier_run_wrote(tmp_path):
    """--force removed any name of 4 digits or more (20240101.png, a photo of the user's): now only the
    numbered samples the earlier run wrote (up to its samples.npz's count, or while the numbers go on from
    0000), samples.npz and plain.png."""
    from adatok.generate.report import earlier_samples, write_samples

    out = tmp_path / "samples"
    images = [np.full((4, 4, 1), 10 * i, np.uint8) for i in range(12)]
    write_samples(out, [None] * 12, images, list(range(12)))
    (out / "0005.png").unlink()  # (a sample the user removed: the later ones are the earlier run's still)
    mine = ["20240101.png", "007.png", "00012.png", "0012.png", "12345.atk", "notes.txt"]
    for name in mine:
        (out / name).write_bytes(b"mine")
    assert {p.name for p in earlier_samples(out)} == {f"{i:04d}.png" for i in range(12) if i != 5} | {"samples.npz"}
    write_samples(out, [None] * 3, images[:3], [0, 1, 2], replace=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(["0000.png", "0001.png", "0002.png", "samples.npz", *mine])
    assert all((out / name).read_bytes() == b"mine" for name in mine)
    (out / "samples.npz").unlink()  # without it: the numbers from 0000 on, without a gap
    assert {p.name for p in earlier_samples(out)} == {"0000.png", "0001.png", "0002.png"}
    (out / "0003.png").write_bytes(b"mine")
    assert {p.name for p in earlier_samples(out)} == {"0000.png", "0001.png", "0002.png", "0003.png"}


def test_force_on_a_folder_of_samples_from_the_command_line(trained, tmp_path):
    kind, _, folder = trained
    if kind != "wavelet":
        pytest.skip("one token language is enough")
    out = tmp_path / "samples"
    run = _generate("--model", folder, "-n", "3", "--max-tokens", "8", "--out", out, "-q")
    assert run.exit_code == 0, run.output
    for name in ("20240101.png", "notes.txt"):
        (out / name).write_bytes(b"mine")
    run = _generate("--model", folder, "-n", "2", "--max-tokens", "8", "--out", out, "-q", "--force")
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in out.iterdir()) == ["0000.atk", "0000.png", "0001.atk", "0001.png", "20240101.png",
                                                     "notes.txt", "samples.npz"]


def test_lengths_past_an_index_models_positions_are_refused_naming_the_option(tmp_path):
    """A --position index model asked for more tokens than it has positions ended in a raw IndexError
    (once a sample got that far)."""
    from adatok.generate.sample import check_lengths

    lang = LANGS["wavelet"]()
    train_generator(tmp_path / "g", lang, model_config_for(lang, 16, 1, 1, 2048, position="index"),
                    GenTrainConfig(steps=1, limit=6, val_images=2, batch=2, eval_every=1e9), log=lambda *a: None)
    gen = load_generator(tmp_path / "g")
    check_lengths(gen, 2048, 2048)  # the last step it has a position for
    for option in ("max_tokens", "min_tokens"):
        with pytest.raises(adatok.AdatokError, match=rf"^{option} 2049 is past .* up to 2048; give {option} 2048"):
            sample(gen, [0], **{option: 2049})
        flag = "--" + option.replace("_", "-")
        run = _generate("--model", tmp_path / "g", flag, "2049", "--out", tmp_path / "x.png")
        assert run.exit_code == 2 and f"{flag} 2049 is past" in run.stderr and "2048" in run.stderr, run.output
        assert "_tokens" not in run.stderr
    assert not (tmp_path / "x.png").exists()


def test_class_numbers_and_names_agree_in_python_and_on_the_command_line(trained, tmp_path):
    """Class folders named 1, 2, ...: --class 1 drew the folder 1 (number 0), Generator.class_number(1)
    gave 0 while sample(gen, [1]) drew number 1, and --class 0 drew the folder 1 too. Now a whole
    number is a class's number and a string a name only, where names are numbers."""
    import json
    import shutil

    kind, gen, folder = trained
    if kind != "learned":
        pytest.skip("one language is enough")
    names = sorted(str(i) for i in range(1, 11))  # 1, 10, 2, ..., 9: as folders are numbered
    numbered = dataclasses.replace(gen, config={**gen.config, "class_names": names})
    assert [numbered.class_number(c) for c in ("1", "10", "2", 1, np.int64(3))] == [0, 1, 2, 1, 3]
    for bad in ("0", "11", " 1", True, 10):
        with pytest.raises(adatok.AdatokError, match="a class of"):
            numbered.class_number(bad)
    fashion = dataclasses.replace(gen, config={**gen.config, "class_names": None})
    assert [fashion.class_number(c) for c in ("Sneaker", "7", 7)] == [7, 7, 7]  # (names no numbers: both)
    model = shutil.copytree(folder, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "class_names": names}))
    run = _generate("--model", model, "--class", "1", "-n", "2", "--max-tokens", "6", "--out", tmp_path / "one")
    assert run.exit_code == 0 and "of class 0 (1)" in run.stdout, run.output
    with np.load(tmp_path / "one" / "samples.npz") as z:
        assert z["labels"].tolist() == [0, 0]
        assert all(np.array_equal(a, b) for a, b in zip(z["images"], sample(gen, [0, 0], cfg=2.0, max_tokens=6)[1]))
    run = _generate("--model", model, "--class", "0", "--out", tmp_path / "zero.png")
    assert run.exit_code == 2 and "names are numbers" in run.stderr and "'10'" in run.stderr, run.output


def test_a_sample_depends_on_the_seed_and_its_index_alone(trained):
    """The same --seed gave other samples when -n or the batch changed: one generator served a batch,
    and a sample's draws depended on the rows beside it (and on when they ended)."""
    kind, gen, _ = trained
    ids = (lambda s: np.asarray(s)) if kind == "pixels" else (lambda s: s.ids)
    cap = {"max_tokens": 20}
    some = sample(gen, [3, 1, 4, 1, 5], seed=7, batch=2, **cap)[0]
    more = sample(gen, [3, 1, 4, 1, 5, 9, 2, 6], seed=7, batch=64, **cap)[0]
    assert all(np.array_equal(ids(a), ids(b)) for a, b in zip(some, more[:5], strict=False))
    beside = sample(gen, [3, 0], seed=7, batch=64, **cap)[0]  # another row beside the first: the same first
    assert np.array_equal(ids(beside[0]), ids(some[0]))
    assert not all(np.array_equal(ids(a), ids(b)) for a, b in zip(some, sample(gen, [3, 1, 4, 1, 5], seed=8, **cap)[0]))
    if kind == "pixels":
        return
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    full = gen.lang.tok.encode([img])[0]
    cut = full.prefix(len(full) // 2)
    three = complete(gen, cut, 3, seed=2, batch=1, max_tokens=len(cut) + 40)[0]
    five = complete(gen, cut, 5, seed=2, batch=64, max_tokens=len(cut) + 40)[0]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(three, five[:3], strict=True))


def test_completion_messages_name_the_file_and_the_option_and_give_command_line_advice(trained, tmp_path):
    """--complete x.png said "not an adatok container" naming no file; a file coded with a region
    advised Python's tok.encode(..., fixed_header=True); a --max-tokens that left no room said
    max_tokens; a completion's labels in samples.npz were undocumented (-1)."""
    kind, gen, folder = trained
    if kind != "wavelet":
        pytest.skip("a wavelet generator's files")
    tok = gen.lang.tok
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    adatok.write_image(tmp_path / "x.png", img)
    roi = np.zeros((28, 28))
    roi[4:12, 4:12] = 1
    (tmp_path / "roi.atk").write_bytes(tok.encode([img], Tokens(40), roi=[roi])[0].to_bytes())
    (tmp_path / "cut.atk").write_bytes(tok.encode([img], fixed_header=True)[0].prefix(30).to_bytes())
    for file, extra, says in (("x.png", [], "--complete"), ("roi.atk", [], "region of interest"),
                              ("cut.atk", ["--max-tokens", "10"], "--max-tokens is 10")):
        run = _generate("--model", folder, "--complete", tmp_path / file, *extra, "--out", tmp_path / "c.png")
        assert run.exit_code == 2 and says in run.stderr, run.output
        assert (file in run.stderr or "--max-tokens" in run.stderr) and "tok.encode" not in run.stderr
        assert "fixed_header" not in run.stderr and "max_tokens" not in run.stderr
    for extra, labels in (([], [-1, -1]), (["--class", "3"], [3, 3])):
        out = tmp_path / f"done{len(extra)}"
        run = _generate("--model", folder, "--complete", tmp_path / "cut.atk", "-n", "2", "--max-tokens", "40", *extra,
                        "--out", out, "-q")
        assert run.exit_code == 0, run.output
        with np.load(out / "samples.npz") as z:
            assert z["labels"].tolist() == labels


def test_starting_over_removes_the_replaced_checkpoints_model_card(tmp_path):
    """train-generator --force left the earlier checkpoint's README.md (a shipped model's card, in a
    copy of its folder) describing a model no longer there; a README in a folder of no checkpoint stays."""
    lang = LANGS["learned"]()
    cfg = model_config_for(lang, 16, 1, 1, 64)
    tc = GenTrainConfig(steps=1, limit=8, val_images=4, batch=4, eval_every=1e9, warmup=1)
    for folder in ("g", "fresh"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text("# a card")
    train_generator(tmp_path / "fresh", lang, cfg, tc, log=lambda *a: None)
    assert (tmp_path / "fresh" / "README.md").read_text() == "# a card"  # (no checkpoint it described)
    train_generator(tmp_path / "g", lang, cfg, tc, log=lambda *a: None)
    train_generator(tmp_path / "g", lang, cfg, dataclasses.replace(tc, steps=2), log=lambda *a: None, force=True)
    assert not (tmp_path / "g" / "README.md").exists() and load_generator(tmp_path / "g").config["step"] == 2


def test_an_interrupted_training_run_keeps_its_steps(tmp_path, monkeypatch, capsys):
    """Ctrl-C before the first 5-minute checkpoint threw every step away. Now the run saves the steps
    it trained, then stops, and a resumed run goes on as the run not stopped did."""
    from adatok.generate import train as train_module
    from adatok.neural.folder import load_weights as load

    lang = LANGS["learned"]()
    cfg = model_config_for(lang, 16, 1, 1, 64)
    tc = GenTrainConfig(steps=4, limit=16, val_images=4, batch=4, eval_every=1e9, warmup=1, lr=1e-2)
    train_generator(tmp_path / "whole", lang, cfg, tc, log=lambda *a: None)
    real, calls = train_module.losses, []

    def interrupted_at_the_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "losses", interrupted_at_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        train_generator(tmp_path / "stopped", lang, cfg, tc, log=lambda *a: None)
    assert "interrupted at step 2" in capsys.readouterr().err
    config = load_generator(tmp_path / "stopped").config
    assert config["step"] == 2 and config["final"] is False
    monkeypatch.setattr(train_module, "losses", real)
    train_generator(tmp_path / "stopped", resume=True, log=lambda *a: None)
    a, b = (load(tmp_path / f, GPT(cfg)).state_dict() for f in ("whole", "stopped"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("where", ["after the step's draws", "inside the update"])
def test_a_signal_inside_a_step_resumes_to_the_weights_of_a_run_never_stopped(tmp_path, monkeypatch, where,
                                                                                sigint_at_call):
    """Ctrl-C (a real SIGINT) landing inside a step: after it drew from the run's random generator, the
    draws were saved as used; inside the optimizer's update, the weights were saved updated with the step
    not counted, so the resumed run applied it twice. Either way it ended with other weights than the run
    never stopped (an outside-user review: 2 of 8 real interrupts). The update and the count now move
    together (signals held over them) and a step cut before its update is drawn again."""
    from adatok.generate import train as train_module
    from adatok.neural.folder import load_weights as load


    lang = LANGS["learned"]()
    cfg = model_config_for(lang, 16, 1, 1, 64)
    tc = GenTrainConfig(steps=4, limit=16, val_images=4, batch=4, eval_every=1e9, warmup=1, lr=1e-2, p_uncond=1.0)
    train_generator(tmp_path / "whole", lang, cfg, tc, log=lambda *a: None)
    if where == "after the step's draws":
        sigint_at_call(train_module, "losses", 3)
    else:
        sigint_at_call(torch.optim.AdamW, "step", 3)
    with pytest.raises(KeyboardInterrupt):
        train_generator(tmp_path / "stopped", lang, cfg, tc, log=lambda *a: None)
    monkeypatch.undo()
    train_generator(tmp_path / "stopped", resume=True, log=lambda *a: None)
    a, b = (load(tmp_path / f, GPT(cfg)).state_dict() for f in ("whole", "stopped"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_completion_of_another_tokenizers_prefix_says_to_choose_a_generator(trained):
    """complete() of a prefix of another tokenizer said "decode it with adatok.load(...)" (the
    stepper's advice), not which generator to take (as the command line said)."""
    kind, gen, _ = trained
    if kind != "wavelet":
        pytest.skip("a wavelet generator")
    img = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    other = adatok.load("wavelet-lossless").encode([img], fixed_header=True)[0].prefix(5)
    with pytest.raises(adatok.AdatokError, match="'wavelet-lossless'.*choose a generator of that tokenizer"):
        complete(gen, other, n=1)


def test_a_minimum_past_the_models_longest_is_refused_unless_a_maximum_allows_it(trained):
    """min_tokens above the longest a model samples to (its longest training sequence, when no
    max_tokens is given) was silently without effect: every sample stopped at the cap."""
    kind, gen, _ = trained
    if kind == "pixels":
        pytest.skip("the pixel baseline has one length")
    longest = gen.config["longest"]
    with pytest.raises(adatok.AdatokError, match="min_tokens .* is past .*longest"):
        sample(gen, [0], seed=1, min_tokens=longest + 1)
    seqs, _ = sample(gen, [0], seed=1, min_tokens=longest + 1, max_tokens=longest + 1)  # allowed: a maximum says so
    assert len(seqs) == 1


def test_samples_into_a_folder_that_cannot_be_made_are_one_error(trained):
    """A folder the checks could not foresee failing (/proc/x as root: os.access says yes) ended in a
    FileNotFoundError traceback after the sampling."""
    from adatok.generate.report import write_samples

    kind, gen, _ = trained
    seqs, images = sample(gen, [0], seed=1, max_tokens=None if kind == "pixels" else 20)
    with pytest.raises(adatok.AdatokError, match="/proc/adatok-"):
        write_samples(Path("/proc/adatok-samples-test"), seqs, images, [0])
