"""The documentation cannot drift from the code.

* ``docs/wavelet-language.md``: the alphabet table, the ``pos`` table, and the worked example are
  checked against the real transform, encoder and decoder. The example has three checked blocks:
  its coefficients, its whole token stream, and its decoded prefixes. Each checked block is the
  fenced block right after an HTML comment ``<!-- checked by tests/test_docs.py: NAME -->``. The
  example's input is read from the doc: the tokenizer and image at the top of the ``example``
  block, and the prefix lengths in the ``prefixes`` block. Everything else in the blocks is
  rendered from the code and must match the doc exactly.

  After a deliberate change to the coder, regenerate the checked blocks with
  ``.venv/bin/python tests/test_docs.py --write``. Then reread the prose around them (the
  plane-by-plane walkthrough is not checked).
* ``README.md``: its ```` ```python ```` blocks run in order, in one namespace, in a temporary
  folder. The test is skipped when there is no README or no such block. A block right after
  ``<!-- test: skip -->`` does not run, and neither does one that needs torch (this suite never
  imports torch).
"""

from __future__ import annotations

import difflib
import doctest
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import adatok
from adatok.wavelet.layout import BAND_NAMES, POS_FIELDS, make_layout
from adatok.wavelet.spiht import TOKEN_NAMES
from adatok.wavelet.transforms import band_shapes, default_levels, dwt2, rct_forward

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = ROOT / "docs" / "wavelet-language.md"
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
BLOCKS = ("coefficients", "example", "prefixes")


# ------------------------------------------------------------------------------------------------
# Reading the doc
# ------------------------------------------------------------------------------------------------


def _marker(name: str) -> str:
    return f"<!-- checked by tests/test_docs.py: {name} -->"


def block_span(text: str, name: str) -> tuple[int, int]:
    """Start and end (in ``text``) of the body of the fenced block after the marker ``name``."""
    marker = _marker(name)
    at = text.find(marker)
    assert at >= 0, f"marker {marker!r} not found in {LANGUAGE.name}"
    m = _FENCE.search(text, at + len(marker))
    assert m is not None, f"no fenced block after {marker!r}"
    between = text[at + len(marker): m.start()]
    assert not between.strip(), f"text between {marker!r} and its block: {between!r}"
    return m.start(2), m.end(2)


def checked_block(text: str, name: str) -> str:
    start, end = block_span(text, name)
    return text[start:end]


def example_input(text: str) -> tuple[str, np.ndarray, list[int]]:
    """The example's tokenizer, image and prefix lengths, as the doc gives them."""
    lines = checked_block(text, "example").splitlines()
    assert lines[0].split()[0] == "tokenizer", lines[0]
    name = lines[0].split()[1]
    assert lines[1].split()[0] == "image", lines[1]
    h, w = (int(v) for v in lines[1].split()[1].split("x"))
    rows = []
    for line in lines[2:]:
        if not line.startswith("  ") or not line.strip():
            break
        rows.append([int(v) for v in line.split()])
    img = np.array(rows, dtype=np.uint8)
    assert img.shape == (h, w), f"the image rows ({img.shape}) do not match the stated size {h}x{w}"
    ks = [int(line.split()[0]) for line in checked_block(text, "prefixes").splitlines()[1:] if line.strip()]
    return name, img, ks


# ------------------------------------------------------------------------------------------------
# Rendering the blocks from the code
# ------------------------------------------------------------------------------------------------


def passes(ids: list[int], planes: list[int]) -> list[str]:
    """The pass of each token. A plane's leading significance tokens are its LIP pass. Its set tokens
    (D, L), and the significance tokens of the children of a D1, are the LIS pass. REF tokens are the
    refinement pass."""
    out, state, plane = [], "", None
    for t, p in zip(ids, planes):
        if p != plane:
            state, plane = "LIP", p
        name = TOKEN_NAMES[t]
        if name[0] in "DL":
            state = "LIS"
        elif name.startswith("REF"):
            state = "REF"
        out.append(state)
    return out


