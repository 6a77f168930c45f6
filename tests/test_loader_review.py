"""The torch dataset of token shards (:class:`adatok.scale.loader.TokenShardDataset`), as an outside
user's review found it: ``ids`` yielded from the ``ids`` column beside ``pos`` recomputed from the
``.atk`` bytes were never compared (an edited shard gave ids that did not match their positions),
and it had no ``split=`` where ``read_tokens`` has one (a folder of all of Fashion-MNIST streamed its
test images into training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from adatok import AdatokError, Tokens  # noqa: E402
from adatok.datasets import read_tokens  # noqa: E402
from adatok.scale import tokenize_dataset  # noqa: E402
from adatok.scale.loader import TokenShardDataset, pad_collate  # noqa: E402


def _pngs(folder: Path, names: list[str], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8 + i % 3, 9), dtype=np.uint8)).save(folder / name)


def _shards(tmp_path: Path, names: list[str], shard_size: int = 4) -> Path:
    src, out = tmp_path / "src", tmp_path / "out"
    _pngs(src, names)
    tokenize_dataset(src, out, "wavelet", Tokens(30), workers=0, shard_size=shard_size)
    return out


def _set_ids(shard: Path, row: int, ids) -> None:
    """Write ``ids`` as the ``ids`` column of ``row`` of ``shard``, leaving its ``.atk`` bytes alone."""
    table = pq.read_table(shard)
    column = table["ids"].to_pylist()
    column[row] = ids
    kind = table.schema.field("ids").type
    table = table.set_column(table.schema.get_field_index("ids"), "ids", pa.array(column, kind))
    pq.write_table(table, shard)


def test_ids_that_are_not_the_atk_bytes_ids_are_refused_as_damage(tmp_path):
    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(6)])
    shard = out / "parquet" / "part-00000.parquet"
    good = [it["ids"].tolist() for it in TokenShardDataset(out, positions=True)]
    assert good == [r.seq.ids.tolist() for r in read_tokens(out)]  # (the loader agrees with the readers)
    edited = list(good[1])
    edited[-1] = 0 if edited[-1] else 1
    _set_ids(shard, 1, edited)
    with pytest.raises(AdatokError, match=r"row 1 of the shard .*part-00000\.parquet holds ids that are not those of "
                                          r"its \.atk bytes \(30 ids and 30 tokens, first different at token 29\): "
                                          r"the shard was damaged after its run; run the tokenize-dataset command"):
        list(TokenShardDataset(out, positions=True))
    _set_ids(shard, 1, edited[:-1])  # one id dropped: the lengths differ
    with pytest.raises(AdatokError, match=r"row 1 of the shard .* \(29 ids and 30 tokens, first different at token 29"):
        list(TokenShardDataset(out, positions=True))
    _set_ids(shard, 1, None)  # no ids at all (a raw TypeError from torch)
    for positions in (False, True):
        with pytest.raises(AdatokError, match=r"row 1 of the shard .*part-00000\.parquet holds no ids \(null\): the "
                                              "shard was damaged after its run; run the tokenize-dataset command"):
            list(TokenShardDataset(out, positions=positions))


def test_split_takes_read_tokens_rows_once_across_ranks_and_workers(tmp_path):
    """Ids starting with train/ and test/ (Fashion-MNIST's) keep their splits, whatever their order
    (a folder's test/ sorts first), and every row of a split is read once per epoch by ranks x workers."""
    from torch.utils.data import DataLoader

    names = [f"test/{i:02d}.png" for i in range(5)] + [f"train/{i:02d}.png" for i in range(14)]
    out = _shards(tmp_path, names)
    for split in ("train", "test"):
        want = sorted(r.index for r in read_tokens(out, split=split))
        assert len(want) == (14 if split == "train" else 5)
        ds = TokenShardDataset(out, split=split)
        assert ds.rows == len(want) and sorted(it["index"] for it in ds) == want
        for shuffle in (False, True):
            for epoch in (0, 1):
                seen = []
                for rank in range(3):
                    ds = TokenShardDataset(out, split=split, shuffle=shuffle, seed=3, rank=rank, world_size=3,
                                           positions=True)
                    ds.set_epoch(epoch)
                    for batch in DataLoader(ds, batch_size=2, num_workers=2, collate_fn=pad_collate):
                        seen += batch["index"].tolist()
                assert sorted(seen) == want  # each row of the split once, none of the other
        even = [len(list(TokenShardDataset(out, split=split, rank=r, world_size=3, even=True))) for r in range(3)]
        assert even == [len(want) // 3] * 3


def test_split_of_a_source_without_split_ids_holds_out_every_20th_row(tmp_path):
    """Every 20th row is the test split (the rule of a folder of images in training): the last 5%,
    as before 2026-12-03, were all of a folder of classes' last class."""
    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(41)], shard_size=9)
    rows = list(read_tokens(out))
    test = [it["index"] for it in TokenShardDataset(out, split="test")]
    train = [it["index"] for it in TokenShardDataset(out, split="train")]
    assert test == [rows[19].index, rows[39].index] == [r.index for r in read_tokens(out, split="test")]
    assert train == [r.index for k, r in enumerate(rows) if k not in (19, 39)] == \
        [r.index for r in read_tokens(out, split="train")]
    shuffled = TokenShardDataset(out, split="test", shuffle=True, seed=1)
    assert sorted(it["index"] for it in shuffled) == sorted(test)


def test_split_of_shards_given_is_the_whole_runs(tmp_path):
    """Found by review: read_tokens(shards=..., split=...) took the split inside the shards given
    (shard 0's last row was 'test', and missing from 'train'); it is the whole run's split, of
    those shards' rows, as the torch dataset takes it."""
    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(41)], shard_size=9)
    rows = list(read_tokens(out))
    assert [r.index for r in read_tokens(out, shards=["part-00000"], split="test")] == []
    assert [r.index for r in read_tokens(out, shards=["part-00000"], split="train")] == [r.index for r in rows[:9]]
    assert [r.index for r in read_tokens(out, shards=["part-00004", "part-00002"], split="test")] == \
        [rows[39].index, rows[19].index]


