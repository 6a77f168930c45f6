"""Training a learned tokenizer on a folder of your own images of any size (random crops)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("torch")

import adatok  # noqa: E402
from adatok.cli import app  # noqa: E402
from adatok.neural.trainer import Crops, load_images  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i, (h, w, c) in enumerate([(40, 50, 3), (64, 33, 3), (20, 90, 1), (12, 12, 3), (36, 36, 1), (80, 80, 3)]):
        img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        Image.fromarray(img[..., 0] if c == 1 else img).save(tmp_path / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_crops_of_images_of_any_size(folder):
    crops = load_images(str(folder), "train", crop=32)
    assert isinstance(crops, Crops) and crops.channels == 3
    assert crops.skipped == 2  # 20x90 and 12x12 are smaller than 32 on a side
    import torch

    batch = crops.using(torch.Generator().manual_seed(0))[torch.tensor([0, 1, 2, 0])]
    assert batch.shape == (4, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    again = crops.using(torch.Generator().manual_seed(0))[torch.tensor([0, 1, 2, 0])]
    assert torch.equal(batch, again)  # the trainer's generator decides the crops
    held = load_images(str(folder), "test", crop=32)
    assert held.shape == (1, 32, 32, 3) and held.dtype == np.uint8


def test_train_on_a_folder_then_encode(folder, tmp_path):
    out = tmp_path / "tiny"
    result = CliRunner().invoke(app, ["train", "--data", str(folder), "--image-size", "32", "--tokens", "4",
                                      "--steps", "3", "--eval-every", "3", "--dim", "32", "--depth", "1", "--patch", "8",
                                      "--levels", "4,4", "--ssim-weight", "0", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    tok = adatok.load(out)
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    seq, = tok.encode([img])
    assert len(seq) == 4 and tok.decode([seq])[0].shape == (32, 32, 3)


def test_folder_without_crop_needs_one_square_size(folder):
    with pytest.raises(adatok.AdatokError, match="--image-size"):
        load_images(str(folder), "train")
    with pytest.raises(adatok.AdatokError, match="smaller --image-size"):
        load_images(str(folder), "train", crop=500)


# ---- found training on folders of one's own images as an outside user would (2026-12-02) ----


def _png(path, value, side=16, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((side, side, channels), value, np.uint8)
    Image.fromarray(img[..., 0] if channels == 1 else img).save(path)


def test_a_linked_file_or_folder_inside_the_data_is_read_once_by_its_own_name(tmp_path):
    """A link to an image of the folder read it twice (a copy could fall in training and held-out
    alike), and a link to a class folder replaced that folder, its images named (and classed) by the
    link, when the file system happened to list the link first."""
    from adatok.datasets import load
    from adatok.generate.train import folder_classes

    data = tmp_path / "data"
    for i in range(3):
        _png(data / "zebra" / f"{i}.png", i)
        _png(data / "cat" / f"{i}.png", 10 + i)
    (data / "cat" / "dup.png").symlink_to(data / "zebra" / "0.png")
    (data / "aardvark").symlink_to(data / "zebra", target_is_directory=True)  # listed (and walked) first
    (data / "loop").symlink_to(data, target_is_directory=True)
    outside = tmp_path / "elsewhere"
    _png(outside / "far.png", 99)
    (data / "cat" / "far.png").symlink_to(outside / "far.png")  # a link out of the folder: read
    ds = load(data)
    assert ds.ids == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/far.png", "zebra/0.png", "zebra/1.png", "zebra/2.png"]
    assert folder_classes(data) == ["cat", "zebra"]


def _tokenizer_trained_into_its_data(tmp_path):
    """A folder of six images, a learned tokenizer trained one step into it (``--out`` the data folder)."""
    from adatok.neural.model import ModelConfig
    from adatok.neural.trainer import TrainConfig, train

    data = tmp_path / "data"
    for i in range(6):
        _png(data / f"{i}.png", 40 * i)
    cfg = ModelConfig(image_size=16, channels=1, patch=8, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                      levels=[4, 4], vq_first=False)
    train(data, cfg, TrainConfig(data=str(data), steps=4, batch=2, eval_every=1, ssim_weight=0), quiet=True,
          stop_after=1)
    return data


def test_out_the_data_folder_itself_keeps_its_data_checked_on_resume(tmp_path):
    """With --out the data folder, the whole folder was left out of the data's digest (as the run's own
    folder): the digest was of nothing, and a resume went on after images were added or removed."""
    from adatok.neural.trainer import train

    data = _tokenizer_trained_into_its_data(tmp_path)
    train(data, resume=True, quiet=True, stop_after=1)  # its own files, rewritten at every save: no change
    _png(data / "new.png", 7)
    with pytest.raises(adatok.AdatokError, match="changed"):
        train(data, resume=True, quiet=True, stop_after=1)


def test_files_left_out_of_the_training_data_are_told(folder, tmp_path):
    """A folder's unreadable files (a 16-bit PNG, notes) were left out of training without a word."""
    Image.fromarray(np.full((40, 40), 3000, np.uint16)).save(folder / "deep.png")
    out = tmp_path / "tiny"
    result = CliRunner().invoke(app, ["train", "--data", str(folder), "--image-size", "32", "--tokens", "4",
                                      "--steps", "1", "--eval-every", "1", "--dim", "16", "--depth", "1",
                                      "--patch", "8", "--levels", "4,4", "--no-vq-first", "--ssim-weight", "0",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "left out 2 files" in result.stderr and "deep.png (16-bit" in result.stderr
    assert "notes.txt (not an image" in result.stderr
    result = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--steps", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "left out 2 files" in result.stderr


def test_a_generator_refuses_a_class_folder_it_would_never_train_on(tmp_path):
    """A sub-folder of notes only, or of images all under --image-size, was silently class 0 (never
    trained), every real class's number moved up one; a class whose only image fell on the held-out
    20th was never trained either. Left-out files are told."""
    from adatok.generate.train import image_folder

    data = tmp_path / "data"
    for i in range(5):
        _png(data / "cat" / f"{i}.png", i)
        _png(data / "dog" / f"{i}.png", 100 + i)
    _png(data / "dog" / "tiny.png", 0, side=4)
    notes: list = []
    images, labels, classes, left = image_folder(data, (8, 8, 1), notes=notes)
    assert classes == ["cat", "dog"] and left == 1 and notes == [("dog/tiny.png", "4 x 4: smaller than 8 x 8")]
    (data / "about").mkdir()
    (data / "about" / "README.txt").write_text("my pets")
    with pytest.raises(adatok.AdatokError, match="about holds no readable image"):
        image_folder(data, (8, 8, 1), "train")
    (data / "about" / "README.txt").unlink()
    _png(data / "about" / "small.png", 0, side=4)
    with pytest.raises(adatok.AdatokError, match="about holds no readable image of at least 8 x 8"):
        image_folder(data, (8, 8, 1), "train")
    (data / "about" / "small.png").unlink()
    (data / "about").rmdir()
    for i in range(5, 10):
        _png(data / "cat" / f"{i}.png", i)
        _png(data / "dog" / f"{i}.png", 100 + i) if i < 9 else None
    _png(data / "emu" / "0.png", 50)  # the 20th image (the tiny one left out): held out
    with pytest.raises(adatok.AdatokError, match="class emu's only image is held out"):
        image_folder(data, (8, 8, 1), "train")


def test_a_flat_folder_with_a_tokenizer_checkpoint_inside_is_one_class(tmp_path):
    """`adatok train --out FOLDER/tok` may lie inside its data; the generator then refused the folder
    ('images both in itself and in sub-folders'), though no image lies in a sub-folder."""
    from adatok.generate.train import folder_classes, image_folder

    data = tmp_path / "data"
    for i in range(3):
        _png(data / f"{i}.png", i)
    (data / "tok").mkdir()
    (data / "tok" / "config.json").write_text("{}")
    assert folder_classes(data) == ["all"]
    assert image_folder(data, (8, 8, 1))[1].tolist() == [0, 0, 0]
    _png(data / "tok" / "sample.png", 9)
    with pytest.raises(adatok.AdatokError, match="both in itself and in sub-folders"):
        folder_classes(data)


def test_token_shards_of_a_tokenizer_trained_on_since_are_not_called_damaged(tmp_path):
    """Shards written by your checkpoint, which you then trained on: the message said the shard was
    damaged and to run tokenize-dataset again (which would not help), not that the tokenizer changed."""
    import os
    import subprocess
    import sys

    pytest.importorskip("pyarrow")
    from adatok.neural.model import ModelConfig
    from adatok.neural.trainer import TrainConfig, train
    from adatok.scale import tokenize_dataset

    data = tmp_path / "data"
    for i in range(6):
        _png(data / f"{i}.png", 40 * i)
    cfg = ModelConfig(image_size=16, channels=1, patch=8, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                      levels=[4, 4], vq_first=False)
    tok = tmp_path / "tok"
    train(tok, cfg, TrainConfig(data=str(data), steps=4, batch=2, eval_every=1, ssim_weight=0), quiet=True,
          stop_after=1)
    tokenize_dataset(data, tmp_path / "shards", str(tok), adatok.Tokens(2), workers=0)
    train(tok, resume=True, quiet=True, stop_after=1)  # new weights: another version of the tokenizer
    code = "import sys; from adatok.neural.trainer import load_images; load_images(sys.argv[1], 'train')"
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "shards")], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and "written by another tokenizer than the one loaded now" in r.stderr, r.stderr[-800:]
    assert "damaged" not in r.stderr.splitlines()[-1]
    # the torch dataset refuses them when it is made, positions or not (it streamed them without a word)
    code = "import sys; from adatok.scale.loader import TokenShardDataset; TokenShardDataset(sys.argv[1])"
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "shards")], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and "written by another tokenizer than the one loaded now" in r.stderr, r.stderr[-800:]


