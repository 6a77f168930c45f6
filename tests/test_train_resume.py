"""Resuming and checking training runs (the learned tokenizer's and the generator's): the data a
run began on, its checkpoint's files, the settings it takes (found by review, 2026-11-30)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

import torch  # noqa: E402
from adatok import AdatokError  # noqa: E402
from adatok.generate import train as G  # noqa: E402
from adatok.generate.languages import PixelLanguage  # noqa: E402
from adatok.neural.model import ModelConfig  # noqa: E402
from adatok.neural.trainer import TrainConfig, train  # noqa: E402

TINY = ModelConfig(image_size=28, channels=1, patch=7, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                   levels=[4, 4], vq_first=False)


def _folder(root, n=20, start=0, side=28):
    rng = np.random.default_rng(start)
    for c in ("x", "y"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n // 2):
            Image.fromarray(rng.integers(0, 256, (side, side), np.uint8)).save(root / c / f"{i:02}.png")
    return root


def _tokenizer(tmp_path, data, steps=4, **kw):
    return train(tmp_path / "tok", TINY, TrainConfig(data=data, steps=steps, batch=4, eval_every=2, ssim_weight=0,
                                                     **kw), quiet=True, stop_after=2)


def _generator(tmp_path, data, steps=1):
    lang = PixelLanguage((8, 8, 1))
    cfg = dataclasses.replace(G.model_config_for(lang, 16, 1, 1, 65), classes=2)
    G.train_generator(tmp_path / "gen", lang, cfg, G.GenTrainConfig(steps=steps, batch=2, val_images=2, eval_every=1e9,
                                                                     data=data), log=lambda *a: None)


def test_a_resume_from_another_directory_reads_the_folder_the_run_began_on(tmp_path, monkeypatch):
    """--data imgs was kept as typed: a resume from another directory read that directory's imgs."""
    for where in ("A", "B"):
        _folder(tmp_path / where / "imgs", 20 if where == "A" else 30, start=0 if where == "A" else 50)
    monkeypatch.chdir(tmp_path / "A")
    _tokenizer(tmp_path, "imgs")
    _generator(tmp_path, "imgs")
    want = str((tmp_path / "A" / "imgs").resolve())
    for run in ("tok", "gen"):
        assert json.loads((tmp_path / run / "config.json").read_text())["train"]["data"] == want
    monkeypatch.chdir(tmp_path / "B")
    train(tmp_path / "tok", resume=True, quiet=True)
    G.train_generator(tmp_path / "gen", resume=True, overrides={"steps": 2}, log=lambda *a: None)
    key = json.loads(G.Corpus.load_key(tmp_path / "gen" / "corpus-train.npz"))
    assert key["data"] == want


def test_a_data_folder_changed_since_the_run_began_is_refused_on_resume(tmp_path):
    """Files added before a resume moved images trained on into the held-out part, silently."""
    imgs = _folder(tmp_path / "imgs")
    _tokenizer(tmp_path, str(imgs))
    _generator(tmp_path, str(imgs))
    _folder(imgs, 6, start=40)
    with pytest.raises(AdatokError, match="files have changed"):
        train(tmp_path / "tok", resume=True, quiet=True)
    with pytest.raises(AdatokError, match="files have changed"):
        G.train_generator(tmp_path / "gen", resume=True, overrides={"steps": 2}, log=lambda *a: None)


def test_an_out_folder_inside_the_data_folder_is_refused_before_any_work(tmp_path):
    imgs = _folder(tmp_path / "imgs")
    with pytest.raises(AdatokError, match="inside --data"):
        G.train_generator(imgs / "gen", PixelLanguage((8, 8, 1)), G.model_config_for(PixelLanguage((8, 8, 1)), 16, 1, 1, 65),
                          G.GenTrainConfig(steps=1, data=str(imgs)), log=lambda *a: None)
    assert not (imgs / "gen").exists()


