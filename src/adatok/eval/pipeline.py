"""One call from a dataset to a finished report: what ``adatok eval`` and ``adatok demo`` run."""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.checks import is_whole
from ..core.errors import AdatokError, BudgetError
from .report import check_report_folder, check_report_spares, write_report
from .runner import DEFAULT_BASELINES, DEFAULT_BPP, Evaluation, _listed, check_budgets, evaluate, tokenizer

__all__ = ["GRID_TRAIN_LIMIT", "default_split", "run"]

#: At most this many images of a training split are used to fit the grid baseline's codebooks.
GRID_TRAIN_LIMIT = 5000


def default_split(data: str | Path, split: str | None) -> str | None:
    """The split :func:`run` evaluates: ``split`` as given, and for Fashion-MNIST without one its
    test split (``datasets.load`` would give both, train first)."""
    return "test" if split is None and str(data) == "fashion-mnist" else split


def run(data: str, out: str | Path, tokenizers: Sequence[Any] = ("wavelet",), *,
        bpp: Sequence[float] = DEFAULT_BPP, tokens: Sequence[int] = (),
        baselines: Sequence[str] = DEFAULT_BASELINES, split: str | None = None, limit: int | None = None,
        max_side: int | None = None, seed: int = 0, keep: int = 8, command: str | None = None,
        roi: str | Path | None = None, saliency: str = "auto", stream: bool = False,
        target: Any = None, links: Sequence[tuple[str, str]] = (),
        progress: Callable[[int, int, str], None] | None = None) -> tuple[Evaluation, Path]:
    """Evaluate tokenizers and baselines on a dataset and write ``out/results.csv``, ``out/plots/``,
    ``out/bd_rate.csv`` and ``out/report.html``; return the evaluation and the report's path.

    Args:
        data: ``"samples"``, ``"fashion-mnist"`` or a folder (see :func:`adatok.datasets.load`).
        out: the folder to write into: a new or empty one, or an earlier report's (created if
            missing; a folder holding anything else is refused, see :func:`check_report_folder`).
        split: the dataset split to evaluate; Fashion-MNIST defaults to ``"test"``. When the
            dataset has a training split, the grid baseline is fitted on it (at most
            :data:`GRID_TRAIN_LIMIT` images), otherwise crosswise on the evaluated images (see
            :class:`~adatok.eval.runner.GridFolds`).
        limit, max_side: evaluate only the first ``limit`` images, shrunk to ``max_side``.
        keep: how many images the report shows.
        command: the command line to print as the way to reproduce the run.
        roi: a region of interest for every image: ``"auto"`` (a saliency map of each, by the
            ``saliency`` method), a mask file (the same for every image) or a folder of masks (one
            per image, by file stem); see :mod:`adatok.eval.regions`. Masks are read, matched and
            checked before anything is written: an image without a mask, or with a mask of another
            size, is an error and ``out`` is not created.
        saliency: the saliency method for ``roi="auto"``.
        target: a quality target (:class:`adatok.Quality`): also give every image its own shortest
            prefix reaching it, with each tokenizer, and write ``out/lengths.csv`` with the report
            (:mod:`adatok.eval.lengths`; the reports in :attr:`Evaluation.lengths`). Without one, a
            ``lengths.csv`` of an earlier run in ``out`` is removed.
        stream: bpp budgets count the token stream alone (``header=False`` of
            :func:`adatok.eval.evaluate`); codecs sit them out.
        links: ``(text, relative address)`` of other reports the page links to (``adatok demo``'s
            learned runs).
        Other arguments as for :func:`adatok.eval.evaluate`.
    """
    from ..core.budget import Quality
    from ..datasets import data_reads, load, shrink
    from .lengths import length_reports, lengths_csv
    from .regions import mask_reads, mask_regions, saliency_regions

    # (every argument checked before any work: a bad one failed deep inside, or after the whole run)
    for value, what in ((data, "data"), (out, "out")):
        if not isinstance(value, str | os.PathLike):
            raise AdatokError(f"{what} is a name or a folder's path, got {value!r}")
        if not os.fspath(value).strip():  # ('' is the working folder to Path: --out '' wrote the report there)
            raise AdatokError(f"{what} is empty: give a name or a folder's path")
    if roi is not None and not isinstance(roi, str | os.PathLike):
        raise AdatokError(f"roi is 'auto', a mask file or a folder of masks, got {roi!r}")
    if target is not None and not isinstance(target, Quality):
        raise BudgetError(f"target is a quality target, Quality(psnr=..) or Quality(ssim=..), got {target!r}")
    bpp, tokens = check_budgets(bpp, tokens)
    baselines = _listed(baselines, "baselines", "names")
    if not is_whole(keep) or keep < 0:
        raise AdatokError(f"keep is a whole number >= 0, got {keep!r}")
    tokenizers = [tokenizer(t) for t in _listed(tokenizers, "tokenizers", "names or tokenizer objects")]
    split = default_split(data, split)
    out = Path(out)
    folder = Path(data) if str(data) not in ("samples", "fashion-mnist") else None
    if folder is not None and folder.is_dir() and (out.resolve().is_relative_to(folder.resolve()) or Path(
            os.path.abspath(out)).is_relative_to(os.path.abspath(folder))):  # (a link in it leading out: still read)
        raise AdatokError(f"the output folder {out} is inside the data folder {folder}: the report's plots would be "
                          "read as images by the next run over it; give an output folder outside it")
    check_report_folder(out)
    masks = roi is not None and str(roi) != "auto"
    # (masks are checked against their images' own size, then shrunk with them: a mask compared after
    # shrinking passed with any size of the image's aspect ratio)
    ds = load(data, split, limit=limit, max_side=None if masks else max_side)
    read = folder / split if folder is not None and split is not None else folder  # (what load read)
    if read is not None and not ds.images and not ds.skipped:  # (said "no images to evaluate (0 skipped: none
        # given)" until 2026-12-03)
        raise AdatokError(f"{read} holds no image files (its sub-folders searched too, hidden files left out); "
                          "give a folder of images")
    region, region_note = None, None
    if roi is not None and not masks:
        from ..core.saliency import check_method

        region = check_method(saliency)  # checked before anything is written
    elif masks:
        region, region_note = mask_regions(roi, ds.items(), max_side)
        if max_side is not None:
            for i, img in enumerate(ds.images):  # (one at a time: the full-size image goes as its copy comes)
                ds.images[i] = shrink(img, max_side)
    check_report_spares(out, [data_reads(read if read is not None else data),
                              mask_reads(roi) if masks else ([], [])])
    grid_train = None
    if "grid" in baselines and ds.train_split is not None:
        grid_train = load(data, ds.train_split, limit=GRID_TRAIN_LIMIT, max_side=max_side).images
    made = []  # the folders this run creates, deepest first: a failed run leaves none of them behind
    for path in (out, *out.parents):
        if path.exists() or path.is_symlink():
            break
        made.append(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(made)
        raise AdatokError(f"cannot create folder {out}: {exc.strerror or exc}") from exc
    split_txt = f" ({split})" if split else ""
    if command is None:
        command = _command(data, tokenizers, bpp, tokens, baselines, split, limit, max_side, seed, out, stream, roi,
                           saliency, target)
    config = {"data": str(data), "data_note": split_txt, "command": command, "links": list(links)}
    if region_note:
        config["roi"] = region_note
    try:
        ev = evaluate(ds.items(), tokenizers, bpp, tokens, baselines, seed=seed, grid_train=grid_train,
                      skipped=ds.skipped, keep=keep, progress=progress, roi=region, config=config,
                      header=not stream)
        if ev.config.get("grid") and grid_train is not None:
            ev.config["grid"]["fitted_on"] = f"the {ds.train_split} split"
        lengths = None
        if target is not None:  # measured before anything is written: the report and its lengths go in as one
            # over the images evaluated, as every other table of the report: a 1 x 1 image the run said it skipped
            # (too small) counted in the lengths table, its header's 648 bits a pixel raising the mean bpp to 217
            left_out = {name for name, _ in ev.skipped}
            kept = [(i, img) for i, img in ds.items() if i not in left_out]
            maps = None
            if roi is not None:  # the run's own maps
                given = region if isinstance(region, dict) else ev.regions
                need = [(i, img) for i, img in kept if i not in given]
                made_maps = saliency_regions(need, region) if need and isinstance(region, str) else {}
                maps = [given[i] if i in given else made_maps[i] for i, _ in kept]
            ev.lengths = length_reports(tokenizers, [img for _, img in kept], target, [i for i, _ in kept], roi=maps)
            lengths = lengths_csv(ev.lengths)
        return ev, write_report(ev, out, lengths=lengths)
    except BaseException:
        # made for this run, which wrote nothing (interrupted while writing too): not left behind
        _remove_empty([out / "plots", *made] if made else [])
        raise


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove each of ``folders`` (in the order given) that is empty; leave any other."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # (only an empty one)


def _command(data, tokenizers, bpp, tokens, baselines, split, limit, max_side, seed, out, stream=False,
             roi=None, saliency="auto", target=None) -> str:
    """The ``adatok eval`` command line of a run, quoted for a shell (a path with a space stays one argument)."""
    names = ",".join(t if isinstance(t, str) else t.name for t in tokenizers)
    parts = ["adatok", "eval", "--tokenizer", names, "--data", str(data)]
    if split:
        parts += ["--split", split]
    if bpp:
        parts += ["--bpp", ",".join(f"{b:g}" for b in bpp)]
    if tokens:
        parts += ["--tokens", ",".join(str(int(k)) for k in tokens)]
    parts += ["--baselines", ",".join(baselines) or "none"]
    if stream:
        parts.append("--stream")
    if limit is not None:
        parts += ["--limit", str(limit)]
    if max_side is not None:
        parts += ["--max-side", str(max_side)]
    parts += ["--seed", str(seed), "--out", str(out)]
    if roi is not None:
        parts += ["--roi", str(roi)] + (["--saliency", saliency] if str(roi) == "auto" else [])
    if target is not None:
        parts += ["--target-psnr", f"{target.psnr:g}"] if target.psnr is not None else \
            ["--target-ssim", f"{target.ssim:g}"]
        parts += ["--in-roi"] if target.region == "roi" else []
    return shlex.join(parts)