def band_shifts(name: str, img: np.ndarray) -> list[int | None]:
    """Bit-plane shift of each band (white box: the tokenizer's private ``_shifts``), None if empty."""
    tok = adatok.load(name)
    c = img.shape[2] if img.ndim == 3 else 1
    layout = make_layout(img.shape[:2], c, default_levels(img.shape[:2]))
    shifts_of = getattr(tok, "_shifts", None)
    shift = shifts_of(layout)[0] if shifts_of is not None else np.zeros(layout.size, np.int64)
    out = []
    for k in range(len(layout.bands)):
        lo, hi = layout.offsets[0, k], layout.offsets[0, k + 1]
        vals = set(shift[lo:hi].tolist())
        assert len(vals) <= 1, "one shift per band"
        out.append(vals.pop() if vals else None)
    return out


def lossless_bands(img: np.ndarray) -> list[tuple[str, int, np.ndarray]]:
    """(band name, level, integer 5/3 coefficients) of channel 0, in the coder's band order."""
    levels = default_levels(img.shape[:2])
    if img.ndim == 3 and img.shape[2] == 3:
        plane = rct_forward(img)[0] - 128
    else:
        plane = (img if img.ndim == 2 else img[..., 0]).astype(np.int64) - 128
    coeffs = dwt2(plane, levels, "5/3")
    out = [("LL", levels, coeffs[0])]
    for i, triple in enumerate(coeffs[1:]):
        out += [(BAND_NAMES[b + 1], levels - i, arr) for b, arr in enumerate(triple)]
    return out


def render_coefficients(name: str, img: np.ndarray) -> str:
    lines = ["band  level  shape  shift  coefficients (raster order)"]
    for (band, level, arr), shift in zip(lossless_bands(img), band_shifts(name, img)):
        shape = f"{arr.shape[0]}x{arr.shape[1]}"
        values = "".join(f"{v:3d}" for v in arr.ravel().tolist())
        row = f"{band:<4}  {level:<5}  {shape:<5}  {'-' if shift is None else shift:<5}  {values}"
        lines.append(row.rstrip())
    return "\n".join(lines) + "\n"


def render_example(name: str, img: np.ndarray) -> str:
    tok = adatok.load(name)
    (seq,) = tok.encode([img])
    ids, planes = seq.ids.tolist(), seq.pos[:, 0].tolist()
    lines = [f"tokenizer  {name}", f"image      {img.shape[0]}x{img.shape[1]}"]
    lines += ["  " + " ".join(f"{v:3d}" for v in row) for row in img.tolist()]
    lines += [f"levels     {seq.params['levels']}", f"nmax       {seq.params['nmax']}", ""]
    assert tuple(seq.pos_fields) == POS_FIELDS == ("plane", "level", "band", "channel", "y", "x")
    lines.append("index  token  pass  plane  level  band  channel  y  x")
    for i, (t, ps, p) in enumerate(zip(ids, passes(ids, planes), seq.pos.tolist())):
        plane, level, band, channel, y, x = p
        lines.append(f"{i:5d}  {TOKEN_NAMES[t]:<5}  {ps:<4}  {plane:5d}  {level:5d}  {BAND_NAMES[band]:<4}  "
                     f"{channel:7d}  {y}  {x}")
    return "\n".join(lines) + "\n"


def render_prefixes(name: str, img: np.ndarray, ks: list[int]) -> str:
    tok = adatok.load(name)
    (seq,) = tok.encode([img])
    ks = sorted(set(min(k, len(seq)) for k in ks) | {len(seq)})
    outs = tok.decode([seq.prefix(k) for k in ks])
    lines = ["k   decoded row"]
    for k, out in zip(ks, outs):
        assert all(np.array_equal(r, out[0]) for r in out), "the doc shows one row: all rows must be equal"
        lines.append(f"{k:2d}  " + " ".join(f"{v:3d}" for v in out[0].tolist()))
    return "\n".join(lines) + "\n"


def render(text: str) -> dict[str, str]:
    name, img, ks = example_input(text)
    return {"coefficients": render_coefficients(name, img), "example": render_example(name, img),
            "prefixes": render_prefixes(name, img, ks)}


# ------------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def language_text() -> str:
    return LANGUAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rendered(language_text) -> dict[str, str]:
    return render(language_text)