def test_a_save_interrupted_between_its_renames_is_refused(tmp_path, monkeypatch):
    """Renamed one at a time, an interrupt between two renames left step-4 weights beside the
    step-2 config and training state: it resumed without a word."""
    import os

    import adatok
    from adatok.core import imageio as F

    imgs = _folder(tmp_path / "imgs")
    _tokenizer(tmp_path, str(imgs))
    real = os.replace
    calls = []

    def interrupted(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(F.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "tok", resume=True, quiet=True)
    monkeypatch.setattr(F.os, "replace", real)
    adatok.load(tmp_path / "tok")  # (its weights are whole: a model alone loads)
    with pytest.raises(AdatokError, match="interrupted"):
        train(tmp_path / "tok", resume=True, quiet=True)


def test_resumed_tokenizer_takes_its_threads_and_configs_are_checked(tmp_path, monkeypatch):
    """--threads given to a resume was ignored (set before the checkpoint was read); eval_every 0 was
    a division by zero after a step, steps 0 a run that wrote nothing, batch 2.5 a raw TypeError."""
    import torch

    imgs = _folder(tmp_path / "imgs")
    _tokenizer(tmp_path, str(imgs), threads=1)
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n))
    train(tmp_path / "tok", resume=True, overrides={"threads": 2}, quiet=True)
    assert seen and seen[-1] == 2
    for bad in ({"eval_every": 0}, {"steps": 0}, {"batch": 0}, {"batch": 2.5}, {"weight_decay": -1},
                {"threads": 0}, {"crop": 0}):
        with pytest.raises(AdatokError):
            TrainConfig(**bad)


def test_generator_resume_checks(tmp_path):
    """A resume to steps already trained trained nothing and rewrote config.json; a damaged config
    (no step, an unknown setting, history null) gave raw KeyError / TypeError."""
    imgs = _folder(tmp_path / "imgs", side=8)
    _generator(tmp_path, str(imgs), steps=2)
    before = (tmp_path / "gen" / "config.json").read_text()
    with pytest.raises(AdatokError, match="already"):
        G.train_generator(tmp_path / "gen", resume=True, overrides={"steps": 2}, log=lambda *a: None)
    assert (tmp_path / "gen" / "config.json").read_text() == before
    config = json.loads(before)
    for change in ({"step": None}, {"history": None}, {"train": {**config["train"], "new_setting": 1}}):
        broken = {**config, **change}
        if change.get("step", 1) is None:
            del broken["step"]
        (tmp_path / "gen" / "config.json").write_text(json.dumps(broken))
        with pytest.raises(AdatokError, match="cannot be resumed"):
            G.train_generator(tmp_path / "gen", resume=True, overrides={"steps": 3}, log=lambda *a: None)


def test_validation_sequences_longer_than_the_model_are_refused_before_training(tmp_path):
    """Only the training sequences were checked against max_len: a longer validation sequence was a
    raw IndexError at the first validation, after training."""
    from adatok import Quality
    from adatok.generate.languages import WaveletLanguage

    lang = WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=16))
    longest = int(G.corpus_for(lang, "train", 4, None).lengths.max())
    cfg = G.model_config_for(lang, 16, 1, 1, longest + 1, position="index")
    with pytest.raises(AdatokError, match="the model takes at most"):
        G.train_generator(tmp_path / "g", lang, cfg, G.GenTrainConfig(steps=2, limit=4, val_images=40, batch=2,
                                                                       eval_every=1e9), log=lambda *a: None)