def test_a_class_named_test_is_a_class(tmp_path):
    """Found by review: a folder's lone sub-folder named test (a class) was the whole test split, and
    never trained on. Only both train/ and test/ (or Fashion-MNIST's ids) are splits."""
    out = _shards(tmp_path, [f"cat/{i:02d}.png" for i in range(25)] + [f"test/{i:02d}.png" for i in range(5)])
    test = [r.source for r in read_tokens(out, split="test")]
    assert test == ["cat/19.png"], test
    both = _shards(tmp_path / "both", [f"train/{i}.png" for i in range(3)] + [f"test/{i}.png" for i in range(2)])
    assert [r.source for r in read_tokens(both, split="test")] == ["test/0.png", "test/1.png"]


def test_split_refusals(tmp_path):
    out = _shards(tmp_path, [f"train/{i:02d}.png" for i in range(3)])
    with pytest.raises(AdatokError, match="token shards have the splits 'train' and 'test' .*not 'val'"):
        TokenShardDataset(out, split="val")
    # a lone train/ sub-folder is a folder like any other: every 20th row (at least the last) held out
    assert TokenShardDataset(out, split="train").rows == 2 and TokenShardDataset(out, split="test").rows == 1
    one = _shards(tmp_path / "one", ["a.png"])
    with pytest.raises(AdatokError, match="holds one row: a training and a test split need at least 2"):
        TokenShardDataset(one, split="test")


