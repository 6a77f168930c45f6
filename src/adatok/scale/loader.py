"""Streaming token shards into torch training: :class:`TokenShardDataset`, an ``IterableDataset``
over a folder written by ``adatok tokenize-dataset``, split across DDP ranks and data-loader
workers so that every row is read exactly once per epoch.

The epoch's order is the same in every process: the shards in order (or, with ``shuffle``, the
shards in a random order and the rows of each in a random order, drawn from ``seed`` and the
epoch), and consumer ``c`` of ``C`` (``C`` = ranks x workers, ``c`` = rank x workers + worker)
takes the rows ``c, c + C, c + 2C, ...`` of it. Since consecutive rows go to different consumers,
every consumer reads every shard (only the columns it yields) and keeps its own rows: an epoch
reads the shards' columns ``C`` times over, and decodes each row (``positions``) once.

>>> from torch.utils.data import DataLoader                                    # doctest: +SKIP
>>> ds = TokenShardDataset("out/fmnist-tokens", shuffle=True)                  # doctest: +SKIP
>>> for batch in DataLoader(ds, batch_size=32, num_workers=2, collate_fn=pad_collate):  # doctest: +SKIP
...     batch["ids"], batch["lengths"], batch["label"]       # (32, T) padded with -1, (32,), (32,)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..core.checks import is_bool, is_whole
from ..core.errors import AdatokError
from ..datasets import (ShardCheck, check_split, damaged_row_error, load_shards_tokenizer, no_rows_error,
                        no_split_rows_error, read_manifest, shard_sequence, split_rows_of_shards, token_shards)


def _count(value, what: str) -> int:
    """``value`` as a whole number from 0 to 2**63 - 1 (numpy's seeds are whole numbers >= 0; the epoch is
    kept in an int64: 2**70 was a raw "Overflow when unpacking long long"), else :class:`~adatok.AdatokError`."""
    if not is_whole(value) or not 0 <= value < 2**63:
        raise AdatokError(f"{what} must be a whole number from 0 to 2**63 - 1, got {value!r}")
    return int(value)


def _environ_int(name: str, default: str) -> int:
    """The whole number in the environment variable ``name`` (torchrun's ``RANK``, ``WORLD_SIZE``)."""
    text = os.environ.get(name, default)
    try:
        return int(text)
    except ValueError:  # (RANK=abc: a raw "invalid literal for int()")
        raise AdatokError(f"the environment variable {name} is {text!r}, not a whole number") from None


class TokenShardDataset(IterableDataset):
    """The rows of a token shard folder as dicts of tensors, for a ``DataLoader``.

    Each item: ``ids`` (int64, ``n``), ``label`` (int; -1 when the source has no labels),
    ``index`` (the image's place in the source), ``shape`` (``[H, W, C]``), and with ``positions``
    ``pos`` (int64, ``n x P``: recomputed from the ``.atk`` bytes, as positions are not stored; the
    row's ``ids`` column is checked to be those bytes' ids, so that ids and positions agree).

    The rows are ``encode``'s sequences: a wavelet sequence starts at its image's own top
    bit-plane, a stepper started from a shape (``tok.stepper([shape])``) at the shape's. A model
    that a stepper will sample from is trained on ``fixed_header=True`` rows, or it reads each
    sampled position a plane or more off (the ids of both are legal in either: nothing fails).

    Args:
        folder: a folder written by ``adatok tokenize-dataset`` (Parquet format).
        shuffle: a new random order each epoch (call :meth:`set_epoch` before each); else the
            source's order.
        seed: the shuffle's seed (the same in every process).
        positions: also yield each token's position.
        split: ``"train"`` or ``"test"``: only the rows of that split, as
            :func:`~adatok.datasets.read_tokens` splits (Fashion-MNIST's ``train/`` and ``test/``
            ids keep its splits; a source without them holds out every 20th row as ``"test"``); the
            rows of the split are then divided among ranks and workers as all rows are without it.
            Default ``None``: every row.
        rank, world_size: this process's place among the DDP processes (default: from
            ``torch.distributed`` when it is initialized, else ``RANK`` / ``WORLD_SIZE``, else 0 / 1).
        even: give every consumer the same number of rows (the last ``rows % consumers`` of the
            epoch's order are left out), for DDP loops that need equal steps on every rank; by
            default every row is read, and consumers differ by at most one row.
        complete: refuse a folder whose run has not finished (as :func:`~adatok.datasets.read_tokens`
            does); ``False``: read the shards written so far (those there when the dataset is made).
        fixed_header: each wavelet row re-expressed from the top bit-plane of its shape, as a
            stepper started from the shape writes it (:func:`~adatok.datasets.fixed_header_sequence`:
            ``ids``, and ``pos`` with ``positions``, gain the planes above the image's own); its
            ``.atk`` bytes are then read and decoded, as with ``positions``.

    Raises:
        AdatokError: the folder's errors of :func:`~adatok.datasets.token_shards` (not such a
            folder, an unfinished run or one being written now, shards lost or not all listed), a
            run that wrote no row (:func:`~adatok.datasets.no_rows_error`), a shard that cannot be
            read or does not hold what its run wrote (another number of rows, another shard's
            images, another tokenizer's tokens), rows of another version of their tokenizer than
            the one found here (by the first row's header), a ``split`` that is neither split or
            holds no row (:func:`~adatok.datasets.no_split_rows_error`). While iterating, with
            ``positions`` or ``fixed_header`` (which decode each row's ``.atk`` bytes; without them
            they are not read): a row whose bytes are no sequence, or whose ``ids`` are not its
            bytes' ids (:func:`~adatok.datasets.shard_sequence`: the shard was changed after its
            run); with ``fixed_header``, a row coded with pixel replication.
    """

    def __init__(self, folder: str | os.PathLike[str], *, shuffle: bool = False, seed: int = 0,
                 positions: bool = False, split: str | None = None, rank: int | None = None,
                 world_size: int | None = None, even: bool = False, complete: bool = True,
                 fixed_header: bool = False):
        super().__init__()
        if not is_bool(fixed_header):  # (a config's "false" would be taken as True)
            raise AdatokError(f"fixed_header is True or False, got {fixed_header!r}")
        self.fixed_header = bool(fixed_header)
        self.folder, self.split = folder, None if split is None else check_split(split)
        self.files = token_shards(folder, complete)
        if not self.files:  # (a folder of tar shards only is refused by token_shards, saying so)
            if (read_manifest(folder) or {}).get("status") == "complete":
                raise no_rows_error(folder)
            raise AdatokError(f"{folder} holds no Parquet shard yet: its unfinished run has written none so far")
        self.check = ShardCheck.of(folder)
        self.counts = np.array([self._rows(f) for f in self.files], np.int64)
        self._check_version()
        # the rows read of each shard (None: all of them); the same in every process, as the order is
        self.keep: list[np.ndarray] | None = None
        if self.split is not None:
            self.keep = split_rows_of_shards(folder, self.files, self.check, self.split)
            self.counts = np.array([len(k) for k in self.keep], np.int64)
            if not self.counts.sum():
                raise no_split_rows_error(folder, self.split)
        self.shuffle, self.seed, self.positions, self.even = shuffle, _count(seed, "seed"), positions, even
        self._rank, self._world = rank, world_size
        self.place()  # (a rank or world size given wrongly: refused now, not when iterating starts)
        # in shared memory: data-loader workers kept from epoch to epoch (persistent_workers) hold a
        # copy of this dataset made when they started, and must still see set_epoch
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def _rows(self, file) -> int:
        """The rows of one shard, checked now by :meth:`ShardCheck.read` from its ``index`` (and
        ``tokenizer``) column: a shard that cannot be read, holds another number of rows than its
        run wrote, another shard's images or another tokenizer's tokens is refused when the dataset
        is made (a copy of another shard with as many rows, or another tokenizer's, passed, and
        was found only while iterating, in a data-loader worker's multi-line traceback)."""
        return self.check.read(file, ["index"]).num_rows

    def _check_version(self) -> None:
        """Refuse, when the dataset is made, rows written by another version of their tokenizer than
        the one found here (:func:`~adatok.datasets.shard_sequence`'s error, as ``read_tokens``
        gives it: a checkpoint trained on after its run decodes their ids to other images), judged
        by the first row's ``.atk`` header: without ``positions`` the rows' bytes are not read, and
        such rows were streamed without a word."""
        load_shards_tokenizer(self.folder)
        for file, n in zip(self.files, self.counts, strict=True):
            if n:
                shard_sequence(self.check.read(file, ["atk"]).column("atk")[0].as_py(), Path(file), 0)
                return

    @property
    def rows(self) -> int:
        """Rows in all the shards (of the split, with ``split``), over all consumers."""
        return int(self.counts.sum())

    @property
    def epoch(self) -> int:
        """The epoch whose order is read (see :meth:`set_epoch`)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (with ``shuffle``; call it on every rank, before iterating; data-loader
        workers see it too, also persistent ones)."""
        self._epoch[0] = _count(epoch, "epoch")

    def __getstate__(self) -> dict:
        """The dataset as a data-loader worker started by spawn or forkserver gets it: with this
        process's rank and world size fixed, since in the worker ``torch.distributed`` is not
        initialized (and ``RANK`` may not be set), and every worker would read as rank 0 of 1."""
        state = self.__dict__.copy()
        state["_rank"], state["_world"] = self.place()
        return state

    def place(self) -> tuple[int, int]:
        """``(rank, world size)`` of this process: each the one given, else ``torch.distributed``'s when it
        is initialized, else ``RANK`` / ``WORLD_SIZE``, else 0 / 1 (each found on its own: a world size
        given alone still takes the rank from where the process has it)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = _environ_int("RANK", "0"), _environ_int("WORLD_SIZE", "1")
        rank = rank if self._rank is None else self._rank
        world = world if self._world is None else self._world
        if not (is_whole(world) and world >= 1):  # ("rank 0 is not in 0..-1")
            raise AdatokError(f"the world size is a whole number >= 1, got {world!r}")
        if not (is_whole(rank) and 0 <= rank < world):  # (rank="1": "rank 1 is not in 0..1")
            raise AdatokError(f"the rank is a whole number 0..{world - 1}, got {rank!r}")
        return rank, world

    def order(self) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's order of all rows, the same in every process: (shard, row in shard) arrays."""
        shards = np.arange(len(self.files))
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        if rng is not None:
            shards = rng.permutation(shards)
        which, rows = [], []
        for s in shards:
            n = int(self.counts[s])
            which.append(np.full(n, s, np.int64))
            mine = np.arange(n) if self.keep is None else self.keep[s]
            rows.append(mine if rng is None else rng.permutation(mine))  # (permutation(n) is that of arange(n))
        return np.concatenate(which), np.concatenate(rows)

    def mine(self) -> tuple[np.ndarray, np.ndarray]:
        """The (shard, row) pairs this consumer (rank and data-loader worker) reads, in order."""
        rank, world = self.place()
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        consumers, me = world * workers, rank * workers + worker
        which, rows = self.order()
        if self.even:
            keep = len(which) // consumers * consumers
            which, rows = which[:keep], rows[:keep]
        return which[me::consumers], rows[me::consumers]

    def __iter__(self) -> Iterator[dict]:
        which, rows = self.mine()
        decode = self.positions or self.fixed_header  # (the row's .atk bytes are read and decoded)
        columns = ["index", "label", "shape", "ids"] + (["atk"] if decode else [])
        if not len(which):  # (more consumers than rows)
            return
        if decode:  # (in this process: a worker started by spawn has a registry of its own)
            load_shards_tokenizer(self.folder)
        cuts = [0, *(np.flatnonzero(np.diff(which)) + 1).tolist(), len(which)]
        for at, end in zip(cuts[:-1], cuts[1:]):  # the rows of one shard are consecutive in the order
            file = self.files[which[at]]
            table = self.check.read(file, columns).take(rows[at:end])
            cols = {c: table.column(c).to_pylist() for c in columns if c != "ids"}
            # the ids as one int64 array and each row's offsets in it (a Python list per row was half the time)
            ids_col = table.column("ids").combine_chunks()
            if ids_col.null_count:  # (flattened, a null is no ids: it was a raw TypeError from torch)
                k = int(np.flatnonzero(ids_col.is_null().to_numpy(zero_copy_only=False))[0])
                raise damaged_row_error(file, int(rows[at + k]), "holds no ids (null)")
            flat = ids_col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            offsets = ids_col.offsets.to_numpy()
            offsets = offsets - offsets[0]
            for k in range(end - at):
                ids = flat[offsets[k]:offsets[k + 1]]
                item = {"ids": torch.from_numpy(ids.copy()),
                        "label": -1 if cols["label"][k] is None else int(cols["label"][k]),
                        "index": int(cols["index"][k]), "shape": list(cols["shape"][k])}
                if decode:  # (positions from the bytes: their ids must be the column's)
                    seq = shard_sequence(cols["atk"][k], file, int(rows[at + k]), ids=ids,
                                         fixed_header=self.fixed_header)
                    if self.fixed_header:
                        item["ids"] = torch.from_numpy(np.asarray(seq.ids, np.int64))
                    if self.positions:
                        item["pos"] = torch.from_numpy(np.asarray(seq.pos, np.int64))
                yield item


def pad_collate(items: list[dict], pad_id: int = -1) -> dict:
    """A ``DataLoader`` ``collate_fn`` for :class:`TokenShardDataset`: ``ids`` (B, T) padded with
    ``pad_id``, ``lengths``, ``label``, ``index`` (B,), ``pos`` (B, T, P) padded with -1 when the
    items have positions (as a stepper's ``next_pos`` gives an ended sequence: 0 is a real
    position, the first plane's, level's, row's), ``shape`` a list."""
    lengths = torch.tensor([len(it["ids"]) for it in items], dtype=torch.int64)
    T = int(lengths.max()) if len(items) else 0
    ids = torch.full((len(items), T), pad_id, dtype=torch.int64)
    for b, it in enumerate(items):
        ids[b, : len(it["ids"])] = it["ids"]
    out = {"ids": ids, "lengths": lengths, "label": torch.tensor([it["label"] for it in items]),
           "index": torch.tensor([it["index"] for it in items]), "shape": [it["shape"] for it in items]}
    if items and "pos" in items[0]:
        P = items[0]["pos"].shape[1]
        pos = torch.full((len(items), T, P), -1, dtype=torch.int64)
        for b, it in enumerate(items):
            pos[b, : len(it["ids"])] = it["pos"]
        out["pos"] = pos
    return out


__all__ = ["TokenShardDataset", "pad_collate"]