def test_the_cli_resume_takes_the_checkpoints_own_image_size_and_a_relative_data_path(tmp_path, monkeypatch):
    """--image-size repeated on a resume was refused as "for --data FOLDER of images" (the kind was
    read from --data's default); --data repeated as typed must match the folder kept by its path."""
    from typer.testing import CliRunner

    from adatok.cli import app

    _folder(tmp_path / "imgs", side=12)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["train-generator", "--out", "g", "--language", "pixels", "--data", "imgs",
                                 "--image-size", "8", "--dim", "16", "--layers", "1", "--heads", "1", "--batch", "2",
                                 "--val-images", "2", "--steps", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train-generator", "--out", "g", "--resume", "--steps", "2", "--image-size", "8",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train-generator", "--out", "g", "--resume", "--steps", "3", "--data", "imgs", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train-generator", "--out", "g", "--resume", "--steps", "4", "--image-size", "9",
                                 "--quiet"])
    assert r.exit_code == 2 and "image-size" in r.output


def test_a_resume_is_refused_exactly_when_what_the_reader_takes_changed(tmp_path):
    """tokenize-dataset run again with nothing to do (it rewrites its manifest's last run) refused a
    resume (found by reviewing the change). A file without an image suffix added beside the images
    does refuse it: the reader tries every file as an image (a PNG named im05b was read, and moved
    the held-out split, while the check looked at suffixes only: found by a later review)."""
    from PIL import Image
    from typer.testing import CliRunner

    from adatok.cli import app

    imgs = _folder(tmp_path / "imgs")
    _tokenizer(tmp_path, str(imgs))
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(imgs / "x" / "im05b", format="PNG")
    with pytest.raises(AdatokError, match="changed"):
        train(tmp_path / "tok", resume=True, quiet=True)
    shards = tmp_path / "shards"
    tokenize = ["tokenize-dataset", str(imgs), str(shards), "--lossless", "--workers", "0", "--quiet"]
    assert CliRunner().invoke(app, tokenize).exit_code == 0
    train(tmp_path / "tok2", TINY, TrainConfig(data=str(shards), steps=4, batch=4, eval_every=2, ssim_weight=0),
          quiet=True, stop_after=2)
    assert CliRunner().invoke(app, tokenize).exit_code == 0  # nothing to do: the manifest is written again
    train(tmp_path / "tok2", resume=True, quiet=True)
    from adatok.datasets import read_tokens

    rows = len(list(read_tokens(shards)))
    (shards / "parquet" / "part-00000.parquet").unlink()  # lost in a copy: it was left out silently
    with pytest.raises(AdatokError, match="lacks 1 of its"):
        list(read_tokens(shards))
    assert rows == 21