def _same(doc: str, code: str, name: str) -> None:
    if doc != code:
        diff = "".join(difflib.unified_diff(doc.splitlines(True), code.splitlines(True), "docs", "encoder"))
        pytest.fail(f"block {name!r} of {LANGUAGE.name} differs from the code (regenerate with "
                    f"`.venv/bin/python tests/test_docs.py --write`, then reread the prose):\n{diff}")


@pytest.mark.parametrize("name", BLOCKS)
def test_checked_block_matches_the_code(language_text, rendered, name):
    _same(checked_block(language_text, name), rendered[name], name)


def test_example_is_a_good_example(language_text):
    """Tens of tokens, every kind of token, and its full sequence decodes bit-exact."""
    name, img, ks = example_input(language_text)
    tok = adatok.load(name)
    (seq,) = tok.encode([img])
    assert 20 <= len(seq) <= 80
    assert {TOKEN_NAMES[t] for t in seq.ids.tolist()} == set(TOKEN_NAMES)
    assert np.array_equal(tok.decode([seq])[0], img)
    assert ks[0] == 0 and ks[-1] == len(seq)


def test_example_shifts_agree_with_the_tokens(language_text):
    """Black-box check of the shift column: a nonzero coefficient becomes significant at its top bit
    plus its band's shift."""
    name, img, _ = example_input(language_text)
    (seq,) = adatok.load(name).encode([img])
    bands = lossless_bands(img)
    shifts = band_shifts(name, img)
    where = {(BAND_NAMES.index(b), lev): (arr, s) for (b, lev, arr), s in zip(bands, shifts)}
    for t, (plane, level, band, _, y, x) in zip(seq.ids.tolist(), seq.pos.tolist()):
        if TOKEN_NAMES[t] in ("SIG+", "SIG-"):
            arr, s = where[(band, level)]
            assert plane == abs(int(arr[y, x])).bit_length() - 1 + s


def test_alphabet_table(language_text):
    """The alphabet table lists ids 0..8 with the coder's token names, in order."""
    section = language_text.split("## The alphabet", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1]))
    assert rows == list(enumerate(TOKEN_NAMES))


def test_pos_table(language_text):
    section = language_text.split("## What `pos` holds", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", section, re.M)
    assert tuple(n for pair in names for n in pair if n) == POS_FIELDS


def test_band_shapes_in_the_example(language_text):
    _, img, _ = example_input(language_text)
    levels = default_levels(img.shape)
    shapes = band_shapes(img.shape, levels)
    flat = [shapes[0]] + [s for t in shapes[1:] for s in t]
    assert [arr.shape for _, _, arr in lossless_bands(img)] == flat


# ------------------------------------------------------------------------------------------------
# README
# ------------------------------------------------------------------------------------------------


def readme_blocks() -> list[tuple[int, str]]:
    if not README.exists():
        return []
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        if m.group(1) != "python":
            continue
        if text[: m.start()].rstrip().endswith("<!-- test: skip -->"):
            continue
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(2)))
    return blocks


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = readme_blocks()
    if not blocks:
        pytest.skip("no README.md, or it has no ```python blocks")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for line, code in blocks:
        if re.search(r"\btorch\b", code):
            continue  # needs torch, which this suite never imports
        where = f"README.md:{line}"
        if code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(code, namespace, where, str(README), line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            runner.run(test, clear_globs=False)
            assert runner.failures == 0, f"doctest in {where} failed"
        else:
            exec(compile(code, where, "exec"), namespace)
        ran += 1
    if not ran:
        pytest.skip("every ```python block of README.md needs torch")


# ------------------------------------------------------------------------------------------------
# Regenerating the checked blocks
# ------------------------------------------------------------------------------------------------


def write_blocks() -> None:
    """Rewrite the checked blocks of docs/wavelet-language.md from the code (atomically)."""
    text = LANGUAGE.read_text(encoding="utf-8")
    new = render(text)
    for name in BLOCKS:  # one at a time: spans move as blocks change length
        start, end = block_span(text, name)
        text = text[:start] + new[name] + text[end:]
    tmp = LANGUAGE.with_name(LANGUAGE.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, LANGUAGE)
    print(f"rewrote the blocks {', '.join(BLOCKS)} of {LANGUAGE}; now reread the prose around them")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_docs.py --write   (regenerates the checked blocks of the doc)")
    write_blocks()
