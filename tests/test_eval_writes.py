"""``adatok eval``'s folder: one run's report, whole (lengths.csv with it), and every bad argument of
the Python API an ``AdatokError`` (defects found by an outside tester, 2026-12)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import adatok
from adatok import AdatokError, BudgetError, Bpp, ImageFormatError, Quality
from adatok.cli import app
from adatok.core.imageio import folder_lock
from adatok.eval import evaluate, read_results, run
from adatok.eval.lengths import length_report

SMALL = {"limit": 1, "max_side": 32, "bpp": [1.0], "baselines": []}


def test_a_target_writes_the_lengths_with_the_report_as_one(tmp_path, monkeypatch):
    """lengths.csv was written after the report, apart: an interrupt in between left the new report
    beside the last run's lengths. Now an interrupt while the lengths are measured leaves the
    earlier report, lengths and all, as it was."""
    out = tmp_path / "ev"
    run("samples", out, ["wavelet"], target=Quality(psnr=25), **SMALL)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "lengths.csv" in before and "results.csv" in before
    import adatok.eval.lengths as lengths

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lengths, "length_reports", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("samples", out, ["wavelet"], target=Quality(psnr=40), limit=2, max_side=32, bpp=[0.5], baselines=[])
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_second_run_waits_for_the_folder_lock_before_writing_its_lengths(tmp_path):
    """Two runs into one folder at once: lengths.csv was written outside the lock."""
    out = tmp_path / "ev"
    out.mkdir()
    done = []
    with folder_lock(out, "a test"):
        worker = threading.Thread(target=lambda: done.append(
            run("samples", out, ["wavelet"], target=Quality(psnr=25), **SMALL)))
        worker.start()
        for _ in range(60):  # (the run takes about a second; it must not write while the lock is held)
            time.sleep(0.1)
            assert not (out / "lengths.csv").exists() and not (out / "results.csv").exists()
    worker.join(60)
    assert done and (out / "lengths.csv").exists() and (out / "results.csv").exists()


def test_a_run_without_a_target_removes_an_earlier_runs_lengths(tmp_path):
    """adatok demo and Python's run() kept them (only adatok eval removed them)."""
    out = tmp_path / "ev"
    run("samples", out, ["wavelet"], target=Quality(psnr=25), **SMALL)
    assert (out / "lengths.csv").exists()
    run("samples", out, ["wavelet"], **SMALL)
    assert not (out / "lengths.csv").exists() and (out / "results.csv").exists()


def test_a_report_file_that_is_a_folder_is_refused_before_any_work(tmp_path):
    out = tmp_path / "ev"
    (out / "lengths.csv").mkdir(parents=True)
    result = CliRunner().invoke(app, ["eval", "--data", "samples", "--limit", "1", "--max-side", "32", "--bpp", "1",
                                      "--baselines", "none", "--target-psnr", "25", "--out", str(out), "-q"])
    assert result.exit_code == 2 and "lengths.csv is a folder" in result.output
    assert not (out / "results.csv").exists()


