"""``adatok eval --roi``: the rate-distortion rows with a region of interest (masks or saliency)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from adatok.cli import app
from adatok.eval import COLUMNS, read_results, summarize

MASKS = Path(__file__).parent / "data" / "masks"  # full-size subject masks of the sample photos
BASE = ["eval", "--data", "samples", "--limit", "2", "--max-side", "128", "--quiet"]


def _eval(*args: str):
    return CliRunner().invoke(app, [*BASE, *args])


def _rows(out: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    return {(r["image"], r["method"], r["budget"]): r for r in read_results(out / "results.csv")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run with the mask folder as region (and a target inside it), and without a region."""
    outs = {}
    for key, extra in (("roi", ["--roi", str(MASKS), "--target-psnr", "26", "--in-roi"]), ("plain", [])):
        out = tmp_path_factory.mktemp(key)
        result = _eval("--bpp", "0.5,1", "--baselines", "jpeg", "--out", str(out), *extra)
        assert result.exit_code == 0, (result.output, result.exception)
        outs[key] = out
    return outs


def test_the_region_buys_psnr_inside_at_the_same_budget(runs):
    rows = _rows(runs["roi"])
    assert list(read_results(runs["roi"] / "results.csv")[0]) == list(COLUMNS)
    assert {m for _, m, _ in rows} == {"wavelet", "wavelet+roi", "jpeg"}
    for image in ("astronaut", "camera"):
        for budget in ("0.5", "1"):
            plain, steered = rows[(image, "wavelet", budget)], rows[(image, "wavelet+roi", budget)]
            assert int(steered["bytes"]) <= float(budget) * 128 * 128 / 8
            # what the region bought (inside) and cost (outside), against the same tokenizer unsteered
            assert float(steered["psnr_roi"]) > float(plain["psnr_roi"]) + 1.0, (image, budget)
            assert float(steered["psnr_out"]) < float(plain["psnr_out"])
    for r in rows.values():  # every row, codecs too, measured inside and outside the same mask
        assert r["psnr_roi"] and r["psnr_out"], r
        # the whole image's error is a mix of the inside's and the outside's
        lo, hi = sorted((float(r["psnr_roi"]), float(r["psnr_out"])))
        assert lo - 1e-3 <= float(r["psnr"]) <= hi + 1e-3, r


def test_methods_without_the_region_run_as_before(runs):
    roi, plain = _rows(runs["roi"]), _rows(runs["plain"])
    assert {m for _, m, _ in plain} == {"wavelet", "jpeg"}
    for key, r in plain.items():
        assert r["psnr_roi"] == r["psnr_out"] == ""
        for col in ("tokens", "bytes", "psnr", "ssim"):
            assert roi[key][col] == r[col], (key, col)
    assert "region-table" not in (runs["plain"] / "report.html").read_text()


def test_report_shows_the_region(runs):
    page = (runs["roi"] / "report.html").read_text()
    assert "<li id='roi'>" in page and str(MASKS) in page
    assert "id='region-table'" in page and "data-plot='psnr_roi_bpp'" in page
    assert (runs["roi"] / "plots" / "psnr_roi_bpp.png").read_bytes()[:4] == b"\x89PNG"
    # the table quotes the means of results.csv
    stats = summarize(read_results(runs["roi"] / "results.csv"))
    assert f"data-psnr-roi='{stats[('wavelet+roi', 'bpp', '1')]['psnr_roi']:.3f}'" in page
    assert page.count("class='saliency'") == 2  # map, inside, tokens with and without, per image


def test_lengths_use_the_same_masks(runs):
    rows = list(csv.DictReader(open(runs["roi"] / "lengths.csv")))
    assert [r["image"] for r in rows] == ["astronaut", "camera"]
    assert all(r["reached"] == "True" and float(r["quality"]) >= 26 for r in rows)


def test_roi_auto_without_a_target(tmp_path):
    result = _eval("--bpp", "1", "--baselines", "none", "--roi", "auto", "--saliency", "centre", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path)
    assert {m for _, m, _ in rows} == {"wavelet", "wavelet+roi"}
    assert all(r["psnr_roi"] and r["psnr_out"] for r in rows.values())
    assert not (tmp_path / "lengths.csv").exists()
    assert "saliency (centre)" in (tmp_path / "report.html").read_text()