def test_a_generator_limit_that_leaves_out_whole_classes_of_a_folder_is_refused(tmp_path):
    """A folder is read class after class: --limit N took the first classes only, and the model
    had classes it never trained on, without a word."""
    from adatok.generate.languages import PixelLanguage
    from adatok.generate.train import corpus_for

    data = tmp_path / "data"
    for i in range(6):
        _png(data / "cat" / f"{i}.png", i, side=8)
        _png(data / "dog" / f"{i}.png", 100 + i, side=8)
    lang = PixelLanguage((8, 8, 1))
    with pytest.raises(adatok.AdatokError, match="--limit 4 .* the class dog would get none"):
        corpus_for(lang, "train", 4, None, data=str(data))
    assert sorted(set(corpus_for(lang, "train", 7, None, data=str(data)).labels.tolist())) == [0, 1]


def test_a_generator_refuses_split_folders_as_classes(tmp_path):
    """FOLDER/train/... and FOLDER/test/... were two classes, 'test' and 'train'."""
    from adatok.generate.train import folder_classes

    for split in ("train", "test"):
        _png(tmp_path / split / "cat" / "0.png", 1)
    with pytest.raises(adatok.AdatokError, match="splits, not classes"):
        folder_classes(tmp_path)
    assert folder_classes(tmp_path / "train") == ["cat"]


