"""``adatok tokenize-dataset`` (Ray Data), the shards it writes, and reading them back: adatok's
reader, the torch ``IterableDataset``, Hugging Face ``datasets`` and ``webdataset``.

One local Ray (2 CPUs, loopback only) serves the whole module and is shut down after it; the runs
that test what does not depend on Ray (sources, the loader) use ``workers=0``, the same shard work
in this process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

import adatok  # noqa: E402
from adatok import AdatokError, Quality, Tokens  # noqa: E402
from adatok.datasets import read_tokens, token_column  # noqa: E402
from adatok.scale import tokenize_dataset  # noqa: E402
from adatok.scale.pipeline import start_ray, stop_ray  # noqa: E402

GOOD = {"gray.png": (40, 52, 1), "sub/rgb.png": (33, 47, 3), "sub/deeper/photo.jpg": (48, 48, 3),
        "odd.png": (17, 29, 3), "tiny.png": (5, 3, 1), "wide.png": (20, 64, 3), "z.png": (24, 24, 1)}


@pytest.fixture(scope="module")
def ray_local():
    started, tmp = start_ray(2, None)
    yield
    stop_ray(started, tmp)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Good images of many shapes, and bad ones: not an image, truncated, 16-bit, over the limit."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, (h, w, c) in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        y, x = np.mgrid[:h, :w]
        img = ((x * 5 + y * 3)[..., None] + rng.integers(0, 40, (h, w, c))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img[..., 0] if c == 1 else img).save(root / name, quality=90)
    (root / "notes.txt").write_text("not an image")
    png = (root / "gray.png").read_bytes()
    (root / "sub" / "cut.png").write_bytes(png[: len(png) // 2])
    Image.fromarray(rng.integers(0, 65535, (8, 8)).astype(np.uint16)).save(root / "deep.png")
    Image.new("L", (8000, 7000)).save(root / "huge.png")  # 56 M pixels > MAX_PIXELS
    return root


BAD = {"notes.txt": "not an image", "sub/cut.png": "truncated", "deep.png": "16-bit", "huge.png": "limit"}


@pytest.fixture(scope="module")
def written(ray_local, folder, tmp_path_factory) -> Path:
    """One uninterrupted Ray run over the folder, both formats, 2 workers, 3 images a shard."""
    out = tmp_path_factory.mktemp("tokens") / "out"
    tokenize_dataset(folder, out, "wavelet", Quality(psnr=32), workers=2, formats=("parquet", "webdataset"),
                     shard_size=3)
    return out


def _table(out: Path):
    import pyarrow as pa

    return pa.concat_tables(pq.read_table(f) for f in sorted((out / "parquet").glob("*.parquet")))


def test_ray_tokens_are_encode_tokens_and_bad_inputs_are_listed(written, folder):
    manifest = json.loads((written / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["adatok_version"] == adatok.__version__
    assert manifest["counts"] == {"images": 11, "written": 7, "bad": 4, "shards": 4, "tokens": manifest["counts"]["tokens"],
                                  "resumed_shards": 0}
    reasons = {b["source"]: b["reason"] for b in manifest["bad"]}
    assert set(reasons) == set(BAD) and all(BAD[k] in reasons[k] for k in BAD), reasons
    assert manifest["budget"] == {"kind": "Quality", "psnr": 32.0, "ssim": None, "region": None}
    table = _table(written).to_pylist()
    tok = adatok.load("wavelet")
    assert [r["source"] for r in table] == sorted(GOOD)  # the folder's order, bad files left out
    for row in table:
        img = adatok.read_image(folder / row["source"])
        seq, = tok.encode([img], Quality(psnr=32))
        assert row["ids"] == seq.ids.tolist() and row["atk"] == seq.to_bytes() and row["n_tokens"] == len(seq)
        assert row["shape"] == list(img.shape) and row["label"] is None
        assert row["tokenizer"] == "wavelet" and row["version"] == tok.version
        assert row["psnr"] >= 32 and row["psnr"] == pytest.approx(adatok.core.metrics.psnr(img, tok.decode([seq])[0]))
    back = list(read_tokens(written))
    assert [r.source for r in back] == sorted(GOOD)
    assert all(r.seq.ids.tolist() == t["ids"] and r.seq.shape == tuple(t["shape"]) for r, t in zip(back, table))
    assert not list(written.rglob(".*.tmp"))


def test_interrupted_run_resumes_to_the_same_dataset(ray_local, folder, written, tmp_path):
    out = tmp_path / "out"
    def interrupt(done, total, what):
        if done > 0:  # the first shard is written: Ctrl-C
            raise KeyboardInterrupt

    args = dict(workers=1, formats=("parquet", "webdataset"), shard_size=3)
    with pytest.raises(KeyboardInterrupt):
        tokenize_dataset(folder, out, "wavelet", Quality(psnr=32), progress=interrupt, **args)
    assert json.loads((out / "manifest.json").read_text())["status"] == "incomplete"
    records = sorted((out / "_shards").glob("*.json"))
    assert 1 <= len(records) < 4  # interrupted part-way
    with pytest.raises(AdatokError, match="unfinished run"):
        list(read_tokens(out))
    manifest = tokenize_dataset(folder, out, "wavelet", Quality(psnr=32), **args)
    assert manifest["status"] == "complete" and manifest["counts"]["resumed_shards"] >= len(records) - 1
    assert _table(out).equals(_table(written))
    for a, b in zip(sorted((out / "webdataset").glob("*.tar")), sorted((written / "webdataset").glob("*.tar")), strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert manifest["bad"] == json.loads((written / "manifest.json").read_text())["bad"]
    assert not list(out.rglob(".*.tmp"))


def test_command_line(ray_local, folder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from adatok.cli import app

    monkeypatch.chdir(tmp_path)  # a relative DST: the Ray workers, started elsewhere, write there too
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["tokenize-dataset", str(folder), "cli", "--tokens", "200", "--workers", "1",
                                   "--shard-size", "4"])
    assert res.exit_code == 0, res.output
    rows = list(read_tokens(out))
    assert [r.source for r in rows] == sorted(GOOD) and max(len(r.seq) for r in rows) == 200
    tokens = sum(len(r.seq) for r in rows)
    assert f"7 images in 3 shards, {tokens:,} tokens; 4 bad inputs listed in" in res.output
    # the same command again: nothing to do; other arguments into the same folder: refused
    again = CliRunner().invoke(app, ["tokenize-dataset", str(folder), str(out), "--tokens", "200", "--workers", "1",
                                     "--shard-size", "4"])
    assert again.exit_code == 0 and "(3 shards already written)" in again.output
    other = CliRunner().invoke(app, ["tokenize-dataset", str(folder), str(out), "--tokens", "300", "--workers", "1"])
    assert other.exit_code == 2 and "holds the shards of another run" in other.output
    bad = CliRunner().invoke(app, ["tokenize-dataset", str(folder), str(tmp_path / "x"), "--lossless", "-t", "wavelet"])
    assert bad.exit_code == 2 and "not lossless" in bad.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    res = CliRunner().invoke(app, ["tokenize-dataset", str(folder), str(busy), "--workers", "0"])
    assert res.exit_code == 2 and "not an output folder" in res.output and (busy / "mine.txt").exists()


def test_a_cluster_that_cannot_be_reached_is_one_error_and_writes_nothing(ray_local, folder, tmp_path, monkeypatch):
    import ray

    def refuse(**kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}")

    import socket

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with socket.create_server(("127.0.0.1", 0)) as listening:  # something answers, and Ray refuses
        where = f"127.0.0.1:{listening.getsockname()[1]}"
        with pytest.raises(AdatokError, match=rf"cannot connect to the Ray cluster at '{where}' .*Failed to connect"):
            tokenize_dataset(folder, tmp_path / "out", "wavelet", Tokens(50), address=where)
    assert not (tmp_path / "out").exists()
    # nothing answers: refused at once (ray.init retried such an address for minutes, printing warnings)
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("ray.init was called"))
    for address in (where, f"ray://{where}", "nosuchhost.invalid:6379"):
        with pytest.raises(AdatokError, match=r"cannot connect to the Ray cluster .*nothing answers"):
            tokenize_dataset(folder, tmp_path / "out", "wavelet", Tokens(50), address=address)
    assert not (tmp_path / "out").exists()


def test_webdataset_shards_round_trip_to_the_parquet_sequences(written):
    wds = pytest.importorskip("webdataset")
    tars = sorted(str(p) for p in (written / "webdataset").glob("*.tar"))
    samples = list(wds.WebDataset(tars, shardshuffle=False, empty_check=False).decode())
    rows = list(read_tokens(written))
    assert len(samples) == len(rows) == 7
    for s, r in zip(samples, rows, strict=True):
        seq = adatok.TokenSequence.from_bytes(s["atk"])
        assert s["__key__"] == f"{r.index:09d}" and s["npy"].dtype == np.int32
        assert (seq.ids == r.seq.ids).all() and (s["npy"] == r.seq.ids).all() and (seq.pos == r.seq.pos).all()
        meta = s["json"]
        assert (meta["source"], meta["label"], tuple(meta["shape"]), meta["tokenizer"], meta["version"]) == (
            r.source, r.label, r.seq.shape, r.seq.tokenizer, r.seq.version)
        assert meta["psnr"] == pytest.approx(r.psnr) and meta["n_tokens"] == len(seq)


def test_hugging_face_datasets_loads_the_shards(written, tmp_path, monkeypatch):
    hf = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = hf.load_dataset("parquet", data_dir=str(written / "parquet"), cache_dir=str(tmp_path / "hf"), split="train")
    assert ds.num_rows == 7 and ds.column_names == list(adatok.datasets.TOKEN_COLUMNS)
    ds = ds.sort("index")
    for row, r in zip(ds, read_tokens(written), strict=True):
        assert row["ids"] == r.seq.ids.tolist() and row["source"] == r.source
        assert adatok.TokenSequence.from_bytes(row["atk"]).ids.tolist() == row["ids"]


def test_fashion_mnist_and_parquet_sources(tmp_path):
    """Labels come along; a Parquet image-bytes column (with a bad row) reads like files. No Ray."""
    import pyarrow as pa

    try:
        fm = adatok.datasets.load("fashion-mnist", "train", limit=12)
    except AdatokError:
        pytest.skip("dataset-fashion-mnist is not installed")
    out = tmp_path / "fm"
    manifest = tokenize_dataset("fashion-mnist", out, "wavelet-lossless", adatok.Lossless(), workers=0, shard_size=5,
                                limit=12)
    assert manifest["counts"]["written"] == 12 and manifest["counts"]["shards"] == 3
    rows = list(read_tokens(out))
    assert [r.label for r in rows] == fm.labels.tolist() and rows[3].source == "train/00003"
    tok = adatok.load("wavelet-lossless")
    assert all(np.isinf(r.psnr) and (tok.decode([r.seq])[0] == img).all() for r, img in zip(rows, fm.images))
    assert len(list(read_tokens(out, split="train"))) == 12 and list(read_tokens(out, split="test")) == []
    with pytest.raises(AdatokError, match="took the first 12 of Fashion-MNIST's .* without --limit"):
        adatok.datasets.split_rows(out, "test")  # (a training run said "holds no test sequences", not why)

    import io

    blobs = []
    for img in fm.images[:4]:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0]).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    blobs[2] = b"\x89PNG broken"
    src = tmp_path / "table"
    src.mkdir()
    pq.write_table(pa.table({"image": [{"bytes": b, "path": None} for b in blobs[:3]], "label": [7, 8, 9]}),
                   src / "a.parquet")
    pq.write_table(pa.table({"image": [{"bytes": blobs[3], "path": None}], "label": [3]}), src / "b.parquet")
    manifest = tokenize_dataset(src, tmp_path / "pt", "wavelet", Tokens(100), workers=0, shard_size=2)
    assert [b["source"] for b in manifest["bad"]] == ["a.parquet#2"]
    rows = list(read_tokens(tmp_path / "pt"))
    assert [(r.source, r.label) for r in rows] == [("a.parquet#0", 7), ("a.parquet#1", 8), ("b.parquet#0", 3)]
    want = adatok.load("wavelet").encode([fm.images[i] for i in (0, 1, 3)], Tokens(100))
    assert all((r.seq.ids == w.ids).all() for r, w in zip(rows, want))
    # a later file without the first one's label column: a raw KeyError mid-run, the run left half done
    pq.write_table(pa.table({"image": [{"bytes": blobs[0], "path": None}]}), src / "c.parquet")
    with pytest.raises(AdatokError, match="c.parquet has no column 'label'"):
        tokenize_dataset(src, tmp_path / "pt2", "wavelet", Tokens(100), workers=0)
    assert not (tmp_path / "pt2").exists()
    with pytest.raises(AdatokError, match="Parquet sources"):  # were silently ignored
        tokenize_dataset("fashion-mnist", tmp_path / "fm2", "wavelet", workers=0, limit=2, image_column="x")


def test_an_output_folder_inside_the_source_folder_is_refused(tmp_path):
    """Its shards and records were listed as inputs by the next run, which then refused the folder as
    another run's: an interrupted run could not be resumed."""
    src = tmp_path / "imgs"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "a.png")
    for out in (src / "tokens", src / "deeper" / "tokens"):
        with pytest.raises(AdatokError, match="inside the source folder"):
            tokenize_dataset(src, out, "wavelet", Tokens(10), workers=0)
        assert not out.exists()
    tokenize_dataset(src, tmp_path / "tokens", "wavelet", Tokens(10), workers=0)  # beside it: fine


