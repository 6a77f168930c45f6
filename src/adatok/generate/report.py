"""Writing samples (a grid PNG, or a folder of PNG + ``.atk`` files and ``samples.npz``) and the
generation report: one HTML page (the evaluation report's style) with, for each model, sample
grids per class, the distribution of generated lengths per class, a completion strip, and the
table of FD-fmnist, class accuracy, mean length and speed (measured by
``python -m adatok.generate.evaluate``)."""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import AdatokError
from ..core.imageio import (atomic_write_bytes, check_new_file, folder_lock, folder_problem, image_suffixes, save_format,
                            write_image)


def grid(images: Sequence[np.ndarray], columns: int = 10, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Images of one size in rows of ``columns`` on a white background (H x W x C uint8)."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("grid: no images")
    h, w, c = images[0].shape if images[0].ndim == 3 else (*images[0].shape, 1)
    rows = -(-len(images) // columns)
    out = np.full((rows * (h + pad) + pad, min(columns, len(images)) * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, columns)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = \
            im.reshape(h, w, c)
    if scale > 1:
        out = np.repeat(np.repeat(out, scale, 0), scale, 1)
    return out


def sample_name(i: int) -> str:
    """The name (without suffix) :func:`write_samples` gives sample ``i``: ``0000``, ``0001``, ...,
    ``9999``, ``10000``: four digits at least, no more than the number needs."""
    return f"{i:04d}"


#: The files besides the numbered samples that :func:`write_samples` writes into a folder.
OTHER_FILES = ("samples.npz", "plain.png")

#: A name that may be a numbered sample's (:func:`sample_name`, then ``.png`` or ``.atk``).
_NUMBERED = re.compile(r"(\d{4,})\.(png|atk)")


def is_sample_file(name: str, n: int) -> bool:
    """Whether :func:`write_samples` may give a file of ``n`` samples in a folder the name ``name``."""
    numbered = _NUMBERED.fullmatch(name)
    return name in OTHER_FILES or (numbered is not None and int(numbered[1]) < n
                                   and sample_name(int(numbered[1])) == numbered[1])


def earlier_samples(out: Path) -> list[Path]:
    """The files of the samples an earlier run wrote into the folder ``out``, which a run with
    ``replace`` removes (:func:`write_samples`): ``samples.npz``, ``plain.png``, and the numbered
    samples ``0000.png`` ... as :func:`sample_name` names them, as many as that run wrote (its
    ``samples.npz`` says; without one, while the numbers go on from 0000 without a gap). No other
    file: not one past them, nor a name of other digits (``20240101.png``, ``007.png``, ``00012.png``)."""
    out = Path(out)
    count = _count_written(out)
    if count is None:
        count = 0
        while any((out / f"{sample_name(count)}.{ext}").is_file() for ext in ("png", "atk")):
            count += 1
    # (a folder of such a name is no sample: write_samples refuses to write over it)
    return [path for path in sorted(out.iterdir())
            if is_sample_file(path.name, count) and (path.is_file() or path.is_symlink())]


def check_untouched(out: Path, n: int, path: Path, what: str) -> None:
    """Refuse ``path`` (a file the run reads: ``what`` names it) when writing ``n`` samples into the
    folder ``out`` with ``replace`` would remove it (:func:`earlier_samples`) or write over it (a
    name :func:`is_sample_file`), by any name (a link to it elsewhere)."""
    out, path = Path(out), Path(path)
    if is_grid(out) or not out.is_dir() or not path.exists() or path.resolve().parent != out.resolve():
        return
    name = path.resolve().name
    if is_sample_file(name, n) or name in {p.name for p in earlier_samples(out)}:
        raise AdatokError(f"{what}, {path}, is inside --out {out}, whose earlier samples --force removes (and a new "
                          "sample would take its name): copy it elsewhere, or give another --out")


def _count_written(out: Path) -> int | None:
    """How many samples the run that wrote ``out/samples.npz`` wrote (None when it is not there or
    cannot be read)."""
    try:
        with np.load(out / "samples.npz", allow_pickle=False) as z:
            return len(z["labels"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None


#: The prefix of the folder inside OUT that a run writes its samples into before moving them in.
_WORK = ".adatok-samples-"


def is_grid(out: Path) -> bool:
    """Whether samples written to ``out`` make one grid image (a name with an image suffix:
    ``.png``, ``.jpg``, ...) rather than a folder of samples."""
    return Path(out).suffix.lower() in image_suffixes()


def check_samples_folder(out: Path, replace: bool = False) -> None:
    """Before sampling to ``out``, everything writing it later needs, with an :class:`AdatokError`
    naming what is wrong. For a grid (:func:`is_grid`): its folder exists, is a folder and is
    writable, it is not a folder itself, its suffix is a format Pillow writes, and unless
    ``replace`` no file or symbolic link (dangling or not) has its name already. For a folder of
    samples: not a file nor a dangling symbolic link, a new one can be made where it is, and one
    that holds anything is refused unless ``replace``: an earlier run of more samples left files
    this one would not overwrite, and the folder would mix the two runs (or a user's files would be
    written over)."""
    out = Path(out)
    if is_grid(out):
        if out.is_dir():
            raise AdatokError(f"{out} is a folder: give a new image name for the grid, or the folder without a suffix")
        _check_folder(out.parent)
        check_new_file(out, replace)
        save_format(out)  # a suffix Pillow cannot write is refused now, not after sampling
        return
    if out.is_symlink() and not out.exists():
        raise AdatokError(f"{out} is a symbolic link to {os.readlink(out)}, which does not exist: make that folder "
                          "first, or give another --out")
    if not out.exists():  # made when the samples are written: its nearest existing folder must take it
        # (`--out samples.atk` or a misspelt `grid.pgn` made a folder of that name; a suffix of digits only is a
        # folder's name, as `runs/2026.12.02` or `samples-v1.2`)
        if out.suffix and not out.suffix[1:].isdigit():
            raise AdatokError(f"{out} names a {out.suffix} file, which is no image Pillow writes: samples go to a "
                              "new folder without a suffix (one PNG and one .atk each, and samples.npz) or to one "
                              "grid image (.png, .jpg, ...)")
        why = folder_problem(out)
        if why is not None:
            raise AdatokError(why)
        return
    if not out.is_dir():
        raise AdatokError(f"{out} is a file: give a folder (or an image name, .png or .jpg ..., for a grid)")
    held = sum(1 for p in out.iterdir() if not p.name.startswith(_WORK))  # (a killed run's work folder: ours)
    if held and not replace:
        raise AdatokError(f"{out} is not empty ({held} entries): give a new or empty folder, or --force to replace "
                          "an earlier run's samples there (its numbered samples 0000.png, 0000.atk, ..., samples.npz "
                          "and plain.png are replaced; nothing else is)")
    _check_folder(out)


def _check_folder(folder: Path) -> None:
    """That ``folder`` is a folder files can be written into: "does not exist" and "is a file, not
    a folder" told apart (a file on the way, ``notes.txt/grid.png``, was said not to exist)."""
    if not folder.is_dir():
        on_the_way = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
        if on_the_way is not None and on_the_way.exists() and not on_the_way.is_dir():
            raise AdatokError(f"{on_the_way} is a file, not a folder")
        raise AdatokError(f"the folder {folder} does not exist: make it first")
    try:  # writable, before sampling (a read-only folder failed after the whole run, with a traceback)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise AdatokError(f"cannot write into {folder}: {exc.strerror or exc}") from None


def write_samples(out: Path, seqs: Sequence, images: Sequence[np.ndarray], labels: Sequence[int],
                  replace: bool = False, plain: np.ndarray | None = None) -> None:
    """``out`` with an image suffix (``.png``, ...): one grid; a file or a symbolic link of that name
    is refused unless ``replace``, and then replaced itself (the link, not what it points to). Otherwise
    a folder: ``NNNN.png`` (and ``NNNN.atk`` for token sequences) per sample (:func:`sample_name`),
    and ``samples.npz`` holding ``images`` (N x H x W x C uint8) and ``labels``; a folder that holds
    anything is refused unless ``replace`` (then the sample files of an earlier run are removed:
    :func:`earlier_samples`, no other file). Everything is checked first (:func:`check_samples_folder`),
    and every file is written atomically. ``plain``: a completion's cut file decoded plainly (zeros
    for the rest), shown beside its completions: the grid's first cell, or ``plain.png`` in the folder."""
    out = Path(out)
    if plain is not None:
        plain = np.asarray(plain).reshape(np.asarray(images[0]).shape)
    check_samples_folder(out, replace)
    if is_grid(out):
        # (a file there is replaced keeping its permissions; a symbolic link itself, not the file it points to)
        write_image(out, grid(([plain] if plain is not None else []) + list(images)), replace_link=True)
        return
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # (a place the checks could not foresee, /proc/x as root: a traceback)
        raise AdatokError(f"cannot make the folder {out}: {exc.strerror or exc}") from None
    # one run at a time writes a folder, and checks it again once it holds the lock (a second run waits, then
    # finds the first's samples: refused without --force); two at once both passed the check, each removed the
    # other's work folder, and the one that moved its files in last replaced the other's samples, or mixed
    # with them, both saying all went well
    try:
        with folder_lock(out, "another adatok generate", wait=LOCK_WAIT):
            _write_samples(out, seqs, images, labels, replace, plain)
    except BaseException:  # (an interrupt, a full disk: the folder made for the samples is not left empty)
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


#: Seconds :func:`write_samples` waits for another run writing into the same folder.
LOCK_WAIT = 120.0


def _write_samples(out: Path, seqs: Sequence, images: Sequence[np.ndarray], labels: Sequence[int], replace: bool,
                   plain: np.ndarray | None) -> None:
    """:func:`write_samples` into a folder, with the folder locked."""
    check_samples_folder(out, replace)
    for left in out.glob(_WORK + "*"):  # a run killed while writing (SIGKILL, the OOM killer) left its folder
        shutil.rmtree(left, ignore_errors=True)
    # every new file is written into a folder of its own inside ``out`` first; only when all are there is
    # the earlier run's sample files removed and the new ones moved in (its files were removed first, and a
    # write that failed half-way left neither run)
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=_WORK) as tmp:
            new = Path(tmp)
            for i, (seq, img) in enumerate(zip(seqs, images, strict=True)):
                write_image(new / f"{sample_name(i)}.png", img)
                if hasattr(seq, "to_bytes"):
                    (new / f"{sample_name(i)}.atk").write_bytes(seq.to_bytes())
            if plain is not None:
                write_image(new / "plain.png", plain)
            with open(new / "samples.npz", "wb") as f:
                np.savez(f, images=np.stack(images).astype(np.uint8), labels=np.asarray(labels, np.int64))
            blocked = [p.name for p in new.iterdir() if (out / p.name).exists() and not (out / p.name).is_file()]
            if blocked:  # (found before anything of the earlier run is touched)
                raise AdatokError(f"{out / blocked[0]} is not a file: a sample cannot be written there; move it")
            if replace:
                for old in earlier_samples(out):
                    if not (new / old.name).exists():
                        old.unlink()
            for path in sorted(new.iterdir()):
                os.replace(path, out / path.name)
    except OSError as exc:
        raise AdatokError(f"cannot write the samples into {out}: {exc.strerror or exc}") from None


def _png(img: np.ndarray, scale: int = 2) -> str:
    from PIL import Image

    img = np.asarray(img)
    if scale > 1:
        img = np.repeat(np.repeat(img, scale, 0), scale, 1)
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _svg_lengths(per_class: dict[int, list[int]], names: Sequence[str], width: int = 520, height: int = 180) -> str:
    """Box-and-whisker (p10, p25, median, p75, p90) of generated lengths per class, as inline SVG."""
    top = max(max(v) for v in per_class.values() if v) or 1
    n = len(per_class)
    step = (width - 60) / max(n, 1)
    parts = [f"<svg width='{width}' height='{height + 40}' xmlns='http://www.w3.org/2000/svg' font-size='10'>",
             f"<line x1='40' y1='{height}' x2='{width}' y2='{height}' stroke='#888'/>",
             f"<text x='2' y='10'>{top}</text><text x='2' y='{height}'>0</text>"]
    for i, (cls, values) in enumerate(sorted(per_class.items())):
        if not values:
            continue
        q = np.percentile(values, [10, 25, 50, 75, 90])
        y = [height - height * v / top for v in q]
        x = 45 + i * step + step / 2
        parts += [f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y[0]:.1f}' y2='{y[4]:.1f}' stroke='#444'/>",
                  f"<rect x='{x - step / 4:.1f}' y='{y[3]:.1f}' width='{step / 2:.1f}' height='{max(y[1] - y[3], 1):.1f}' "
                  "fill='#9cf' stroke='#246'/>",
                  f"<line x1='{x - step / 4:.1f}' x2='{x + step / 4:.1f}' y1='{y[2]:.1f}' y2='{y[2]:.1f}' stroke='#024' "
                  "stroke-width='2'/>",
                  f"<text x='{x:.1f}' y='{height + 14}' text-anchor='middle'>{html.escape(names[cls][:9])}</text>"]
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}
img{image-rendering:pixelated}.strip img{margin-right:6px;vertical-align:middle}code{background:#f4f4f4}"""


def write_report(out: Path, results: dict) -> Path:
    """The generation report ``out/index.html`` from ``results`` (what ``evaluate`` measured; also
    written beside it as ``results.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = results["classes"]
    rows = []
    for r in results["table"]:
        cells = [html.escape(r["row"]), r.get("params", ""), r.get("train_time", ""),
                 f"{r['fd']:.2f}" if r.get("fd") is not None else "", 
                 f"{100 * r['accuracy']:.1f}%" if r.get("accuracy") is not None else "",
                 f"{r['mean_length']:.1f}" if r.get("mean_length") is not None else "",
                 f"{r['images_per_s']:.2f}" if r.get("images_per_s") is not None else ""]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body = [f"<h1>Generation on Fashion-MNIST</h1><p>{html.escape(results['note'])}</p>",
            "<table><tr><th>model</th><th>params</th><th>train time</th><th>FD-fmnist</th><th>class accuracy "
            "(judge)</th><th>mean length (tokens)</th><th>images/s</th></tr>" + "".join(rows) + "</table>",
            f"<p>Reproduce: <code>{html.escape(results['command'])}</code></p>"]
    with_lengths = [m for m in results["models"] if m.get("length_per_class")]
    if with_lengths:  # mean generated length per class, one row a model
        head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
        body.append("<h2>Mean generated length per class (tokens)</h2><table><tr><th>model</th>" + head + "</tr>"
                    + "".join(f"<tr><td>{html.escape(m['name'])}</td>"
                              + "".join(f"<td>{m['length_per_class'].get(c, float('nan')):.1f}</td>"
                                        for c in range(len(names))) + "</tr>" for m in with_lengths) + "</table>")
    if results.get("reading"):
        r = results["reading"]
        per = r.get("decisions_per_token", 1)
        body.append(f"<h2>Reading: {html.escape(r['model'])}'s class head on the first n tokens of "
                    f"{r['images']:,} test images</h2><table><tr><th>tokens read (at most)</th><th>decisions</th>"
                    "<th>mean tokens read</th><th>payload bits</th><th>accuracy</th></tr>"
                    + "".join(f"<tr><td>{n}</td><td>{n * per}</td>"
                              f"<td>{r.get('tokens_read', {}).get(n, float('nan')):.1f}</td>"
                              f"<td>{r['payload_bits'][n]:.0f}</td>"
                              f"<td>{100 * r['accuracy'][n]:.1f}%</td></tr>" for n in r["lengths"]) + "</table>")
    for name, p in (results.get("prefixes") or {}).items():
        body.append(f"<h2>Class accuracy as {html.escape(name)} writes: the judge on the images the first n "
                    "tokens decode to</h2><table><tr><th>tokens</th><th>its samples</th><th>test images' "
                    "sequences</th></tr>"
                    + "".join(f"<tr><td>{n}</td><td>{100 * p['samples'][n]:.1f}%</td><td>{100 * p['test'][n]:.1f}%</td>"
                              "</tr>" for n in p["lengths"]) + "</table>")
    for m in results["models"]:
        body.append(f"<h2>{html.escape(m['name'])}</h2><p>{html.escape(m['about'])}</p>")
        for cls, imgs in sorted(m["grids"].items(), key=lambda kv: int(kv[0])):
            body.append(f"<div class='strip'><b>{html.escape(names[int(cls)])}</b><br>"
                        f"<img src='{_png(grid(imgs, columns=len(imgs)), 2)}'></div>")
        if m.get("lengths"):
            body.append("<h3>Generated lengths per class</h3>"
                        + _svg_lengths({int(k): v for k, v in m["lengths"].items()}, names))
        if m.get("completion"):
            c = m["completion"]
            body.append("<h3>Completion of a cut token file</h3><div class='strip'>"
                        f"real prefix ({c['prefix_tokens']} tokens), plain decode: <img src='{_png(c['plain'], 3)}'> "
                        "completions: " + "".join(f"<img src='{_png(im, 3)}'>" for im in c["samples"])
                        + f" original: <img src='{_png(c['original'], 3)}'></div>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>adatok generation</title>"
            f"<style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>")
    atomic_write_bytes(out / "index.html", page.encode())
    slim = {k: v for k, v in results.items() if k != "models"}
    slim["models"] = [{k: v for k, v in m.items() if k not in ("grids", "completion")} for m in results["models"]]
    atomic_write_bytes(out / "results.json", (json.dumps(slim, indent=2, default=float) + "\n").encode())
    return out / "index.html"