def test_adatok_train_keeps_its_data_and_refuses_a_changed_folder(tmp_path, monkeypatch):
    """The command line read the images itself and passed them in: the data checks never ran for it
    (found by reviewing the change)."""
    from typer.testing import CliRunner

    from adatok.cli import app

    imgs = _folder(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", "imgs", "--tokens", "2", "--dim", "16", "--depth", "1", "--patch", "7", "--levels",
            "4,4", "--no-vq-first", "--ssim-weight", "0", "--batch", "4", "--eval-every", "2", "--steps", "2",
            "--quiet"]
    r = CliRunner().invoke(app, [*args, "--out", "run"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["data"] == str(imgs.resolve())
    _folder(imgs, 4, start=60)
    r = CliRunner().invoke(app, ["train", "--out", "run", "--resume", "--steps", "4", "--quiet"])
    assert r.exit_code == 2 and "changed" in r.output


def test_a_tokenizer_checkpoint_inside_its_image_folder_resumes(tmp_path):
    """Its own files changed the folder's digest at every save, so such a run could never resume
    (found by reviewing the change that digests every file)."""
    imgs = _folder(tmp_path / "imgs")
    train(imgs / "ckpt", TINY, TrainConfig(data=str(imgs), steps=4, batch=4, eval_every=2, ssim_weight=0), quiet=True,
          stop_after=2)
    train(imgs / "ckpt", resume=True, quiet=True)


def test_a_save_sweeps_the_temporary_files_of_a_save_killed_outright(tmp_path):
    """Found by review: with a new temporary file per write, a save killed by SIGKILL (no clean-up ran)
    left `.model.safetensors.XXXXXXXX.tmp`, a weights-sized hidden file, and the next save no longer
    removed it (the old fixed NAME.tmp it did): they piled up. Saves now hold the folder's lock, and
    under it remove their own files' stale temporary files, nothing else."""
    import torch

    from adatok.neural.folder import write_folder

    stale = [".model.safetensors.deadbeef.tmp", ".config.json.0123abcd.tmp", ".train_state.safetensors.00ff00ff.tmp"]
    kept = [".model.safetensors.notmine.tmp", ".photo.png.deadbeef.tmp", "notes.txt"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    model = torch.nn.Linear(2, 2)
    write_folder(tmp_path, model, {"family": "test"}, torch.optim.Adam(model.parameters()))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        kept + ["config.json", "model.safetensors", "train_state.safetensors"])


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _cli(*args):
    from typer.testing import CliRunner

    from adatok.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _refused(r, message):
    """One error line, exit code 2, saying ``message``."""
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.output
    assert message in r.stderr and "Traceback" not in r.output, r.stderr


def test_force_and_resume_never_take_a_folder_holding_no_checkpoint_of_the_run(tmp_path):
    """Found by an outside user: ``adatok train --force`` replaced a config.json and model.safetensors
    of the user's own (and a generator copied from the package, leaving its model card and token cache
    beside tokenizer weights), after the refusal without it had called them "a checkpoint"; --resume
    with any option was a raw KeyError, or named the generator's batch as the checkpoint's. Such
    folders are refused under what they are, with --force and --resume as without."""
    import shutil

    from adatok.neural import CHECKPOINT_DIR

    imgs = _folder(tmp_path / "imgs")
    for name, files in {"mine": {"config.json": '{"my": "settings"}\n', "model.safetensors": "precious"},
                        "notjson": {"config.json": "{not json", "model.safetensors": "precious"},
                        "weights": {"model.safetensors": "precious"}}.items():
        (tmp_path / name).mkdir()
        for f, text in files.items():
            (tmp_path / name / f).write_text(text)
    shutil.copytree(CHECKPOINT_DIR / "fmnist-gpt-learned", tmp_path / "gen")
    (tmp_path / "gen" / "corpus-train.npz").write_bytes(b"its token cache")
    said = {"mine": "mine holds a config.json that is not an adatok checkpoint (it names no family): give another --out",
            "notjson": "holds a config.json that is not an adatok checkpoint (it is not JSON): give another --out",
            "weights": "holds a model.safetensors without a config.json, which is not an adatok checkpoint",
            "gen": "gen holds a generator's checkpoint, and this run trains a learned tokenizer: give another --out"}
    new = ["--data", imgs, "--tokens", "2", "--dim", "16", "--depth", "1", "--levels", "4,4", "--no-vq-first",
           "--ssim-weight", "0", "--batch", "4", "--eval-every", "2", "--steps", "2", "--quiet"]
    for name, message in said.items():
        out = tmp_path / name
        before = _files(out)
        for args in ([*new, "--force"], new, ["--resume"], ["--resume", "--steps", "4", "--batch", "64"],
                     ["--resume", "--data", imgs]):
            _refused(_cli("train", "--out", out, *args), message)
        with pytest.raises(AdatokError, match="give another --out"):
            train(out, TINY, TrainConfig(data=str(imgs), steps=2, batch=4, ssim_weight=0), quiet=True, force=True)
        assert _files(out) == before
    # a learned tokenizer's checkpoint: --force replaces it, and nothing else in the folder
    _tokenizer(tmp_path, str(imgs), steps=2)
    (tmp_path / "tok" / "notes.txt").write_text("mine")
    r = _cli("train", "--out", tmp_path / "tok", *new, "--steps", "1", "--force")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "tok" / "config.json").read_text())["train"]["steps"] == 1
    assert (tmp_path / "tok" / "notes.txt").read_text() == "mine"