def test_torch_dataset_reads_every_row_once_across_ranks_and_workers(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from adatok.scale.loader import TokenShardDataset, pad_collate

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(23):
        Image.fromarray(rng.integers(0, 256, (8 + i % 5, 9, 1), dtype=np.uint8)[..., 0]).save(folder / f"{i:02d}.png")
    out = tmp_path / "out"
    tokenize_dataset(folder, out, "wavelet", Tokens(40), workers=0, shard_size=6)
    rows = {r.index: r for r in read_tokens(out)}
    for shuffle in (False, True):
        orders = []
        for epoch in (0, 1):
            seen = []
            for rank in range(2):
                ds = TokenShardDataset(out, shuffle=shuffle, seed=5, rank=rank, world_size=2, positions=True)
                ds.set_epoch(epoch)
                for batch in DataLoader(ds, batch_size=4, num_workers=2, collate_fn=pad_collate):
                    for b, i in enumerate(batch["index"].tolist()):
                        n = int(batch["lengths"][b])
                        assert batch["ids"][b, :n].tolist() == rows[i].seq.ids.tolist()
                        assert (batch["ids"][b, n:] == -1).all()
                        assert torch.equal(batch["pos"][b, :n], torch.from_numpy(rows[i].seq.pos.astype(np.int64)))
                        seen.append(i)
            assert sorted(seen) == list(range(23))  # every row exactly once per epoch
            orders.append(seen)
        assert (orders[0] != orders[1]) == shuffle
    even = [len(list(TokenShardDataset(out, rank=r, world_size=2, even=True))) for r in range(2)]
    assert even == [11, 11]
    # persistent workers keep their copy of the dataset from the first epoch: they must see set_epoch
    ds = TokenShardDataset(out, shuffle=True, seed=5)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=pad_collate)
    epochs = []
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        epochs.append([i for batch in loader for i in batch["index"].tolist()])
    assert all(sorted(e) == list(range(23)) for e in epochs) and len({tuple(e) for e in epochs}) == 3
    # a world size given alone takes the rank from the process (it was rank 0 in every process)
    ranks = []
    for rank in ("0", "1"):
        os.environ["RANK"] = rank
        try:
            ranks.append([r["index"] for r in TokenShardDataset(out, world_size=2)])
        finally:
            del os.environ["RANK"]
    assert sorted(ranks[0] + ranks[1]) == list(range(23))