def test_a_failed_run_leaves_none_of_the_folders_it_made(tmp_path):
    with pytest.raises(AdatokError):
        run("samples", tmp_path / "nest" / "a" / "b", ["wavelet"], seed=-1, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_other_files_is_refused_and_a_report_folder_is_rerun(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my own results\n")
    (mine / "notes.txt").write_text("notes\n")
    with pytest.raises(AdatokError, match="not the results.csv of an adatok eval report"):
        run("samples", mine, ["wavelet"], **SMALL)
    assert (mine / "results.csv").read_text() == "my own results\n"
    out = tmp_path / "ev"
    run("samples", out, ["wavelet"], target=Quality(psnr=25), **SMALL)
    run("samples", out, ["wavelet"], **SMALL)  # an earlier report's folder: rerun into it
    assert len(read_results(out / "results.csv")) == 1


def test_a_mask_is_compared_with_its_image_before_shrinking(tmp_path):
    """A 256 x 256 mask for the 512 x 512 astronaut passed with --max-side 64: both shrunk to 64."""
    Image.fromarray(np.full((256, 256), 255, np.uint8)).save(tmp_path / "m.png")
    result = CliRunner().invoke(app, ["eval", "--data", "samples", "--limit", "1", "--max-side", "64", "--bpp", "1",
                                      "--baselines", "none", "--roi", str(tmp_path / "m.png"),
                                      "--out", str(tmp_path / "ev"), "-q"])
    assert result.exit_code == 2 and "256x256" in result.output and "512x512" in result.output
    assert not (tmp_path / "ev").exists()


def test_a_file_name_that_is_not_utf8_is_escaped_in_the_report(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    from skimage import data as sk

    Image.fromarray(sk.camera()[:64, :64]).save(bytes(data) + b"/bad\xff.png")
    out = tmp_path / "ev"
    run(str(data), out, ["wavelet"], bpp=[1.0], baselines=[], target=Quality(psnr=25))
    assert [r["image"] for r in read_results(out / "results.csv")] == ["bad\\xff.png"]
    assert "bad\\xff.png" in (out / "report.html").read_text() and "bad\\xff.png" in (out / "lengths.csv").read_text()


IMG = np.zeros((32, 32, 3), np.uint8)


@pytest.mark.parametrize("call, error", [
    (lambda: evaluate([("a", IMG)], ["wavelet"], [], tokens=[10.5, 99.9], baselines=[]), BudgetError),
    (lambda: length_report(adatok.load("wavelet"), IMG, Quality(psnr=30)), ImageFormatError),
    (lambda: length_report(adatok.load("wavelet"), [IMG], Bpp(1)), BudgetError),
    (lambda: run("samples", "o", ["wavelet"], bpp=0.5), BudgetError),
    (lambda: run("samples", "o", ["wavelet"], bpp=["x"]), BudgetError),
    (lambda: run("samples", "o", ["wavelet"], bpp=[], tokens=None), BudgetError),
    (lambda: run("samples", "o", [3]), AdatokError),
    (lambda: run(None, "o"), AdatokError),
    (lambda: run("samples", "o", baselines=5), AdatokError),
    (lambda: run("samples", "o", keep="x"), AdatokError),
    (lambda: run("samples", "o", target=Bpp(1)), BudgetError),
    (lambda: evaluate(IMG, ["wavelet"]), ImageFormatError),
    (lambda: evaluate([("a", IMG)], roi=5), AdatokError),
    (lambda: read_results("nope.csv"), AdatokError),
    (lambda: read_results(None), AdatokError),
])
def test_bad_arguments_of_the_python_api_are_adatok_errors(call, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error):
        call()
    assert not (tmp_path / "o").exists()


def test_length_report_takes_a_tokenizers_name():
    rep = length_report("wavelet", [IMG], Quality(psnr=30))
    assert len(rep.names) == 1


def test_the_cli_warns_in_one_line_and_names_its_own_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples").mkdir()
    result = CliRunner().invoke(app, ["eval", "--data", "samples", "--limit", "1", "--max-side", "32",
                                                      "--bpp", "1", "--baselines", "none", "--out", "ev", "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("warning: 'samples' names the built-in dataset") and result.stderr.count("\n") == 1
    result = CliRunner().invoke(app, ["eval", "--data", "samples", "--split", "x", "--out", "ev2"])
    assert result.exit_code == 2 and "--split" in result.output and "split=None" not in result.output


def test_the_report_counts_one_in_the_singular_and_says_na_without_a_unit(tmp_path):
    """The report said "WebP (1 points)", "1 images evaluated", and "n/a %" in the BD-rate table (found by
    an outside user's review)."""
    ev, report = run("samples", tmp_path / "o", ["wavelet"], bpp=[0.5, 1.0], baselines=["webp", "jp2"], limit=1,
                     max_side=48)
    page = report.read_text()
    assert "1 image evaluated" in page and "(1 point)" in page
    assert "(1 points)" not in page and "1 images" not in page
    assert "<td>n/a</td>" in page and "n/a %" not in page


def test_an_empty_folder_and_a_split_the_command_line_cannot_give_are_said_in_its_words(tmp_path):
    """`eval --data EMPTY` said "no images to evaluate (0 skipped: none given)"; `--data fashion-mnist --split
    val` offered "(or None for both)", which no command line can give."""
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr == (f"error: {tmp_path / 'empty'} holds no image files (its sub-folders searched too, hidden "
                             "files left out); give a folder of images\n")
    result = CliRunner().invoke(app, ["eval", "--data", "fashion-mnist", "--split", "val", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: fashion-mnist has the splits test and train, not 'val'")
    assert "--split test" in result.stderr and "None" not in result.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(AdatokError, match="no images to evaluate: none were given"):
        evaluate([], ["wavelet"], bpp=[1.0], baselines=[])
