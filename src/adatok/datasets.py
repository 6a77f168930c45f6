"""Images to evaluate adatok on: the bundled sample photos, Fashion-MNIST and folders of images.

Every image is returned the way :func:`adatok.read_image` returns files: a C-contiguous ``uint8``
array ``H x W x C`` with ``C`` 1 (gray) or 3 (RGB).

* ``load("samples")`` -- the sample photos that ship inside scikit-image (nothing is downloaded);
* ``load("fashion-mnist", split="train" | "test")`` -- Fashion-MNIST from the Debian package
  ``dataset-fashion-mnist`` (IDX files under :data:`FASHION_MNIST_DIR`), with labels;
* ``load("path/to/folder")`` -- every image under a folder, searched recursively; files that
  cannot be read are skipped and listed in :attr:`Dataset.skipped`, with the reason;
* ``read_tokens("path/to/shards")`` -- the token sequences ``adatok tokenize-dataset`` wrote
  (Parquet shards, one row per image: see ``docs/scale.md``), as :class:`TokenRow` s with their
  labels (needs ``pyarrow``: ``pip install 'adatok[scale]'``).

>>> from adatok.datasets import load, sample_images
>>> [(name, img.shape) for name, img in sample_images(["camera"], max_side=64)]
[('camera', (64, 64, 1))]
>>> ds = load("samples", max_side=32, limit=2)
>>> ds.ids, ds[0].shape
(['astronaut', 'camera'], (32, 32, 3))
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.checks import JSON_ERRORS, is_bool, is_whole, shown
from .core.errors import AdatokError
from .core.imageio import as_image, read_image
from .core.sequence import TokenSequence

__all__ = ["DATASETS", "Dataset", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "SAMPLE_IMAGES", "TOKEN_COLUMNS",
           "TokenRow", "broken_link_reason", "folder_classes", "folder_label", "image_files", "is_token_shards", "load", "no_rows_error", "read_manifest", "read_tokens", "sample_images", "shrink", "skip_reason", "token_shards"]

#: Names of the bundled sample photos, in demo order; each is a function of ``skimage.data``.
SAMPLE_IMAGES: tuple[str, ...] = ("astronaut", "camera", "coffee", "chelsea", "rocket")

#: The named datasets :func:`load` knows (anything else is taken as a folder).
DATASETS: tuple[str, ...] = ("samples", "fashion-mnist")

#: Where the Debian package ``dataset-fashion-mnist`` puts the IDX files.
FASHION_MNIST_DIR: Path = Path("/usr/share/datasets/fashion-mnist")

#: Fashion-MNIST's class names, by label.
FASHION_MNIST_CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                          "Shirt", "Sneaker", "Bag", "Ankle boot")

_FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@dataclass
class Dataset:
    """Images of one dataset (or split), in a fixed order, with their ids and labels.

    Attributes:
        name: the dataset's name (``"samples"``, ``"fashion-mnist"``) or the folder's path.
        split: the split loaded (``"train"``, ``"test"``) or ``None`` for all of it.
        images: ``H x W x C`` uint8 arrays; sizes may differ.
        ids: one name per image (the photo's name, ``"test/00042"``, or the path inside the folder).
        labels: int64 class labels, one per image, or ``None`` for unlabelled data.
        classes: class names by label, or ``None``.
        skipped: ``(path, reason)`` of every file a folder held that could not be used.
        train_split: the name of a split of the same dataset that models may be fitted on without
            touching these images (``"train"`` for Fashion-MNIST's test split), else ``None``.
    """

    name: str
    split: str | None
    images: list[np.ndarray]
    ids: list[str]
    labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    train_split: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.images)

    def items(self) -> list[tuple[str, np.ndarray]]:
        """``(id, image)`` pairs, in order."""
        return list(zip(self.ids, self.images, strict=True))


def load(name: str | os.PathLike[str], split: str | None = None, *, limit: int | None = None,
         max_side: int | None = None) -> Dataset:
    """Load a dataset by name, or every image under a folder.

    Args:
        name: ``"samples"`` (the bundled photos), ``"fashion-mnist"``, or the path of a folder (or
            of a single image file). Folders are searched recursively in sorted order; hidden
            files and folders (names starting with ``.``) are left out.
        split: Fashion-MNIST: ``"train"`` (60,000 images), ``"test"`` (10,000) or ``None`` (both,
            train first). A folder: ``None``, or the name of a sub-folder to load instead.
            The sample photos have no splits: ``None`` only.
        limit: keep only the first ``limit`` images (of a folder: the first ``limit`` readable ones).
        max_side: shrink images so that their longer side is at most this many pixels.

    Returns:
        A :class:`Dataset`. For a folder, files that cannot be read (not an image, truncated,
        16-bit, over the pixel limit, ...) are not fatal: they are left out and listed in
        ``Dataset.skipped`` with the reason.

    Raises:
        AdatokError: an unknown name that is not a folder either, a split the dataset does not
            have, Fashion-MNIST missing (the message gives the ``apt-get`` command) or corrupt.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0):
        raise AdatokError(f"limit must be a whole number >= 0, got {limit!r}")
    if not isinstance(name, str | os.PathLike):  # (3, None: a raw TypeError from os.fspath)
        raise AdatokError(f"a dataset is a name ({', '.join(DATASETS)}) or a folder's path, got {name!r}")
    key = os.fspath(name)
    if key in ("samples", "fashion-mnist") and Path(key).is_dir():
        warnings.warn(f"{key!r} names the built-in dataset, not the folder {key!r} here: give ./{key} for the folder",
                      stacklevel=2)
    if key == "samples":
        if split is not None:
            raise AdatokError(f"the sample photos have no splits; use split=None, not {split!r}")
        names = SAMPLE_IMAGES[:limit] if limit is not None else SAMPLE_IMAGES
        pairs = sample_images(names, max_side=max_side)
        return Dataset("samples", None, [img for _, img in pairs], [n for n, _ in pairs])
    if key == "fashion-mnist":
        return _fashion_mnist(split, limit, max_side)
    path = Path(key)
    if not path.exists():
        raise AdatokError(f"unknown dataset {key!r}: use one of {', '.join(DATASETS)} or the path of a folder "
                          "of images")
    if split is not None:
        if (not isinstance(split, str) or len(Path(split).parts) != 1 or split in (".", "..")
                or Path(split).is_absolute()):  # (../other: a folder beside it, which nothing else checks)
            raise AdatokError(f"a split of folder {path} is the name of one of its sub-folders, got {split!r}")
        if not (path / split).is_dir():
            raise AdatokError(f"folder {path} has no sub-folder {split!r} to use as a split")
        path = path / split
    return _folder(path, split, limit, max_side)


def _fashion_mnist(split: str | None, limit: int | None, max_side: int | None) -> Dataset:
    if split not in (None, "train", "test"):
        raise AdatokError(f"fashion-mnist has the splits 'train' and 'test' (or None for both), not {split!r}")
    splits = ("train", "test") if split is None else (split,)
    images, labels, ids = [], [], []
    for s in splits:
        want = None if limit is None else limit - len(ids)
        if want is not None and want <= 0:
            break
        imgs, labs = fashion_mnist_arrays(s)
        if want is not None:
            imgs, labs = imgs[:want], labs[:want]
        images.extend(imgs)
        labels.append(labs)
        ids.extend(f"{s}/{i:05d}" for i in range(len(imgs)))
    if max_side is not None:
        images = [shrink(img, max_side) for img in images]
    lab = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return Dataset("fashion-mnist", split, images, ids, lab, FASHION_MNIST_CLASSES,
                   train_split="train" if split == "test" else None)


def fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of Fashion-MNIST as two arrays: images (N, 28, 28, 1) uint8, read-only, and labels
    (N,) int64 (:func:`load` gives them as a list of images; a reader of the whole split, as each
    worker of ``adatok tokenize-dataset``, stacked that list again)."""
    imgs = _read_idx(_fashion_file(_FASHION_FILES[split][0]), ndim=3)
    labs = _read_idx(_fashion_file(_FASHION_FILES[split][1]), ndim=1)
    if len(imgs) != len(labs):
        raise AdatokError(f"fashion-mnist {split}: {len(imgs)} images but {len(labs)} labels; reinstall "
                          "it with: apt-get install --reinstall dataset-fashion-mnist")
    return imgs[..., None], labs.astype(np.int64)


def _fashion_file(stem: str) -> Path:
    """The IDX file ``stem`` under :data:`FASHION_MNIST_DIR`, gzipped or not."""
    folder = Path(FASHION_MNIST_DIR)
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise AdatokError(f"Fashion-MNIST is not installed (no {stem}[.gz] in {folder}); install it with: "
                      "apt-get install dataset-fashion-mnist")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (``ndim`` dimensions) into a read-only uint8 array."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise AdatokError(f"cannot read {path} ({exc}); reinstall it with: "
                          "apt-get install --reinstall dataset-fashion-mnist") from exc
    header = 4 + 4 * ndim
    if len(data) < header or data[:2] != b"\0\0" or data[2] != 0x08 or data[3] != ndim:
        raise AdatokError(f"{path} is not an IDX file of {ndim}-D unsigned bytes; reinstall it with: "
                          "apt-get install --reinstall dataset-fashion-mnist")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if len(data) - header != int(np.prod(dims)):
        raise AdatokError(f"{path} holds {len(data) - header} bytes of data, its header says {dims}: the file "
                          "is truncated or corrupt; reinstall it with: apt-get install --reinstall "
                          "dataset-fashion-mnist")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def image_files(folder: str | os.PathLike[str], unreadable: list | None = None,
                skip: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files under ``folder`` that :func:`load` tries as images, in its order: every regular
    file, recursively, sorted, leaving out hidden files and folders (names starting with ``.``);
    ``[folder]`` when it is a file. ``unreadable``: a list that gets ``(id, reason)`` for each
    folder under it that could not be listed, its id its path inside ``folder`` ending in ``/``
    (without it such a folder's images were left out silently); ``skip``: a folder not to enter,
    wherever links lead (an output folder)."""
    path = Path(folder)
    return [path] if path.is_file() else sorted(_walk(path, unreadable, skip))


def folder_classes(folder: str | os.PathLike[str], files: Sequence[Path] | None = None) -> list[str]:
    """The classes of a folder of images: its sub-folders' names (sorted) when every image lies in
    one, ``["all"]`` when every image lies in the folder itself; :func:`folder_label` numbers an
    image by them. Files that are not images do not count: a README beside the class sub-folders,
    or a sub-folder of no images beside images (a learned tokenizer's checkpoint, ``adatok train
    --out FOLDER/tok``, refused such a folder: 'images both in itself and in sub-folders').
    ``files``: the folder's :func:`image_files`, when the caller has listed them already. One rule
    for the generators' folders of classes and ``adatok tokenize-dataset --labels folders``."""
    root = Path(folder)
    if not root.is_dir():
        raise AdatokError(f"{folder} is not a folder (give fashion-mnist, a folder of images, or token shards)")
    parts = [f.relative_to(root).parts for f in (image_files(root) if files is None else files)]
    if not parts:
        raise AdatokError(f"{folder} holds no files")
    nested = [len(p) > 1 for p in parts]
    if any(nested) and not all(nested):

        def is_image(p: tuple[str, ...]) -> bool:
            try:
                read_image(root.joinpath(*p))
            except AdatokError:
                return False  # (left out and counted, as the readers do)
            return True

        if any(is_image(p) for p, n in zip(parts, nested, strict=True) if not n):
            if not any(is_image(p) for p, n in zip(parts, nested, strict=True) if n):
                return ["all"]  # images in the folder itself, none below (a tokenizer's checkpoint folder: refused)
            raise AdatokError(f"{folder} has images both in itself and in sub-folders: put every image in a class "
                              "sub-folder (FOLDER/CLASS/...), or none")
        parts = [p for p, n in zip(parts, nested, strict=True) if n]  # beside the classes: a README, notes
    classes = sorted({p[0] for p in parts}) if len(parts[0]) > 1 else ["all"]
    if {"train", "test"} <= set(classes):  # (they were classes 'test' and 'train', each image's label its split)
        raise AdatokError(f"{folder} has sub-folders train and test: splits, not classes (the classes are the "
                          f"sub-folders of each); give {Path(folder) / 'train'} in its place (its sub-folders the "
                          "classes)")
    return classes


def folder_label(rel: str | os.PathLike[str], classes: Sequence[str]) -> int | None:
    """The label of the image at ``rel`` (its path inside a folder whose classes
    :func:`folder_classes` found): the number of its class sub-folder in ``classes``, or 0 for an
    image in the folder itself when the folder is one class (``["all"]``). ``None`` for a file in
    no class (a README beside the class sub-folders): no image, as :func:`folder_classes` checked."""
    parts = Path(rel).parts
    if len(parts) > 1:
        return classes.index(parts[0]) if parts[0] in classes else None
    return 0 if list(classes) == ["all"] else None


def _folder(path: Path, split: str | None, limit: int | None, max_side: int | None) -> Dataset:
    unreadable: list = []
    files = image_files(path, unreadable)
    images, ids = [], []
    skipped = list(unreadable)
    for file in files:
        if limit is not None and len(images) >= limit:
            break
        rel = file.name if file == path else file.relative_to(path).as_posix()
        try:
            img = read_image(file)
        except AdatokError as exc:
            skipped.append((rel, skip_reason(str(exc), file)))
            continue
        if max_side is not None:
            img = shrink(img, max_side)
        images.append(img)
        ids.append(rel)
    return Dataset(str(path), split, images, ids, skipped=skipped)


def data_reads(path: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """What a read of ``path`` (a folder, an image file, ``samples``, ``fashion-mnist``) reads, links
    resolved: the real folders it walks (itself and every folder under it, through linked folders
    too: :func:`_walk`; writing into any of them adds to the data; the built-in datasets' folders)
    and the real files it reads that lie elsewhere (a linked file's target; the others lie in those
    folders), and where links that lead nowhere yet lead (:func:`broken_links`)."""
    if str(path) == "fashion-mnist":
        return [Path(FASHION_MNIST_DIR).resolve()], []
    if str(path) == "samples":
        import skimage.data

        return [Path(skimage.data.__file__).resolve().parent], []
    path = Path(path)
    if not path.is_dir():
        return [], [path.resolve()]
    folders: list[Path] = []
    files = [p.resolve() for p in _walk(path, folders=folders) if p.is_symlink()]  # (the others: in a folder)
    broken = broken_links(folders)
    return folders + broken, files + broken


def broken_links(folders: Sequence[Path]) -> list[Path]:
    """Where the links in ``folders`` that lead nowhere yet lead (hidden ones left out): a file or
    folder written there is read by the next read of them."""
    out = []
    for folder in folders:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if not entry.name.startswith(".") and entry.is_symlink() and not os.path.exists(entry.path):
                    out.append(Path(os.path.realpath(entry.path)))
    return out


def _walk(folder: Path, unreadable: list | None = None, skip=None, folders: list | None = None) -> Iterator[Path]:
    """Regular files under ``folder``, recursively, leaving out hidden files and folders. Linked
    folders are followed (as linked files are read), each real folder once: a link back up the
    tree is not walked again. A link to a file or folder that the walk reaches under its own name
    anyway (inside ``folder``, not hidden) is left out: the file is read once, by its own path (a
    linked file was read twice, its copies falling in training and held-out parts alike; and which
    of a folder and a link to it was walked, and so named its images' ids and class, depended on
    the order the file system listed them). Sub-folders are walked in sorted order. See
    :func:`image_files` for ``unreadable`` and ``skip``; ``folders`` gets the real path of each
    folder walked."""
    seen: set[tuple[int, int]] = set()
    avoid = Path(os.path.realpath(skip)) if skip is not None else None
    home = Path(os.path.realpath(folder))

    def read_anyway(link: str) -> bool:  # a link whose target the walk reaches under the target's own name
        if not os.path.islink(link):
            return False
        real = Path(os.path.realpath(link))
        if not real.is_relative_to(home) or (avoid is not None and real.is_relative_to(avoid)):
            return False
        return not any(part.startswith(".") for part in real.relative_to(home).parts)

    def failed(exc: OSError) -> None:
        if unreadable is not None:
            rel = Path(exc.filename).relative_to(folder).as_posix()
            unreadable.append((f"{rel}/", f"cannot list this folder: {exc.strerror or exc}"))

    for root, dirs, files in os.walk(folder, followlinks=True, onerror=failed):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen or (avoid is not None and Path(os.path.realpath(root)).is_relative_to(avoid)):
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        if folders is not None:
            folders.append(Path(os.path.realpath(root)))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not read_anyway(os.path.join(root, d)))
        for f in sorted(files):
            p = Path(root) / f
            if not f.startswith(".") and p.is_file() and not read_anyway(str(p)):
                yield p
            elif (not f.startswith(".") and unreadable is not None and (reason := broken_link_reason(p))
                  and not (avoid is not None and Path(os.path.realpath(p)).is_relative_to(avoid))):  # (into the output)
                # (a link to nothing was left out silently, where every other file that is no image is listed)
                unreadable.append((p.relative_to(folder).as_posix(), reason))


def broken_link_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read when it is a symbolic link to nothing (``a link to X, which does not
    exist``: clearer than the "no such file" of opening it), else ``None``."""
    try:
        return f"a link to {os.readlink(path)}, which does not exist" if not os.path.exists(path) else None
    except OSError:  # (not a link)
        return None


def left_out_line(skipped: Sequence[tuple[str, str]], folder: str | os.PathLike[str], shown: int = 3) -> str:
    """One line that tells a training run's user which files of their ``folder`` it left out
    (``skipped``: ``(id, reason)`` pairs, as :attr:`Dataset.skipped`), the first ``shown`` with
    their reasons; ``""`` for none."""
    if not skipped:
        return ""
    listed = "; ".join(f"{name} ({reason})" for name, reason in skipped[:shown])
    more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"left out {len(skipped)} file{'s' if len(skipped) != 1 else ''} of {folder}: {listed}{more}"


def skip_reason(message: str, file: str | os.PathLike[str]) -> str:
    """Why ``file`` was skipped: its error ``message`` without the file's own path (the listing of
    skipped files already names it), in front or inside a sentence (``16-bit image (...) FILE: adatok
    reads ...``: the path, absolute in a tokenize-dataset run, stood in the middle of the reason)."""
    for prefix in (f"{file}: ", f"{file} ", str(file)):
        if message.startswith(prefix):
            rest = message[len(prefix):].strip()
            return (rest[3:] if rest.startswith("is ") else rest) or message
    for inside, instead in ((f" {file}: ", ": "), (f" {file} ", " ")):  # (at the end it is what the message is about)
        if inside in message:
            return message.replace(inside, instead, 1)
    return message


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale ``image`` (Lanczos) so that its longer side is at most ``max_side`` pixels.

    Images already small enough are returned unchanged. The result is ``H x W x C`` uint8.
    """
    from PIL import Image

    img = as_image(image)
    if isinstance(max_side, bool) or not isinstance(max_side, int | np.integer) or max_side < 1:
        raise AdatokError(f"max_side must be a whole number >= 1, got {max_side!r}")
    h, w, c = img.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray(img[:, :, 0] if c == 1 else img).resize(size, Image.Resampling.LANCZOS)
    return as_image(np.asarray(pil, dtype=np.uint8))