def test_the_command_starts_and_stops_its_own_ray(folder, tmp_path):
    """In a fresh process: a local Ray of --workers CPUs, under a temporary folder, gone after; none started
    implicitly in the command's process (RAY_ENABLE_AUTO_CONNECT=0); no warning of Pillow's from the worker."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(adatok.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ENABLE_AUTO_CONNECT", None)
    code = ("import os, sys, tempfile, glob; from adatok.cli.app import main; sys.argv = ['adatok', 'tokenize-dataset', "
            f"{str(folder)!r}, {str(tmp_path / 'o')!r}, '--tokens', '50', '--workers', '1', '--quiet'];\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "import ray; assert not ray.is_initialized()\n"
            "assert os.environ['RAY_ENABLE_AUTO_CONNECT'] == '0'\n"
            "print(glob.glob(tempfile.gettempdir() + '/adatok-ray-*'))")
    before = set(Path("/tmp").glob("adatok-ray-*"))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "DecompressionBombWarning" not in res.stderr, res.stderr[-3000:]  # (huge.png: listed as bad, with its reason)
    assert set(Path("/tmp").glob("adatok-ray-*")) <= before  # its folder removed
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["counts"]["written"] == 7


def test_train_generator_data_parallel_matches_one_process(tmp_path):
    """``adatok train-generator`` under ``torchrun --nproc_per_node 2`` (gloo): each process takes
    half of every global batch, so the loss curve and the weights are those of one process at the
    same batch. Tolerance: the per-step train and validation losses (logged to 4 decimals) within
    2e-4 nats, the weights within 1e-5 (the sums are added in another order)."""
    import shutil

    torch = pytest.importorskip("torch")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).exists():
        pytest.skip("torchrun is not installed beside this Python")
    try:
        adatok.datasets.load("fashion-mnist", "test", limit=1)
    except AdatokError:
        pytest.skip("dataset-fashion-mnist is not installed")
    from safetensors.torch import load_file

    # words: sequences of different lengths, so the losses' token counts matter; lr high enough to move
    args = ["-m", "adatok.cli", "train-generator", "--language", "wavelet-w8", "--limit", "16", "--val-images", "8",
            "--steps", "6", "--batch", "8", "--lr", "0.05", "--dim", "32", "--layers", "1", "--heads", "2",
            "--eval-every", "0", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GOMP_SPINCOUNT": "1000",
           "PYTHONPATH": os.pathsep.join([str(Path(adatok.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29519", *args, "--out",
                          str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    h1, h2 = (json.loads((tmp_path / d / "config.json").read_text())["history"] for d in ("one", "two"))
    assert [h["step"] for h in h1] == [h["step"] for h in h2] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(h1, h2):
        assert abs(a["train_loss"] - b["train_loss"]) <= 2e-4 and abs(a["val_loss"] - b["val_loss"]) <= 2e-4, (a, b)
    assert h1[-1]["val_loss"] < h1[0]["val_loss"] - 0.01  # it learned (warm-up: small steps), the curve is not flat
    w1, w2 = (load_file(tmp_path / d / "model.safetensors") for d in ("one", "two"))
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5), k


def test_generator_trains_on_token_shards(tmp_path):
    """Shards of Fashion-MNIST made with --psnr 16 give the generator's corpus that its images give
    with --target-psnr 16 (re-expressed with the fixed header, END placed by the stepper), in the
    decision and the word languages, with and without the decoder's state; train-generator --data
    reads them."""
    pytest.importorskip("torch")
    try:
        fm = adatok.datasets.load("fashion-mnist", "train", limit=12)
    except AdatokError:
        pytest.skip("dataset-fashion-mnist is not installed")
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.generate.languages import WaveletLanguage, WordLanguage, build_corpus
    from adatok.generate.train import shard_corpus

    for name, make in (("wavelet", WaveletLanguage), ("wavelet-w8", WordLanguage)):
        shards = tmp_path / name
        tokenize_dataset("fashion-mnist", shards, name, Quality(psnr=16), workers=0, shard_size=5, limit=12)
        for state in (False, True):  # with the decoder's state too
            lang = make(name, (28, 28, 1), Quality(psnr=16), context=state, canvas=state)
            a, b = shard_corpus(lang, shards, "train"), build_corpus(lang, fm.images, fm.labels)
            for field in ("ids", "starts", "ints", "floats", "labels"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), (name, state, field)
    with pytest.raises(AdatokError, match="sequences of wavelet-w8, not of wavelet"):
        shard_corpus(WaveletLanguage("wavelet", (28, 28, 1)), tmp_path / "wavelet-w8", "train")
    with pytest.raises(AdatokError, match="holds no rows of the .test. split: its run took the first"):
        shard_corpus(lang, tmp_path / "wavelet-w8", "test")  # fashion-mnist's train split only
    args = ["--language", "wavelet-w8", "--steps", "2", "--batch", "4", "--dim", "32", "--layers", "1", "--heads", "2",
            "--val-images", "1", "--quiet"]
    res = CliRunner().invoke(app, ["train-generator", "--data", str(tmp_path / "wavelet-w8"), *args,
                                   "--out", str(tmp_path / "gen0")])
    assert res.exit_code == 2 and "holds no rows of the 'test' split" in res.output  # validation needs test sequences too
    # a labelled Parquet source has no splits: its last 5% are the test split
    import io

    import pyarrow as pa

    blobs = []
    for img in fm.images:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0]).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    (tmp_path / "table").mkdir()
    dense = np.unique(fm.labels, return_inverse=True)[1]  # (labels 0, 1, 2, ...: the first 12 images hold 6 classes)
    pq.write_table(pa.table({"image": blobs, "label": dense}), tmp_path / "table" / "fm.parquet")
    shards = tmp_path / "labelled"
    tokenize_dataset(tmp_path / "table", shards, "wavelet-w8", Quality(psnr=16), workers=0)
    assert len(shard_corpus(lang, shards, "train")) == 11 and len(shard_corpus(lang, shards, "test")) == 1
    out = tmp_path / "gen"
    res = CliRunner().invoke(app, ["train-generator", "--data", str(shards), *args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["data"] == str(shards) and config["step"] == 2


def test_learned_tokenizer_trains_on_lossless_shards(tmp_path):
    """adatok train --data SHARDS trains on the shards' decodings: for lossless shards, the images
    of the folder they were made from, split the same way (the last 5% held out)."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.neural.trainer import load_images

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    shards = tmp_path / "shards"
    tokenize_dataset(folder, shards, "wavelet-lossless", adatok.Lossless(), workers=0, shard_size=8)
    for split in ("train", "test"):
        assert np.array_equal(load_images(str(shards), split), load_images(str(folder), split))
    out = tmp_path / "tiny"
    res = CliRunner().invoke(app, ["train", "--data", str(shards), "--tokens", "4", "--steps", "2", "--eval-every", "2",
                                   "--dim", "32", "--depth", "1", "--patch", "8", "--levels", "4,4", "--out", str(out),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert adatok.load(out).encode([np.zeros((16, 16, 1), np.uint8)])[0].shape == (16, 16, 1)


# --- found by review (2026-11-30); without Ray ---------------------------------------------------


def _images(folder: Path, n: int = 3, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), 40 * (i + start), np.uint8)).save(folder / f"{i}.png")


def test_a_file_changed_under_its_name_is_another_source(tmp_path):
    """Only the names were in the plan: a run resumed after 0.png changed kept the old image's tokens.
    A file past --limit is not part of the run: changing it changes nothing."""
    _images(tmp_path / "src")
    tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(10), workers=0, limit=2)
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "src" / "2.png")  # past the limit
    tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(10), workers=0, limit=2)  # fine
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "src" / "0.png")
    with pytest.raises(AdatokError, match="source changed"):
        tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(10), workers=0, limit=2)


def test_a_folder_source_lists_in_the_order_of_image_files(tmp_path):
    from adatok.datasets import image_files
    from adatok.scale.sources import FolderSource

    for rel in ("img/a.png", "img-2/b.png", "img.png"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / rel)
    want = [f.relative_to(tmp_path).as_posix() for f in image_files(tmp_path)]
    assert FolderSource(tmp_path).files == want == ["img/a.png", "img-2/b.png", "img.png"]


def test_a_link_under_the_source_into_the_output_is_not_followed(tmp_path):
    """A linked folder leading to DST was listed as input by the second run, which refused DST as another run's."""
    _images(tmp_path / "src")
    (tmp_path / "src" / "link").symlink_to(tmp_path / "out", target_is_directory=True)
    first = tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(10), workers=0)
    again = tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(10), workers=0)
    assert first["counts"]["images"] == again["counts"]["images"] == 3


def test_unlistable_folders_and_names_not_utf8_are_bad_inputs(tmp_path, monkeypatch):
    """An unreadable sub-folder's images were left out silently; a name not UTF-8 crashed the run in pyarrow."""
    src = tmp_path / "src"
    _images(src)
    _images(src / "locked", 2)
    (src / os.fsdecode(b"caf\xe9.png")).write_bytes((src / "0.png").read_bytes())
    real = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)).name == "locked":
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    manifest = tokenize_dataset(src, tmp_path / "out", "wavelet", Tokens(10), workers=0)
    monkeypatch.setattr(os, "scandir", real)
    bad = {b["source"]: b["reason"] for b in manifest["bad"]}
    assert bad["locked/"].startswith("cannot list") and "not UTF-8" in bad["caf\\xe9.png"]
    assert manifest["counts"]["written"] == 3 and len(list(read_tokens(tmp_path / "out"))) == 3


