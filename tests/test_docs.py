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
* Every code block of ``README.md`` and ``docs/*.md`` runs: the ```` ```python ```` blocks of a page
  in order, in one namespace (``>>>`` blocks as doctests); its ```` ```sh ```` blocks and the
  ``adatok`` commands in the first column of its tables, in order, through typer's ``CliRunner``.
  Both run in a temporary folder that holds ``photo.png``, ``photos/`` and links to the
  repository's top-level folders (:func:`workspace`). A block right after ``<!-- test: long -->``
  (a table row: with that comment in the row) is long-running and does not run: demo, training,
  benchmarks, evaluations of many images. A shell block that runs may hold only ``adatok``
  commands. Fenced blocks must say their language: python, sh, or text (output, figures).
* Links between the pages resolve to files of the repository (and to headings, after ``#``), and
  ``docs/index.md`` lists every page of ``docs/``.
"""

from __future__ import annotations

import difflib
import doctest
import os
import re
import shlex
import sys
from dataclasses import dataclass
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
# Every code block of the README and docs/
# ------------------------------------------------------------------------------------------------

PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LONG = "<!-- test: long -->"
#: Fenced block languages: python runs, sh runs its adatok commands, text is output or a figure.
LANGUAGES = ("python", "sh", "text")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_TABLE_COMMAND = re.compile(r"^\|\s*`(adatok [^`]+)`")


@dataclass(frozen=True)
class Block:
    """A fenced block (or a table row's command, language ``sh``) of a page, from its line on."""

    page: Path
    line: int
    lang: str
    code: str
    long: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    """The page's fenced blocks and its table rows of ``adatok`` commands, in page order."""
    text = page.read_text(encoding="utf-8")
    blocks = [Block(page, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2),
                    text[: m.start()].rstrip().endswith(LONG))
              for m in _FENCE.finditer(text)]
    for i, line in enumerate(text.splitlines(), 1):
        m = _TABLE_COMMAND.match(line)
        if m:
            blocks.append(Block(page, i, "sh", m.group(1) + "\n", LONG in line))
    return sorted(blocks, key=lambda b: b.line)


def commands(block: Block) -> list[str]:
    """The commands of a shell block: lines joined at trailing backslashes, comments and blank
    lines dropped."""
    joined = re.sub(r"\\\n", " ", block.code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def _pages_with(lang: str) -> list[Path]:
    return [p for p in PAGES if any(b.lang == lang and not b.long for b in page_blocks(p))]


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A folder to run a page's code in, as from the repository's root: ``photo.png`` (a 128 x 192
    crop of the astronaut), ``photos/`` holding it and the crop beside it, and links to the repository's top-level
    entries (``tests/data/masks/`` ...). Outputs (``out/`` ...) land in the folder."""
    import skimage.data

    photo = skimage.data.astronaut()[:128, :192]
    adatok.write_image(tmp_path / "photo.png", photo)
    (tmp_path / "photos").mkdir()
    adatok.write_image(tmp_path / "photos" / "photo.png", photo)
    adatok.write_image(tmp_path / "photos" / "beside.png", skimage.data.astronaut()[128:256, :192])
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name != "out" and not (tmp_path / entry.name).exists():
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_have_a_known_language(page):
    odd = [f"{b.where}: ```{b.lang}" for b in page_blocks(page) if b.lang not in LANGUAGES]
    assert not odd, f"give every fenced block one of the languages {', '.join(LANGUAGES)}: {odd}"


@pytest.mark.parametrize("page", _pages_with("python"), ids=lambda p: p.name)
def test_python_blocks_run(page, workspace):
    """The page's python blocks, in order, in one namespace (doctest style for ``>>>`` blocks)."""
    namespace: dict = {"__name__": "__docs__"}
    for block in page_blocks(page):
        if block.lang != "python" or block.long:
            continue
        if block.code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(block.code, namespace, block.where, str(page), block.line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            runner.run(test, clear_globs=False)
            assert runner.failures == 0, f"doctest in {block.where} failed"
        else:
            exec(compile(block.code, block.where, "exec"), namespace)


@pytest.mark.parametrize("page", _pages_with("sh"), ids=lambda p: p.name)
def test_commands_run(page, workspace):
    """The page's ``adatok`` commands (shell blocks and table rows), in order, in one folder."""
    from typer.testing import CliRunner

    from adatok.cli import app

    runner = CliRunner()
    for block in page_blocks(page):
        if block.lang != "sh" or block.long:
            continue
        for command in commands(block):
            args = shlex.split(command, comments=True)
            assert args[0] == "adatok", (f"{block.where}: only adatok commands run in make test; mark the "
                                         f"block {LONG} if it is long-running: {command}")
            result = runner.invoke(app, args[1:])
            assert result.exit_code == 0, (f"{block.where}: {command} exited with {result.exit_code}:\n"
                                           f"{result.output}{result.stderr}{result.exception or ''}")


def test_the_runner_reads_blocks_rows_and_markers(tmp_path):
    """The parsing itself: a long-marked block, a table row, a continued command and a comment."""
    page = tmp_path / "page.md"
    page.write_text("intro\n\n<!-- test: long -->\n```sh\nadatok demo\n```\n\n| command | what |\n|---|---|\n"
                    "| `adatok info a.atk` | x |\n| `adatok train` <!-- test: long --> | y |\n\n"
                    "```sh\nadatok eval --data samples \\\n    --out o   # comment\n# a note\n```\n")
    blocks = [(b.line, b.lang, b.long, commands(b)) for b in page_blocks(page)]
    assert blocks == [(4, "sh", True, ["adatok demo"]), (10, "sh", False, ["adatok info a.atk"]),
                      (11, "sh", True, ["adatok train"]),
                      (13, "sh", False, ["adatok eval --data samples      --out o   # comment"])]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(page):
    """Every relative link of a page names a file of the repository (and a heading of it, after ``#``)."""
    bad = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT) or not dest.exists():
            bad.append(f"{target}: no such file in the repository")
        elif anchor and anchor not in _anchors(dest):
            bad.append(f"{target}: {dest.name} has no heading #{anchor}")
    assert not bad, f"links of {page.relative_to(ROOT)}: {bad}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as dashes."""
    heads = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", h.lower())) for h in heads}


def test_the_docs_index_lists_every_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    listed = {t.partition("#")[0] for t in _LINK.findall(index)}
    missing = [p.name for p in PAGES if p.parent.name == "docs" and p.name != "index.md" and p.name not in listed]
    assert not missing, f"docs/index.md does not link these pages: {missing}"


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
