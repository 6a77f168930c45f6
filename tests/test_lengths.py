"""Length per image under a quality target, against the one fixed size that serves every image."""

from __future__ import annotations

import numpy as np
import skimage.data

import adatok
from adatok import Quality
from adatok.eval.lengths import length_report


def _images():
    rng = np.random.default_rng(0)
    flat = np.full((96, 96, 3), 120, np.uint8)
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], (96, 1, 3))
    photo = skimage.data.astronaut()[100:196, 150:246]
    texture = skimage.data.gravel()[:96, :96, None].repeat(3, axis=2)
    noise = rng.integers(0, 256, (96, 96, 3)).astype(np.uint8)
    return ["flat", "ramp", "photo", "texture", "noise"], [flat, ramp, photo, texture, noise]


def test_each_image_reaches_the_target_with_its_own_length():
    names, images = _images()
    rep = length_report(adatok.load("wavelet"), images, Quality(psnr=34), names)
    assert rep.reached.all(), rep.quality
    # flat and smooth images need clearly fewer tokens than textured ones
    t = dict(zip(names, rep.tokens))
    assert t["flat"] < t["ramp"] < t["photo"] < t["texture"] < t["noise"]
    assert t["noise"] > 10 * t["ramp"]
    # adaptive lengths beat the one fixed size that brings every image to the target
    assert rep.fixed_tokens == max(rep.tokens) and rep.token_saving > 1.5 and rep.bpp_saving > 1.5
    s = rep.summary()
    assert s["images"] == 5 and s["reached"] == 5 and s["tokens"]["max"] == rep.fixed_tokens


def test_quality_inside_a_region():
    names, images = _images()
    roi = [np.zeros(img.shape[:2]) for img in images]
    for m in roi:
        m[20:60, 30:80] = 1
    rep = length_report(adatok.load("wavelet"), images, Quality(psnr=32, region="roi"), names, roi=roi)
    assert rep.reached.all()


def test_eval_reports_lengths_under_a_target(tmp_path):
    import csv

    from typer.testing import CliRunner

    from adatok.cli import app

    args = ["eval", "--data", "samples", "--limit", "2", "--max-side", "64", "--baselines", "none", "--bpp", "1",
            "--target-psnr", "30", "--roi", "auto", "--in-roi", "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "lengths.csv")))
    assert len(rows) == 2 and all(r["reached"] == "True" and float(r["quality"]) >= 30 for r in rows)
    bad = CliRunner().invoke(app, ["eval", "--data", "samples", "--in-roi", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "target" in bad.output