def test_parquet_sources_beside_markers_with_damage_and_text_labels(tmp_path):
    """_SUCCESS beside the files made the folder a folder of images (0 rows, "complete"); damaged pages were
    a raw pyarrow traceback; a uint64 label past int64 stopped the run. A text 'label' column was dropped
    silently (where one of floats is refused): it is refused the same way, and --label-column none
    tokenizes the images without labels."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    blobs = []
    for i in range(4):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8), 30 * i, np.uint8)).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    src = tmp_path / "table"
    src.mkdir()
    pq.write_table(pa.table({"image": pa.array(blobs, pa.binary()), "label": ["a", "b", "c", "d"]}), src / "a.parquet")
    (src / "_SUCCESS").write_bytes(b"")
    with pytest.raises(AdatokError, match="label column 'label' is string, not integers.*--label-column none"):
        tokenize_dataset(src, tmp_path / "out", "wavelet", Tokens(10), workers=0)
    manifest = tokenize_dataset(src, tmp_path / "out", "wavelet", Tokens(10), workers=0, label_column="none")
    assert manifest["counts"]["written"] == 4 and [r.label for r in read_tokens(tmp_path / "out")] == [None] * 4
    assert manifest["plan"]["source"]["label_column"] is None
    damaged = tmp_path / "damaged.parquet"
    pq.write_table(pa.table({"image": pa.array(blobs, pa.binary())}), damaged, compression="none")
    data = bytearray(damaged.read_bytes())
    for k in range(4, 60):
        data[k] ^= 0xFF  # the first page's header; the footer is intact
    damaged.write_bytes(bytes(data))
    manifest = tokenize_dataset(damaged, tmp_path / "out2", "wavelet", Tokens(10), workers=0)
    assert manifest["status"] == "complete" and len(manifest["bad"]) == 4
    assert all("cannot read its Parquet rows" in b["reason"] for b in manifest["bad"])
    # an unsigned label past the shards' int64 (a raw OverflowError stopped the run): that row a bad input
    pq.write_table(pa.table({"image": pa.array(blobs, pa.binary()),
                             "label": pa.array([0, 2**64 - 1, None, 2**63 - 1], pa.uint64())}), tmp_path / "u.parquet")
    manifest = tokenize_dataset(tmp_path / "u.parquet", tmp_path / "out3", "wavelet", Tokens(10), workers=0)
    assert manifest["bad"] == [{"source": "u.parquet#1",
                                "reason": "label 18446744073709551615 is outside the 64-bit integers the shards hold"}]
    assert [r.label for r in read_tokens(tmp_path / "out3")] == [0, None, 2**63 - 1]
    # a 'label' of floats, as pandas writes integers with one missing: every label was dropped, silently
    pq.write_table(pa.table({"image": pa.array(blobs, pa.binary()), "label": [0.0, 1.0, None, 1.0]}), tmp_path / "f.parquet")
    with pytest.raises(AdatokError, match="'label' is double, not integers .pandas.*--label-column none"):
        tokenize_dataset(tmp_path / "f.parquet", tmp_path / "out4", "wavelet", Tokens(10), workers=0)
    assert not (tmp_path / "out4").exists()


def test_parquet_column_messages_name_the_way_out(tmp_path):
    """Found by review: a folder whose second file lacks the first's 'label' said "give --label-column", and
    --label-column label failed the same way, with no way to ask for no labels; a string 'image' column
    beside a binary one was refused without naming the binary one."""
    import io

    import pyarrow as pa

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    src = tmp_path / "folder"
    src.mkdir()
    pq.write_table(pa.table({"image": pa.array([png], pa.binary()), "label": [3]}), src / "a.parquet")
    pq.write_table(pa.table({"image": pa.array([png], pa.binary())}), src / "b.parquet")
    with pytest.raises(AdatokError, match="b.parquet has no column 'label' .*which a.parquet has and this run took as "
                                          "the labels; give --label-column none"):
        tokenize_dataset(src, tmp_path / "o1", "wavelet", Tokens(10), workers=0)
    with pytest.raises(AdatokError, match="b.parquet has no column 'label' .*give --label-column with a column every "
                                          "file has, or --label-column none"):
        tokenize_dataset(src, tmp_path / "o1", "wavelet", Tokens(10), workers=0, label_column="label")
    assert not (tmp_path / "o1").exists()
    manifest = tokenize_dataset(src, tmp_path / "o1", "wavelet", Tokens(10), workers=0, label_column="none")
    assert manifest["counts"]["written"] == 2 and [r.label for r in read_tokens(tmp_path / "o1")] == [None, None]
    pq.write_table(pa.table({"image": ["a"], "data": pa.array([png], pa.binary())}), tmp_path / "s.parquet")
    with pytest.raises(AdatokError, match="column 'image' is string, not the bytes .*its binary column 'data' may hold "
                                          "them: give --image-column data"):
        tokenize_dataset(tmp_path / "s.parquet", tmp_path / "o2", "wavelet", Tokens(10), workers=0)
    manifest = tokenize_dataset(tmp_path / "s.parquet", tmp_path / "o2", "wavelet", Tokens(10), workers=0,
                                image_column="data")
    assert manifest["counts"]["written"] == 1


def test_reading_shards_splits_orders_and_checks(tmp_path):
    """Rows outside train/ and test/ were in no split; part-100000 sorted before part-99999; a webdataset-only
    folder read as empty; a manifest that is a list was a raw AttributeError; formats in another order were
    refused as another run's."""
    src = tmp_path / "src"
    _images(src / "train", 2)
    _images(src / "val", 1)
    _images(src, 1)
    out = tmp_path / "out"
    tokenize_dataset(src, out, "wavelet", Tokens(10), workers=0, shard_size=1, formats=("parquet", "webdataset"))
    every = [r.source for r in read_tokens(out)]
    train, test = ([r.source for r in read_tokens(out, split=s)] for s in ("train", "test"))
    assert sorted(train + test) == sorted(every) and test == every[-1:]  # (no test/ ids: the last of fewer than 20)
    tokenize_dataset(src, out, "wavelet", Tokens(10), workers=0, shard_size=1, formats=("webdataset", "parquet"))
    parts = sorted((out / "parquet").glob("part-*.parquet"))
    (parts[0]).rename(out / "parquet" / "part-99999.parquet")
    (parts[1]).rename(out / "parquet" / "part-100000.parquet")
    with pytest.raises(AdatokError, match="lacks 2 of its 4 shards"):  # (a complete run is read by its manifest)
        adatok.datasets.token_shards(out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "incomplete"}))
    names = [f.name for f in adatok.datasets.token_shards(out, complete=False)]  # the files found, by number
    assert names.index("part-99999.parquet") < names.index("part-100000.parquet")
    web = tmp_path / "web"
    tokenize_dataset(src, web, "wavelet", Tokens(10), workers=0, formats=("webdataset",))
    with pytest.raises(AdatokError, match="no Parquet shards"):
        list(read_tokens(web))
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text("[1, 2]")
    with pytest.raises(AdatokError, match="not the manifest"):
        tokenize_dataset(src, other, "wavelet", Tokens(10), workers=0)


def test_shard_readers_found_by_review(tmp_path, monkeypatch):
    """Loader workers started by spawn keep their rank; a one-row folder has no splits; the classes
    come from the shards' labels; gray and colour shards train in colour, as their folder does; a
    folder of images with a manifest of its own is a folder of images."""
    torch = pytest.importorskip("torch")
    import pickle

    from adatok.datasets import is_token_shards, token_column
    from adatok.neural.trainer import load_images
    from adatok.scale.loader import TokenShardDataset

    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(20):
        shape = (16, 16, 3) if i % 2 else (16, 16)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i:02d}.png")
    shards = tmp_path / "shards"
    tokenize_dataset(folder, shards, "wavelet-lossless", adatok.Lossless(), workers=0, shard_size=8)
    for split in ("train", "test"):
        assert np.array_equal(load_images(str(shards), split), load_images(str(folder), split))
    assert [tuple(s) for s in token_column(shards, "shape")][:2] == [(16, 16, 1), (16, 16, 3)]
    # a worker process unpickles the dataset: the parent's rank travels with it
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    copy = pickle.loads(pickle.dumps(TokenShardDataset(shards)))
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert copy.place() == (1, 2) and TokenShardDataset(shards).place() == (0, 1)
    with pytest.raises(AdatokError, match="seed"):
        TokenShardDataset(shards, seed=-1)
    with pytest.raises(AdatokError, match="epoch"):
        TokenShardDataset(shards).set_epoch(-1)
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(one / "a.png")
    with pytest.raises(AdatokError, match="at least 2"):
        load_images(str(one), "train")
    tokenize_dataset(one, tmp_path / "one-shards", "wavelet", None, workers=0)
    with pytest.raises(AdatokError, match="at least 2"):
        list(read_tokens(tmp_path / "one-shards", split="test"))
    (folder / "manifest.json").write_text('{"images": 20, "made by": "a camera app"}')
    assert not is_token_shards(folder) and is_token_shards(shards)
    assert len(load_images(str(folder), "train")) == 19
    del torch


def test_generator_classes_come_from_the_shards_labels(tmp_path):
    pytest.importorskip("torch")
    import io

    import pyarrow as pa
    from typer.testing import CliRunner

    from adatok.cli import app

    rng = np.random.default_rng(4)
    blobs = []
    for _ in range(24):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(buf, format="PNG")  # (not 28 x 28)
        blobs.append(buf.getvalue())
    args = ["--language", "wavelet-w8", "--steps", "1", "--batch", "4", "--dim", "32", "--layers", "1", "--heads", "2",
            "--val-images", "1", "--quiet"]
    for name, labels in (("twelve", np.arange(24) % 12), ("negative", np.arange(24) % 3 - 1)):
        (tmp_path / name).mkdir()
        pq.write_table(pa.table({"image": blobs, "label": labels}), tmp_path / name / "t.parquet")
        tokenize_dataset(tmp_path / name, tmp_path / f"{name}-shards", "wavelet-w8", Quality(psnr=12), workers=0)
        res = CliRunner().invoke(app, ["train-generator", "--data", str(tmp_path / f"{name}-shards"), *args,
                                       "--out", str(tmp_path / f"{name}-gen")])
        if name == "twelve":  # labels 10 and 11 were the model's "no class" and a raw IndexError
            assert res.exit_code == 0, res.output
            config = json.loads((tmp_path / "twelve-gen" / "config.json").read_text())
            assert config["model"]["classes"] == 12 and config["language"]["shape"] == [16, 16, 1]
        else:
            assert res.exit_code == 2 and "holds label -1" in res.output


