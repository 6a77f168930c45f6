"""Regions of interest for a whole evaluation: one map per image, from saliency or from masks.

What ``adatok eval --roi`` takes, turned into ``{image id: H x W float map in [0, 1]}``:

* ``auto``: a saliency map of each image (:func:`adatok.core.saliency.saliency`, the method of
  ``--saliency``);
* a mask file (PNG): the same mask for every image;
* a folder of masks: one for each image. The mask of image ``ID`` (its path inside the data
  folder, e.g. ``sub/cat.png``; a sample photo's name, e.g. ``camera``) is the file in the mask
  folder with the same path up to the suffix (``sub/cat.*``); failing that, the one file anywhere
  in the mask folder with the same stem (``cat.*``), unless another image of the run has that stem
  too (``cat.png`` beside ``sub/cat.png``: each needs the mask of its path). Hidden files are left out. Two candidates
  for one image, or an image without a mask, is an error that lists them.

Masks are read with :func:`adatok.core.saliency.read_mask` (value = brightest channel / 255:
white inside, black outside) and must have their image's size, before ``max_side``
(``--max-side``, which shrinks the images) shrinks either; then a mask is shrunk the same way as
its image (:func:`adatok.datasets.shrink`), so masks drawn on the full-size images fit the shrunk
ones. A
pixel is inside the region where the map is at least
:data:`adatok.core.metrics.REGION_THRESHOLD` (0.5).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.errors import AdatokError

__all__ = ["check_region", "mask_regions", "region_maps", "saliency_regions"]

_SHOW_MISSING = 5  # how many images without a mask an error lists


def check_region(name: str, image: np.ndarray, region: np.ndarray, what: str) -> np.ndarray:
    """``region`` as a float64 ``H x W`` map, checked to be ``image``'s size (``what`` names it in
    the error, e.g. ``"mask masks/cat.png"``).

    Raises:
        AdatokError: the sizes differ, or the map is not an ``H x W`` array of values in [0, 1].
    """
    m = np.asarray(region, dtype=np.float64)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    h, w = image.shape[:2]
    if m.ndim != 2:
        raise AdatokError(f"{what} for image {name!r} has shape {m.shape}; give an H x W map")
    if m.shape != (h, w):
        raise AdatokError(f"{what} is {m.shape[0]}x{m.shape[1]} (H x W) but image {name!r} is {h}x{w}; "
                          "a mask must have its image's size")
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise AdatokError(f"{what} for image {name!r} holds values outside [0, 1]")
    return m


def saliency_regions(items: Sequence[tuple[str, np.ndarray]], method: str = "auto",
                     progress: Callable[[int, int, str], None] | None = None) -> dict[str, np.ndarray]:
    """``{id: saliency(image, method)}`` for ``(id, image)`` pairs.

    ``progress(done, total, what)`` is called before each map is computed.

    Raises:
        SaliencyError: an unknown method.
    """
    from ..core.saliency import saliency

    out: dict[str, np.ndarray] = {}
    for i, (name, img) in enumerate(items):
        if progress is not None:
            progress(i, len(items), f"saliency {name}")
        out[name] = saliency(img, method)
    return out


def _fitted_mask(name: str, image: np.ndarray, m: np.ndarray, path: Path, max_side: int | None) -> np.ndarray:
    """Mask ``m`` (read from ``path``) checked against ``image`` at the image's own size, then
    shrunk as :func:`adatok.datasets.shrink` shrinks the image (unchanged without ``max_side``).
    (Compared after shrinking, any mask of the image's aspect ratio had passed.)"""
    m = check_region(name, image, m, f"mask {path}")
    if max_side is None or max(m.shape) <= max_side:
        return m
    from ..datasets import shrink

    return shrink(np.rint(m * 255).astype(np.uint8), max_side)[:, :, 0] / 255.0


def _mask_index(folder: Path, roots: list | None = None) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """The files under ``folder`` (hidden ones left out) by path-without-suffix and by stem;
    ``roots`` gets each folder walked."""
    by_path: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for root, dirs, files in os.walk(folder):
        if roots is not None:
            roots.append(Path(root))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            p = Path(root) / f
            if f.startswith(".") or not p.is_file():
                continue
            rel = PurePosixPath(p.relative_to(folder).as_posix())
            by_path.setdefault(str(rel.with_suffix("")), []).append(p)
            by_stem.setdefault(rel.stem, []).append(p)
    return by_path, by_stem


def _find_mask(name: str, folder: Path, by_path: dict, by_stem: dict, stem_shared: bool = False) -> Path | None:
    """The mask of image ``name``: the one at its path (without suffix), else the one of its file stem,
    unless another image of the run has the same stem (``stem_shared``): ``sub/coffee.png`` took
    ``coffee.png``'s own mask, silently, an outside-user review found."""
    rel = PurePosixPath(name)
    keys = [(str(rel.with_suffix("")) if rel.suffix else name, by_path)] + ([] if stem_shared else [(rel.stem, by_stem)])
    for key, index in keys:
        found = index.get(key, [])
        if len(found) > 1:
            raise AdatokError(f"image {name!r} has {len(found)} masks in {folder}: "
                              f"{', '.join(str(p) for p in found[:3])}; keep one")
        if found:
            return found[0]
    return None


def mask_reads(path: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """What masks at ``path`` (a file, or a folder of masks) are read from, links resolved: the real
    folders a match walks (a file written into one is a candidate mask the next time: every mask
    there is protected, whichever images a run matches, ``--limit`` reads a few) and the masks
    that lie elsewhere (a linked file's target)."""
    path = Path(path)
    if not path.is_dir():
        return [], [path.resolve()]
    from ..datasets import broken_links

    roots: list[Path] = []
    by_path, _ = _mask_index(path, roots)
    folders = [r.resolve() for r in roots]
    broken = broken_links(folders)
    return folders + broken, [p.resolve() for found in by_path.values() for p in found if p.is_symlink()] + broken


def mask_regions(path: str | os.PathLike[str], items: Sequence[tuple[str, np.ndarray]],
                 max_side: int | None = None) -> tuple[dict[str, np.ndarray], str]:
    """Masks for ``(id, image)`` pairs from a mask file (one for all) or a folder of masks (one
    each, matched as the module says); return ``{id: map}`` and a description for the report.

    ``items`` are the images at their own size (before ``max_side`` shrinks them); the maps
    returned are shrunk by ``max_side`` as the images are (:func:`adatok.datasets.shrink`). Every
    image needs a mask of its own size, else nothing is returned: the error names the images without a mask (the first few) or the first image whose
    mask has another size, with both sizes.

    Raises:
        AdatokError: no such file or folder, images without a mask, two masks for one image, a
            mask of another size than its image, or a mask that cannot be read.
    """
    from ..core.saliency import read_mask

    path = Path(path)
    if not path.exists():
        raise AdatokError(f"no such mask file or folder: {path}; give --roi auto, a mask PNG or a folder of masks")
    if path.is_file():
        full = read_mask(path)
        return ({name: _fitted_mask(name, img, full, path, max_side) for name, img in items},
                f"mask {path} (the same for every image)")
    by_path, by_stem = _mask_index(path)
    stems = Counter(PurePosixPath(name).stem for name, _ in items)
    found = {name: _find_mask(name, path, by_path, by_stem, stems[PurePosixPath(name).stem] > 1) for name, _ in items}
    missing = [name for name, p in found.items() if p is None]
    if missing:
        listed = ", ".join(repr(n) for n in missing[:_SHOW_MISSING])
        listed += ", ..." if len(missing) > _SHOW_MISSING else ""
        first = PurePosixPath(missing[0])
        shared = stems[first.stem] > 1
        example = path / ((first.with_suffix("") if shared else PurePosixPath(first.stem)).as_posix() + ".png")
        raise AdatokError(f"no mask in {path} for {len(missing)} of {len(items)} images: {listed}; a mask is "
                          f"matched by the image's path or file stem, by its path alone when images share a stem "
                          f"(e.g. {example})")
    out = {}
    for name, img in items:
        out[name] = _fitted_mask(name, img, read_mask(found[name]), found[name], max_side)
    return out, f"masks in {path} (one per image, matched by path or file stem)"


def region_maps(spec: str | os.PathLike[str], items: Sequence[tuple[str, np.ndarray]], saliency: str = "auto",
                max_side: int | None = None,
                progress: Callable[[int, int, str], None] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """``{id: map}`` and a description for ``spec``: ``"auto"`` (saliency maps of ``saliency``'s
    method), a mask file or a folder of masks (:func:`mask_regions`: ``items`` at their own size)."""
    if str(spec) == "auto":
        return saliency_regions(items, saliency, progress), f"saliency ({saliency}) of each image"
    return mask_regions(spec, items, max_side)
