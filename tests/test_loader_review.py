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


def test_split_of_a_source_without_split_ids_holds_out_its_last_5_percent(tmp_path):
    out = _shards(tmp_path, [f"{i:02d}.png" for i in range(41)], shard_size=9)
    rows = list(read_tokens(out))
    test = [it["index"] for it in TokenShardDataset(out, split="test")]
    train = [it["index"] for it in TokenShardDataset(out, split="train")]
    assert test == [r.index for r in rows[-2:]] == [r.index for r in read_tokens(out, split="test")]  # 41 // 20
    assert train == [r.index for r in rows[:-2]] == [r.index for r in read_tokens(out, split="train")]
    shuffled = TokenShardDataset(out, split="test", shuffle=True, seed=1)
    assert sorted(it["index"] for it in shuffled) == sorted(test)


def test_split_refusals(tmp_path):
    out = _shards(tmp_path, [f"train/{i:02d}.png" for i in range(3)])
    with pytest.raises(AdatokError, match="token shards have the splits 'train' and 'test' .*not 'val'"):
        TokenShardDataset(out, split="val")
    with pytest.raises(AdatokError, match=r"holds no rows of the 'test' split \(the rows whose source id starts with "
                                          r"test/\)"):
        TokenShardDataset(out, split="test")
    assert TokenShardDataset(out, split="train").rows == 3