def test_shards_changed_after_their_run_are_refused_by_readers_and_rewritten_by_a_rerun(tmp_path, monkeypatch):
    """Found by review: a rerun certified a damaged, short or copied shard `complete` (it trusted the
    records); readers read a short shard short, a duplicated one twice and another tokenizer's rows
    silently; a cut shard was a raw pyarrow traceback, a damaged row a container error naming no
    shard; `shards=` names were looked up in the working folder."""
    import pyarrow as pa

    from adatok.datasets import token_column
    from adatok.scale.loader import TokenShardDataset

    src, out, other = tmp_path / "src", tmp_path / "out", tmp_path / "other"
    _images(src, 6)
    args = dict(workers=0, shard_size=2, formats=("parquet", "webdataset"))
    tokenize_dataset(src, out, "wavelet", Tokens(12), **args)
    tokenize_dataset(src, other, "wavelet", Tokens(30), **args)  # the same images, a longer budget
    first = _table(out)
    part = [out / "parquet" / f"part-0000{k}.parquet" for k in range(3)]
    kept = part[0].read_bytes()

    def readers():
        yield lambda: list(read_tokens(out))
        yield lambda: token_column(out, "label")
        yield lambda: list(TokenShardDataset(out, positions=True))

    def refused(match):
        for read in readers():
            with pytest.raises(AdatokError, match=match):
                read()

    def rerun(rewritten):
        manifest = tokenize_dataset(src, out, "wavelet", Tokens(12), **args)
        assert manifest["counts"]["resumed_shards"] == 3 - rewritten and _table(out).equals(first)
        assert len(list(read_tokens(out))) == 6

    part[1].write_bytes(kept)  # a shard copied over another: its images twice, another's none
    refused("holds images 0..1 where its run wrote images 2..3")
    rerun(1)
    part[0].write_bytes(kept[: len(kept) // 2])  # cut short
    refused("cannot read the shard .*part-00000.parquet")
    rerun(1)
    table = pq.read_table(part[0])
    pq.write_table(table.slice(0, 1), part[0])  # a row lost
    refused(r"holds 1 row\(s\) where its run wrote 2")
    rerun(1)
    atk = table.column("atk").to_pylist()
    damaged = table.set_column(table.schema.get_field_index("atk"), "atk",
                               pa.array([atk[0], b"ATK?" + atk[1][4:]], pa.binary()))
    pq.write_table(damaged, part[0])
    with pytest.raises(AdatokError, match="row 1 .* of the shard .*part-00000.parquet holds no token sequence"):
        list(read_tokens(out))
    with pytest.raises(AdatokError, match="row 1 of the shard .*part-00000.parquet"):
        list(TokenShardDataset(out, positions=True))
    rerun(1)
    foreign = table.set_column(table.schema.get_field_index("tokenizer"), "tokenizer",
                               pa.array(["wavelet-lossless"] * 2, pa.string()))
    pq.write_table(foreign, part[0])
    refused("holds tokens of 'wavelet-lossless', not of 'wavelet'")
    rerun(1)
    # another run's shard of the same images and tokenizer passes the readers' checks, not a rerun's
    part[0].write_bytes((other / "parquet" / "part-00000.parquet").read_bytes())
    record = out / "_shards" / "part-00002.json"
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "sha256"}))
    rerun(2)  # (and a record without digests, from before they were kept: its shard is done again)
    # shards by name are the folder's, whatever the working folder holds
    monkeypatch.chdir(other / "parquet")
    assert [r.index for r in read_tokens(out, shards=["part-00001", "part-00000.parquet"])] == [2, 3, 0, 1]
    with pytest.raises(AdatokError, match="is not a Parquet shard of"):
        list(read_tokens(out, shards=[other / "parquet" / "part-00000.parquet"]))
    with pytest.raises(AdatokError, match="world size is a whole number >= 1"):
        TokenShardDataset(out, rank=0, world_size=0).place()


def test_two_runs_into_one_folder_at_once(tmp_path, monkeypatch):
    """Found by review: two `tokenize-dataset SRC DST` at once each removed the other's temporary files as an
    interrupted run's leftovers, and one failed with "cannot write DST/parquet/part-00004.parquet: No such
    file or directory". Now a run holds DST: a second one is refused at once, saying why."""
    import threading

    from adatok.scale import pipeline

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "dst"
    writing, go_on = threading.Event(), threading.Event()
    real = pipeline.write_shard

    def slow(*args, **kwargs):  # the first run is slow to write its shards
        if threading.current_thread().name == "first":
            writing.set()
            go_on.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_shard", slow)
    results = []
    thread = threading.Thread(name="first", target=lambda: results.append(
        tokenize_dataset(src, out, "wavelet", Tokens(50), workers=0, shard_size=2)))
    thread.start()
    try:
        assert writing.wait(60)
        with pytest.raises(AdatokError, match="is being written by another adatok tokenize-dataset now"):
            tokenize_dataset(src, out, "wavelet", Tokens(50), workers=0, shard_size=2)
    finally:
        go_on.set()
        thread.join(60)
    assert results and results[0]["status"] == "complete" and results[0]["counts"]["written"] == 3
    assert not list(out.rglob(".*.tmp"))
    again = tokenize_dataset(src, out, "wavelet", Tokens(50), workers=0, shard_size=2)  # afterwards: as resumed
    assert again["counts"]["resumed_shards"] == 2