def test_a_tokenizer_trained_on_arrays_does_not_say_fashion_mnist_nor_resume_on_it(tmp_path):
    """train(..., images=arrays) kept the default data, Fashion-MNIST, in config.json (and the name
    fashion-mnist-K), and a resume without the arrays went on training on Fashion-MNIST's 60,000."""
    from adatok.neural.model import ModelConfig
    from adatok.neural.trainer import GIVEN_IMAGES, TrainConfig, train

    imgs = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 1), dtype=np.uint8)
    cfg = ModelConfig(image_size=16, channels=1, patch=8, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                      levels=[4, 4], vq_first=False)
    out = tmp_path / "arr"
    kw = dict(quiet=True, stop_after=1, images=imgs[:10], eval_images=imgs[10:])
    train(out, cfg, TrainConfig(steps=4, batch=2, eval_every=1, ssim_weight=0), **kw)
    import json

    config = json.loads((out / "config.json").read_text())
    assert config["train"]["data"] == GIVEN_IMAGES and config["name"] == "images-2"
    with pytest.raises(adatok.AdatokError, match="resume it with them given again"):
        train(out, resume=True, quiet=True, stop_after=1)
    train(out, resume=True, **kw)
    assert json.loads((out / "config.json").read_text())["step"] == 2
    with pytest.raises(adatok.AdatokError, match="need eval_images"):
        train(tmp_path / "b", cfg, TrainConfig(steps=1, ssim_weight=0), quiet=True, images=imgs)