def test_edited_manifests_are_refused_in_words(tmp_path):
    """Found by review: a complete manifest without its list of shards was read as the files found (a
    lost shard's rows went missing, silently); an entry that is no object or has no name, or a plan
    of null, were raw AttributeError / KeyError tracebacks."""
    import json

    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(10)], shard_size=3)
    good = json.loads((out / "manifest.json").read_text())
    edits = {"no shard list": lambda m: m.pop("shards"),
             "an entry that is a string": lambda m: m["shards"].__setitem__(1, "part-00001"),
             "an entry without a name": lambda m: m["shards"][1].pop("name"),
             "a plan of null": lambda m: m.__setitem__("plan", None),
             "no counts": lambda m: m.pop("counts")}
    (out / "parquet" / "part-00003.parquet").unlink()
    for what, edit in edits.items():
        m = json.loads(json.dumps(good))
        edit(m)
        (out / "manifest.json").write_text(json.dumps(m))
        for read in (lambda: list(read_tokens(out)), lambda: TokenShardDataset(out)):
            with pytest.raises(AdatokError, match="is not as adatok tokenize-dataset writes it"):
                read()


def test_shard_damage_is_found_when_the_dataset_is_made(tmp_path):
    """Found by review: a shard copied over another with as many rows passed TokenShardDataset() and
    failed only while iterating, inside a data-loader worker; a path that does not exist, or a file,
    was said to have no manifest."""
    import shutil

    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(8)], shard_size=4)
    shutil.copy(out / "parquet" / "part-00001.parquet", out / "parquet" / "part-00000.parquet")
    with pytest.raises(AdatokError, match="holds images 4..7 where its run wrote images 0..3"):
        TokenShardDataset(out)
    with pytest.raises(AdatokError, match="does not exist"):
        TokenShardDataset(tmp_path / "nowhere")
    with pytest.raises(AdatokError, match="is a file, not a folder"):
        list(read_tokens(out / "manifest.json"))


def test_shard_folder_wordings(tmp_path):
    """Found by review: a run that wrote nothing was told 'a training and a test split need at least 2';
    DST/parquet given as --data was read as a folder of images; swapped manifest entries were told as a
    shard missing; TokenShardDataset(None) was a raw TypeError and a bad rank was refused only when
    iterating started."""
    import json

    from adatok.datasets import check_not_in_shards

    empty = tmp_path / "empty"
    (empty / "src").mkdir(parents=True)
    tokenize_dataset(empty / "src", empty / "out", "wavelet", Tokens(30), workers=0)
    with pytest.raises(AdatokError, match="holds no rows: its tokenize-dataset run found no image to write"):
        list(read_tokens(empty / "out", split="train"))
    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(6)], shard_size=2)
    with pytest.raises(AdatokError, match=r"is a part of the token shard folder .*: give .* itself"):
        check_not_in_shards(out / "parquet")
    check_not_in_shards(out)  # (the folder itself is fine)
    m = json.loads((out / "manifest.json").read_text())
    m["shards"][1], m["shards"][2] = m["shards"][2], m["shards"][1]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AdatokError, match=r"lists its shards out of order \(part-00002 before part-00001\)"):
        list(read_tokens(out))
    for bad in (None, 3):
        with pytest.raises(AdatokError, match="a token shard folder is given by its path"):
            TokenShardDataset(bad)
    m["shards"][1], m["shards"][2] = m["shards"][2], m["shards"][1]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AdatokError, match="the rank is a whole number 0..1"):
        TokenShardDataset(out, rank=-1, world_size=2)


