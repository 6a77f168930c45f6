"""``adatok.datasets``: the sample photos, Fashion-MNIST (IDX files) and folders of images."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from adatok import AdatokError
from adatok import datasets
from adatok.datasets import FASHION_MNIST_CLASSES, SAMPLE_IMAGES, load, sample_images


# --- samples -------------------------------------------------------------------------------------


def test_samples_match_sample_images():
    ds = load("samples", max_side=48, limit=3)
    assert ds.name == "samples" and ds.split is None and ds.labels is None and ds.skipped == []
    assert ds.ids == list(SAMPLE_IMAGES[:3]) and len(ds) == 3
    for (name, img), (name2, img2) in zip(ds.items(), sample_images(SAMPLE_IMAGES[:3], max_side=48), strict=True):
        assert name == name2
        np.testing.assert_array_equal(img, img2)
        assert img.dtype == np.uint8 and img.ndim == 3 and max(img.shape[:2]) == 48


def test_samples_have_no_split():
    with pytest.raises(AdatokError, match="no splits"):
        load("samples", "train")


def test_unknown_name():
    with pytest.raises(AdatokError, match="samples, fashion-mnist"):
        load("no-such-dataset-or-folder")


# --- Fashion-MNIST ---------------------------------------------------------------------------------


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """A tiny Fashion-MNIST in IDX files (train gzipped, test not), installed as FASHION_MNIST_DIR."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", train, gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 3, 9]), gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([4, 5, 6]), gz=False)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path)
    return tmp_path, train, test


def test_fashion_mnist_idx_parsing(fake_fashion):
    _, train, test = fake_fashion
    ds = load("fashion-mnist", "train")
    assert len(ds) == 5 and ds.ids[0] == "train/00000" and ds.train_split is None
    np.testing.assert_array_equal(np.stack(ds.images)[..., 0], train)
    assert ds.labels.tolist() == [0, 1, 2, 3, 9] and ds.classes == FASHION_MNIST_CLASSES
    ds = load("fashion-mnist", "test")
    assert ds.ids == ["test/00000", "test/00001", "test/00002"] and ds.train_split == "train"
    np.testing.assert_array_equal(ds[2][..., 0], test[2])
    both = load("fashion-mnist", limit=6)  # train first, then test
    assert both.ids[-1] == "test/00000" and both.labels.tolist() == [0, 1, 2, 3, 9, 4]
    assert load("fashion-mnist", "test", max_side=14)[0].shape == (14, 14, 1)


def test_fashion_mnist_bad_split(fake_fashion):
    with pytest.raises(AdatokError, match="'train' and 'test'"):
        load("fashion-mnist", "validation")


def test_fashion_mnist_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(AdatokError, match="apt-get install dataset-fashion-mnist"):
        load("fashion-mnist", "test")


def test_fashion_mnist_corrupt(fake_fashion):
    folder, _, _ = fake_fashion
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(AdatokError, match="truncated or corrupt"):
        load("fashion-mnist", "test")
    path.write_bytes(b"\x00\x00\x0d\x03" + bytes(20))
    with pytest.raises(AdatokError, match="not an IDX file"):
        load("fashion-mnist", "test")


@pytest.mark.skipif(not (datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist is not installed (scripts/install-system.sh installs it)")
def test_real_fashion_mnist_test_split():
    ds = load("fashion-mnist", "test")
    assert len(ds) == 10_000 and ds[0].shape == (28, 28, 1) and ds.labels.shape == (10_000,)
    assert set(ds.labels.tolist()) == set(range(10))


# --- folders ------------------------------------------------------------------------------------


@pytest.fixture
def messy_folder(tmp_path):
    """Good images (nested), a corrupt image, a truncated PNG, a text file, a 1x1 image, hidden files."""
    rng = np.random.default_rng(1)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    good = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(good).save(tmp_path / "a" / "good.png")
    Image.fromarray(good[:, :, 0]).save(tmp_path / "a" / "b" / "gray.png")
    Image.fromarray(good[:1, :1]).save(tmp_path / "tiny.png")
    buf = (tmp_path / "a" / "good.png").read_bytes()
    (tmp_path / "a" / "b" / "cut.png").write_bytes(buf[: len(buf) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / ".hidden" / "x.png").write_bytes(buf)
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    return tmp_path, good


def test_folder_recursive_with_unreadable_files_listed(messy_folder):
    folder, good = messy_folder
    ds = load(folder)
    assert ds.ids == ["a/b/gray.png", "a/good.png", "tiny.png"]
    np.testing.assert_array_equal(ds[1], good)
    assert ds[0].shape == (20, 30, 1) and ds[2].shape == (1, 1, 3)
    reasons = dict(ds.skipped)
    assert set(reasons) == {"a/b/cut.png", "corrupt.jpg", "notes.txt"}
    assert "truncated" in reasons["a/b/cut.png"]
    assert "not an image" in reasons["notes.txt"]
    assert reasons["corrupt.jpg"]


def test_folder_limit_split_and_single_file(messy_folder):
    folder, _ = messy_folder
    assert load(folder, limit=1).ids == ["a/b/gray.png"]
    assert load(folder, "a").ids == ["b/gray.png", "good.png"]
    with pytest.raises(AdatokError, match="sub-folder"):
        load(folder, "nope")
    one = load(folder / "a" / "good.png", max_side=10)
    assert one.ids == ["good.png"] and max(one[0].shape[:2]) == 10


def test_a_folder_named_like_a_built_in_dataset_gets_a_warning(tmp_path, monkeypatch):
    """``--data samples`` with a folder ./samples read the bundled photos without a word (a user who
    wrote ``adatok generate --out samples/`` and then trained on it got five sample photos)."""
    import warnings

    from adatok.datasets import load

    (tmp_path / "samples").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"give ./samples for the folder"):
        assert len(load("samples", limit=1)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load("./samples")) == 0  # the folder itself, as asked


def test_skip_reasons_leave_out_the_file_s_path_inside_the_sentence_too(tmp_path):
    """Found by review: a 16-bit image's reason had the file's absolute path in the middle ("16-bit image
    (Pillow raw mode I;16B) /abs/x.png: adatok reads ..."), where the listing names the file already; a
    link to nothing keeps the walker's reason ("a link to X, which does not exist")."""
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(tmp_path / "deep.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    reasons = dict(load(tmp_path).skipped)
    assert reasons["deep.png"].startswith("16-bit image (") and str(tmp_path) not in reasons["deep.png"], reasons
    assert reasons["gone.png"] == f"a link to {tmp_path / 'nowhere.png'}, which does not exist"
    assert datasets.broken_link_reason(tmp_path / "gone.png") == reasons["gone.png"]
    assert datasets.broken_link_reason(tmp_path / "ok.png") is None
    assert datasets.broken_link_reason(tmp_path / "none.png") is None
    # the path in front is cut with its "is"; at the end it is what the message is about, and stays
    assert datasets.skip_reason("/x/a.png is not an image", "/x/a.png") == "not an image"
    assert datasets.skip_reason("no such file: /x/a.png", "/x/a.png") == "no such file: /x/a.png"
