"""One shard's work, the same in a Ray worker and in the plain loop: read its images, tokenize them,
write ``parquet/part-NNNNN.parquet`` (and ``webdataset/part-NNNNN.tar``) under temporary names,
rename them, and last write the shard's record ``_shards/part-NNNNN.json`` (its rows and bad
inputs), whose presence marks the shard done. Each format has a folder of its own holding nothing
else, so that ``datasets.load_dataset("parquet", data_dir=OUT / "parquet")`` and
``webdataset.WebDataset`` find only shards there.

Parquet rows have the columns :data:`adatok.datasets.TOKEN_COLUMNS`. A WebDataset sample (key:
the image's index, 9 digits) holds ``atk`` (the ``.atk`` bytes), ``npy`` (the ids, int32) and
``json`` (index, source, label, shape, tokenizer, version, n_tokens, psnr: ``null`` when the
decoding is bit-exact, as JSON has no infinity).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import adatok
from adatok import AdatokError, Budget, TokenSequence

from ..core.errors import naming_image
from ..core.imageio import atomic_path, atomic_write_bytes
from ..core.metrics import psnr
from .sources import Item, Source, from_description

#: The output formats (Parquet: read by :func:`adatok.datasets.read_tokens`; WebDataset tars), each
#: written to the sub-folder of its name, and the suffix of its shards.
FORMATS = {"parquet": "parquet", "webdataset": "tar"}

#: Where each finished shard's record goes, inside the output folder.
RECORDS = "_shards"


def shard_path(out: Path, fmt: str, k: int) -> Path:
    """``OUT/parquet/part-00007.parquet``: shard ``k`` in format ``fmt``."""
    return Path(out) / fmt / f"{shard_name(k)}.{FORMATS[fmt]}"


def shard_name(k: int) -> str:
    """``part-00007`` for shard 7."""
    return f"part-{k:05d}"


def file_digest(path: Path) -> str:
    """The SHA-256 of a file (hex), read in pieces: a shard's record keeps it, so that a resumed run
    rewrites a shard changed since (damaged, cut short, or another run's copied over it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def schema():
    """The pyarrow schema of a Parquet shard (:data:`adatok.datasets.TOKEN_COLUMNS`)."""
    import pyarrow as pa

    return pa.schema([("index", pa.int64()), ("source", pa.string()), ("label", pa.int64()),
                      ("shape", pa.list_(pa.int32())), ("tokenizer", pa.string()), ("version", pa.string()),
                      ("n_tokens", pa.int32()), ("ids", pa.list_(pa.int32())), ("atk", pa.binary()),
                      ("psnr", pa.float64())])


def tokenize_items(tok, budget: Budget | None, items: list[Item]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Rows for the readable images of ``items`` (encoded in one call; one by one if that fails, to
    find the images the tokenizer refuses) and the ``(source, reason)`` of the rest."""
    good = [it for it in items if it[3] is not None]
    bad = [(sid, reason) for _, sid, _, img, reason in items if img is None]
    try:
        seqs: list[TokenSequence | None] = tok.encode([it[3] for it in good], budget)
    except AdatokError:
        seqs = []
        for _, sid, _, img, _ in good:
            try:
                seqs.append(tok.encode([img], budget)[0])
            except AdatokError as exc:
                seqs.append(None)
                bad.append((sid, str(naming_image(exc, "the image"))))   # (the listing names its source)
    kept = [(it, s) for it, s in zip(good, seqs, strict=True) if s is not None]
    decoded = tok.decode([s for _, s in kept]) if kept else []
    rows = []
    for ((index, sid, label, img, _), seq), out in zip(kept, decoded, strict=True):
        rows.append({"index": index, "source": sid, "label": label, "shape": list(img.shape),
                     "tokenizer": seq.tokenizer, "version": seq.version, "n_tokens": len(seq),
                     "ids": np.asarray(seq.ids, np.int32), "atk": seq.to_bytes(), "psnr": psnr(img, out)})
    order = {it[1]: it[0] for it in items}
    bad.sort(key=lambda b: order[b[0]])
    return rows, bad


def write_parquet(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` as one Parquet file (zstd), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [r["ids"] for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(i) for i in ids])]).astype(np.int32)
    values = np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, np.int32)
    sch = schema()
    columns = {name: pa.array([r[name] for r in rows], sch.field(name).type)
               for name in sch.names if name != "ids"}
    columns["ids"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    table = pa.table([columns[n] for n in sch.names], schema=sch)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def sample_json(row: dict) -> dict:
    """The ``.json`` member of a row's WebDataset sample."""
    return {"index": row["index"], "source": row["source"], "label": row["label"], "shape": row["shape"],
            "tokenizer": row["tokenizer"], "version": row["version"], "n_tokens": row["n_tokens"],
            "psnr": None if math.isinf(row["psnr"]) else row["psnr"]}


def write_webdataset(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` as one WebDataset tar (``KEY.atk``, ``KEY.npy``, ``KEY.json`` per image),
    atomically. Written with :mod:`tarfile` rather than ``webdataset.TarWriter``, whose members
    carry the time of writing: here they carry none, so a resumed run's tars are byte for byte
    those of an uninterrupted one (the ``webdataset`` package reads them: tests/test_scale.py)."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row in rows:
            key = f"{row['index']:09d}"
            npy = io.BytesIO()
            np.save(npy, np.asarray(row["ids"], np.int32))
            for ext, data in (("atk", row["atk"]), ("npy", npy.getvalue()),
                              ("json", json.dumps(sample_json(row), sort_keys=True).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))


def write_shard(out: Path, source: Source, spec: dict, tok, budget: Budget | None,
                formats: tuple[str, ...]) -> dict:
    """Do shard ``spec`` (see :meth:`Source.plan`) into ``out``; return its record (also written
    to ``_shards/``): ``shard``, ``start``, ``stop``, ``rows``, ``tokens``, ``bad`` (``[source,
    reason]`` pairs), ``sha256`` (each format's file's digest; none for a shard of bad inputs
    only), and when the worker began it (``began``: Unix time) and its ``seconds``."""
    began, t0 = time.time(), time.perf_counter()
    # Pillow warns (two lines on stderr) of an image over its pixel limit, which becomes a bad input with
    # adatok's own reason: the command line silences it in its own process, not in a Ray worker's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        items = list(source.read(spec["start"], json.loads(spec["items"])))
    rows, bad = tokenize_items(tok, budget, items)
    name = shard_name(spec["shard"])
    try:
        if rows:  # a shard of bad inputs only has its record alone (an empty Parquet file trips some readers)
            if "parquet" in formats:
                write_parquet(shard_path(out, "parquet", spec["shard"]), rows)
            if "webdataset" in formats:
                write_webdataset(shard_path(out, "webdataset", spec["shard"]), rows)
        digests = {fmt: file_digest(shard_path(out, fmt, spec["shard"])) for fmt in formats} if rows else {}
        record = {"shard": spec["shard"], "start": spec["start"], "stop": spec["stop"], "rows": len(rows),
                  "tokens": int(sum(r["n_tokens"] for r in rows)), "bad": [list(b) for b in bad], "sha256": digests,
                  "began": round(began, 3), "seconds": round(time.perf_counter() - t0, 3)}
        atomic_write_bytes(out / RECORDS / f"{name}.json", json.dumps(record).encode())
    except OSError as exc:  # (a full disk, a shard's path taken by a folder, DST removed mid-run: a raw traceback)
        path = exc.filename2 or exc.filename  # (os.replace's: the shard's own name, not its temporary one)
        where = f" ({path})" if path else ""
        raise AdatokError(f"cannot write the shard {name} into {out}: {exc.strerror or exc}{where}; check that "
                          "the folder is there and writable, and has room") from exc
    return record


class ShardWriter:
    """The callable class Ray Data's ``map_batches`` runs: one per worker, loading the tokenizer
    (and opening the source) once, then writing each shard of a batch of shard specs and
    returning their records, one row each (``record``: the JSON).

    An :class:`AdatokError` (or ``OSError``) of the worker's, while it starts (a checkpoint folder
    a node does not have) or writes a shard (a folder it cannot write), comes back as a record
    ``{"error": message}``, which the driver raises as the same error (:func:`worker_record`): raised
    in the worker, it reached the driver as a RayTaskError (159 lines on stderr, the message in the
    middle: Ray Data wraps it in its own exception, and the original's type is lost on the way)."""

    def __init__(self, out: str, source: dict, tokenizer: str, budget: Budget | None, formats: tuple[str, ...]):
        self.error = None
        try:
            self.out = Path(out)
            self.source = from_description(source)
            self.tok = adatok.load(tokenizer)  # a name or a checkpoint folder
        except (AdatokError, OSError) as exc:
            self.error = str(exc)
        self.budget = budget
        self.formats = tuple(formats)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = []
        for k in range(len(batch["shard"])):
            spec = {key: (batch[key][k].item() if hasattr(batch[key][k], "item") else batch[key][k]) for key in batch}
            try:
                if self.error is not None:
                    raise AdatokError(self.error)
                record = write_shard(self.out, self.source, spec, self.tok, self.budget, self.formats)
            except (AdatokError, OSError) as exc:
                record = {"error": str(exc)}
            records.append(json.dumps(record))
        return {"record": np.array(records, dtype=object)}


def worker_record(text: str) -> dict:
    """A shard's record as a :class:`ShardWriter` returned it (JSON); one that carries a worker's
    error is raised as an :class:`AdatokError` with its message."""
    record = json.loads(text)
    if "error" in record:
        raise AdatokError(record["error"])
    return record