def test_starting_ray_keeps_the_command_lines_sigterm_handler():
    """Found by review: `ray.init` put its own SIGTERM handler in place of the command line's, so that
    `kill` of a `tokenize-dataset` with Ray exited with code 15 and a stack dump of Ray's, without stopping
    Ray or removing its folder (/tmp/adatok-ray-*, and a Ray process left running). Now the command
    line's stays: the run stops as on Ctrl-C (`error: stopped by SIGTERM`, exit 143), cleaned up."""
    code = ("import signal, sys\n"
            "def mine(signum, frame): pass\n"
            "signal.signal(signal.SIGTERM, mine)\n"
            "from adatok.scale.pipeline import start_ray, stop_ray\n"
            "started, tmp = start_ray(1, None)\n"
            "kept = signal.getsignal(signal.SIGTERM) is mine\n"
            "stop_ray(started, tmp)\n"
            "sys.exit(0 if started and kept else 3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_folder_written_before_records_kept_digests_resumes_with_a_shard_of_bad_inputs_only(tmp_path):
    # a record of a shard whose images were all bad, from before 2026-12-01, has no "sha256": it is done, and
    # the run's end read its digests (a KeyError)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(src / f"a{i}.png")
    for i in range(2):
        (src / f"z{i}.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    tokenize_dataset(src, out, "wavelet", Tokens(100), workers=0, shard_size=2)
    for record in (out / "_shards").glob("*.json"):
        kept = json.loads(record.read_text())
        kept.pop("sha256")
        record.write_text(json.dumps(kept))
    manifest = tokenize_dataset(src, out, "wavelet", Tokens(100), workers=0, shard_size=2)
    assert manifest["counts"]["written"] == 2 and manifest["counts"]["bad"] == 2
    assert [len(r.seq) > 0 for r in read_tokens(out)] == [True, True]


@pytest.mark.parametrize("labels, message", [([0, 5], "2 labels from 0 to 5, none of 1, 2, 3 ..."),
                                             ([0, 10**12], "none of 1, 2, 3 ..."), ([0, -3], "holds label -3")])
def test_a_generator_refuses_shard_labels_that_leave_out_classes(tmp_path, labels, message):
    """Labels 0 and 5 made a model of six classes, four never trained on, sampled and labelled as if
    they were classes; a label of -3 was refused as "outside the model's classes 0..0", one of 10**12
    as a model too large to make ("give a smaller --dim")."""
    pytest.importorskip("torch")
    import io

    import pyarrow as pa
    from PIL import Image
    from typer.testing import CliRunner

    from adatok.cli import app

    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(8):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    (tmp_path / "table").mkdir()
    pq.write_table(pa.table({"image": blobs, "label": [labels[i % 2] for i in range(8)]}), tmp_path / "table" / "t.parquet")
    tokenize_dataset(tmp_path / "table", tmp_path / "shards", "wavelet-w8", Quality(psnr=12), workers=0)
    res = CliRunner().invoke(app, ["train-generator", "--data", str(tmp_path / "shards"), "--language", "wavelet-w8",
                                   "--steps", "1", "--dim", "16", "--layers", "1", "--heads", "1", "--quiet",
                                   "--out", str(tmp_path / "gen")])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "gen").exists()


def test_training_on_the_shards_of_an_empty_folder_says_it_holds_no_rows(tmp_path):
    """A tokenize-dataset run over an empty folder succeeds with no row; training on it said the folder
    "holds one row" (adatok train) and "holds images of 0 shapes" (train-generator)."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from adatok.cli import app

    (tmp_path / "empty").mkdir()
    tokenize_dataset(tmp_path / "empty", tmp_path / "shards", "wavelet-w8", Quality(psnr=12), workers=0)
    with pytest.raises(AdatokError, match="holds no rows: its tokenize-dataset run found no image to write"):
        list(read_tokens(tmp_path / "shards", split="train"))
    res = CliRunner().invoke(app, ["train-generator", "--data", str(tmp_path / "shards"), "--language", "wavelet-w8",
                                   "--steps", "1", "--quiet", "--out", str(tmp_path / "gen")])
    assert res.exit_code == 2 and "holds no rows" in res.output, res.output


def test_the_readers_refuse_bad_arguments_with_their_own_errors(tmp_path, monkeypatch):
    """Each was a raw exception, or an error that named the wrong cause (or none): shards=[1] (TypeError),
    a shard given twice in shards= (its rows read twice), an unknown column ("the shard cannot be read: run tokenize-dataset again"), set_epoch(2**70) (numpy's
    overflow), RANK=abc (int()'s ValueError), rank="1" ("rank 1 is not in 0..1")."""
    pytest.importorskip("torch")
    from adatok.scale.loader import TokenShardDataset

    _images(tmp_path / "src")
    tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(10), workers=0)
    with pytest.raises(AdatokError, match="by name .part-00003. or path, got 1"):
        list(read_tokens(tmp_path / "out", shards=[1]))
    with pytest.raises(AdatokError, match="gives the shard part-00000 of .* twice .*; give each shard once"):
        list(read_tokens(tmp_path / "out", shards=["part-00000", tmp_path / "out" / "parquet" / "part-00000.parquet"]))
    for column in (None, "nope"):
        with pytest.raises(AdatokError, match="token shards have the columns index, source"):
            token_column(tmp_path / "out", column)
    ds = TokenShardDataset(tmp_path / "out")
    with pytest.raises(AdatokError, match="epoch must be a whole number from 0 to 2..63 - 1, got 1180591620717411303424"):
        ds.set_epoch(2**70)
    with pytest.raises(AdatokError, match="the rank is a whole number 0..1, got '1'"):
        list(TokenShardDataset(tmp_path / "out", rank="1", world_size=2))
    monkeypatch.setenv("RANK", "abc")
    with pytest.raises(AdatokError, match="RANK is 'abc', not a whole number"):
        list(ds)
    monkeypatch.setenv("RANK", "0")
    assert len(list(ds)) == 3


def test_a_refused_image_s_reason_does_not_call_it_image_0():
    """Found by review: every image a tokenizer refused was listed as "image 0 is 20x20x3" (its place
    in the one-image list the shard encoded it in), whatever its source."""
    pytest.importorskip("torch")
    from adatok.scale.shards import tokenize_items

    tok = adatok.load("fashion-mnist-32")
    items = [(0, "a.png", None, np.zeros((28, 28, 1), np.uint8), None),
             (1, "b.png", None, np.zeros((20, 20, 3), np.uint8), None)]
    rows, bad = tokenize_items(tok, None, items)
    assert [r["source"] for r in rows] == ["a.png"]
    assert bad == [("b.png", bad[0][1])] and "the image is 20x20x3" in bad[0][1] and "image 0" not in bad[0][1]


# --- found by an outside user's review (2026-12-02); without Ray ------------------------------------


def _edit_manifest(out: Path, change) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_a_manifest_that_does_not_list_the_whole_run_is_refused(tmp_path):
    """A manifest missing one shard's entry (its record and file still there, its counts still the
    whole run's) was read short by every reader, without a word; now each refuses it, saying what is
    missing, and a rerun lists every shard again."""
    pytest.importorskip("torch")
    from adatok.scale.loader import TokenShardDataset

    src, out = tmp_path / "src", tmp_path / "out"
    _images(src, 6)
    tokenize_dataset(src, out, "wavelet", Tokens(12), workers=0, shard_size=2)
    kept = (out / "manifest.json").read_text()

    def refused(match):
        for read in (lambda: list(read_tokens(out)), lambda: token_column(out, "label"),
                     lambda: list(TokenShardDataset(out))):
            with pytest.raises(AdatokError, match=match):
                read()

    _edit_manifest(out, lambda m: m["shards"].pop(1))
    refused(r"manifest.json does not list the whole run: it lists no shard of images 2..3 \(between part-00000 and "
            r"part-00002\), while the folder holds _shards/part-00001.json, parquet/part-00001.parquet, which it does "
            "not list; run the tokenize-dataset command again")
    manifest = tokenize_dataset(src, out, "wavelet", Tokens(12), workers=0, shard_size=2)  # the remedy
    assert manifest["counts"]["resumed_shards"] == 3 and len(list(read_tokens(out))) == 6
    _edit_manifest(out, lambda m: m["shards"].pop())
    refused("its shards hold images 0..3 of the run's 6, while the folder holds _shards/part-00002.json")
    (out / "manifest.json").write_text(kept)
    _edit_manifest(out, lambda m: m["counts"].update(written=7))
    refused("its shards hold 6 rows where its counts say 7 were written")
    (out / "manifest.json").write_text(kept)
    (out / "_shards" / "part-00009.json").write_text((out / "_shards" / "part-00000.json").read_text())
    refused("the folder holds _shards/part-00009.json, which it does not list")
    (out / "_shards" / "part-00009.json").unlink()
    assert len(list(read_tokens(out))) == 6


def test_a_folder_being_written_now_is_said_to_be_and_complete_false_reads_it(tmp_path, monkeypatch):
    """Read while a tokenize-dataset wrote it, a folder was "an unfinished run: run the same command
    again", which the running one refuses; the torch dataset had no complete=False. The readers look
    at the writer's lock without waiting for it."""
    pytest.importorskip("torch")
    import threading

    from adatok.datasets import being_written
    from adatok.scale import pipeline
    from adatok.scale.loader import TokenShardDataset

    src, out = tmp_path / "src", tmp_path / "out"
    _images(src, 6)
    started, go_on = threading.Event(), threading.Event()
    real = pipeline.write_shard

    def slow(out_, source, spec, *args, **kwargs):  # the run stops before its second shard
        if spec["shard"] == 1:
            started.set()
            go_on.wait(30)
        return real(out_, source, spec, *args, **kwargs)

    monkeypatch.setattr(pipeline, "write_shard", slow)
    run = threading.Thread(target=tokenize_dataset, args=(src, out, "wavelet", Tokens(12)),
                           kwargs=dict(workers=0, shard_size=2))
    run.start()
    try:
        assert started.wait(60) and being_written(out)
        for read in (lambda: list(read_tokens(out)), lambda: TokenShardDataset(out)):
            with pytest.raises(AdatokError, match=r"is being written by an adatok tokenize-dataset now; read it when "
                                                  r"that run has finished \(complete=False reads"):
                read()
        assert [r.index for r in read_tokens(out, complete=False)] == [0, 1]
        assert sorted(r["index"] for r in TokenShardDataset(out, complete=False)) == [0, 1]
    finally:
        go_on.set()
        run.join(60)
    assert not being_written(out) and len(list(TokenShardDataset(out))) == 6


def test_the_remedy_of_a_shard_error_writes_into_the_folder_read(tmp_path, monkeypatch):
    """A copy's errors told to run the original command, which wrote into the original folder (relative
    to where that run started); now the command shown says to run it with the folder read as DST and
    the source by the path its run resolved. Run so, it repairs the copy and leaves the original."""
    import shutil

    from typer.testing import CliRunner

    from adatok.cli import app

    (tmp_path / "a").mkdir()
    _images(tmp_path / "a" / "photos", 6)
    monkeypatch.chdir(tmp_path / "a")
    args = ["tokenize-dataset", "photos", "sh", "--tokens", "10", "--workers", "0", "--shard-size", "2", "--quiet"]
    monkeypatch.setattr(sys, "argv", ["adatok", *args])  # (the command a manifest records)
    assert CliRunner().invoke(app, args).exit_code == 0
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "sh", tmp_path / "b" / "s_a")
    monkeypatch.chdir(tmp_path)
    copy = Path("b") / "s_a"
    want = ("adatok tokenize-dataset photos sh --tokens 10 --workers 0 --shard-size 2 --quiet "
            f"(with SRC {tmp_path / 'a' / 'photos'} and DST b/s_a)")
    (copy / "parquet" / "part-00001.parquet").unlink()
    with pytest.raises(AdatokError, match="lacks 1 of its 3 shards") as lacks:
        list(read_tokens(copy))
    assert str(lacks.value).endswith(f"run the same command again to write them: {want}")
    shutil.copy(copy / "parquet" / "part-00000.parquet", copy / "parquet" / "part-00001.parquet")
    with pytest.raises(AdatokError, match="it was changed after its run") as changed:
        list(read_tokens(copy))
    assert str(changed.value).endswith(f"rewrites a shard that is not as it wrote it): {want}")
    before = {f.name: f.read_bytes() for f in (tmp_path / "a" / "sh" / "parquet").iterdir()}
    again = ["tokenize-dataset", str(tmp_path / "a" / "photos"), "b/s_a", *args[3:]]  # what the message says to run
    assert CliRunner().invoke(app, again).exit_code == 0
    assert [r.index for r in read_tokens(copy)] == list(range(6))
    assert {f.name: f.read_bytes() for f in (tmp_path / "a" / "sh" / "parquet").iterdir()} == before


