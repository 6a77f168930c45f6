"""``adatok.eval`` and ``adatok eval``: metrics, BD-rate, baselines, the grid tokenizer, runs and reports."""

from __future__ import annotations

import csv
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import adatok
from adatok import AdatokError, BudgetError, Bpp, Lossless, Quality, Tokens
from adatok.cli import app
from adatok.eval import (CODECS, COLUMNS, GridTokenizer, bd_rate, evaluate, ms_ssim, read_results, token_footprints,
                         token_heatmap, write_report)

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"encode_s", "decode_s"}


def crops():
    """Two small test images: an RGB and a gray crop of scikit-image's photos."""
    from skimage import data

    return [("astro", np.ascontiguousarray(data.astronaut()[80:144, 160:240])),
            ("cam", np.ascontiguousarray(data.camera()[100:148, 200:264, None]))]


# --- metrics and BD-rate --------------------------------------------------------------------------


def test_ms_ssim():
    (_, img), (_, gray) = crops()
    assert ms_ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + np.random.default_rng(0).integers(-30, 30, img.shape), 0, 255).astype(np.uint8)
    assert 0.3 < ms_ssim(img, noisy) < 0.99
    assert ms_ssim(gray, gray[::-1].copy()) < ms_ssim(gray, gray)
    assert np.isnan(ms_ssim(img[:8, :8], img[:8, :8]))  # under one 11 x 11 window


def test_bd_rate():
    assert bd_rate([1, 2, 4], [30, 33, 36], [0.9, 1.8, 3.6], [30, 33, 36]) == pytest.approx(-10.0)
    assert bd_rate([1, 2, 4], [30, 33, 36], [2, 4, 8], [30, 33, 36]) == pytest.approx(100.0)
    assert np.isnan(bd_rate([1, 2], [30, 31], [1, 2], [40, 41]))  # no overlap
    assert np.isnan(bd_rate([1], [30], [1, 2], [30, 31]))  # one point
    # points that are not finite are dropped, not fatal
    assert bd_rate([1, 2, 4, 8], [30, 33, 36, np.inf], [0.9, 1.8, 3.6, np.nan], [30, 33, 36, 40]) == \
        pytest.approx(-10.0)