def sample_images(names: Sequence[str] | None = None,
                  max_side: int | None = None) -> list[tuple[str, np.ndarray]]:
    """The bundled sample photos as ``(name, image)`` pairs.

    Args:
        names: which photos, from :data:`SAMPLE_IMAGES` (default: all of them, in that order).
        max_side: if given, shrink each photo so that its longer side is at most this many pixels
            (for quick runs and tests).

    Raises:
        AdatokError: a name that is not one of :data:`SAMPLE_IMAGES`.
    """
    from skimage import data

    names = SAMPLE_IMAGES if names is None else tuple(names)
    unknown = [n for n in names if n not in SAMPLE_IMAGES]
    if unknown:
        raise AdatokError(f"unknown sample image {unknown[0]!r}: use one of {', '.join(SAMPLE_IMAGES)}")
    out = []
    for name in names:
        img = as_image(getattr(data, name)(), what=f"sample image {name!r}")
        if max_side is not None:
            img = shrink(img, max_side)
        out.append((name, img))
    return out


# --------------------------------------------------------------------------------------------
# Token shards (written by adatok tokenize-dataset)
# --------------------------------------------------------------------------------------------

#: The columns of a token shard, one row per image: its place in the source's order, the source
#: id (path inside the folder, ``train/00042``, ``FILE#ROW``), the label (null when the source has
#: none), the image shape ``[H, W, C]``, the tokenizer's name and version, the token count, the ids
#: (``list<int32>``), the ``.atk`` bytes and the PSNR of the sequence's decoding (``inf``: exact).
#: Positions are not stored: :meth:`TokenSequence.from_bytes` recomputes them from the ids.
TOKEN_COLUMNS: tuple[str, ...] = ("index", "source", "label", "shape", "tokenizer", "version", "n_tokens", "ids",
                                  "atk", "psnr")


