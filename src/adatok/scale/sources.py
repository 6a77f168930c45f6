"""What ``adatok tokenize-dataset`` reads: a folder of image files, a Parquet dataset with an
image-bytes column, or Fashion-MNIST, cut into shards of consecutive images.

The driver plans (:func:`open_source`, :meth:`Source.plan`): it lists the files (or counts the
Parquet rows) once and cuts the images, in a fixed order, into shards of ``size``; shard ``k``
holds the images ``k * size`` to ``(k + 1) * size - 1``. A shard's spec names what to read (its
file names, or its Parquet file and row range, or its index range) in plain JSON, so that a worker
anywhere reads its images itself (:meth:`Source.read`) and the same arguments always give the same
shards: that is what makes a run resumable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.errors import AdatokError
from ..core.imageio import read_image, read_image_bytes
from ..datasets import broken_link_reason, folder_classes, folder_label, image_files, skip_reason

#: One image a worker read: ``(index, source id, label or None, image or None, reason or None)``;
#: the image is ``None`` (and the reason says why) when the input could not be used.
Item = tuple[int, str, int | None, np.ndarray | None, str | None]

#: ``label_column`` (``--label-column``) of a Parquet source without labels, even with a ``label`` column.
NO_LABELS = "none"


def _unlike_first(first: Path | None, given: bool, option: str, what: str) -> str:
    """The advice of an error about a column (of the ``what``, named by ``option``) a Parquet file
    lacks: the first file (``first`` None), or a later one of a folder, whose columns are the first
    file's (``given``: the user named the column; else this run took it from the first file)."""
    none = f", or {option} none" if what == "labels" else ""
    if first is None:
        return f"; give {option} with one of its columns{none}"
    if not given:
        return (f", which {first.name} has and this run took as the {what}; give {option} "
                + ("none to tokenize the images without labels" if what == "labels" else "with a column every file has")
                + ", or tokenize the files apart")
    return f"; give {option} with a column every file has{none}"


class Source:
    """A source of images in a fixed order (a subclass per kind)."""

    kind = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the source is, in JSON: the worker re-opens it from this (:func:`from_description`)."""
        raise NotImplementedError

    def shard_items(self, start: int, stop: int) -> object:
        """What a worker needs to read images ``start`` to ``stop - 1`` (JSON)."""
        raise NotImplementedError

    def read(self, start: int, items: object) -> Iterator[Item]:
        """The images of one shard, in order (run by a worker)."""
        raise NotImplementedError

    def fingerprint(self, count: int) -> list:
        """What changes when the first ``count`` images change without the listing changing (JSON)."""
        return []

    def plan(self, size: int, limit: int | None = None) -> list[dict]:
        """Shard specs ``{"shard", "start", "stop", "items"}`` of ``size`` images each (the last
        may be shorter), over the first ``limit`` images."""
        total = len(self) if limit is None else min(limit, len(self))
        return [{"shard": k, "start": a, "stop": min(a + size, total),
                 "items": json.dumps(self.shard_items(a, min(a + size, total)))}
                for k, a in enumerate(range(0, total, size))]


def _stamps(root: Path, rels: list[str]) -> list:
    """``[size, modification time]`` of each file ``rel`` under ``root`` (beside it when ``root`` is
    a file); ``None`` for one that cannot be read (a folder that could not be listed)."""
    base = root.parent if root.is_file() else root
    out = []
    for rel in rels:
        try:
            st = os.stat(base / rel)
            out.append([st.st_size, st.st_mtime_ns])
        except OSError:
            out.append(None)
    return out


class FolderSource(Source):
    """Every file under a folder, recursively, in :func:`adatok.datasets.image_files` order; the
    source id is the path inside the folder. Files that are not readable 8-bit images (not an
    image, truncated, 16-bit, over the pixel limit) become bad inputs with their reason, and so
    does each folder that cannot be listed (its id ends in ``/``). ``exclude``: a folder never
    entered, wherever links under the source lead (the output folder).

    ``labels=True`` (``--labels folders``): each image's label is the number of its class
    sub-folder (``FOLDER/CLASS/...``, classes sorted, as the generators number a folder of classes:
    :func:`adatok.datasets.folder_classes`), found once by the driver and handed to the workers
    with each shard's file names; the class names are in :meth:`describe` (the manifest's plan)."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str], files: list[str] | None = None,
                 exclude: str | os.PathLike[str] | None = None, labels: bool = False):
        self.root = Path(root).resolve()
        self.classes: list[str] | None = None
        self.labels: list[int | None] | None = None
        if files is None:
            unreadable: list = []
            found = image_files(self.root, unreadable, exclude)
            files = [self.root.name] if self.root.is_file() else sorted(  # (image_files' order: by parts)
                [f.relative_to(self.root).as_posix() for f in found] + [rel for rel, _ in unreadable],
                key=lambda rel: PurePosixPath(rel).parts)
            if labels:
                if self.root.is_file():
                    raise AdatokError(f"--labels folders takes the labels from a folder's class sub-folders; "
                                      f"{root} is a file")
                self.classes = folder_classes(self.root, found)
                self.labels = [None if rel.endswith("/") else folder_label(rel, self.classes) for rel in files]
        self.files = files

    def fingerprint(self, count: int) -> list:
        """The first ``count`` files' sizes and modification times: a resumed run of a changed file
        is refused."""
        return _stamps(self.root, self.files[:count])

    def __len__(self) -> int:
        return len(self.files)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.root), **({} if self.classes is None else {"classes": self.classes})}

    def shard_items(self, start: int, stop: int) -> list:
        """The shard's file names (with labels: ``[name, label]`` pairs)."""
        if self.labels is None:
            return self.files[start:stop]
        return [[rel, label] for rel, label in zip(self.files[start:stop], self.labels[start:stop], strict=True)]

    def read(self, start: int, items: list) -> Iterator[Item]:
        base = self.root.parent if self.root.is_file() else self.root
        for i, item in enumerate(items):
            rel, label = (item, None) if isinstance(item, str) else item
            file = base / rel
            try:
                rel.encode()
            except UnicodeEncodeError:  # a name Linux allows: the shards' UTF-8 columns cannot hold it
                shown = rel.encode(errors="surrogateescape").decode(errors="backslashreplace")
                yield start + i, shown, None, None, "its name is not UTF-8: rename it"
                continue
            if rel.endswith("/"):  # a folder that could not be listed when the run was planned
                yield start + i, rel, None, None, "cannot list this folder (permissions?): its images were not read"
                continue
            try:
                yield start + i, rel, label, read_image(file), None
            except AdatokError as exc:  # (a link to nothing: the walker's reason, which names where it leads)
                yield start + i, rel, label, None, broken_link_reason(file) or skip_reason(str(exc), file)


