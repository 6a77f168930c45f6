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