def test_a_learned_language_on_shards_of_other_images_names_the_remedy(tmp_path):
    """Found by review: train-generator --data SHARDS --language fashion-mnist-32 over shards of 24 x 24
    images said 'give --image-size 28 --channels 1', which --data SHARDS then refuses."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from adatok.cli import app

    for i in range(4):
        (tmp_path / "src").mkdir(exist_ok=True)
        Image.fromarray(np.full((24, 24), 40 * i, np.uint8)).save(tmp_path / "src" / f"{i}.png")
    out = tmp_path / "out"
    tokenize_dataset(tmp_path / "src", out, "wavelet", Tokens(30), workers=0)
    res = CliRunner().invoke(app, ["train-generator", "--data", str(out), "--language", "fashion-mnist-32",
                                   "--steps", "1", "--quiet", "--out", str(tmp_path / "gen")])
    assert res.exit_code == 2, res.output
    assert "give --language with the tokenizer that wrote them" in res.output and "--image-size" not in res.output


def test_fixed_header_rows_are_what_a_stepper_from_the_shape_writes(tmp_path):
    """Shards hold encode's sequences, each from its image's own top bit-plane; a stepper started from
    a shape starts at the shape's, and the ids of both are legal in either, so a model trained on
    the rows and sampled with a stepper read every position a plane off without an error (an outside
    review). ``fixed_header=True`` gives the rows as such a stepper writes them; pos pads with -1."""
    import adatok

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):  # low contrast: a top plane below the shape's
        Image.fromarray(rng.integers(100, 100 + 8 * (i + 1), (12, 10), dtype=np.uint8)).save(src / f"{i}.png")
    tokenize_dataset(src, out, "wavelet-lossless", Tokens(60), workers=0, shard_size=2)
    tok = adatok.load("wavelet-lossless")
    top = tok.top_plane((12, 10, 1))
    plain, fixed = list(read_tokens(out)), list(read_tokens(out, fixed_header=True))
    assert [r.index for r in fixed] == [r.index for r in plain] == list(range(5))
    for p, f in zip(plain, fixed, strict=True):
        assert f.seq.params["nmax"] == top > p.seq.params["nmax"]
        assert np.array_equal(tok.decode([f.seq])[0], tok.decode([p.seq])[0])  # the same image
        st = tok.stepper([f.seq.shape])
        assert st.next_pos()[0].tolist() != p.seq.pos[0].tolist()  # the plain row starts elsewhere
        for k, i in enumerate(f.seq.ids):
            assert st.next_pos()[0].tolist() == f.seq.pos[k].tolist()
            st.push(np.array([i]))
        assert np.array_equal(st.images()[0], tok.decode([f.seq])[0])
    items = list(TokenShardDataset(out, positions=True, fixed_header=True))
    assert [it["ids"].tolist() for it in items] == [r.seq.ids.tolist() for r in fixed]
    assert [it["pos"].tolist() for it in items] == [r.seq.pos.tolist() for r in fixed]
    assert [it["ids"].tolist() for it in TokenShardDataset(out, fixed_header=True)] == [r.seq.ids.tolist() for r in fixed]
    batch = pad_collate(items[:3])
    short = int(batch["lengths"].argmin())
    n = int(batch["lengths"][short])
    if n < batch["ids"].shape[1]:
        assert (batch["pos"][short, n:] == -1).all() and (batch["ids"][short, n:] == -1).all()
    assert (batch["pos"][short, :n] >= 0).all()
    for bad in ("yes", 1):
        with pytest.raises(AdatokError, match="fixed_header is True or False"):
            TokenShardDataset(out, fixed_header=bad)
        with pytest.raises(AdatokError, match="fixed_header is True or False"):
            next(read_tokens(out, fixed_header=bad))


def test_a_replicated_row_cannot_take_the_fixed_header_and_says_which(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    small = np.random.default_rng(0).integers(0, 256, (8, 9), dtype=np.uint8)
    Image.fromarray(np.kron(small, np.ones((2, 2), np.uint8))).save(src / "0.png")  # a 2 x 2 replication
    tokenize_dataset(src, out, "wavelet", Tokens(30), workers=0)
    assert tuple(next(read_tokens(out)).seq.params["rep"]) == (2, 2)
    with pytest.raises(AdatokError, match=r"row 0 \(0\.png\) of the shard .*part-00000\.parquet cannot take the fixed "
                                          "header of its shape: its header holds .*a pixel replication .*tok.encode"):
        next(read_tokens(out, fixed_header=True))
