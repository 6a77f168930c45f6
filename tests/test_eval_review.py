"""``adatok.eval`` defects found by an outside user's review of evaluation (exact images in means,
the forms of results rows, the printed fixed size, its table in the report, duplicate ids, the
demo's stale sub-report)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import adatok
from adatok import AdatokError
from adatok.eval import bd_rates, evaluate, read_results, summarize, write_report, write_results
from adatok.eval.metrics import EXACT_PSNR


def photos():
    from skimage import data

    return [("astro", np.ascontiguousarray(data.astronaut()[80:144, 160:240])),
            ("chelsea", np.ascontiguousarray(data.chelsea()[100:164, 200:280]))]


FLAT = ("flat", np.full((48, 48, 3), 120, np.uint8))


def test_an_exact_image_counts_as_100_db_in_means_and_plots(tmp_path):
    """A flat image decoded exactly (PSNR inf) made every mean PSNR inf and every curve empty."""
    ev = evaluate([*photos(), FLAT], ["wavelet"], bpp=[1, 2], baselines=["jpeg"])
    flat_psnr = {r["method"]: r["psnr"] for r in ev.rows if r["image"] == "flat" and r["budget"] == 2}
    assert flat_psnr["wavelet"] == math.inf
    stats = summarize(ev)
    for (method, _, budget), st in stats.items():
        psnrs = [r["psnr"] for r in ev.rows if r["method"] == method and r["budget"] == float(budget)
                 and r["psnr"] is not None]
        assert math.isfinite(st["psnr"])
        assert st["exact"] == sum(p == math.inf for p in psnrs)
        assert st["psnr"] == pytest.approx(np.mean([min(round(p, 3), EXACT_PSNR) for p in psnrs]))
    assert stats[("wavelet", "bpp", "2")]["exact"] == 1
    page = write_report(ev, tmp_path / "r").read_text()
    summary = page[page.index("id='summary-table'"):]
    summary = summary[:summary.index("</table>")]
    assert "inf" not in summary and "nan" not in summary
    assert re.search(r"data-exact='1'>[\d.]+ dB @", page)
    assert "1 exact</span>" in page and f"counted as {EXACT_PSNR:g} dB" in page
    plot = re.search(r"data-plot='psnr_bpp'>.*?</figure>", page, re.S).group()
    assert "data-method='wavelet' data-points='2'" in plot  # both budgets drawn (was 0 points)


def test_summarize_and_bd_rates_take_every_form_of_rows(tmp_path):
    """ev.rows hold None where read_results' rows hold "": a JPEG that made no file counted as met
    on every image; bd_rates(ev.rows) was silently {}; summarize(ev) a TypeError."""
    ev = evaluate(photos(), ["wavelet"], bpp=[0.02, 0.5, 1, 2], baselines=["jpeg", "jp2"])
    assert any(r["method"] == "jpeg" and r["bpp"] is None for r in ev.rows)  # JPEG cannot make 0.02 bpp
    write_results(ev, tmp_path / "results.csv")
    read = read_results(tmp_path / "results.csv")
    forms = [ev, ev.rows, read]
    sums = [summarize(f) for f in forms]
    for s in sums[1:]:
        assert s.keys() == sums[0].keys()
        for k in s:
            assert s[k] == pytest.approx(sums[0][k], nan_ok=True)
    assert sums[1][("jpeg", "bpp", "0.02")]["n"] == 0  # not met: was n == images
    rates = [bd_rates(f) for f in forms]
    assert rates[0] and rates[0] == rates[1] == rates[2]
    for bad in (5, "results.csv", {"image": "a"}, [1], [{"image": "a", "method": "m"}]):
        with pytest.raises(AdatokError, match="takes an Evaluation, its rows or read_results' rows"):
            summarize(bad)
        with pytest.raises(AdatokError, match="bd_rates takes"):
            bd_rates(bad)


def test_the_printed_fixed_bpp_serves_every_image_and_the_table_is_kept(tmp_path):
    """--target-psnr printed the fixed rate rounded down (2.115: 1082 bytes, 24.985 dB on astro);
    the table was on the terminal only (lost with -q) and cut names to "wavel…" in 80 columns."""
    import csv

    from typer.testing import CliRunner

    import adatok
    from adatok import Bpp
    from adatok.cli import app
    from adatok.core.metrics import psnr

    data = tmp_path / "imgs"
    data.mkdir()
    from PIL import Image

    for name, img in photos():
        Image.fromarray(img).save(data / f"{name}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--bpp", "1", "--baselines", "none", "--target-psnr",
                                      "25", "-t", "wavelet,wavelet-lossless", "--out", str(out)], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and "wavelet-lossless" in result.output
    shown = re.search(r"fixed bpp\s*│\s*([\d.]+)\s*│\s*([\d.]+)", result.output)
    fixed = dict(zip(("wavelet", "wavelet-lossless"), shown.groups(), strict=True))
    page = (out / "report.html").read_text()
    for name, x in fixed.items():
        assert re.search(rf"<tr data-method='{name}'>.*<td>{x}</td>", page)  # the same table in the report
        tok = adatok.load(name)
        images = [img for _, img in photos()]
        for img, rec in zip(images, tok.decode(tok.encode(images, Bpp(float(x)))), strict=True):
            assert psnr(img, rec) >= 25  # the printed value, given back as a budget, serves every image
    for row in csv.DictReader((out / "lengths.csv").open()):  # each image's rate, given back, allows its bytes
        shape = dict(photos())[row["image"].removesuffix(".png")].shape
        assert Bpp(float(row["bpp"])).nbytes(shape) >= int(row["bytes"])
    quiet = tmp_path / "quiet"
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--bpp", "1", "--baselines", "none", "--target-psnr",
                                      "25", "--out", str(quiet), "-q"])
    assert result.exit_code == 0 and result.output == ""
    assert "id='lengths-table'" in (quiet / "report.html").read_text()


def test_two_images_of_one_id_are_refused(tmp_path):
    """evaluate([('x', a), ('x', b)]) ran, and a non-UTF-8 name written as caf\\xe9.png shared its id
    with a file literally named so: their rows (and BD-rate curves) read as one image's."""
    import os

    from typer.testing import CliRunner

    from adatok.cli import app

    (_, a), (_, b) = photos()
    with pytest.raises(AdatokError, match="two images have the id 'x'"):
        evaluate([("x", a), ("x", b)], ["wavelet"], bpp=[1], baselines=[])
    data = tmp_path / "d"
    data.mkdir()
    from PIL import Image

    Image.fromarray(a).save(os.path.join(os.fsencode(data), b"caf\xe9.png"))
    Image.fromarray(b).save(data / "caf\\xe9.png")
    result = CliRunner().invoke(app, ["eval", "--data", str(data), "--bpp", "1", "--baselines", "none", "-q",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "two images have the id 'caf\\\\xe9.png' as results.csv writes them" \
        in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_demo_removes_an_earlier_learned_report_it_does_not_rerun(tmp_path):
    """A demo rerun with --learned-images 0 left the earlier OUT/fashion-mnist-32/ beside its report."""
    from typer.testing import CliRunner

    from adatok.cli import app

    out = tmp_path / "demo"
    args = ["demo", "--limit", "1", "--max-side", "32", "-q", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--learned-images", "1"])
    assert result.exit_code == 0, result.output
    subs = [p for p in out.iterdir() if (p / "report.html").exists()]
    if not subs:
        pytest.skip("no learned checkpoint with its dataset here")
    page = (out / "report.html").read_text()
    assert all(f"href='{p.name}/report.html'" in page for p in subs)  # linked from the top report
    (subs[0] / "mine.txt").write_text("not the demo's")
    result = CliRunner().invoke(app, [*args, "--learned-images", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in subs[0].iterdir()) == ["mine.txt"]  # the demo's files only
    assert "href=" not in (out / "report.html").read_text().split("<h2>")[0]


def test_image_alt_texts_are_words_not_markup(tmp_path):
    """Alt texts carried the captions' escaped markup (``&lt;b&gt;original&lt;/b&gt;&lt;br&gt;64x64``):
    a screen reader read out the tags."""
    ev = evaluate(photos()[:1], ["wavelet"], bpp=[1])
    page = write_report(ev, tmp_path / "r").read_text()
    alts = re.findall(r'<img src="[^"]*" alt="([^"]*)"', page)
    assert alts and not any("&lt;" in a or "<" in a for a in alts), alts[:3]
    assert any(a.startswith("original 64x80 (H x W)") for a in alts), alts[:3]


def test_none_among_baselines_is_said_to_stand_alone(tmp_path):
    from typer.testing import CliRunner

    from adatok.cli import app

    r = CliRunner().invoke(app, ["eval", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--baselines", "none,jpeg"])
    assert r.exit_code == 2 and "none stands alone" in r.output, r.output


def test_an_empty_out_or_data_is_refused_and_a_refused_image_s_note_does_not_call_it_image_0(tmp_path, monkeypatch):
    """run(out="") wrote the report into the working folder; fashion-mnist-32's note on every row of a
    run said "image 0 is ..." whichever image the row was for (an outside-user review)."""
    import csv

    from typer.testing import CliRunner

    from adatok.cli import app

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        adatok.write_image(data / f"{i}.png", np.full((20, 24, 3), 60 * i, np.uint8))
    from adatok.eval.pipeline import run

    for kwargs in ({"data": str(data), "out": ""}, {"data": str(data), "out": "  "}, {"data": "", "out": "o"}):
        with pytest.raises(AdatokError, match="is empty"):
            run(**kwargs, bpp=[1.0], baselines=())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    pytest.importorskip("torch")
    res = CliRunner().invoke(app, ["eval", "--data", str(data), "-t", "fashion-mnist-32", "--bpp", "1", "--baselines",
                                   "none", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    notes = [r["note"] for r in csv.DictReader(open(tmp_path / "o2" / "results.csv")) if r["method"] == "fashion-mnist-32"]
    assert notes and all(n and "image 0" not in n and "the image" in n for n in notes), notes