def test_shards_of_a_checkpoint_that_keeps_a_shipped_name_are_read_with_it(tmp_path, monkeypatch):
    """Shards of a retrained fashion-mnist-32 in a folder of its own were refused in a new process as
    "written by another tokenizer ... trained on since": the readers took the shipped checkpoint of the
    name and never loaded the folder the manifest records. Now they load it when it is still the
    version that wrote them, and say what changed when it is not."""
    pytest.importorskip("torch")
    from adatok.core import registry
    from adatok.neural.model import ModelConfig
    from adatok.neural.trainer import TrainConfig, train
    from adatok.scale.loader import TokenShardDataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
    ck = tmp_path / "ck"
    tiny = ModelConfig(image_size=28, channels=1, patch=7, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                       levels=[8, 8, 6, 5], vq_first=False)  # (11-bit tokens, as the shipped one's: the name is open)
    train(ck, tiny, TrainConfig(steps=2, batch=4, eval_every=1), name="fashion-mnist-32", quiet=True, images=images,
          eval_images=images[:4], stop_after=1)
    (tmp_path / "src").mkdir()
    for i, img in enumerate(images[:4]):
        Image.fromarray(img[..., 0]).save(tmp_path / "src" / f"{i}.png")
    out = tmp_path / "out"
    tokenize_dataset(tmp_path / "src", out, str(ck), Tokens(2), workers=0)
    version = adatok.load(str(ck)).version

    def fresh_process():  # the registry of a new process: nothing loaded yet
        monkeypatch.setattr(registry, "_VERSIONS", {})
        monkeypatch.setattr(registry, "_CACHE", {})

    fresh_process()
    rows = list(read_tokens(out))
    assert len(rows) == 4 and {r.seq.version for r in rows} == {version}
    assert len(list(TokenShardDataset(out, positions=True))) == 4
    train(ck, resume=True, quiet=True, images=images, eval_images=images[:4])  # trained on since
    fresh_process()
    since = f"the checkpoint {ck} they were written with (version {version}) was trained on since (it is version "
    with pytest.raises(AdatokError, match=re.escape(since)):
        list(read_tokens(out))


# --- found by review (2026-12-03) ------------------------------------------------------------------


def _lose_a_shard(src: Path, out: Path) -> None:
    """A finished run of 4 images in 2 shards whose second shard is lost, and a folder in its Parquet
    file's place: a rerun must write the shard there, and cannot (as on a read-only shard folder or a full
    disk, which tests run as root cannot make)."""
    _images(src, 4)
    tokenize_dataset(src, out, "wavelet", Tokens(20), workers=0, shard_size=2)
    (out / "_shards" / "part-00001.json").unlink()
    (out / "parquet" / "part-00001.parquet").unlink()
    (out / "parquet" / "part-00001.parquet").mkdir()


def test_a_worker_s_error_is_the_plain_loop_s_one_line_error(ray_local, tmp_path):
    """A shard a Ray worker could not write was a RayTaskError of some 160 lines, exit 1 (Ray Data wraps the
    worker's exception, and its type is lost on the way); with --workers 0 one error line, exit 2. Now the
    worker hands its error back, and both are the same line (an OSError there was a raw traceback in both)."""
    from typer.testing import CliRunner

    from adatok.cli import app

    _lose_a_shard(tmp_path / "src", tmp_path / "out")
    messages = []
    for workers in (0, 1):
        with pytest.raises(AdatokError, match=r"cannot write .*/part-00001.parquet: it is a folder") as err:
            tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(20), workers=workers, shard_size=2)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    res = CliRunner().invoke(app, ["tokenize-dataset", str(tmp_path / "src"), str(tmp_path / "out"), "--tokens", "20",
                                   "--workers", "1", "--shard-size", "2", "--quiet"])
    assert res.exit_code == 2 and res.output == f"error: {messages[0]}\n", res.output


def test_a_worker_that_cannot_start_hands_its_error_back(tmp_path):
    """A worker that cannot load the tokenizer (a checkpoint folder its node does not have) died in its
    constructor with a Ray traceback; its error now comes back as each shard's record, raised by the driver."""
    from adatok.scale.shards import ShardWriter, worker_record
    from adatok.scale.sources import FolderSource

    _images(tmp_path / "src", 1)
    writer = ShardWriter(str(tmp_path / "out"), FolderSource(tmp_path / "src").describe(), str(tmp_path / "no-such-ck"),
                         None, ("parquet",))
    batch = {"shard": np.array([0]), "start": np.array([0]), "stop": np.array([1]), "items": np.array(['["0.png"]'])}
    (text,) = writer(batch)["record"]
    with pytest.raises(AdatokError, match="no-such-ck"):
        worker_record(text)


def test_a_system_error_writing_a_shard_is_an_adatok_error(tmp_path, monkeypatch):
    """DST removed mid-run, a full disk: an OSError of writing a shard was a raw traceback (in a Ray worker,
    inside the RayTaskError); now it names the shard and the file."""
    from adatok.scale import shards

    def gone(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    _images(tmp_path / "src", 2)
    monkeypatch.setattr(shards, "file_digest", gone)
    with pytest.raises(AdatokError, match=r"cannot write the shard part-00000 into .*: No such file or directory "
                                          r"\(.*/parquet/part-00000.parquet\); check that the folder is there"):
        tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(20), workers=0)


def test_a_dst_that_cannot_be_made_is_one_error_before_ray_starts(tmp_path, monkeypatch):
    """DST under a file, or under /proc, was a raw NotADirectoryError / FileNotFoundError (exit 1), and with
    Ray only once Ray had started."""
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.scale import pipeline

    _images(tmp_path / "src")
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setattr(pipeline, "start_ray", lambda *args: pytest.fail("Ray was started"))
    cases = [(tmp_path / "afile" / "sub", f"{tmp_path / 'afile'} is a file, not a folder")]
    if Path("/proc/self").is_dir():
        cases.append((Path("/proc/adatok-no-such"), "cannot make the folder /proc/adatok-no-such: "))
    for dst, why in cases:
        res = CliRunner().invoke(app, ["tokenize-dataset", str(tmp_path / "src"), str(dst), "--tokens", "20", "-q"])
        assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
        assert why in res.output, res.output