def test_a_data_folder_of_no_images_says_why(tmp_path):
    """'no readable images under notes.txt' said nothing of what notes.txt was."""
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(adatok.AdatokError, match=r"no readable images under .*notes.txt \(not an image file"):
        load_images(str(tmp_path / "notes.txt"), "train")


def test_a_checkpoint_with_out_the_data_folder_from_before_its_digest_was_kept_resumes(tmp_path):
    """Found by review: a run before 2026-12-02 with --out the data folder itself kept the digest of no file;
    its resume was refused as 'its files have changed since', though none had."""
    import hashlib
    import json

    from adatok.neural.trainer import train

    data = _tokenizer_trained_into_its_data(tmp_path)
    config = json.loads((data / "config.json").read_text())
    config["data_source"]["contents"] = hashlib.sha256().hexdigest()  # as such a run kept it
    (data / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    train(data, resume=True, quiet=True, stop_after=1)
    assert json.loads((data / "config.json").read_text())["step"] == 2


def test_a_generator_on_your_own_tokenizer_finds_it_from_anywhere_and_refuses_it_trained_again(tmp_path, monkeypatch):
    """A generator over a learned tokenizer's folder kept its name as given (``tok``, relative to the
    working folder: elsewhere unknown, or another folder of that name), and the tokenizer trained again
    changed its samples silently, and a --resume tokenized its corpus again with the new weights."""
    from adatok.generate.languages import SlotLanguage
    from adatok.generate.sample import load_generator
    from adatok.generate.train import GenTrainConfig, model_config_for, train_generator
    from adatok.neural.model import ModelConfig
    from adatok.neural.trainer import TrainConfig, train

    data = tmp_path / "data"
    for i in range(6):
        _png(data / f"{i}.png", 40 * i)
    cfg = ModelConfig(image_size=16, channels=1, patch=8, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                      levels=[4, 4], vq_first=False)
    monkeypatch.chdir(tmp_path)
    train("tok", cfg, TrainConfig(data=str(data), steps=4, batch=2, eval_every=1, ssim_weight=0), quiet=True,
          stop_after=1)
    lang = SlotLanguage("tok")
    train_generator("gen", lang, model_config_for(lang, 16, 1, 1, 8),
                    GenTrainConfig(data=str(data), steps=1, limit=6, val_images=2, batch=2, eval_every=1e9),
                    log=lambda *a: None)
    described = load_generator("gen").config["language"]
    assert described["tokenizer"] == str(tmp_path / "tok") and described["version"] == adatok.load("tok").version
    monkeypatch.chdir(data)  # another working folder: the same tokenizer
    assert load_generator(tmp_path / "gen").lang.tok.version == described["version"]
    monkeypatch.chdir(tmp_path)
    train("tok", resume=True, quiet=True, stop_after=1)  # trained again: new weights, another version
    with pytest.raises(adatok.AdatokError, match="trained again or replaced"):
        load_generator("gen")
    with pytest.raises(adatok.AdatokError, match="trained again or replaced"):
        train_generator("gen", resume=True, overrides={"steps": 2}, log=lambda *a: None)