@dataclass(frozen=True)
class TokenRow:
    """One image of a token shard folder: its sequence, label (``None`` when the source has no
    labels), source id, index in the source's order and PSNR (dB; ``inf`` when bit-exact)."""

    seq: TokenSequence
    label: int | None
    source: str
    index: int
    psnr: float


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AdatokError("reading token shards needs pyarrow: pip install 'adatok[scale]'") from None
    return pq


#: The file that marks a folder written by ``adatok tokenize-dataset`` and describes its run.
MANIFEST = "manifest.json"


#: The files a training run writes into its ``--out`` folder (left out of the digest of a data folder
#: that holds it: :func:`data_source`).
RUN_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "train_state.safetensors")


def data_source(data: str | os.PathLike[str], times: bool = True, skip=None) -> dict:
    """What a training run's ``--data`` is: ``{"data": "fashion-mnist"}``, or a folder's absolute path
    and a digest of what it holds (``"contents"``: a token shard folder's plan and shard list; an
    image folder's files, each its reader tries as an image, their sizes and, with ``times``, their
    modification times). The generator's token cache is keyed by it (``times``: a file rewritten is
    tokenized again), and a resumed run checks it without ``times`` (its held-out part is taken by the files' order: a file added or
    removed moves images between training and held-out, a copy of the folder does not). ``skip``: a
    learned tokenizer's own ``--out`` inside its ``--data``, whose checkpoint files (:data:`RUN_FILES`)
    are left out: they are no images, and they change at every save. Only those files: the folder's
    images are read as data all the same (with the whole folder left out, ``--out`` the data folder
    itself kept the digest of nothing, and a resume took any change of the data)."""
    import hashlib

    if str(data) == "fashion-mnist":
        return {"data": "fashion-mnist"}
    folder = Path(data).resolve()
    digest = hashlib.sha256()
    if is_token_shards(folder):  # what the run planned and wrote (a run with nothing to do rewrites the rest)
        manifest = read_manifest(folder)
        digest.update(json.dumps([manifest.get("plan"), manifest.get("shards")], sort_keys=True).encode())
    else:
        # every file the folder's reader tries (linked folders too; one without an image suffix may be an
        # image: a README added refuses a resume, the safe way)
        own = Path(os.path.realpath(skip)) if skip is not None else None
        for path in image_files(folder):
            if own is not None and path.name in RUN_FILES and Path(os.path.realpath(path.parent)) == own:
                continue
            st = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{st.st_size}".encode()
                          + (f"\0{st.st_mtime_ns}" if times else "").encode() + b"\n")
    return {"data": str(folder), "contents": digest.hexdigest()}