def test_benchmark_uses_the_same_bd_rate():
    spec = importlib.util.spec_from_file_location("rate_distortion", ROOT / "benchmarks" / "rate_distortion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.bd_rate is bd_rate


# --- codecs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_stays_within_budget(name):
    (_, img), (_, gray) = crops()
    codec = CODECS[name]
    for image in (img, gray):
        budget = image.shape[0] * image.shape[1] // 4  # 2 bpp
        cache: dict = {}
        found = codec.at_most(image, budget, cache)
        assert found is not None and len(found.data) <= budget
        assert len(found.data) >= 0.5 * budget
        out = codec.decode(found.data, image.shape[2])
        assert out.shape == image.shape and out.dtype == np.uint8
        smaller = codec.at_most(image, budget // 2, cache)  # the cache is reused
        assert smaller is not None and len(smaller.data) <= budget // 2 <= len(found.data)
        assert codec.at_most(image, 20) is None  # below any file this codec can make


def test_jp2_fills_its_budget():
    (_, img), _ = crops()
    found = CODECS["jp2"].at_most(img, 1000)
    assert 900 <= len(found.data) <= 1000


# --- the grid tokenizer -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid():
    return GridTokenizer.fit([img for _, img in crops()], patch=(16, 8, 4), codebook=32, seed=3)


def test_grid_is_a_tokenizer(grid):
    (_, img), (_, gray) = crops()
    assert isinstance(grid, adatok.Tokenizer)
    assert grid.patches == (16, 8, 4) and grid.channels == 3 and grid.vocab_size == 32 and grid.bits == 5
    seq, seq_gray = grid.encode([img, gray[:, :, 0]])
    assert len(seq) == (64 // 4) * (80 // 4) and seq.pos_fields == ("patch", "y", "x")
    out, out_gray = grid.decode([seq, seq_gray])
    assert out.shape == img.shape and out_gray.shape == gray.shape[:2]  # a 2-D image decodes to 2-D
    assert adatok.core.metrics.psnr(img, out) > 18
    # any prefix decodes, longer prefixes get closer
    errs = [adatok.core.metrics.mse(img, grid.decode([seq.prefix(k)])[0]) for k in (0, 40, 160, len(seq))]
    assert errs == sorted(errs, reverse=True)


def test_grid_budgets(grid):
    (_, img), _ = crops()
    seq, = grid.encode([img], Tokens(100))  # 8-pixel patches: 8 x 10 = 80 tokens; 4-pixel: 320
    assert len(seq) == 80 and seq.params["patch"] == 8
    seq, = grid.encode([img], Tokens(3))  # less than the coarsest grid: its first tokens
    assert len(seq) == 3 and seq.params["patch"] == 16
    for x in (0.2, 0.5, 1.0):
        seq, = grid.encode([img], Bpp(x))
        assert len(grid.to_bytes(seq)) <= x * img.shape[0] * img.shape[1] / 8
    for x in (0.01, 0.2):  # the token stream alone: no header
        seq, = grid.encode([img], Bpp(x, header=False))
        assert len(grid.to_bytes(seq)) - grid.header_size(b"") <= x * img.shape[0] * img.shape[1] / 8
        assert len(seq) > 0
    with pytest.raises(BudgetError):  # with the 14-byte header counted, 0.01 bpp is too little
        grid.encode([img], Bpp(0.01))
    with pytest.raises(BudgetError):
        grid.encode([img], Lossless())
    coarse, = grid.encode([img], Quality(psnr=5))
    assert coarse.params["patch"] == 16



def test_more_grid_tokens_code_images_whose_sides_are_not_multiples_of_the_patch_no_worse():
    """The codebook was fitted on patches at any offset inside the images, while the grid codes the
    images padded to multiples of the patch: on 28 x 28 Fashion-MNIST images four 16-pixel tokens
    decoded 2.9 dB below one 32-pixel token (13.7 against 16.6 dB in the demo's report), which made
    the learned tokenizer's lead over the grid look larger than it is."""
    from adatok.core.metrics import psnr
    from adatok.datasets import load

    train = load("fashion-mnist", split="train", limit=300).images
    test = load("fashion-mnist", split="test", limit=100).images
    grid = GridTokenizer.fit(train, patch=(32, 16), codebook=64)
    one, four = (np.mean([psnr(a, b) for a, b in zip(test, grid.decode(grid.encode(test, Tokens(k))), strict=True)])
                 for k in (1, 4))
    assert four >= one  # (15.42 against 15.20 dB; 12.58 against 15.20 before)

def test_grid_bytes_round_trip(grid):
    (_, img), _ = crops()
    for seq in (grid.encode([img])[0], grid.encode([img], Tokens(7))[0]):
        data = grid.to_bytes(seq)
        assert len(data) == grid.nbytes(len(seq))
        back = grid.from_bytes(data)
        np.testing.assert_array_equal(back.ids, seq.ids)
        np.testing.assert_array_equal(back.pos, seq.pos)
    with pytest.raises(adatok.ContainerError):
        grid.from_bytes(data[:5])


def test_grid_fit_is_seeded():
    imgs = [img for _, img in crops()]
    a = GridTokenizer.fit(imgs, patch=8, codebook=16, seed=1)
    b = GridTokenizer.fit(imgs, patch=8, codebook=16, seed=1)
    np.testing.assert_array_equal(a.codebooks[8], b.codebooks[8])


# --- maps ------------------------------------------------------------------------------------------


def test_wavelet_token_footprints():
    seq = adatok.TokenSequence(np.zeros(3), np.array([[5, 3, 0, 0, 1, 2], [5, 1, 1, 0, 4, 0], [5, 2, 0, 0, 9, 9]]),
                               (40, 30, 3), "wavelet", "1", {}, ("plane", "level", "band", "channel", "y", "x"))
    boxes = token_footprints(seq)
    assert boxes.tolist() == [[8, 16, 16, 24], [8, 10, 0, 2], [36, 40, 30, 30]]  # level 3, level 1, clipped
    counts = token_heatmap(seq, spread=False)
    assert counts[10, 20] == 1 and counts[9, 1] == 1 and counts[0, 0] == 0 and counts.sum() == 64 + 4
    density = token_heatmap(seq)
    assert density.sum() == pytest.approx(2.0)  # the third token covers no pixel
    assert token_heatmap(seq, n=1).sum() == pytest.approx(1.0)


def test_heatmap_of_real_sequences(grid):
    (_, img), _ = crops()
    seq, = adatok.load("wavelet").encode([img], Tokens(500))
    heat = token_heatmap(seq)
    assert heat.shape == img.shape[:2] and heat.sum() == pytest.approx(500)
    gseq, = grid.encode([img], Tokens(10))
    gheat = token_heatmap(gseq, spread=False)
    assert (gheat[:32] == 1).all() and gheat[32:].sum() == 0  # 16-pixel patches in raster order: two rows of 5
    slots = adatok.TokenSequence(np.zeros(2), np.array([[0], [1]]), (8, 8, 3), "slots", "1", {}, ("slot",))
    assert token_heatmap(slots) is None


# --- runs and reports ---------------------------------------------------------------------------------


BPP = (1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def run_twice(tmp_path_factory):
    """The same small evaluation, twice, each with its report."""
    outs = []
    for i in range(2):
        out = tmp_path_factory.mktemp(f"eval{i}")
        ev = evaluate(crops(), ["wavelet", "wavelet-lossless"], bpp=BPP, tokens=(300,), seed=0,
                      config={"data": "crops", "command": "pytest"})
        write_report(ev, out)
        outs.append((ev, out))
    return outs


def test_results_are_tidy(run_twice):
    ev, out = run_twice[0]
    rows = read_results(out / "results.csv")
    assert list(rows[0]) == list(COLUMNS)
    methods = ["wavelet", "wavelet-lossless", "grid", "jpeg", "webp", "avif", "jp2"]
    assert [m.name for m in ev.methods] == methods
    # tokenizers: 3 bpp budgets + 1 token budget; codecs: the 3 bpp budgets
    assert len(rows) == 2 * (3 * 4 + 4 * 3)
    keys = {(r["image"], r["method"], r["budget_kind"], r["budget"]) for r in rows}
    assert len(keys) == len(rows)
    for r in rows:
        if r["bpp"] == "":
            assert r["note"]
            continue
        h, w = int(r["height"]), int(r["width"])
        assert float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (h * w), abs=1e-5)
        if r["budget_kind"] == "bpp":
            assert float(r["bpp"]) <= float(r["budget"]) + 1e-9
        else:
            assert int(r["tokens"]) <= int(r["budget"])
        assert 5 < float(r["psnr"]) and 0 < float(r["ssim"]) <= 1 and 0 < float(r["ms_ssim"]) <= 1
        assert (r["tokens"] != "") == (r["kind"] == "tokenizer")
    wav = [r for r in rows if r["method"] == "wavelet" and r["image"] == "astro" and r["budget_kind"] == "bpp"]
    assert [float(r["psnr"]) for r in wav] == sorted(float(r["psnr"]) for r in wav)


def test_second_run_gives_the_same_numbers(run_twice):
    (_, a), (_, b) = run_twice
    rows_a, rows_b = read_results(a / "results.csv"), read_results(b / "results.csv")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)
    assert (a / "bd_rate.csv").read_text() == (b / "bd_rate.csv").read_text()


def test_report_numbers_are_those_of_results_csv(run_twice):
    ev, out = run_twice[0]
    rows = read_results(out / "results.csv")
    page = (out / "report.html").read_text()
    table = re.findall(r"<tr (data-image=.*?)>", page)
    assert len(table) == len(rows)
    for attrs, row in zip(table, rows, strict=True):
        got = {k.replace("-", "_"): html.unescape(v) for k, v in re.findall(r"data-([\w-]+)='([^']*)'", attrs)}
        assert got == {k: row[k] for k in got}
        assert set(got) >= {"image", "method", "budget", "bpp", "psnr", "ssim", "ms_ssim", "tokens", "bytes"}
    # the captions under the pictures quote the same strings
    by_key = {(r["image"], r["method"], r["budget_kind"] + "=" + r["budget"]): r for r in rows}
    figures = re.findall(r"<figure data-method='([^']+)' data-budget='([^']+)'><img[^>]*><figcaption>(.*?)</figcaption>",
                         page)
    assert figures
    for section in re.split(r"<section class='image' data-image='", page)[1:]:
        image = html.unescape(section.split("'", 1)[0])
        for method, budget, caption in re.findall(
                r"<figure data-method='([^']+)' data-budget='([^']+)'><img[^>]*><figcaption>(.*?)</figcaption>", section):
            row = by_key[(image, method, budget)]
            for col in ("bytes", "bpp", "psnr"):
                if f"data-col='{col}'" in caption:
                    assert f"<span data-col='{col}'>{row[col]}</span>" in caption
    # the BD-rate table is bd_rate.csv
    bd = list(csv.DictReader((out / "bd_rate.csv").open()))
    assert {r["method"] for r in bd} == {"wavelet", "wavelet-lossless", "grid", "jpeg", "webp", "avif"}
    for r in bd:
        if r["bd_rate_psnr_percent"]:
            assert f"{r['bd_rate_psnr_percent']} %" in page
    for stem in ("psnr_bpp", "ssim_bpp", "ms_ssim_bpp", "psnr_tokens"):
        assert (out / "plots" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"data-plot='{stem}'" in page


def test_evaluate_stream_counts_the_token_stream(tmp_path):
    """header=False (``adatok eval --stream``): tokenizers get Bpp(x, header=False), their bpp is that
    of the token stream, codecs sit out with a note; the report says what was counted."""
    from adatok.eval import write_report

    ev = evaluate(crops(), ["wavelet"], bpp=(0.3,), baselines=("jpeg", "grid"), header=False, seed=0)
    assert ev.config["bpp_counts"] == "stream"
    for r in ev.rows:
        h, w = r["height"], r["width"]
        if r["method"] == "jpeg":
            assert r["bpp"] is None and "token stream" in r["note"]
        else:
            assert r["stream_bytes"] < r["bytes"]
            assert r["bpp"] == pytest.approx(8 * r["stream_bytes"] / (h * w))
            assert r["stream_bytes"] <= 0.3 * h * w / 8
    page = write_report(ev, tmp_path).read_text()
    assert "the token stream alone" in page
    # each caption's bytes are those its bpp counts (it paired the file's bytes with the stream's bpp)
    caps = re.findall(r"<span data-col='stream_bytes'>(\d+)</span> bytes of tokens \(<span data-col='bytes'>(\d+)"
                      r"</span> in the file\) · <span data-col='bpp'>([\d.]+)</span> bpp", page)
    assert caps and all(int(s) < int(f) for s, f, _ in caps)
    sizes = {(r["stream_bytes"], round(r["bpp"], 5)) for r in ev.rows if r["bpp"] is not None}
    assert all((int(s), round(float(b), 5)) in sizes for s, _, b in caps)


def test_report_commands_quote_their_arguments(tmp_path):
    """The reproduce line of a run made from Python splits back into its arguments (an --out with a
    space was two words; an empty baseline list one fewer)."""
    import shlex

    from adatok.eval import run

    out = tmp_path / "my report"
    ev, _ = run("samples", out, ["wavelet"], bpp=(0.5,), baselines=(), limit=1, max_side=32)
    words = shlex.split(ev.config["command"])
    assert words[words.index("--out") + 1] == str(out) and words[words.index("--baselines") + 1] == "none"


def test_evaluate_rejects_bad_arguments():
    with pytest.raises(AdatokError, match="budget"):
        evaluate(crops(), bpp=(), tokens=())
    with pytest.raises(AdatokError, match="unknown baseline 'png'"):
        evaluate(crops(), baselines=("png",))
    with pytest.raises(AdatokError, match="no images to evaluate"):
        evaluate([("dot", np.zeros((1, 1, 3), np.uint8))])


# --- the command line -------------------------------------------------------------------------------


def test_cli_eval_on_a_messy_folder(tmp_path):
    """A corrupt image, a text file and a 1x1 image: listed as skipped, with reasons; exit 0."""
    from skimage import data

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(data.astronaut()[::8, ::8]).save(folder / "sub" / "astro.png")
    png = bytearray((folder / "sub" / "astro.png").read_bytes())
    png[200:260] = bytes(60)  # inside the image data: the header reads, the pixels do not
    (folder / "corrupt.png").write_bytes(bytes(png))
    (folder / "notes.txt").write_text("hello\n")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "dot.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--data", str(folder), "--bpp", "1,2", "--baselines", "jpeg,jp2",
                                      "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    text = re.sub(r"\s+", " ", result.output)
    assert "skipped 3" in text
    for name, why in (("corrupt.png", "corrupt"), ("notes.txt", "not an image"), ("dot.png", "too small")):
        assert re.search(rf"{re.escape(name)}: [^\n]*{why}", result.output), result.output
    assert str(out / "report.html") in text
    rows = read_results(out / "results.csv")
    assert {r["image"] for r in rows} == {"sub/astro.png"}
    page = (out / "report.html").read_text()
    assert page.count("<li data-file=") == 3


def test_cli_eval_quiet_and_errors(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["eval", "--data", "nope-nothing", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: unknown dataset")
    bad = runner.invoke(app, ["eval", "--data", "samples", "--bpp", "0.1,lots", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--bpp" in bad.stderr
    bad = runner.invoke(app, ["eval", "--data", "samples", "--baselines", "png", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "unknown baseline" in bad.stderr
    ok = runner.invoke(app, ["eval", "--data", "samples", "--limit", "1", "--max-side", "32", "--tokens", "200,800",
                             "--baselines", "grid", "--quiet", "--out", str(tmp_path / "q")])
    assert ok.exit_code == 0 and ok.output == ""
    rows = read_results(tmp_path / "q" / "results.csv")
    assert [(r["method"], r["budget_kind"], r["budget"]) for r in rows] == [
        ("wavelet", "tokens", "200"), ("wavelet", "tokens", "800"), ("grid", "tokens", "200"), ("grid", "tokens", "800")]


def test_eval_never_imports_torch():
    code = ("import sys, numpy as np, adatok.eval as e, skimage.data as d\n"
            "ev = e.evaluate([('a', d.astronaut()[:32, :32])], bpp=(2.0,), baselines=('jpeg', 'grid'))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# --- defects found by review (2026-11-30) -------------------------------------------------------------


def noise(seed: int, shape=(40, 50, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_grid_never_codes_an_image_with_codebooks_that_saw_it():
    """Fitted on the evaluated images, a codebook entry held the image itself (a 64-pixel patch over a
    40x50 image): 0 or 1 token decoded it exactly. Now the two halves code each other; one image alone
    has nothing to fit on, and its rows say so; given training images, those are used."""
    ev = evaluate([("a", noise(0, (96, 96, 3))), ("b", noise(1, (96, 96, 3)))], [], bpp=(), tokens=(0, 1, 2),
                  baselines=("grid",), seed=0)
    assert "crosswise" in ev.config["grid"]["fitted_on"] and ev.config["grid"]["patches"] == [64]
    for r in ev.rows:
        assert r["note"] == "" and r["psnr"] < 15, r  # noise: nothing to learn from the other image
    ev = evaluate([("a", noise(0))], [], bpp=(8.0,), tokens=(1,), baselines=("grid", "jpeg"), seed=0)
    grid = [r for r in ev.rows if r["method"] == "grid"]
    assert len(grid) == 2 and all(r["psnr"] is None and "needs training images" in r["note"] for r in grid)
    assert [r["psnr"] is not None for r in ev.rows if r["method"] == "jpeg"] == [True]
    ev = evaluate([("a", noise(0))], [], bpp=(), tokens=(1,), baselines=("grid",), seed=0,
                  grid_train=[noise(2), noise(3)])
    assert ev.config["grid"]["fitted_on"] == "given training images" and ev.rows[0]["psnr"] < 15


def test_a_budget_under_the_grids_header_is_a_row_not_an_abort():
    """Bpp(0.02) on a 40x50 image is 5 bytes, under the grid's 14-byte header: that row says why, the
    rest of the run is measured (it used to end the whole run with an error)."""
    ev = evaluate([("a", noise(0)), ("b", noise(1))], ["wavelet"], bpp=(0.02, 1.0), baselines=("grid",), seed=0)
    grid = {(r["image"], r["budget"]): r for r in ev.rows if r["method"] == "grid"}
    assert len(grid) == 4
    for image in ("a", "b"):
        assert grid[(image, 0.02)]["psnr"] is None and "header" in grid[(image, 0.02)]["note"]
        assert grid[(image, 1.0)]["psnr"] is not None


def test_jp2_with_no_byte_to_spend_is_a_note():
    """0.01 bpp of a 28x28 image is 0 bytes: JPEG 2000 said ZeroDivisionError; now 'cannot make'."""
    from adatok.eval import codec

    img = noise(0, (28, 28, 1))
    assert codec("jp2").at_most(img, 0, {}) is None
    ev = evaluate([("a", np.pad(img, ((0, 0), (0, 0), (0, 0))))], [], bpp=(0.01, 2.0), baselines=("jp2",))
    low = [r for r in ev.rows if r["budget"] == 0.01]
    assert len(low) == 1 and "cannot make a file of at most 0 bytes" in low[0]["note"]


def test_a_codec_that_cannot_encode_an_image_so_long_is_a_note():
    """Found by review: a 16 x 17000 strip ended `adatok eval` in Pillow's raw ValueError (libwebp
    encodes at most 16,383 pixels a side; libjpeg 65,500: an OSError; libavif wrote files past 32,768
    that it could not open). Now each such codec's rows say why; the others are measured."""
    from adatok.eval import codec

    strip = noise(1, (16, 17000, 1))
    with pytest.raises(AdatokError, match="WebP encodes images up to 16,383 pixels a side; this one is 16x17,000 .H x W."):
        codec("webp").encode(strip, 50)
    assert codec("avif").refuses((16, 32769)) and not codec("avif").refuses((16, 32768))
    assert codec("jpeg").refuses((65501, 16)) and codec("jp2").refuses((16, 10**6)) is None
    smooth = np.broadcast_to((np.arange(17000) % 256).astype(np.uint8)[None, :, None], (16, 17000, 1))
    ev = evaluate([("strip", np.ascontiguousarray(smooth))], [], bpp=(1.0,), baselines=("webp", "jpeg"))
    rows = {r["method"]: r for r in ev.rows}
    assert rows["webp"]["psnr"] is None and "up to 16,383 pixels a side" in rows["webp"]["note"]
    assert rows["jpeg"]["psnr"] is not None


def test_evaluate_seeds_and_budgets_are_checked_and_each_budget_runs_once():
    for seed in (-1, 2**32, True, 1.5):
        with pytest.raises(AdatokError, match="seed"):
            evaluate(crops(), ["wavelet"], bpp=(1.0,), baselines=("grid",), seed=seed)
    big = 10**23
    ev = evaluate(crops()[:1], ["wavelet"], bpp=(0.5, .5, 0.50), tokens=(5, 5, big), baselines=())
    assert ev.budgets == [("bpp", 0.5), ("tokens", 5), ("tokens", big)]
    assert len(ev.rows) == 3 and ev.rows[-1]["budget"] == big


def test_cli_eval_refuses_an_output_inside_its_data_folder(tmp_path):
    """The report's plots (PNG) inside the data folder were evaluated as images by the next run."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(noise(0)).save(photos / "a.png")
    for out in (photos / "eval", photos):
        result = CliRunner().invoke(app, ["eval", "--data", str(photos), "--bpp", "0.5", "--baselines", "jpeg",
                                          "-q", "--out", str(out)])
        assert result.exit_code == 2 and "inside the data folder" in result.stderr, result.output
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]


def test_cli_eval_lengths_measure_the_images_the_run_measured(tmp_path):
    """Fashion-MNIST without --split: results.csv is the test split, and lengths.csv was the train
    split's first images; a later run without a target no longer leaves the old lengths.csv; a run
    that fails leaves no empty folder behind."""
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["eval", "--data", "fashion-mnist", "--limit", "2", "--bpp", "1",
                                      "--baselines", "none", "--target-psnr", "20", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    measured = {r["image"] for r in read_results(out / "results.csv")}
    lengths = {r["image"] for r in csv.DictReader((out / "lengths.csv").open())}
    assert measured == lengths == {"test/00000", "test/00001"}
    result = CliRunner().invoke(app, ["eval", "--data", "fashion-mnist", "--limit", "2", "--bpp", "1",
                                      "--baselines", "none", "-q", "--out", str(out)])
    assert result.exit_code == 0 and not (out / "lengths.csv").exists()
    failed = tmp_path / "never"
    result = CliRunner().invoke(app, ["eval", "--data", "fashion-mnist", "--limit", "1", "--bpp", "1",
                                      "--baselines", "none", "--tokenizer", "wavelet", "--roi", "auto",
                                      "--saliency", "nope", "-q", "--out", str(failed)])
    assert result.exit_code == 2 and not failed.exists()


def test_grid_rows_say_when_the_other_half_had_too_few_patches():
    """Crosswise, a 128x128 image was coded by codebooks fitted on one 16x16 image (12.6 dB where the
    grid had 34): such rows now say why they are not measured; images of like sizes are measured."""
    ev = evaluate([("a", noise(0, (128, 128, 1))), ("b", noise(1, (16, 16, 1)))], [], bpp=(0.5, 2.0),
                  baselines=("grid",), seed=0)
    rows = {(r["image"], r["budget"]): r for r in ev.rows}
    for b in (0.5, 2.0):
        assert rows[("a", b)]["psnr"] is None and "fewer than its 256 entries" in rows[("a", b)]["note"]
        assert rows[("b", b)]["psnr"] is not None and rows[("b", b)]["note"] == ""


def test_a_run_of_zero_tokens_plots_without_warnings(tmp_path):
    import warnings

    from adatok.eval import write_report

    ev = evaluate(crops(), ["wavelet"], tokens=(0,), baselines=())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (matplotlib: "Data has no positive values, and therefore cannot be log-scaled")
        write_report(ev, tmp_path)


def test_eval_found_by_review_session_12(tmp_path):
    """A gray fold no longer codes colour images in gray; BD-rate counts per metric, in real CSV;
    --stream with a region refused; large synthetic images; codec sizes not monotone in quality."""
    from adatok.eval.baselines import DIP
    from adatok.eval.report import bd_rates
    from adatok.eval.synthetic import synthetic_images

    rng = np.random.default_rng(0)
    colour = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    gray = [rng.integers(0, 256, (32, 32, 1), dtype=np.uint8) for _ in range(2)]
    imgs = [("c0", colour[0]), ("g0", gray[0]), ("c1", colour[1]), ("g1", gray[1])]  # one fold all gray
    ev = evaluate(imgs, [], bpp=(2.0,), baselines=("grid",), keep=4)
    shot = ev.shots[("c0", "grid", "bpp", 2.0)].image
    assert not (np.array_equal(shot[..., 0], shot[..., 1]) and np.array_equal(shot[..., 1], shot[..., 2]))
    with pytest.raises(AdatokError, match="--stream"):
        evaluate(imgs[:1], ["wavelet"], bpp=(1.0,), baselines=(), header=False, roi="centre")
    if importlib.util.find_spec("torch") is not None:  # a tokenizer that does not steer: nothing uncounted
        from adatok.datasets import load

        fm = load("fashion-mnist", "test", limit=1).items()
        assert evaluate(fm, ["fashion-mnist-32"], bpp=(0.3,), baselines=(), header=False, roi="centre").rows
    assert max(max(im.shape[:2]) for _, im in synthetic_images(24, seed=1, max_side=700)) > 300
    webp = CODECS["webp"]
    img = crops()[0][1]
    sizes = {q: len(webp.encode(img, q)) for q in range(int(webp.low), int(webp.high) + 1)}
    cache: dict = {}  # shared across budgets, as the runner shares it
    for budget in sorted(set(sizes.values()))[::7]:
        got = webp.at_most(img, budget, cache)
        assert len(got.data) <= budget
        assert all(sizes[q] > budget for q in range(int(got.setting) + 1, min(int(got.setting) + DIP, int(webp.high)) + 1))
        assert not any(q > got.setting and len(e.data) <= budget for q, e in cache.items())  # (a better one it knew)
    rows = [{"budget_kind": "bpp", "image": i, "method": m, "bpp": str(b), "psnr": str(p), "ms_ssim": str(s)}
            for i, pts in (("a", {"jp2": [(0.5, 30, 0.9), (1, 35, 0.95)], "m, x": [(0.5, 31, 0.91), (1, 36, 0.96)]}),
                           ("b", {"jp2": [(0.5, 30, 0.9), (1, 35, 0.95)], "m, x": [(0.5, float("inf"), 0.91),
                                                                                 (1, float("inf"), 0.96)]}))
            for m, ps in pts.items() for b, p, s in ps]
    rate = bd_rates(rows)["m, x"]
    assert rate["n"] == 1 and rate["n_ms_ssim"] == 2  # (inf PSNR: no PSNR curve for image b)


def test_bd_rate_keeps_the_lowest_rate_of_a_quality_whatever_the_order():
    """Two points of one quality (a saturated codec, rounded figures): the first given was kept, so
    the same curves gave -19.56 % in one order and -9.70 % in the other (found by review)."""
    r1, p1 = [1, 2, 4, 8], [30, 33, 36, 36]
    r2, p2 = [0.8, 1.6, 3.2, 6.4], [30, 33, 36, 38]
    ascending = bd_rate(r1, p1, r2, p2)
    assert bd_rate(r1[::-1], p1[::-1], r2[::-1], p2[::-1]) == pytest.approx(ascending)
    assert ascending == pytest.approx(bd_rate(r1[:3], p1[:3], r2, p2))  # (the 8 at 36 dB never counts)


@pytest.mark.parametrize("r, p", [([1, 2, 3], [30, 33]), ([[1, 2], [3, 4]], [30, 33]), (["a", "b"], [30, 33])])
def test_bd_rate_refuses_malformed_curves(r, p):
    with pytest.raises(AdatokError, match="curve 2"):
        bd_rate([1, 2], [30, 33], r, p)


def test_error_map_takes_a_gray_image_either_way_and_refuses_other_shapes():
    """H x W against H x W x 1 broadcast to a square map of wrong numbers (found by review)."""
    from adatok.eval.maps import error_map

    gray = np.random.default_rng(0).integers(0, 256, (16, 12), dtype=np.uint8)
    for a, b in ((gray[..., None], gray), (gray, gray[..., None]), (gray, gray)):
        m = error_map(a, b)
        assert m.shape == (16, 12) and m.max() == 0
    square = gray[:12]
    assert error_map(square[..., None], 255 - square).max() > 0
    for b in (gray[:, :11], np.repeat(gray[..., None], 3, 2), gray.T):
        with pytest.raises(adatok.ImageFormatError):
            error_map(gray, b)


def test_synthetic_images_keep_to_max_side():
    """Tiny images and pixel art came out up to 7 and 8 pixels a side whatever max_side (found by
    review); max_side under 1 was numpy's error."""
    from adatok.eval.synthetic import synthetic_images

    for side in (1, 2, 5):
        assert max(max(im.shape[:2]) for _, im in synthetic_images(48, seed=0, max_side=side)) <= side
    for bad in (0, -1, 2.5):
        with pytest.raises(AdatokError, match="max_side"):
            synthetic_images(3, max_side=bad)


def test_jpeg_of_a_short_wide_strip_at_high_quality_is_written():
    """Pillow's optimized JPEG failed on 2 x 17000 noise at high quality ("broken data stream when
    writing image file": a 500 from adatok serve's curve); it falls back to the standard tables."""
    from adatok.eval import codec

    strip = np.random.default_rng(0).integers(0, 256, (2, 17000, 1), dtype=np.uint8)
    for q in (95, 50):
        data = codec("jpeg").encode(strip, q)
        assert codec("jpeg").decode(data, 1).shape == (2, 17000, 1)