def test_the_generator_trainer_never_takes_a_learned_tokenizers_folder(tmp_path):
    """The same protection the other way: ``adatok train-generator --force`` into a copy of a learned
    tokenizer replaced it with a generator, and --resume with an option compared the tokenizer's
    settings (its batch) as a generator's."""
    import shutil

    from adatok.neural import CHECKPOINT_DIR

    out = tmp_path / "tok"
    shutil.copytree(CHECKPOINT_DIR / "fashion-mnist-32", out)
    before = _files(out)
    message = "tok holds a learned tokenizer's checkpoint, and this run trains a generator: give another --out"
    new = ["--language", "pixels", "--dim", "16", "--layers", "1", "--heads", "1", "--limit", "4", "--val-images", "2",
           "--batch", "2", "--steps", "1", "--quiet"]
    for args in ([*new, "--force"], new, ["--resume"], ["--resume", "--batch", "32"], ["--resume", "--steps", "9"]):
        _refused(_cli("train-generator", "--out", out, *args), message)
    lang = PixelLanguage((8, 8, 1))
    with pytest.raises(AdatokError, match=message):
        G.train_generator(out, lang, G.model_config_for(lang, 16, 1, 1, 65), G.GenTrainConfig(steps=1), force=True,
                          log=lambda *a: None)
    assert _files(out) == before


def test_resume_messages_say_what_is_wrong_in_command_line_terms(tmp_path):
    """``--resume --steps 10`` at step 30 said "has trained its 10 steps already (step 30)", and the
    messages quoted Python arguments to command-line users ("overrides={'steps': N}", "(resume=True)");
    a checkpoint's config.json without a setting an option is compared with was a raw KeyError."""
    imgs = _folder(tmp_path / "imgs")
    _tokenizer(tmp_path, str(imgs), steps=4)  # (stopped after 2 of 4 steps)
    out = tmp_path / "tok"
    r = _cli("train", "--out", out, "--resume", "--steps", "1", "--quiet")
    _refused(r, "tok has trained 2 steps already, past --steps 1: give a larger --steps to train on")
    r = _cli("train", "--out", out, "--resume", "--steps", "2", "--quiet")
    _refused(r, "tok has trained its 2 steps already: give a larger --steps to train on")
    r = _cli("train", "--out", out, "--data", imgs, "--steps", "4", "--quiet")
    _refused(r, "tok holds a checkpoint already (a learned tokenizer's): continue it with --resume, start over and "
                "replace it with --force, or give another --out")
    r = _cli("train", "--out", out, "--resume", "--force", "--quiet")
    _refused(r, "--resume continues the checkpoint in --out, --force starts over and replaces it: give one, not both")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "train"}))
    _refused(_cli("train", "--out", out, "--resume", "--batch", "4"),
             "config.json cannot be resumed: it does not say its --batch (KeyError 'train')")


def _no_data_read(monkeypatch):
    """Fail the test if a run reads its data (the refusals below come before any work)."""
    from adatok.neural import trainer

    def read(*a, **kw):
        raise AssertionError("the run read its data before refusing")

    monkeypatch.setattr(trainer, "load_images", read)