def check_out_outside(data: str | os.PathLike[str], out) -> None:
    """Refuse a generator's ``out`` folder inside its ``--data`` folder: the run's own folder would be
    read as data (a folder of classes gained a class, a flat folder became one with sub-folders, and
    every resume tokenized the corpus again). (A learned tokenizer's run reads image files only, and
    its checkpoint holds none: its ``--out`` may lie inside.)"""
    if str(data) == "fashion-mnist":
        return
    folder, target = Path(data).resolve(), Path(out).resolve()
    if target == folder or folder in target.parents:
        raise AdatokError(f"--out {out} is inside --data {data}: the run's files would be read as its data; "
                          "give an --out outside it")


def check_same_data(recorded: dict | None, data: str | os.PathLike[str], out, skip=None) -> None:
    """Refuse to resume the run in ``out`` when its data is not what it began with (``recorded``:
    :func:`data_source` without times, as the run's ``config.json`` keeps it; None for checkpoints
    made before it was kept): its held-out part would take in images trained on, or another folder
    of the same name would be read."""
    if recorded is None:
        return
    if _digest_of_nothing(recorded, data, skip):  # (nothing to check it against: resumed as before)
        return
    there = str(data) == "fashion-mnist" or Path(data).exists()
    now = data_source(data, times=False, skip=skip) if there else {"data": None}
    if now != recorded:
        raise AdatokError(f"{out} began on {recorded['data']} as it was then; "
                          + ("that folder is gone" if now["data"] is None else "its files have changed since (added, "
                             "removed or resized): the held-out part would take in images trained on")
                          + "; resume with the same data, or start over (--force, or another --out)")


def _digest_of_nothing(recorded: dict, data, skip) -> bool:
    """Whether ``recorded`` is what a run before 2026-12-02 with ``--out`` the data folder itself kept:
    the digest of no file (the whole folder was left out as the run's own), which any data matched."""
    import hashlib

    if skip is None or str(data) == "fashion-mnist" or recorded.get("contents") != hashlib.sha256().hexdigest():
        return False
    return os.path.realpath(data) == os.path.realpath(skip) == os.path.realpath(str(recorded.get("data")))