class FashionMnistSource(Source):
    """Fashion-MNIST's 70,000 images, the training split first (ids ``train/00000`` ...
    ``test/09999``), with their labels."""

    kind = "fashion-mnist"
    SPLITS = (("train", 60_000), ("test", 10_000))

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return sum(n for _, n in self.SPLITS)

    def describe(self) -> dict:
        return {"kind": self.kind}

    def shard_items(self, start: int, stop: int) -> list[int]:
        return [start, stop]

    def _split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._arrays:  # read once per worker
            from ..datasets import fashion_mnist_arrays

            self._arrays[name] = fashion_mnist_arrays(name)
        return self._arrays[name]

    def read(self, start: int, items: list[int]) -> Iterator[Item]:
        a, b = items
        offset = 0
        for name, n in self.SPLITS:
            lo, hi = max(a, offset), min(b, offset + n)
            if lo < hi:
                images, labels = self._split(name)
                for g in range(lo, hi):
                    yield g, f"{name}/{g - offset:05d}", int(labels[g - offset]), images[g - offset], None
            offset += n


class ParquetSource(Source):
    """Rows of a Parquet dataset (one file, or every ``*.parquet`` under a folder, sorted) with
    the bytes of an image file in ``image_column``: a binary column, or a struct with a ``bytes``
    field (the Hugging Face ``Image`` feature). ``label_column`` (an integer column; by default
    ``label`` when there is one, which must then be of integers; :data:`NO_LABELS`: none) gives labels.
    The source id is ``FILE#ROW``. Rows whose bytes are not a readable 8-bit image (or are null),
    or whose label is outside the 64-bit signed integers, become bad inputs with their reason."""

    kind = "parquet"

    def __init__(self, root: str | os.PathLike[str], image_column: str | None = None,
                 label_column: str | None = None, files: list[list] | None = None):
        import pyarrow.parquet as pq

        self.root = Path(root).resolve()
        if files is None:
            given = (image_column is not None, label_column is not None)
            paths = [self.root] if self.root.is_file() else sorted(
                p for p in self.root.rglob("*.parquet") if not any(part.startswith((".", "_"))
                                                                    for part in p.relative_to(self.root).parts))
            if not paths:
                raise AdatokError(f"{root}: no .parquet files under it")
            files, schemas = [], []
            for p in paths:
                rel = p.name if p == self.root else p.relative_to(self.root).as_posix()
                try:
                    opened = pq.ParquetFile(p)
                except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
                    raise AdatokError(f"{p} is not a readable Parquet file ({exc}); remove it or fix it") from None
                files.append([rel, opened.metadata.num_rows])
                schemas.append(opened.schema_arrow)
            image_column, label_column = self._columns(schemas[0], image_column, label_column, paths[0], given=given)
            for p, schema in zip(paths[1:], schemas[1:]):  # every file: a column missing from a later one
                self._columns(schema, image_column, label_column or NO_LABELS, p,  # stopped the run half done
                              first=paths[0], given=given)
        self.files = files
        self.image_column = image_column
        self.label_column = label_column
        self._offsets = np.cumsum([0] + [n for _, n in files])

    @staticmethod
    def _columns(schema, image_column: str | None, label_column: str | None, path: Path, first: Path | None = None,
                 given: tuple[bool, bool] = (True, True)) -> tuple[str, str | None]:
        """The image and label columns of the file at ``path`` (``None``: found by name; a label
        column :data:`NO_LABELS`: none), checked; a later file of a folder is checked against the
        columns of the ``first`` (``given``: whether the user named each, for the message)."""
        import pyarrow as pa

        names = schema.names

        def binary(kind) -> bool:
            return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)

        if image_column is None:
            candidates = [n for n in ("image", "img", "bytes", "png", "jpg") if n in names] or [
                f.name for f in schema if binary(f.type)]
            if not candidates:
                raise AdatokError(f"{path}: no image column found among {names}; name it with --image-column")
            image_column = candidates[0]
        if image_column not in names:
            raise AdatokError(f"{path} has no column {image_column!r} (it has {names})"
                              + _unlike_first(first, given[0], "--image-column", "images"))
        kind = schema.field(image_column).type
        if not (binary(kind) or (pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0)):
            others = [f.name for f in schema if f.name != image_column and binary(f.type)]
            hint = (f"; its binary column {others[0]!r} may hold them: give --image-column {others[0]}" if others
                    else "; name the column that holds them with --image-column")
            raise AdatokError(f"{path}: column {image_column!r} is {kind}, not the bytes of image files (binary, "
                              f"or a struct with a 'bytes' field){hint}")
        if label_column is None and "label" in names:
            label_column = "label"  # (one of another type is refused below: its labels were dropped, silently)
        if label_column == NO_LABELS:
            return image_column, None
        if label_column is not None:
            if label_column not in names:
                raise AdatokError(f"{path} has no column {label_column!r} (it has {names})"
                                  + _unlike_first(first, given[1], "--label-column", "labels"))
            kind = schema.field(label_column).type
            if not pa.types.is_integer(kind):
                # (pandas writes an integer column with a missing value as floats; class names are strings)
                why = (" (pandas writes an integer column with a missing value as floats: cast it to integers, a "
                       "missing label as null, pandas' Int64)" if pa.types.is_floating(kind) else "")
                raise AdatokError(f"{path}: its label column {label_column!r} is {kind}, not integers{why}; labels "
                                  "are class numbers 0, 1, 2, ...: give --label-column none to tokenize the images "
                                  "without labels")
        return image_column, label_column

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def fingerprint(self, count: int) -> list:
        """Size and modification time of each file that holds one of the first ``count`` rows (see
        :meth:`FolderSource.fingerprint`)."""
        return _stamps(self.root, [rel for f, (rel, _) in enumerate(self.files) if self._offsets[f] < count])

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.root), "image_column": self.image_column,
                "label_column": self.label_column, "files": self.files}

    def shard_items(self, start: int, stop: int) -> list[list]:
        """``[file, first row, end row]`` pieces (a shard may span the end of one file and the next)."""
        out = []
        for f, (rel, _) in enumerate(self.files):
            lo, hi = max(start, int(self._offsets[f])), min(stop, int(self._offsets[f + 1]))
            if lo < hi:
                out.append([rel, lo - int(self._offsets[f]), hi - int(self._offsets[f])])
        return out

    def read(self, start: int, items: list[list]) -> Iterator[Item]:
        import pyarrow.parquet as pq

        base = self.root.parent if self.root.is_file() else self.root
        g = start
        columns = [self.image_column] + ([self.label_column] if self.label_column else [])
        for rel, a, b in items:
            try:
                pf = pq.ParquetFile(base / rel)
                groups, first, at = [], None, 0  # the row groups that hold rows a..b-1
                for r in range(pf.metadata.num_row_groups):
                    n = pf.metadata.row_group(r).num_rows
                    if at < b and at + n > a:
                        groups.append(r)
                        first = at if first is None else first
                    at += n
                table = pf.read_row_groups(groups, columns=columns).slice(a - first, b - a)
                images = table.column(self.image_column).to_pylist()
                labels = table.column(self.label_column).to_pylist() if self.label_column else [None] * len(images)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid ... for damaged pages
                for j in range(b - a):  # every row of the piece a bad input, and the run goes on
                    yield g, f"{rel}#{a + j}", None, None, f"cannot read its Parquet rows ({exc})"
                    g += 1
                continue
            for j, (data, label) in enumerate(zip(images, labels, strict=True)):
                sid = f"{rel}#{a + j}"
                if isinstance(data, dict):
                    data = data.get("bytes")
                try:
                    if data is None:
                        raise AdatokError("no image bytes (null)")
                    if label is not None and not -(2**63) <= label < 2**63:  # (a uint64 label: the shard's
                        raise AdatokError(f"label {label} is outside the 64-bit integers the shards hold")  # int64
                    image = read_image_bytes(data, sid)
                except AdatokError as exc:
                    yield g, sid, label, None, skip_reason(str(exc), sid)
                else:
                    yield g, sid, label, image, None
                g += 1


