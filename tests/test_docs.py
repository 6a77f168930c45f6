"""The documentation cannot drift from the code.

* ``docs/wavelet-language.md``: the alphabet table, and the worked example (its coefficients, its
  full token stream and its decoded prefixes) are checked against the real transform, encoder and
  decoder. Each checked block is a fenced block right after an HTML comment
  ``<!-- checked by tests/test_docs.py: NAME -->``.
* ``README.md``: its ```` ```python ```` blocks run, in order, in one namespace, in a temporary folder
  (skipped when there is no README or no such block). A block right after ``<!-- test: skip -->``
  is not run, nor is one that needs torch (this suite never imports torch).
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

import adatok
from adatok.wavelet.layout import BAND_NAMES, POS_FIELDS
from adatok.wavelet.spiht import TOKEN_NAMES
from adatok.wavelet.transforms import band_shapes, default_levels, dwt2

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = ROOT / "docs" / "wavelet-language.md"
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def checked_block(text: str, name: str) -> str:
    """The fenced block right after ``<!-- checked by tests/test_docs.py: name -->``."""
    marker = f"<!-- checked by tests/test_docs.py: {name} -->"
    at = text.find(marker)
    assert at >= 0, f"marker {marker!r} not found in {LANGUAGE.name}"
    m = _FENCE.search(text, at + len(marker))
    assert m is not None, f"no fenced block after {marker!r}"
    between = text[at + len(marker): m.start()]
    assert not between.strip(), f"text between {marker!r} and its block: {between!r}"
    return m.group(2)


@pytest.fixture(scope="module")
def language_text() -> str:
    return LANGUAGE.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# The worked example
# ------------------------------------------------------------------------------------------------


def parse_example(block: str) -> dict:
    """Header (``key value``), the image rows under ``image``, then the token table."""
    lines = block.splitlines()
    out: dict = {"rows": []}
    i = 0
    while i < len(lines) and not lines[i].startswith("index"):
        line = lines[i]
        if line.startswith("  ") and line.strip():
            out["rows"].append([int(v) for v in line.split()])
        elif line.strip():
            key, value = line.split(maxsplit=1)
            out[key] = value.strip()
        i += 1
    assert i < len(lines), "no token table (a line starting with 'index')"
    header = lines[i].split()
    assert header == ["index", "token", "pass", *POS_FIELDS], header
    out["table"] = [line.split() for line in lines[i + 1:] if line.strip()]
    return out


def passes(ids: list[int], planes: list[int]) -> list[str]:
    """Which pass each token belongs to: a plane's leading significance tokens are its LIP pass, its
    set tokens (and the significance tokens of the children of a D1) the LIS pass, REF tokens the
    refinement pass."""
    names = []
    state, plane = "", None
    for t, p in zip(ids, planes):
        if p != plane:
            state, plane = "LIP", p
        name = TOKEN_NAMES[t]
        if name[0] in "DL":
            state = "LIS"
        elif name.startswith("REF"):
            state = "REF"
        names.append(state)
    return names


def example(language_text: str):
    ex = parse_example(checked_block(language_text, "example"))
    img = np.array(ex["rows"], dtype=np.uint8)
    h, w = (int(v) for v in ex["image"].split()[0].split("x"))
    assert img.shape == (h, w), "the image rows do not match the stated size"
    return ex, img


def test_example_token_stream(language_text):
    ex, img = example(language_text)
    tok = adatok.load(ex["tokenizer"])
    (seq,) = tok.encode([img])
    assert int(ex["levels"]) == seq.params["levels"]
    assert int(ex["nmax"]) == seq.params["nmax"]
    expected = [[int(r[0]), r[1], r[2], *r[3:5], BAND_NAMES.index(r[5]), *r[6:]] for r in ex["table"]]
    actual_pass = passes(seq.ids.tolist(), seq.pos[:, 0].tolist())
    actual = [[i, TOKEN_NAMES[t], actual_pass[i], *p] for i, (t, p) in enumerate(zip(seq.ids.tolist(),
                                                                                   seq.pos.tolist()))]
    expected = [[e[0], e[1], e[2], *(int(v) for v in e[3:])] for e in expected]
    for e, a in zip(expected, actual):
        assert e == a, f"docs row {e} != encoder {a}"
    assert len(expected) == len(actual), f"docs table has {len(expected)} tokens, the encoder {len(actual)}"
    # the example is meant to show every kind of token
    assert {r[1] for r in ex["table"]} == set(TOKEN_NAMES)


def test_example_coefficients(language_text):
    ex, img = example(language_text)
    levels = default_levels(img.shape)
    coeffs = dwt2(img.astype(np.int64) - 128, levels, "5/3")
    bands = [(0, levels, coeffs[0])]
    for i, triple in enumerate(coeffs[1:]):
        bands += [(b + 1, levels - i, arr) for b, arr in enumerate(triple)]
    rows = [line.split() for line in checked_block(language_text, "coefficients").splitlines()[1:] if line.strip()]
    assert len(rows) == len(bands)
    shapes = band_shapes(img.shape, levels)
    flat_shapes = [shapes[0]] + [s for t in shapes[1:] for s in t]
    for row, (band, level, arr), shape in zip(rows, bands, flat_shapes):
        name, lev, shp, *values = row
        assert (name, int(lev)) == (BAND_NAMES[band], level)
        assert tuple(int(v) for v in shp.split("x")) == arr.shape == shape
        assert [int(v) for v in values] == arr.ravel().tolist(), name


def test_example_prefixes(language_text):
    ex, img = example(language_text)
    tok = adatok.load(ex["tokenizer"])
    (seq,) = tok.encode([img])
    rows = [line.split() for line in checked_block(language_text, "prefixes").splitlines()[1:] if line.strip()]
    assert rows
    for k, *row in rows:
        (out,) = tok.decode([seq.prefix(int(k))])
        assert out.shape == img.shape
        assert all(np.array_equal(r, out[0]) for r in out), "the doc shows one row: all rows must be equal"
        assert out[0].tolist() == [int(v) for v in row], f"prefix {k}"
    assert int(rows[-1][0]) == len(seq)
    (full,) = tok.decode([seq])
    assert np.array_equal(full, img)


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
    fields = [n for pair in names for n in pair if n]
    assert tuple(fields) == POS_FIELDS


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
        before = text[: m.start()].rstrip()
        if before.endswith("<!-- test: skip -->"):
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