def is_token_shards(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` was written by ``adatok tokenize-dataset``: it has a ``manifest.json`` that
    holds the run's ``plan`` (a folder of images may have a manifest of its own)."""
    try:
        return read_manifest(folder) is not None
    except AdatokError:  # (a manifest.json of another kind, or not JSON: not ours)
        return False


def check_not_in_shards(folder: str | os.PathLike[str]) -> None:
    """Refuse, as training data, a sub-folder of a token shard folder (``DST/parquet``, which the
    Hugging Face example names as its ``data_dir``): it was read as a folder of images, and refused
    for holding no readable image, without a word of the folder meant."""
    path = Path(folder)
    if path.name in ("parquet", "webdataset", "_shards") and not is_token_shards(path) and is_token_shards(path.parent):
        raise AdatokError(f"{folder} is a part of the token shard folder {path.parent}: give {path.parent} itself "
                          "(it holds manifest.json)")


def read_manifest(folder: str | os.PathLike[str]) -> dict | None:
    """The ``manifest.json`` of a token shard folder, or ``None`` when it has none.

    Raises:
        AdatokError: the manifest is there but cannot be read.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, *JSON_ERRORS) as exc:
        raise AdatokError(f"cannot read {path} ({exc}); remove {Path(folder)} and run adatok tokenize-dataset "
                          "again") from None
    if not isinstance(info, dict) or "plan" not in info:
        raise AdatokError(f"{path} is not the manifest of adatok tokenize-dataset (another tool's file?); give "
                          "another folder")
    problem = _manifest_problem(info)
    if problem:  # (an entry of no name, "plan": null were raw KeyError / AttributeError; no shard list read short)
        raise AdatokError(f"{path} is not as adatok tokenize-dataset writes it ({problem}): was it edited? Put it "
                          f"back, or remove {Path(folder)} and run adatok tokenize-dataset again")
    return info


def _manifest_problem(info: dict) -> str | None:
    """What in a manifest's structure its readers cannot go by, or ``None``: its ``plan`` and (once
    its run is complete) ``counts`` must be objects, and a complete run's ``shards`` a list of
    entries, each an object with a ``name`` and a whole number of ``rows`` (a complete manifest
    without its list was read as the files found: a lost shard's rows went missing, silently)."""
    if not isinstance(info["plan"], dict):
        return f"its plan is {type(info['plan']).__name__}, not an object"
    if info.get("status") != "complete":
        return None
    if not isinstance(info.get("counts"), dict):
        return "its run is complete and has no counts"
    if not isinstance(info.get("shards"), list):
        return "its run is complete and lists no shards"
    for k, e in enumerate(info["shards"]):
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and is_whole(e.get("rows"))):
            return f"its shard entry {k} is not an object with a name and a number of rows"
    return None


def token_shards(folder: str | os.PathLike[str], complete: bool = True) -> list[Path]:
    """The Parquet shards (``parquet/part-NNNNN.parquet``) of a folder written by ``adatok
    tokenize-dataset``, in order. A finished run's shards are those its manifest lists, checked to be
    the whole run (:func:`whole_run_problem`); an unfinished run's (``complete=False``) the files found.

    Raises:
        AdatokError: the folder has no ``manifest.json`` (it is not such a folder); with
            ``complete``, its run has not finished (being written now, or interrupted: the message
            says which, and how to finish it); it holds no Parquet shards; its manifest lists a
            shard whose file is gone, or does not list the whole run (a gap in the images its
            shards hold, row counts that do not add up, shard files or records it does not list).
    """
    if not isinstance(folder, str | os.PathLike):  # (None, 3: a raw TypeError from pathlib)
        raise AdatokError(f"a token shard folder is given by its path, got {shown(folder)}")
    path = Path(folder)
    info = read_manifest(path)
    if info is None:
        what = ("does not exist" if not os.path.lexists(path) else "is a file, not a folder" if not path.is_dir()
                else "has no manifest.json: it is not a folder written by adatok tokenize-dataset")
        raise AdatokError(f"{path} {what} (token shards: the folder adatok tokenize-dataset wrote, which holds "
                          "manifest.json)")
    if complete and info.get("status") != "complete":
        if being_written(path):  # (rerunning the command now is refused: the running one holds the folder)
            raise AdatokError(f"{path} is being written by an adatok tokenize-dataset now; read it when that run "
                              "has finished (complete=False reads the shards written so far)")
        raise AdatokError(f"{path} holds an unfinished run ({info.get('status')}); run the same command again to "
                          f"finish it: {rerun_command(path, info)}")
    if "parquet" not in info.get("plan", {}).get("formats", ["parquet"]):
        raise AdatokError(f"{path} holds no Parquet shards (written with --format "
                          f"{' '.join(info['plan']['formats'])}): read its tar shards with webdataset, or tokenize "
                          "again with --format parquet")
    if info.get("status") == "complete":  # (read_manifest checked its list of shards)
        # the shards the run wrote, by its manifest (the files found were read: one lost in a copy was left out
        # silently, a stray one read); a shard of bad images only has no file
        files = [path / "parquet" / f"{s['name']}.parquet" for s in info["shards"] if s.get("rows")]
        gone = [f.name for f in files if not f.is_file()]
        if gone:
            raise AdatokError(f"{path} lacks {len(gone)} of its {len(files)} shards ({', '.join(gone[:3])}): copy them "
                              f"back, or run the same command again to write them: {rerun_command(path, info)}")
        problem = whole_run_problem(path, info)
        if problem:
            raise AdatokError(f"{path}/{MANIFEST} does not list the whole run: {problem}; run the tokenize-dataset "
                              f"command again (it lists every shard its records hold): {rerun_command(path, info)}")
        return files
    # by number: past part-99999 the names grow a digit, and as strings part-100000 sorted first
    return sorted((path / "parquet").glob("part-*.parquet"), key=lambda f: int(f.stem.split("-")[1]))


def whole_run_problem(folder: str | os.PathLike[str], info: dict) -> str | None:
    """What shows that the shard list of a finished run's manifest (``info``) is not the whole run,
    or ``None``: its shards' images must run from 0 to ``counts.images`` without a gap or an overlap
    (a run before 2026-12-01 kept no ranges: not checked), their rows add up to ``counts.written``,
    they are ``counts.shards`` in number, and the folder holds no shard record (``_shards/``) or
    Parquet shard it does not list. (A manifest missing one shard's entry was read short, silently.)"""
    entries = [e for e in info.get("shards") or [] if isinstance(e, dict)]
    counts = info.get("counts") if isinstance(info.get("counts"), dict) else {}
    listed = {e.get("name") for e in entries}
    path = Path(folder)
    stray = [f"{sub}/{f.name}" for sub, suffix in (("_shards", "json"), ("parquet", "parquet"))
             for f in sorted((path / sub).glob(f"part-*.{suffix}")) if f.stem not in listed]
    listing = f"{', '.join(stray[:3])}{f' and {len(stray) - 3} more' if len(stray) > 3 else ''}"
    there = f", while the folder holds {listing}, which it does not list" if stray else ""
    images = counts.get("images", (info.get("plan") or {}).get("images"))
    if entries and all(isinstance(e.get("start"), int) and isinstance(e.get("stop"), int) for e in entries):
        back = [k for k in range(1, len(entries)) if entries[k]["start"] < entries[k - 1]["start"]]
        if back:  # (two entries swapped were told as a shard missing, though both were listed)
            k = back[0]
            return (f"it lists its shards out of order ({entries[k - 1].get('name')} before "
                    f"{entries[k].get('name')}){there}")
        at, last = 0, None
        for e in entries:
            if e["start"] > at:
                where = f"between {last} and {e.get('name')}" if last else f"before {e.get('name')}"
                return f"it lists no shard of images {at}..{e['start'] - 1} ({where}){there}"
            if e["start"] < at:
                return f"{e.get('name')} begins at image {e['start']}, inside {last} (which ends at {at - 1}){there}"
            at, last = e["stop"], e.get("name")
        if isinstance(images, int) and at != images:
            return f"its shards hold images 0..{at - 1} of the run's {images}{there}"
    rows = sum(e.get("rows") for e in entries if isinstance(e.get("rows"), int))
    if isinstance(counts.get("written"), int) and rows != counts["written"]:
        return f"its shards hold {rows} rows where its counts say {counts['written']} were written{there}"
    if isinstance(counts.get("shards"), int) and len(entries) != counts["shards"]:
        return f"it lists {len(entries)} shards where its counts say {counts['shards']}{there}"
    if stray:
        return f"the folder holds {listing}, which it does not list (another run's?)"
    return None


def being_written(folder: str | os.PathLike[str]) -> bool:
    """Whether a run (``adatok tokenize-dataset``) holds ``folder``'s lock now
    (:func:`adatok.core.imageio.folder_lock`), found without waiting: a shared lock tried once and
    let go at once. ``False`` where the system has no such locks."""
    try:
        import fcntl
    except ImportError:  # (Windows)
        return False
    import errno

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def rerun_command(folder: str | os.PathLike[str], info: dict | None = None) -> str:
    """The command that finishes or repairs the token shard folder ``folder`` (its path as given):
    the command line its manifest (``info``, else read) records, and what to run it with: ``folder``
    as its DST (the recorded one is the folder its run wrote, which a copy is not, relative to where
    that run started), its source and checkpoint by the absolute paths the run resolved. For a run
    started from Python (no command recorded), the command's shape with its source and this folder.
    (The recorded line is shown, not rewritten: finding its DST among its words takes the command
    line's parser, a layer above this one.)"""
    import shlex

    info = read_manifest(folder) if info is None else info
    info = info or {}
    source = (info.get("plan") or {}).get("source") or {}
    src = source.get("path") if isinstance(source.get("path"), str) else None
    tok = info.get("tokenizer") if isinstance(info.get("tokenizer"), dict) else {}
    ref = tok.get("reference")
    ref = ref if isinstance(ref, str) and ref != tok.get("name") and Path(ref).is_absolute() else None
    command = info.get("command")
    if isinstance(command, str):
        with_ = [f"SRC {shlex.quote(src)}"] if src else []
        with_ += [f"DST {shlex.quote(os.fspath(folder))}"] + ([f"--tokenizer {shlex.quote(ref)}"] if ref else [])
        return f"{command} (with {', '.join(with_[:-1]) + ' and ' if len(with_) > 1 else ''}{with_[-1]})"
    shown = src or ("fashion-mnist" if source.get("kind") == "fashion-mnist" else "SRC")
    return (f"adatok tokenize-dataset {shlex.quote(shown)} {shlex.quote(os.fspath(folder))} with the options of its "
            f"run (see its {MANIFEST})")


def token_column(folder: str | os.PathLike[str], column: str) -> list:
    """One column (of :data:`TOKEN_COLUMNS`) of every row of a token shard folder, in order, read
    alone: e.g. ``"label"`` (``None`` where a row has none) or ``"shape"``. Each shard is checked
    as :func:`read_shard` checks it."""
    if column not in TOKEN_COLUMNS:  # (an unknown one was said to be a shard that cannot be read: "run again")
        raise AdatokError(f"token shards have the columns {', '.join(TOKEN_COLUMNS)}; got {column!r}")
    expected = ShardCheck.of(folder)
    return [v for f in token_shards(folder) for v in expected.read(f, [column]).column(column).to_pylist()]


@dataclass
class ShardCheck:
    """What a finished ``tokenize-dataset`` run recorded of its Parquet shards (each file's ``rows``,
    and the ``start``/``stop`` of its images' indexes; a run before 2026-12-01 kept no range) and its
    tokenizer's name: :meth:`read` refuses a shard that does not hold what was recorded."""

    folder: Path
    shards: dict[str, dict]
    tokenizer: str | None

    @classmethod
    def of(cls, folder: str | os.PathLike[str]) -> ShardCheck:
        """The records of ``folder`` (none for an unfinished run: its shards are read unchecked)."""
        info = read_manifest(folder) or {}
        entries = info.get("shards") if info.get("status") == "complete" else None
        tok = info.get("tokenizer") if isinstance(info.get("tokenizer"), dict) else {}
        shards = {f"{e['name']}.parquet": e for e in entries or [] if isinstance(e, dict) and "name" in e}
        return cls(Path(folder), shards, tok.get("name") if isinstance(tok.get("name"), str) else None)

    def read(self, file: str | os.PathLike[str], columns: Sequence[str]):
        """The ``columns`` of the shard ``file`` (a pyarrow table).

        Raises:
            AdatokError: pyarrow cannot read it (cut short, damaged, no Parquet file), or it holds
                other rows than its run recorded: another number of them, images outside the
                shard's range or out of order (another shard's copy), another tokenizer's tokens.
        """
        import pyarrow as pa

        file = Path(file)
        entry = self.shards.get(file.name) if file.parent.resolve() == (self.folder / "parquet").resolve() else None
        ranged = entry is not None and isinstance(entry.get("start"), int) and isinstance(entry.get("stop"), int)
        extra = [c for c in (["index"] if ranged else []) + (["tokenizer"] if self.tokenizer else []) if c not in columns]
        try:
            table = _pyarrow().read_table(file, columns=[*columns, *extra])
        except (OSError, ValueError, pa.ArrowException) as exc:  # (ArrowInvalid: a cut file; a raw traceback)
            raise AdatokError(f"cannot read the shard {file} ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                              + self._again()) from None
        problem = None
        if entry is not None and table.num_rows != entry.get("rows"):
            problem = f"holds {table.num_rows} row(s) where its run wrote {entry.get('rows')}"
        elif ranged:
            index = np.asarray(table.column("index").to_numpy(zero_copy_only=False))
            if len(index) and (index[0] < entry["start"] or index[-1] >= entry["stop"] or (np.diff(index) <= 0).any()):
                problem = (f"holds images {int(index.min())}..{int(index.max())} where its run wrote images "
                           f"{entry['start']}..{entry['stop'] - 1}, each once in order (another shard's copy?)")
        if problem is None and self.tokenizer:
            names = set(table.column("tokenizer").unique().to_pylist())
            if names - {self.tokenizer}:
                problem = f"holds tokens of {sorted(map(str, names - {self.tokenizer}))[0]!r}, not of {self.tokenizer!r}"
        if problem:
            raise AdatokError(f"the shard {file} {problem}: it was changed after its run; " + self._again())
        return table.select(list(columns))

    def _again(self) -> str:
        """The remedy an error names (the manifest read then only, not at every shard read)."""
        return ("run the tokenize-dataset command again (it rewrites a shard that is not as it wrote it): "
                f"{rerun_command(self.folder)}")


def load_shards_tokenizer(folder: str | os.PathLike[str]) -> None:
    """Make the tokenizer that wrote a shard folder's sequences the one their bytes find here
    (:func:`adatok.core.registry.find`, by name and version): when the tokenizer of its name found
    now is not the version its manifest records (none of that name, or a registered one of another
    version: a retrained checkpoint that keeps a shipped name), load the checkpoint folder the
    manifest records as its reference, if it is still there and still that version (shards of a
    tokenizer of your own are read without loading it first). A folder trained on since keeps its
    new version, and the rows are refused as another tokenizer's (:func:`shard_sequence`)."""
    from .core.registry import find, known, load as load_tokenizer, remember

    info = read_manifest(folder) or {}
    tok = info.get("tokenizer") if isinstance(info.get("tokenizer"), dict) else {}
    name, version, ref = tok.get("name"), tok.get("version"), tok.get("reference")
    if not isinstance(name, str):
        return
    try:  # (an unknown name is not looked up: load() would take a folder of that name in the working folder)
        here = find(name, version) if known(name) else None
    except AdatokError:  # (it cannot be loaded here)
        here = None
    if here is not None and (version is None or here.version == version):
        return
    if isinstance(ref, str) and ref != name and Path(ref).is_dir():  # (a reference equal to the name: registered)
        mine = load_tokenizer(ref)
        if getattr(mine, "name", None) == name and getattr(mine, "version", None) == version:
            remember(mine)  # (loading a folder remembers it; a cached one may not be again)


def read_tokens(folder: str | os.PathLike[str], shards: Sequence[str | os.PathLike[str]] | None = None,
                complete: bool = True, split: str | None = None, fixed_header: bool = False) -> Iterator[TokenRow]:
    """The images of a token shard folder (``adatok tokenize-dataset``), in the source's order,
    as :class:`TokenRow` s: ``row.seq`` a :class:`~adatok.TokenSequence` (decoded from the row's
    ``.atk`` bytes, positions recomputed), ``row.label``, ``row.source``.

    Args:
        folder: the folder (its ``manifest.json`` is checked, see :func:`token_shards`).
        shards: read only these of its shards, in this order: names (``part-00003``) or paths
            (default: all of them, in order); each at most once (a shard given twice is refused).
        complete: refuse a folder whose run has not finished (``False``: read the shards written so
            far, as found, unchecked against a manifest that does not list them yet).
        split: ``"train"`` or ``"test"``, the whole run's split (:func:`split_places`), of the
            ``shards`` given their rows in it: Fashion-MNIST's ``train/`` and ``test/`` ids keep
            their splits (and so do both sub-folders of a folder that has them), any other source is
            split as training splits a folder of images: every 20th row is ``"test"``
            (:func:`held_out`), the rest ``"train"``. Only the split's rows are decoded.
        fixed_header: each wavelet sequence re-expressed from the top bit-plane of its shape, as a
            stepper started from the shape (``tok.stepper([shape])``) writes it
            (:func:`fixed_header_sequence`); the shards hold ``encode``'s sequences, which start at
            each image's own top plane. Use it to train a model that a stepper then samples from.

    Raises:
        AdatokError: besides :func:`token_shards`' errors, a shard that cannot be read or does not
            hold what its run wrote (see :meth:`ShardCheck.read`), a row whose bytes are no sequence;
            with ``fixed_header``, a row coded with pixel replication (:func:`fixed_header_sequence`).

    Example:
        >>> rows = read_tokens("out/fmnist-tokens")                 # doctest: +SKIP
        >>> [(len(r.seq), r.label) for r in itertools.islice(rows, 2)]  # doctest: +SKIP
        [(312, 9), (655, 2)]
    """
    if split is not None:
        check_split(split)
    if not is_bool(fixed_header):  # (a config's "false" would be taken as True)
        raise AdatokError(f"fixed_header is True or False, got {fixed_header!r}")
    every = token_shards(folder, complete)
    files = every if shards is None else _named_shards(folder, every, shards)
    load_shards_tokenizer(folder)
    check = ShardCheck.of(folder)
    # the whole run's split (of the shards given, their rows in it), found from the ids alone
    keep = None if split is None else dict(zip(every, split_rows_of_shards(folder, every, check, split), strict=True))
    for file in files:
        table = check.read(file, ["index", "source", "label", "atk", "psnr"])
        rows = range(table.num_rows) if keep is None else keep[file].tolist()
        if keep is not None:  # (only the split's rows are decoded: a test split of 50 rows decoded all 60,000)
            table = table.take(keep[file])
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
        for row, index, source, label, atk, psnr in zip(
                rows, cols["index"], cols["source"], cols["label"], cols["atk"], cols["psnr"], strict=True):
            yield TokenRow(shard_sequence(atk, file, row, source, fixed_header=fixed_header), label, source, index,
                           psnr)


def no_rows_error(folder: str | os.PathLike[str]) -> AdatokError:
    """The error of a reader that needs rows (a training run, the torch dataset) given a token shard
    folder whose finished run wrote none: its source held no file, or only bad inputs (listed in its
    manifest). One message for every such reader (the torch dataset said "has no Parquet shards (was
    it written with --format webdataset only?)", which was not the cause)."""
    return AdatokError(f"{folder} holds no rows: its tokenize-dataset run found no image to write")


def check_split(split) -> str:
    """``split`` if it names a split of token shards (``"train"`` or ``"test"``), else an
    :class:`AdatokError` (checked before any row is read)."""
    if split not in ("train", "test"):
        raise AdatokError(f"token shards have the splits 'train' and 'test' (or None for all), not {split!r}")
    return split


def held_out(n: int) -> np.ndarray:
    """``(n,)`` bool: which of ``n`` images (in a folder's sorted order, or a token shard folder's
    rows) are held out for validation: every 20th (the 20th, 40th, ...), or the last when there are
    fewer than 20, so that every class of a folder of classes has some (the last 5% of a sorted
    listing were all of its last class). The one rule of every split of a user's images: the
    generators' folders, the learned tokenizer's, and token shards without ``train/`` and ``test/``
    ids (:func:`split_places`)."""
    test = np.arange(n) % 20 == 19
    if n and not test.any():
        test[-1] = True
    return test


def split_places(sources: Sequence[str], split: str, folder: str | os.PathLike[str]) -> np.ndarray:
    """Where the rows of ``split`` stand among rows whose source ids are ``sources`` (in the source's
    order), as ascending int64 indexes: the one rule of the token shards' splits, for
    :func:`read_tokens` and the torch dataset (:class:`adatok.scale.loader.TokenShardDataset`).
    Fashion-MNIST's rows (ids ``train/00042``, ``test/00042``), and a source whose ids start with
    both ``train/`` and ``test/`` (a folder with those two sub-folders), keep their splits:
    ``"test"`` is the rows whose id starts with ``test/`` and ``"train"`` every other row. Any other
    source is split as a folder of images is (:func:`held_out`: every 20th row is ``"test"``); a
    single sub-folder named ``test`` is a class like any other (it was the whole test split).

    Raises:
        AdatokError: ``split`` is neither split (:func:`check_split`); a source split by
            :func:`held_out` holds fewer than 2 rows (``folder`` names it in the message).
    """
    check_split(split)
    if not len(sources):  # (a run that wrote nothing was told "a training and a test split need at least 2")
        raise no_rows_error(folder)
    plan = (read_manifest(folder) or {}).get("plan") or {}
    kind = (plan.get("source") or {}).get("kind")
    train = np.array([s.startswith("train/") for s in sources], bool)
    test = np.array([s.startswith("test/") for s in sources], bool)
    if kind == "fashion-mnist" or (train.any() and test.any()):
        return np.flatnonzero(test == (split == "test")).astype(np.int64)
    if len(sources) < 2:
        raise AdatokError(f"{folder} holds one row: a training and a test split need at least 2")
    return np.flatnonzero(held_out(len(sources)) == (split == "test")).astype(np.int64)


def split_rows_of_shards(folder: str | os.PathLike[str], files: Sequence[Path], check: ShardCheck,
                         split: str) -> list[np.ndarray]:
    """Per shard of ``files`` (all the run's shards, in order), the rows of ``split`` in it, as
    ascending int64 indexes: :func:`split_places` over the whole run's source ids (read alone, each
    shard checked by ``check``). One reading of a split for :func:`read_tokens` and the torch dataset."""
    sources = [check.read(f, ["source"]).column("source").to_pylist() for f in files]
    starts = np.cumsum([0] + [len(s) for s in sources])
    places = split_places([s for part in sources for s in part], split, folder)
    return [places[(places >= a) & (places < b)] - a for a, b in zip(starts[:-1], starts[1:], strict=True)]


def no_split_rows_error(folder: str | os.PathLike[str], split: str) -> AdatokError:
    """The error of a reader that needs rows of ``split`` (a training run, the torch dataset given
    ``split``) and finds none in a token shard folder, saying why (a Fashion-MNIST run with
    ``--limit`` up to 60,000 holds no test image; the runs said "holds no test sequences", and not
    why)."""
    plan = (read_manifest(folder) or {}).get("plan") or {}
    if (plan.get("source") or {}).get("kind") == "fashion-mnist" and plan.get("limit") and split == "test":
        why = (f": its run took the first {plan['limit']:,} of Fashion-MNIST's 70,000 images, and the test split is "
               "the last 10,000; tokenize it again without --limit (or with --limit above 60,000)")
    else:
        why = (" (the rows whose source id starts with test/)" if split == "test" else
               " (the rows whose source id does not start with test/)")
    return AdatokError(f"{folder} holds no rows of the {split!r} split{why}")


def split_rows(folder: str | os.PathLike[str], split: str) -> list[TokenRow]:
    """The rows of ``split`` of a token shard folder (see :func:`read_tokens`) for a training run,
    which needs some: none is :func:`no_split_rows_error`."""
    rows = list(read_tokens(folder, split=split))
    if not rows:
        raise no_split_rows_error(folder, split)
    return rows

def shard_sequence(atk: bytes, file: Path, row: int, source: str | None = None,
                   ids: np.ndarray | None = None, fixed_header: bool = False) -> TokenSequence:
    """The sequence of one shard row's ``.atk`` bytes; bytes that are no sequence are an
    :class:`AdatokError` naming the shard and the row (the container's error named neither), and
    bytes of a version of their tokenizer other than the one found here say so and why (another
    version's bytes may fail on its payload codec before its version is compared: they were called
    damaged). ``ids``: the row's ``ids`` column, which must be the sequence's ids (the torch dataset
    yields that column beside positions recomputed from the bytes: an ``ids`` column edited after
    the run gave ids that did not match their positions, silently); other ids are the same error
    as damaged bytes. ``fixed_header``: the sequence re-expressed with the header of its shape
    (:func:`fixed_header_sequence`), after ``ids`` are checked against the bytes'."""
    from .core.errors import TokenizerMismatchError

    where = _row_of(file, row, source)
    try:
        seq = TokenSequence.from_bytes(atk)
    except AdatokError as exc:  # (a mismatch is not damage: the tokenizer loaded now is not the one that wrote it)
        if isinstance(exc, TokenizerMismatchError) or _another_version(atk):
            # (the container's own remedy, --tokenizer FOLDER, is no option of the training commands: not repeated)
            raise AdatokError(f"{where} was written by another tokenizer than the one loaded now: "
                              f"{_why_another(file.parent.parent)}; tokenize again into a new folder, or use the "
                              "checkpoint as it was when they were written") from None
        raise damaged_row_error(file, row, f"holds no token sequence ({exc})", source) from None
    if ids is not None and not np.array_equal(ids, seq.ids):
        n = min(len(ids), len(seq))
        differ = np.flatnonzero(np.asarray(ids[:n]) != seq.ids[:n])
        at = int(differ[0]) if len(differ) else n
        raise damaged_row_error(file, row, f"holds ids that are not those of its .atk bytes ({len(ids)} ids and "
                                           f"{len(seq)} tokens, first different at token {at})", source)
    return fixed_header_sequence(seq, where) if fixed_header else seq


def fixed_header_sequence(seq: TokenSequence, where: str = "the sequence") -> TokenSequence:
    """``seq`` as a stepper started from its shape writes it: a wavelet tokenizer's sequence from
    ``encode`` starts at its image's own top bit-plane, and ``tok.stepper([shape])`` at the shape's
    (``tok.top_plane(shape)``, the header of ``encode(..., fixed_header=True)``); the ids of both
    are legal in either, so a model trained on the first and sampled with the second reads every
    position a plane or more off, without an error. Re-expressed by the tokenizer's
    ``with_top_plane`` (the planes above the image's own first; every prefix decodes as before).
    A tokenizer without bit-planes (the learned one: one header for every image of a shape)
    returns ``seq`` itself.

    Raises:
        AdatokError: ``seq``'s header holds more than the shape's top plane can change: a pixel
            replication (an image coded at a smaller size, ``params["rep"]``) or a region of
            interest, which no stepper started from a shape writes; ``where`` names it.
    """
    from .core.registry import maker

    tok = maker(seq)
    refix = getattr(tok, "with_top_plane", None)
    if refix is None:
        return seq
    want = _stepper_params(tok, tuple(seq.shape))
    other = sorted(k for k in set(seq.params) | set(want) if k != "nmax" and seq.params.get(k) != want.get(k))
    if other:
        why = {"rep": "a pixel replication (coded at a smaller size)", "roi": "a region of interest"}
        raise AdatokError(
            f"{where} cannot take the fixed header of its shape: its header holds "
            f"{', '.join(why.get(k, f'{k}={seq.params.get(k)!r}') for k in other)}, which no stepper started from "
            f"its shape writes (its header: {want}); leave the row out, or encode its image with "
            "tok.encode([image], fixed_header=True)")
    return refix(seq)


@functools.lru_cache(maxsize=64)
def _stepper_params(tok, shape: tuple[int, ...]) -> dict:
    """The header of a sequence a stepper of ``tok`` started from ``shape`` writes."""
    return dict(tok.stepper([shape]).sequences()[0].params)


def _row_of(file: Path, row: int, source: str | None = None) -> str:
    """How an error names a row of a shard: ``row 3 (train/00003) of the shard FILE``."""
    return f"row {row}{f' ({source})' if source else ''} of the shard {file}"


def damaged_row_error(file: str | os.PathLike[str], row: int, what: str, source: str | None = None) -> AdatokError:
    """The error of the row ``row`` (source id ``source``) of the Parquet shard ``file`` changed after
    its run: ``what`` is wrong with it (``holds no token sequence (...)``), and the remedy, the run's
    command (:func:`rerun_command`), which rewrites such a shard."""
    file = Path(file)
    return AdatokError(f"{_row_of(file, row, source)} {what}: the shard was damaged after its run; run the "
                       "tokenize-dataset command again (it rewrites such a shard): "
                       f"{rerun_command(file.parent.parent)}")


def _another_version(atk: bytes) -> bool:
    """Whether ``atk``'s header names a tokenizer whose version found here (:func:`adatok.core.registry.find`)
    is not the one it names."""
    from .core.registry import find, known
    from .core.sequence import parse_container

    try:
        header = parse_container(atk)[0]
        name, version = header["tokenizer"], header.get("version")
        return known(name) and find(name, version).version != version
    except Exception:  # noqa: BLE001  (no header to go by: damage, as the caller says)
        return False


def _why_another(folder: Path) -> str:
    """Why the tokenizer a shard folder's sequences find here is not the version that wrote them (see
    :func:`load_shards_tokenizer`), by what its manifest records as the tokenizer's reference."""
    tok = (read_manifest(folder) or {}).get("tokenizer")
    tok = tok if isinstance(tok, dict) else {}
    ref = tok.get("reference")
    if isinstance(ref, str) and ref != tok.get("name"):
        if Path(ref).is_dir():
            from .core.registry import load as load_tokenizer

            try:
                now = f" (it is version {load_tokenizer(ref).version} now)"
            except AdatokError:
                now = ""
            return (f"the checkpoint {ref} they were written with (version {tok.get('version')}) was trained on "
                    f"since{now}, and decodes them to other images")
        return (f"the checkpoint {ref} they were written with is gone, and the tokenizer of that name here decodes "
                "them to other images")
    return (f"the tokenizer {tok.get('name')!r} here is another version than the one they were written with (another "
            "adatok, or another checkpoint of that name), and decodes them to other images")


def _named_shards(folder, every: list[Path], shards) -> list[Path]:
    """``shards`` (names ``part-00003`` / ``part-00003.parquet``, or paths) as shards of ``folder``, in
    the order given; a file that is none of them is refused (a name was looked up in the working
    folder, where another folder's shard of that name was read as this one's), and so is one given
    twice (its rows were read twice)."""
    if isinstance(shards, str | os.PathLike):
        shards = [shards]
    mine = {f.resolve(): f for f in every}
    files: list[Path] = []
    for s in shards:
        if not isinstance(s, str | os.PathLike):  # (3: a raw TypeError from pathlib)
            raise AdatokError(f"shards are given by name (part-00003) or path, got {s!r}")
        path = Path(s)
        if len(path.parts) == 1:  # a bare name: the folder's shard of that name
            path = Path(folder) / "parquet" / (path.name if path.suffix == ".parquet" else f"{path.name}.parquet")
        if path.resolve() not in mine:
            raise AdatokError(f"{s} is not a Parquet shard of {folder} (its shards are {every[0].name if every else 'none'}"
                              f"{f' .. {every[-1].name}' if len(every) > 1 else ''}, given by name or path)")
        if mine[path.resolve()] in files:  # (its rows were read twice)
            raise AdatokError(f"shards= gives the shard {mine[path.resolve()].stem} of {folder} twice ({s}); give "
                              "each shard once")
        files.append(mine[path.resolve()])
    return files