def test_an_out_that_cannot_be_made_is_refused_before_any_training(tmp_path, monkeypatch):
    """Found by an outside user: ``adatok train --out fm0.png/sub`` trained in full, then failed at its
    first save with a raw NotADirectoryError (a link to nothing: a raw FileExistsError). Such an --out
    is refused before the data is read, and nothing is made."""
    import os

    imgs = _folder(tmp_path / "imgs")
    (tmp_path / "fm0.png").write_bytes(b"mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    _no_data_read(monkeypatch)
    new = ["--data", imgs, "--tokens", "2", "--dim", "16", "--depth", "1", "--levels", "4,4", "--no-vq-first",
           "--ssim-weight", "0", "--batch", "4", "--eval-every", "2", "--steps", "2", "--quiet"]
    said = {"fm0.png/sub": "fm0.png/sub: {root}/fm0.png is a file, not a folder; give another --out",
            "fm0.png/a/b": "fm0.png/a/b: {root}/fm0.png is a file, not a folder",
            "dangling": "dangling: {root}/dangling is a link to {root}/nowhere, which does not exist",
            "dangling/run": "dangling/run: {root}/dangling is a link to {root}/nowhere, which does not exist"}
    for out, message in said.items():
        _refused(_cli("train", "--out", tmp_path / out, *new), f"cannot make the folder {tmp_path}/"
                 + message.format(root=tmp_path))
        with pytest.raises(AdatokError, match="cannot make the folder"):
            train(tmp_path / out, TINY, TrainConfig(data=str(imgs), steps=2, batch=4, ssim_weight=0), quiet=True)
    assert (tmp_path / "fm0.png").read_bytes() == b"mine" and not (tmp_path / "nowhere").exists()
    # a folder the user may not write (os.access, as root writes anywhere): the parent of a new --out, or --out
    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: real(p, mode, **kw) and not (
        Path(p) == tmp_path / "ro" and mode & os.W_OK))
    _refused(_cli("train", "--out", tmp_path / "ro" / "run", *new),
             f"cannot make the folder {tmp_path}/ro/run: no permission to make a folder in {tmp_path}/ro")
    _refused(_cli("train", "--out", tmp_path / "ro", *new), f"cannot write into the folder {tmp_path}/ro: permission")
    assert list((tmp_path / "ro").iterdir()) == []