#: How a folder of image files is labelled (``--labels``): no labels, or by class sub-folder.
FOLDER_LABELS = ("none", "folders")


def open_source(src: str | os.PathLike[str], image_column: str | None = None,
                label_column: str | None = None, exclude: str | os.PathLike[str] | None = None,
                labels: str | None = None) -> Source:
    """The source ``src`` names: ``fashion-mnist``, a Parquet file or a folder holding
    ``*.parquet`` files (and no other files but hidden ones and those whose names start with
    ``_``, as ``_SUCCESS`` or ``_metadata`` beside Spark's and Dask's), or a folder of image files
    (``exclude``, ``labels`` (one of :data:`FOLDER_LABELS`): see :class:`FolderSource`)."""
    key = os.fspath(src)
    if labels is not None and labels not in FOLDER_LABELS:
        raise AdatokError(f"unknown --labels {labels!r}: use folders (each image's class sub-folder) or none")
    by_folder = labels == "folders"
    if by_folder and (key == "fashion-mnist" or Path(key).suffix == ".parquet" or label_column is not None):
        raise AdatokError("--labels folders is for a folder of image files (FOLDER/CLASS/...); "
                          + ("fashion-mnist has its own labels" if key == "fashion-mnist" else
                             "a Parquet source's labels are a column: --label-column NAME"))
    if key == "fashion-mnist" and (image_column is not None or label_column is not None):
        raise AdatokError("--image-column and --label-column are for Parquet sources; fashion-mnist has its own "
                          "images and labels")
    if key == "fashion-mnist":
        from ..datasets import load

        load("fashion-mnist", split="test", limit=1)  # installed? (the message says how to install it)
        return FashionMnistSource()
    path = Path(key)
    if not path.exists():
        raise AdatokError(f"no such source {key!r}: give a folder of images, a Parquet dataset or fashion-mnist")
    if path.is_file() and path.suffix == ".parquet":
        return ParquetSource(path, image_column, label_column)
    if path.is_dir():
        files = [f for f in image_files(path, skip=exclude)
                 if not any(part.startswith("_") for part in f.relative_to(path).parts)]
        if files and all(f.suffix == ".parquet" for f in files):
            if by_folder:
                raise AdatokError(f"--labels folders is for a folder of image files (FOLDER/CLASS/...); {key} holds "
                                  "Parquet files, whose labels are a column: --label-column NAME")
            return ParquetSource(path, image_column, label_column)
    if image_column is not None or label_column is not None:
        raise AdatokError("--image-column and --label-column are for Parquet sources; "
                          f"{key} is a folder of image files")
    return FolderSource(path, exclude=exclude, labels=by_folder)


def from_description(desc: dict) -> Source:
    """Re-open a source in a worker from :meth:`Source.describe` (without listing it again)."""
    kind = desc["kind"]
    if kind == "fashion-mnist":
        return FashionMnistSource()
    if kind == "folder":
        return FolderSource(desc["path"], files=[])
    if kind == "parquet":
        return ParquetSource(desc["path"], desc["image_column"], desc["label_column"], files=desc["files"])
    raise AdatokError(f"unknown source kind {kind!r}")