def test_a_second_run_is_refused_before_its_ray_starts(tmp_path, monkeypatch, held_elsewhere):
    """With Ray, a second run into a DST being written started its Ray first and was refused seconds later."""
    from adatok.scale import pipeline

    _images(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    with held_elsewhere(out):
        monkeypatch.setattr(pipeline, "start_ray", lambda *args: pytest.fail("Ray was started"))
        with pytest.raises(AdatokError, match="is being written by another adatok tokenize-dataset now"):
            tokenize_dataset(tmp_path / "src", out, "wavelet", Tokens(20), workers=2)
    assert list(out.iterdir()) == [], list(out.iterdir())  # (nothing of the refused run's: its folders removed)


def test_a_run_that_writes_no_image_says_so_and_the_readers_name_the_cause(tmp_path):
    """An empty SRC, or one of bad inputs only, was "0 images in 0 shards", exit 0, without a word; the torch
    dataset then asked whether it was "written with --format webdataset only?"."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.scale.loader import TokenShardDataset

    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    (tmp_path / "bad" / "b.txt").write_text("notes")
    for src, why in (("empty", "found no input in"), ("bad", "none of the 2 inputs of")):
        out = tmp_path / f"out-{src}"
        res = CliRunner().invoke(app, ["tokenize-dataset", str(tmp_path / src), str(out), "--workers", "0", "-q"])
        assert res.exit_code == 0 and f"warning: no image written: {why}" in res.output, res.output
        with pytest.raises(AdatokError, match=re.escape(f"{out} holds no rows: its tokenize-dataset run found no image "
                                                        "to write")):
            TokenShardDataset(out)
    assert [b["source"] for b in json.loads((tmp_path / "out-bad" / "manifest.json").read_text())["bad"]] == [
        "a.png", "b.txt"]


def test_pillow_s_warning_of_an_image_over_the_limit_is_not_printed(folder, tmp_path):
    """A Ray worker printed Pillow's DecompressionBombWarning (two lines) for an image it listed as bad,
    with its reason: the command line silenced it in its own process only."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = tokenize_dataset(folder, tmp_path / "out", "wavelet", Tokens(20), workers=0)
    assert "limit" in {b["source"]: b["reason"] for b in manifest["bad"]}["huge.png"]
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_link_to_nothing_keeps_the_walker_s_reason(tmp_path):
    """Its reason was "no such file: /abs/path", though the folder's walker says where it leads."""
    _images(tmp_path / "src", 1)
    (tmp_path / "src" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    manifest = tokenize_dataset(tmp_path / "src", tmp_path / "out", "wavelet", Tokens(20), workers=0)
    assert manifest["bad"] == [{"source": "gone.png", "reason": f"a link to {tmp_path / 'nowhere.png'}, which does "
                                                                 "not exist"}]


def test_an_interrupted_run_leaves_no_ray_behind(tmp_path):
    """Found by review (now and then, on Ctrl-C): Ray Data's threads, left running when the run stopped, called
    Ray after its ray.shutdown(), and Ray's automatic ray.init started a new default cluster (a dashboard, its
    GCS on every interface) whose agents outlived the command. Here without the command line's
    RAY_ENABLE_AUTO_CONNECT=0: the run itself stops Ray Data before Ray."""
    _images(tmp_path / "src", 6)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_AUTO_CONNECT"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(adatok.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    code = ("import sys, time\nfrom adatok import Tokens\nfrom adatok.scale import tokenize_dataset\n"
            "def stop(done, total, what):\n    if done:\n        raise KeyboardInterrupt\n"
            f"try:\n    tokenize_dataset({str(tmp_path / 'src')!r}, {str(tmp_path / 'out')!r}, 'wavelet', Tokens(20), "
            "workers=1, shard_size=1, progress=stop)\nexcept KeyboardInterrupt:\n    pass\nelse:\n    sys.exit(3)\n"
            "time.sleep(2)\nimport ray\nprint('initialized:', ray.is_initialized())\n"
            "ray.shutdown()\n")  # (a Ray started anyway: its processes stopped, not left running)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines()[-1] == "initialized: False", res.stderr[-3000:]
    assert "Started a local Ray instance" not in res.stderr and "SIGTERM handler is not set" not in res.stderr


def _class_folder(src: Path) -> None:
    """cat (3 images), dog (2 and a broken one), zebra (2), and a README beside the classes."""
    for cls, n in (("cat", 3), ("dog", 2), ("zebra", 2)):
        _images(src / cls, n)
    (src / "README.txt").write_text("my pets")
    (src / "dog" / "broken.png").write_bytes(b"no image")


def test_labels_from_class_sub_folders_with_ray_and_without(ray_local, tmp_path):
    """--labels folders: a folder of classes (FOLDER/CLASS/...) kept no labels, so its shards could not
    train a class-conditional generator; each image's label is now its class's number, the names in
    the manifest, the same in a Ray worker and in the plain loop, and a run with other labels is
    another run."""
    from adatok.datasets import folder_classes

    src = tmp_path / "src"
    _class_folder(src)
    want = [("cat/0.png", 0), ("cat/1.png", 0), ("cat/2.png", 0), ("dog/0.png", 1), ("dog/1.png", 1),
            ("zebra/0.png", 2), ("zebra/1.png", 2)]
    for workers in (0, 1):
        out = tmp_path / f"out{workers}"
        manifest = tokenize_dataset(src, out, "wavelet", Tokens(10), workers=workers, shard_size=3, labels="folders")
        rows = list(read_tokens(out))
        assert [(r.source, r.label) for r in rows] == want
        assert manifest["plan"]["source"]["classes"] == folder_classes(src) == ["cat", "dog", "zebra"]
        assert sorted(b["source"] for b in manifest["bad"]) == ["README.txt", "dog/broken.png"]
    assert (tmp_path / "out0" / "parquet").exists()
    with pytest.raises(AdatokError, match="another run .*other source or labels"):
        tokenize_dataset(src, tmp_path / "out0", "wavelet", Tokens(10), workers=0, shard_size=3)
    unlabelled = tokenize_dataset(src, tmp_path / "plain", "wavelet", Tokens(10), workers=0, shard_size=3)
    assert "classes" not in unlabelled["plan"]["source"]
    assert {r.label for r in read_tokens(tmp_path / "plain")} == {None}


def test_labels_from_folders_are_refused_where_they_do_not_apply(tmp_path):
    _images(tmp_path / "flat")
    manifest = tokenize_dataset(tmp_path / "flat", tmp_path / "o1", "wavelet", Tokens(10), workers=0, labels="folders")
    assert manifest["plan"]["source"]["classes"] == ["all"]  # (one class, as a generator takes a flat folder)
    assert {r.label for r in read_tokens(tmp_path / "o1")} == {0}
    _images(tmp_path / "mixed" / "cat")
    _images(tmp_path / "mixed")
    for src, message in ((tmp_path / "mixed", "both in itself and in sub-folders"),
                         ("fashion-mnist", "fashion-mnist has its own labels"),
                         (tmp_path / "flat" / "0.png", "is a file")):
        with pytest.raises(AdatokError, match=message):
            tokenize_dataset(src, tmp_path / "o2", "wavelet", Tokens(10), workers=0, labels="folders")
        assert not (tmp_path / "o2").exists()
    with pytest.raises(AdatokError, match="unknown --labels 'classes'"):
        tokenize_dataset(tmp_path / "flat", tmp_path / "o2", "wavelet", Tokens(10), workers=0, labels="classes")
    # a split folder is not a folder of classes
    _images(tmp_path / "splits" / "train" / "cat")
    _images(tmp_path / "splits" / "test" / "cat")
    with pytest.raises(AdatokError, match="splits, not classes"):
        tokenize_dataset(tmp_path / "splits", tmp_path / "o2", "wavelet", Tokens(10), workers=0, labels="folders")


def test_a_generator_trained_on_shards_of_a_folder_of_classes_takes_their_names(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from adatok.cli import app

    src = tmp_path / "src"
    _class_folder(src)
    (src / "zebra" / "1.png").unlink()
    (src / "zebra" / "0.png").write_bytes(b"no image")  # (zebra is a class of no image)
    runner = CliRunner()
    res = runner.invoke(app, ["tokenize-dataset", str(src), str(tmp_path / "shards"), "-t", "wavelet-w8", "--psnr", "12",
                              "--workers", "0", "--labels", "folders", "--quiet"])
    assert res.exit_code == 0, res.output
    args = ["--language", "wavelet-w8", "--steps", "1", "--batch", "4", "--dim", "32", "--layers", "1", "--heads", "2",
            "--val-images", "1", "--quiet", "--data", str(tmp_path / "shards")]
    res = runner.invoke(app, ["train-generator", *args, "--out", str(tmp_path / "gen0")])
    assert res.exit_code == 2 and "no image of the class zebra" in res.output  # (a class never trained on)
    _images(src / "zebra", 2)
    res = runner.invoke(app, ["tokenize-dataset", str(src), str(tmp_path / "shards2"), "-t", "wavelet-w8", "--psnr",
                              "12", "--workers", "0", "--labels", "folders", "--quiet"])
    assert res.exit_code == 0, res.output
    args[-1] = str(tmp_path / "shards2")
    res = runner.invoke(app, ["train-generator", *args, "--out", str(tmp_path / "gen")])
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "gen" / "config.json").read_text())
    assert config["model"]["classes"] == 3
    res = runner.invoke(app, ["generate", "--model", str(tmp_path / "gen"), "--class", "dog", "-n", "2",
                              "--out", str(tmp_path / "dogs.png")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["generate", "--model", str(tmp_path / "gen"), "--class", "bird", "-n", "1",
                              "--out", str(tmp_path / "birds.png")])
    assert res.exit_code == 2 and "cat" in res.output


def test_shards_of_one_s_own_tokenizer_name_its_folder_as_the_language_to_train_with(tmp_path):
    """Shards of one's own learned tokenizer, given to a generator of another language, said "train with
    --language cls-8": the checkpoint's name, which --language refuses (unknown tokenizer); the folder
    the manifest records is what it takes (an outside-user review)."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.neural.model import ModelConfig
    from adatok.neural.trainer import TrainConfig, train

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
    ck = tmp_path / "ck"
    tiny = ModelConfig(image_size=28, channels=1, patch=7, tokens=2, dim=16, enc_depth=1, dec_depth=1, heads=1,
                       levels=[8, 8, 6, 5], vq_first=False)
    train(ck, tiny, TrainConfig(steps=2, batch=4, eval_every=1), name="cls-8", quiet=True, images=images,
          eval_images=images[:4], stop_after=1)
    for cls in ("a", "b"):
        for i, img in enumerate(images[:4]):
            (tmp_path / "src" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0]).save(tmp_path / "src" / cls / f"{i}.png")
    tokenize_dataset(tmp_path / "src", tmp_path / "out", str(ck), Tokens(2), workers=0, labels="folders")
    res = CliRunner().invoke(app, ["train-generator", "--data", str(tmp_path / "out"), "--language", "wavelet-w8",
                                   "--steps", "1", "--batch", "2", "--dim", "16", "--layers", "1", "--heads", "1",
                                   "--val-images", "1", "--quiet", "--out", str(tmp_path / "gen")])
    assert res.exit_code == 2 and f"train with --language {ck.resolve()}" in " ".join(res.output.split()), res.output


def test_a_library_warning_is_one_warning_line(tmp_path, monkeypatch):
    """`tokenize-dataset fashion-mnist` beside a folder named fashion-mnist printed Python's UserWarning
    (sources.py's path and line, then the line of code) where `eval` printed one `warning:` line. No Ray."""
    from typer.testing import CliRunner

    from adatok.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fashion-mnist").mkdir()
    res = CliRunner().invoke(app, ["tokenize-dataset", "fashion-mnist", "out", "--tokens", "10", "--workers", "0",
                                   "--limit", "1", "-q"])
    lines = res.stderr.splitlines()
    assert lines[0] == ("warning: 'fashion-mnist' names the built-in dataset, not the folder 'fashion-mnist' here: "
                        "give ./fashion-mnist for the folder"), res.stderr
    assert "UserWarning" not in res.stderr and "sources.py" not in res.stderr
    # the rest: the run (exit 0), or dataset-fashion-mnist missing (one error line, exit 2)
    assert (res.exit_code, lines[1:]) == (0, []) or (res.exit_code == 2 and len(lines) == 2
                                                       and lines[1].startswith("error: ")), res.stderr