def test_a_name_another_tokenizer_would_read_the_files_of_is_refused(tmp_path, monkeypatch):
    """Found by an outside user: a checkpoint trained with ``--name wavelet`` or ``--name
    fashion-mnist-32`` (other levels) wrote files that every reader took for the registered
    tokenizer's and refused as corrupt (another payload codec). Such names are refused before any
    training; a shipped name with tokens of its bits stays open (the shipped checkpoint's recipe), and
    its files, read without the folder, say to give it."""
    import adatok
    from adatok.core.errors import TokenizerMismatchError

    imgs = _folder(tmp_path / "imgs")
    new = ["--data", imgs, "--tokens", "2", "--dim", "16", "--depth", "1", "--no-vq-first", "--ssim-weight", "0",
           "--batch", "4", "--eval-every", "2", "--steps", "2", "--quiet"]
    with monkeypatch.context() as m:
        from adatok.neural import trainer

        m.setattr(trainer, "_loss", lambda *a: pytest.fail("trained before refusing the name"))
        for name in ("wavelet", "wavelet-lossless"):
            _refused(_cli("train", "--out", tmp_path / name, *new, "--levels", "4,4", "--name", name),
                     f"--name {name} names the built-in tokenizer {name}: an .atk file names the tokenizer that made "
                     f"it, and this checkpoint's files would be read as {name}'s and refused; give another --name")
        _refused(_cli("train", "--out", tmp_path / "fm", *new, "--levels", "4,4", "--name", "fashion-mnist-32"),
                 "--name fashion-mnist-32 names the shipped checkpoint fashion-mnist-32, whose tokens take 11 bits; "
                 "this model's take 4 (16 codes)")
        # the default name, DATA-K, of a folder named so
        _folder(tmp_path / "fashion-mnist", n=4)
        _refused(_cli("train", "--out", tmp_path / "fm", *new[2:], "--data", tmp_path / "fashion-mnist", "--tokens",
                      "32", "--levels", "4,4"),
                 "the name fashion-mnist-32 (DATA-K: no --name was given) names the shipped checkpoint")
        with pytest.raises(AdatokError, match="--name wavelet names the built-in tokenizer"):
            train(tmp_path / "api", TINY, TrainConfig(data=str(imgs), steps=2, batch=4, ssim_weight=0), name="wavelet",
                  quiet=True)
        assert not any((tmp_path / d).exists() for d in ("wavelet", "wavelet-lossless", "fm", "api"))
    # 11-bit tokens (1,920 codes, as the shipped one's): a retrain under the shipped name
    r = _cli("train", "--out", tmp_path / "mine", *new, "--levels", "8,8,6,5", "--name", "fashion-mnist-32")
    assert r.exit_code == 0, r.output
    img = np.random.default_rng(0).integers(0, 256, (28, 28, 1), np.uint8)
    seq, = adatok.load(str(tmp_path / "mine")).encode([img])
    with pytest.raises(TokenizerMismatchError, match=r"other weights: read it with the checkpoint folder that made it "
                                                      r"\(--tokenizer FOLDER on the command line"):
        adatok.load("fashion-mnist-32").decode([seq])
    # a file of other weights whose payload codec differs as well (a checkpoint trained under the
    # shipped name before such names were refused, with other levels): not "corrupt", other weights
    from adatok.core import sequence as sequence_module
    from adatok.core.errors import ContainerError

    other = dataclasses.replace(seq, ids=seq.ids % 16, version="0123456789abcdef")
    data = sequence_module._container(other, "fixed4", bytes(-(-len(other) * 4 // 8)))
    with pytest.raises(TokenizerMismatchError, match=r"made by 'fashion-mnist-32' version 0123456789abcdef, this is "
                                                      r"version .*: other weights: read it with the checkpoint folder"):
        adatok.TokenSequence.from_bytes(data)
    # the loaded version's own codec differing is still a corrupt file
    same = sequence_module._container(seq, "fixed4", bytes(-(-len(seq) * 4 // 8)))
    with pytest.raises(ContainerError, match="the file is corrupt"):
        adatok.TokenSequence.from_bytes(same)


def _nan_from(monkeypatch, step):
    """Make the loss NaN from the ``step``-th step a run takes on (0: its first)."""
    from adatok.neural import trainer

    real, taken = getattr(trainer._loss, "real", trainer._loss), []  # (the trainer's own, when patched already)

    def loss(*a):
        taken.append(1)
        return real(*a) if len(taken) <= step else torch.tensor(float("nan"), requires_grad=True)

    loss.real = real
    monkeypatch.setattr(trainer, "_loss", loss)


def test_a_diverged_run_says_which_checkpoint_its_folder_holds(tmp_path, monkeypatch):
    """Found by an outside user: a run that diverged before its first save said "the checkpoint in X
    is the last one saved" of a checkpoint never saved (and, with --force, of the earlier run's)."""
    imgs = _folder(tmp_path / "imgs")
    out = tmp_path / "tok"

    def run(steps=6, **kw):
        return train(out, TINY, TrainConfig(data=str(imgs), steps=steps, batch=4, eval_every=2, ssim_weight=0),
                     quiet=True, **kw)

    _nan_from(monkeypatch, 0)
    with pytest.raises(AdatokError, match=r"training diverged at step 0: the loss is nan; this run saved no checkpoint "
                                          r"\(its first save was due at step 2\); train again with a lower --lr"):
        run()
    assert not out.exists()
    _nan_from(monkeypatch, 3)
    with pytest.raises(AdatokError, match=f"diverged at step 3: the loss is nan; the checkpoint in {out} is the last "
                                          r"one saved \(step 2\)"):
        run()
    _nan_from(monkeypatch, 0)  # a resume: the checkpoint it resumed from
    with pytest.raises(AdatokError, match=r"diverged at step 2: .*the last one saved \(step 2\)"):
        train(out, resume=True, quiet=True)
    with pytest.raises(AdatokError, match=f"diverged at step 0: the loss is nan; this run saved no checkpoint: {out} "
                                          "holds the earlier run's it was to replace"):
        run(force=True)
    assert json.loads((out / "config.json").read_text())["step"] == 2