def test_one_mask_file_for_every_image(tmp_path):
    result = _eval("--bpp", "1", "--baselines", "none", "--roi", str(MASKS / "camera.png"), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert all(r["psnr_roi"] for r in _rows(tmp_path).values())


def _masks(folder: Path, **sizes: tuple[int, int]) -> Path:
    folder.mkdir()
    for name, (h, w) in sizes.items():
        Image.fromarray(np.full((h, w), 255, np.uint8)).save(folder / f"{name}.png")
    return folder


@pytest.mark.parametrize("case", ["wrong size", "missing", "wrong size file", "no such path"])
def test_bad_masks_are_one_line_errors_and_write_nothing(tmp_path, case):
    if case == "wrong size":  # compared with the photo at its own size, before --max-side 128 shrinks it
        roi, words = _masks(tmp_path / "m", astronaut=(512, 512), camera=(40, 50)), ["'camera'", "40x50", "512x512"]
    elif case == "missing":
        roi, words = _masks(tmp_path / "m", astronaut=(512, 512)), ["no mask", "1 of 2", "'camera'"]
    elif case == "wrong size file":
        roi, words = _masks(tmp_path / "m", one=(30, 20)) / "one.png", ["one.png", "30x20", "'astronaut'"]
    else:
        roi, words = tmp_path / "nothing-here", ["no such file or folder", "nothing-here"]
    out = tmp_path / "out"
    result = _eval("--bpp", "1", "--baselines", "none", "--roi", str(roi), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert not out.exists()


def test_in_roi_needs_a_region_and_a_target(tmp_path):
    bad = _eval("--bpp", "1", "--baselines", "none", "--roi", "auto", "--in-roi", "--out", str(tmp_path / "o"))
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --in-roi") and not (tmp_path / "o").exists()


def test_results_without_the_region_columns_still_read(tmp_path):
    old = [c for c in COLUMNS if c not in ("psnr_roi", "psnr_out")]
    path = tmp_path / "results.csv"
    row = dict.fromkeys(old, "") | {"image": "a", "method": "jpeg", "budget_kind": "bpp", "budget": "1",
                                    "bpp": "0.9", "psnr": "30", "ssim": "0.9", "ms_ssim": "0.95", "bytes": "10"}
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, old)
        writer.writeheader()
        writer.writerow(row)
    rows = read_results(path)
    assert rows[0]["psnr_roi"] == "" and rows[0]["psnr"] == "30"
    s = summarize(rows)[("jpeg", "bpp", "1")]
    assert s["psnr"] == 30 and np.isnan(s["psnr_roi"])


def test_masks_are_matched_by_path_then_by_stem(tmp_path):
    from adatok.core.errors import AdatokError
    from adatok.eval import mask_regions

    img = np.zeros((8, 10, 3), np.uint8)
    items = [("a/x.png", img), ("b/x.png", img), ("y.jpg", img)]
    folder = tmp_path / "m"
    for rel, value in (("a/x.png", 255), ("b/x.png", 0), ("y.png", 128)):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 10), value, np.uint8)).save(folder / rel)
    maps, note = mask_regions(folder, items)
    assert [float(maps[n].mean()) for n, _ in items] == [1.0, 0.0, pytest.approx(128 / 255)]
    assert str(folder) in note
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(folder / "y.bmp")  # two masks for y.jpg
    with pytest.raises(AdatokError, match="'y.jpg' has 2 masks"):
        mask_regions(folder, items)


def test_an_image_whose_stem_another_image_shares_takes_no_mask_by_stem(tmp_path):
    """sub/coffee.png, without a mask of its own, took coffee.png's mask (matched by its stem), silently
    (an outside-user review): a stem is a mask's key only when one image of the run has it."""
    from adatok.core.errors import AdatokError
    from adatok.eval import mask_regions

    img = np.zeros((8, 10, 3), np.uint8)
    folder = tmp_path / "m"
    folder.mkdir()
    Image.fromarray(np.full((8, 10), 255, np.uint8)).save(folder / "coffee.png")
    with pytest.raises(AdatokError, match=r"for 1 of 2 images: 'sub/coffee.png'.*share a stem.*sub/coffee.png"):
        mask_regions(folder, [("coffee.png", img), ("sub/coffee.png", img)])
    maps, _ = mask_regions(folder, [("sub/coffee.png", img)])  # alone, its stem finds the mask
    assert float(maps["sub/coffee.png"].mean()) == 1.0


def test_inside_and_outside_means_over_fewer_images_say_so(tmp_path):
    """An image whose mask is empty has no pixel inside: the inside mean of a cell covered 2 images
    while its whole-image and outside means covered 3, with no mark in the report nor the terminal
    (an outside-user review)."""
    from typer.testing import CliRunner

    from adatok.cli import app
    from adatok.eval.report import side_count

    data, masks = tmp_path / "data", tmp_path / "masks"
    data.mkdir()
    masks.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        img = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(data / f"{name}.png")
        mask = np.zeros((32, 32), np.uint8)
        if name != "c":
            mask[8:24, 8:24] = 255
        Image.fromarray(mask).save(masks / f"{name}.png")
    res = CliRunner().invoke(app, ["eval", "--data", str(data), "--bpp", "1", "--baselines", "none", "--roi",
                                   str(masks), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    stats = summarize(read_results(tmp_path / "out" / "results.csv"))[("wavelet", "bpp", "1")]
    assert (stats["n"], stats["n_psnr_roi"], stats["n_psnr_out"]) == (3, 2, 3)
    assert side_count(stats, "psnr_roi") == " 2/3" and side_count(stats, "psnr_out") == ""
    assert f"{stats['psnr_roi']:.2f} 2/3 / {stats['psnr_out']:.2f} " in res.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert f"<b>{stats['psnr_roi']:.2f}</b><span class='note'> 2/3</span> / {stats['psnr_out']:.2f} @" in page
