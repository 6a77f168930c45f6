"""The ``adatok`` command line: round trips, budgets, info, demo, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import adatok
from adatok.cli import app
from adatok.core.imageio import read_image
from adatok.core.metrics import psnr
from adatok.core.sequence import header_size

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_ok(result) -> None:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)


def assert_user_error(result, *needles: str) -> None:
    """Exit code 2, one line `error: ...` on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def small_png(tmp_path):
    """A 20 x 28 RGB PNG with smooth structure and some noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:20, 0:28]
    img = np.stack([x * 9, y * 12, (x + y) * 5], axis=-1) + rng.integers(0, 30, (20, 28, 3))
    path = tmp_path / "small.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def photo_png(tmp_path):
    """A 48 x 64 crop of scikit-image's astronaut."""
    from skimage import data

    path = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()[100:148, 180:244]).save(path)
    return path


def token_count(info_output: str) -> int:
    match = re.search(r"^tokens:\s+([\d,]+)", info_output, re.MULTILINE)
    assert match, info_output
    return int(match.group(1).replace(",", ""))


# --- happy paths -------------------------------------------------------------------------------


def test_version_and_help():
    result = run("--version")
    assert_ok(result)
    assert adatok.__version__ in result.output
    for cmd in ("encode", "decode", "info", "demo"):
        result = run(cmd, "--help")
        assert_ok(result)
        assert "Usage" in result.output
    assert "--limit" in run("demo", "--help").output


def test_lossless_round_trip_is_bit_exact(tmp_path, small_png):
    atk, png = tmp_path / "small.atk", tmp_path / "back.png"
    result = run("encode", small_png, atk, "--lossless")
    assert_ok(result)
    assert "wavelet-lossless" in result.output and "PSNR exact (" in result.output, result.output  # (was "exact dB")
    assert_ok(run("decode", atk, png, "--quiet"))
    np.testing.assert_array_equal(read_image(png), read_image(small_png))


def test_tokens_budget_shows_in_info(tmp_path, small_png):
    atk = tmp_path / "small.atk"
    assert_ok(run("encode", small_png, atk, "--tokens", 300, "--quiet"))
    result = run("info", atk)
    assert_ok(result)
    assert token_count(result.output) == 300
    assert "wavelet" in result.output
    # the plane x level table: one row per plane, and a total row summing to the length
    assert "plane" in result.output and "L1" in result.output
    total = re.search(r"total\s*│(.*)│\s*$", result.output, re.MULTILINE)
    assert total, result.output
    cells = [int(c.replace(",", "")) for c in total.group(1).split("│")]
    assert cells[-1] == 300 and sum(cells[:-1]) == 300


def test_info_table_by_first_pos_field_for_other_tokenizers(monkeypatch):
    from rich.console import Console

    from adatok.cli import token_table

    seq = adatok.TokenSequence(np.array([3, 1, 4, 1, 5]), np.array([[0], [1], [1], [2], [2]]), (8, 8, 3),
                               "slots", "1", {}, ("slot",))
    console = Console(record=True, width=80)
    console.print(token_table(seq))
    text = console.export_text()
    assert "tokens per slot" in text
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in text.splitlines() if line.startswith("│")}
    assert rows == {"0": "1", "1": "2", "2": "2", "total": "5"}


def test_info_table_counts_each_plane_and_level():
    """Every cell of the plane x level table is the number of tokens with that plane and level."""
    from rich.console import Console

    from adatok.cli import token_table

    img = np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    (seq,) = adatok.load("wavelet").encode([img])  # every plane
    console = Console(record=True, width=200)
    console.print(token_table(seq))
    text = console.export_text().splitlines()
    head = [c.strip() for c in next(line for line in text if line.startswith("┃")).split("┃")[1:-1]]
    levels = [int(c[1:]) for c in head[1:-1]]
    plane, level = seq.pos[:, 0], seq.pos[:, 1]
    rows = [[c.strip().replace(",", "") for c in line.split("│")[1:-1]] for line in text if line.startswith("│")]
    planes = [r for r in rows if r[0].isdigit()]
    assert len(planes) == len(np.unique(plane))
    for r in planes:
        p = int(r[0])
        assert [int(v) for v in r[1:-1]] == [int(np.sum((plane == p) & (level == lev))) for lev in levels]
        assert int(r[-1]) == int(np.sum(plane == p))


def test_psnr_budget_reaches_target(tmp_path, photo_png):
    atk, png = tmp_path / "photo.atk", tmp_path / "photo_back.png"
    result = run("encode", photo_png, atk, "--psnr", 32)
    assert_ok(result)
    assert "PSNR" in result.output
    assert_ok(run("decode", atk, png))
    assert psnr(read_image(photo_png), read_image(png)) >= 32
    # and it is a real prefix, shorter than the full sequence
    full = tmp_path / "full.atk"
    assert_ok(run("encode", photo_png, full, "-q"))
    assert token_count(run("info", atk).output) < token_count(run("info", full).output)


def test_bpp_budget_stays_within_bytes(tmp_path, photo_png):
    atk = tmp_path / "photo.atk"
    result = run("encode", photo_png, atk, "--bpp", 2)
    assert_ok(result)
    h, w, _ = read_image(photo_png).shape
    assert 0 < atk.stat().st_size * 8 / (h * w) <= 2
    assert_user_error(run("encode", photo_png, tmp_path / "tiny.atk", "--bpp", 0.001), "Bpp")
    assert not (tmp_path / "tiny.atk").exists()


def test_decode_token_prefix(tmp_path, photo_png):
    atk, full_png, part_png = tmp_path / "p.atk", tmp_path / "full.png", tmp_path / "part.png"
    assert_ok(run("encode", photo_png, atk, "-q"))
    assert_ok(run("decode", atk, full_png))
    result = run("decode", atk, part_png, "--tokens", 200)
    assert_ok(result)
    assert "200 tokens" in result.output
    ref, full, part = read_image(photo_png), read_image(full_png), read_image(part_png)
    assert part.shape == ref.shape
    assert psnr(ref, part) < psnr(ref, full)


def test_decode_cut_file(tmp_path, photo_png):
    atk, cut, png = tmp_path / "p.atk", tmp_path / "cut.atk", tmp_path / "cut.png"
    assert_ok(run("encode", photo_png, atk, "-q"))
    data = atk.read_bytes()
    n = header_size(data) + (len(data) - header_size(data)) // 3
    assert_ok(run("decode", atk, png, "--bytes", n, "-q"))
    ref, img = read_image(photo_png), read_image(png)
    assert img.shape == ref.shape and psnr(ref, img) > 15
    # the same cut, made on disk, is what info describes
    cut.write_bytes(data[:n])
    result = run("info", cut)
    assert_ok(result)
    assert 0 < token_count(result.output) < token_count(run("info", atk).output)
    assert "cut" in result.output


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "progress"])
def test_demo_writes_report(tmp_path, quiet):
    out = tmp_path / "demo"
    learned = 0 if quiet else 3  # the learned checkpoint's own run on 3 Fashion-MNIST test images
    result = run("demo", "--out", out, "--limit", 1, "--max-side", 40, "--learned-images", learned,
                 *(["--quiet"] if quiet else []))
    assert_ok(result)
    if quiet:
        assert result.stderr == ""
    for method in ("wavelet", "wavelet-lossless", "JPEG 2000", "grid"):
        assert method in result.output
    assert "PSNR" in result.output
    assert str(out / "report.html") in result.output.replace("\n", "")
    listing = sorted(p.name for p in out.iterdir())
    assert "tiny-test" not in listing
    if learned:  # only the shipped checkpoint: folders other tests loaded in this process are not listed
        assert "fashion-mnist-32" in listing, result.output
        sub = (out / "fashion-mnist-32" / "results.csv").read_text().splitlines()
        assert {r.split(",")[4] for r in sub[1:]} == {"fashion-mnist-32", "wavelet", "grid"}
        assert "token stream" in result.output
        listing = [n for n in listing if not (out / n / "results.csv").is_file()]
    assert listing == ["bd_rate.csv", "plots", "report.html", "results.csv"]
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("image,") and all(r.startswith("astronaut,40,40,3,") for r in rows[1:])
    assert {r.split(",")[4] for r in rows[1:]} == {"wavelet", "wavelet-lossless", "grid", "jpeg", "webp", "avif", "jp2"}


# --- user errors: one line, exit 2, no output file ----------------------------------------------


def _make_bad_input(kind: str, tmp_path, small_png):
    if kind == "missing":
        return tmp_path / "nope.png"
    if kind == "text":
        path = tmp_path / "notes.png"
        path.write_text("hello, I am not an image\n")
        return path
    if kind == "truncated":
        path = tmp_path / "cut.png"
        path.write_bytes(small_png.read_bytes()[: small_png.stat().st_size // 2])
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("existing", [False, True], ids=["no-out", "existing-out"])
@pytest.mark.parametrize("case", ["missing", "text", "truncated", "two-budgets", "unknown-tokenizer",
                                  "bad-value", "not-lossless"])
def test_encode_errors(tmp_path, small_png, case, existing):
    out = tmp_path / "out.atk"
    if existing:
        out.write_bytes(b"precious")
    image, extra, needle = small_png, [], ""
    if case in ("missing", "text", "truncated"):
        image = _make_bad_input(case, tmp_path, small_png)
        needle = image.name
    elif case == "two-budgets":
        extra, needle = ["--tokens", "10", "--psnr", "30"], "at most one budget"
    elif case == "unknown-tokenizer":
        extra, needle = ["--tokenizer", "no-such-tokenizer"], "no-such-tokenizer"
    elif case == "bad-value":
        extra, needle = ["--tokens", "-5"], "-5"
    elif case == "not-lossless":
        extra, needle = ["--tokenizer", "wavelet", "--lossless"], "lossless"
    before = sorted(p.name for p in tmp_path.iterdir())
    # (an OUT there is refused without --force: with it, the input's error still leaves OUT as it was)
    assert_user_error(run("encode", image, out, *extra, *(["--force"] if existing else [])), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no OUT, no temporary file
    if existing:
        assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("existing", [False, True], ids=["no-out", "existing-out"])
@pytest.mark.parametrize("case", ["missing", "wrong-magic", "bad-tokens", "too-few-bytes", "bad-suffix"])
def test_decode_errors(tmp_path, small_png, case, existing):
    atk = tmp_path / "in.atk"
    out = tmp_path / ("out.xyz" if case == "bad-suffix" else "out.png")
    if existing:
        out.write_bytes(b"precious")
    assert_ok(run("encode", small_png, atk, "-q", "--tokens", 50))
    extra = []
    if case == "missing":
        atk = tmp_path / "nope.atk"
    elif case == "wrong-magic":
        atk.write_bytes(b"GIF89a this is not a token file at all")
    elif case == "bad-tokens":
        extra = ["--tokens", "-1"]
    elif case == "too-few-bytes":
        extra = ["--bytes", "5"]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("decode", atk, out, *extra, *(["--force"] if existing else []))
    assert_user_error(result, "wrong magic" if case == "wrong-magic" else "")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if existing:
        assert out.read_bytes() == b"precious"


def test_info_errors(tmp_path):
    assert_user_error(run("info", tmp_path / "nope.atk"), "no such file")
    bad = tmp_path / "bad.atk"
    bad.write_bytes(b"\x00" * 100)
    assert_user_error(run("info", bad), "wrong magic")
    assert_user_error(run("info", tmp_path), "folder")
    # a name that is no shipped checkpoint (a misspelt one, a tokenizer's) lists the names info takes (found by
    # review: "no such file: wavelet")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        for name in ("fmnist-gpt-wavelet-word", "wavelet"):
            assert_user_error(run("info", name), f"no such file or shipped checkpoint: {name}", "fashion-mnist-32",
                              "fmnist-judge")


def test_demo_bad_limit(tmp_path):
    assert_user_error(run("demo", "--out", tmp_path / "d", "--limit", 0), "--limit")
    assert not (tmp_path / "d").exists()


def test_usage_errors_exit_2(small_png, tmp_path):
    assert run("encode", small_png).exit_code == 2  # missing OUT
    assert run("encode", small_png, tmp_path / "x.atk", "--tokens", "many").exit_code == 2
    assert not (tmp_path / "x.atk").exists()


def test_ctrl_c_inside_compiled_code_is_one_line_and_exit_130(monkeypatch, capsys):
    """Found by review: Ctrl-C while numba's coder ran reached the command as a SystemError (numba's
    "returned a result with an exception set", the KeyboardInterrupt as its context) and printed a
    long traceback with exit 1; as plain KeyboardInterrupt it was one line and 130."""
    import importlib

    cli_app = importlib.import_module("adatok.cli.app")  # (the module: adatok.cli.app is also the Typer app)

    def interrupted(**kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("CPUDispatcher(<function walk>) returned a result with an exception set") from None

    monkeypatch.setattr(cli_app, "app", interrupted)
    assert cli_app.run(["encode", "a.png", "b.atk"]) == 130
    assert capsys.readouterr().err == "error: aborted\n"

    def broken(**kwargs):
        raise SystemError("another")  # not an interrupt: raised as it is

    monkeypatch.setattr(cli_app, "app", broken)
    with pytest.raises(SystemError):
        cli_app.run(["encode", "a.png", "b.atk"])


def test_the_suggested_smallest_bpp_is_accepted():
    """'use at least Bpp(x)' printed x rounded to nearest, often just under what fits: refused in turn."""
    from adatok.core.budget import smallest_bpp

    wav = adatok.load("wavelet")
    for side in range(1, 40, 3):
        img = np.zeros((side, side + 1, 3), np.uint8)
        with pytest.raises(adatok.BudgetError, match=r"use at least Bpp\(([0-9.e+]+)\)") as info:
            wav.encode([img], adatok.Bpp(0.01))
        x = float(str(info.value).rsplit("Bpp(", 1)[1].rstrip(")"))
        wav.encode([img], adatok.Bpp(x))  # accepted
        assert len(f"{x:g}".replace(".", "").lstrip("0")) <= 3
    assert smallest_bpp(80, (12, 12)) == "4.45" and smallest_bpp(2, (4, 4)) == "1"


def test_tokenize_dataset_lossless_takes_the_lossless_tokenizer(tmp_path):
    """--lossless alone chose wavelet-lossless for encode but kept wavelet (and failed) for
    tokenize-dataset; the same default now."""
    pytest.importorskip("pyarrow")
    r = CliRunner().invoke(app, ["tokenize-dataset", "fashion-mnist", str(tmp_path / "shards"), "--lossless",
                                 "--workers", "0", "--limit", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["tokenizer"]["name"] == "wavelet-lossless"


def test_an_image_over_the_pixel_limit_is_one_error_line(tmp_path, monkeypatch):
    """Between Pillow's limit and twice it Pillow warned on stderr (two lines) before adatok's one."""
    import subprocess
    import sys

    from PIL import Image

    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    code = ("import sys, adatok.core.imageio as io; io.MAX_PIXELS = 40_000; from adatok.cli.app import run; "
            f"sys.exit(run(['encode', {str(tmp_path / 'big.png')!r}, {str(tmp_path / 'big.atk')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr


def test_encode_roi_accepts_a_method_by_its_us_spelling(tmp_path, photo_png):
    out = tmp_path / "c.atk"
    assert_ok(run("encode", photo_png, str(out), "--bpp", "0.5", "--roi", "center"))
    assert "roi" in adatok.TokenSequence.from_bytes(out.read_bytes()).params
    # info says it in words (it printed the header's coded grid, a base64 blob: found by an outside-user review)
    shown = " ".join(run("info", out).output.split())
    assert "roi=(a region of interest: 4 x 4-pixel cells, each raised by 0 to 4 bit-planes)" in shown, shown
    assert "'d':" not in shown


# --- found by review (2026-11-30, session 12): options ignored, errors that were not one line -------


def test_serve_refuses_a_busy_port_and_an_unknown_generator_before_printing_its_address():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run("serve", "--port", port)
    assert_user_error(result, "cannot listen on 127.0.0.1 port")
    assert "open http" not in result.output
    assert_user_error(run("serve", "-g", "fmnist-gpt-wavlet"), "unknown generator 'fmnist-gpt-wavlet'")
    assert_user_error(run("serve", "-g", "fmnist-judge"), "a judge checkpoint, not a generator")


def test_saliency_goes_with_roi_auto_only(tmp_path, photo_png):
    assert_user_error(run("encode", photo_png, tmp_path / "a.atk", "--saliency", "bogus"), "unknown saliency method")
    assert_user_error(run("encode", photo_png, tmp_path / "b.atk", "--saliency", "spectral"), "--roi auto")
    assert_ok(run("encode", photo_png, tmp_path / "c.atk", "--roi", "auto", "--saliency", "spectral", "--bpp", "1"))
    assert_user_error(run("eval", "--data", "samples", "--limit", "1", "--bpp", "1", "--baselines", "none",
                          "--saliency", "gradient", "--out", tmp_path / "ev"), "--roi auto")
    assert not (tmp_path / "ev").exists()


def test_a_generator_or_judge_given_as_a_tokenizer_says_what_it_is(tmp_path, photo_png):
    from adatok.generate.sample import generator_folder

    pytest.importorskip("torch")
    result = run("encode", photo_png, tmp_path / "a.atk", "-t", generator_folder("fmnist-gpt-learned"))
    assert_user_error(result, "a generator checkpoint, not a tokenizer")
    assert "install" not in result.stderr


def test_generate_writes_a_grid_in_any_image_format_and_checks_its_folder_first(tmp_path):
    pytest.importorskip("torch")
    assert_ok(run("generate", "-m", "fmnist-gpt-learned", "-n", "2", "--out", tmp_path / "grid.jpg", "-q"))
    assert (tmp_path / "grid.jpg").is_file() and read_image(tmp_path / "grid.jpg").ndim == 3
    assert_user_error(run("generate", "-m", "fmnist-gpt-learned", "-n", "2", "--out", tmp_path / "no" / "g.png"),
                      "does not exist")
    assert_user_error(run("train-generator", "--image-size", "32", "--steps", "1", "--out", tmp_path / "gen"),
                      "--image-size and --channels are for --data FOLDER")
    assert not (tmp_path / "gen").exists()


def test_a_name_the_terminal_cannot_show_is_escaped(tmp_path):
    """Found by review: `adatok info é.atk` under an ASCII terminal (PYTHONIOENCODING=ascii) ended in a
    UnicodeEncodeError traceback."""
    import os
    import subprocess
    import sys

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "é.png")
    code = "import sys; from adatok.cli.app import run; sys.exit(run(sys.argv[1:]))"
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for args in (["encode", "é.png", "é.atk"], ["info", "é.atk"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env,
                           cwd=tmp_path, encoding="ascii", errors="replace")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "\\xe9.atk" in r.stdout
    import importlib
    import io

    cli_app = importlib.import_module("adatok.cli.app")
    host = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    old, sys.stdout = sys.stdout, host
    try:  # in-process: the caller's strict stream is strict again afterwards
        assert cli_app.run(["--version"]) == 0
    finally:
        sys.stdout = old
    assert host.errors == "strict"


#: A child process running the command line with every fsync slowed (it says "writing" first): the
#: moment a command has its output's temporary file written and not yet renamed into place.
_SLOW_WRITE = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # (as in a terminal, whatever the test runner ignores)
real = os.fsync
def slow(fd):
    print("writing", flush=True)
    time.sleep(60)
    real(fd)
os.fsync = slow
from adatok.cli.app import run
sys.exit(run(sys.argv[1:]))
"""


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signame, code, message", [("SIGINT", 130, "error: aborted"),
                                                    ("SIGTERM", 143, "error: stopped by SIGTERM")])
def test_a_command_stopped_while_writing_leaves_no_temporary_file_and_says_so(small_png, tmp_path, signame, code,
                                                                               message):
    """Found by review: SIGTERM (`kill`, a job scheduler's time limit) killed a command on the spot, with no
    word, and left its half-written temporary file (`.out.atk.XXXX.tmp`; a generator's work folder of samples,
    a checkpoint's NAME.tmp); Ctrl-C outside compiled code exited 130 without the `error: aborted` line (typer
    turned the KeyboardInterrupt into a silent exit code). Now both clean up and say one line."""
    import signal
    import subprocess
    import sys
    import threading

    out = tmp_path / "out.atk"
    out.write_bytes(b"an earlier good output")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, "encode", str(small_png), str(out), "--force"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout.readline() == "writing\n"  # its temporary file is there now
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        proc.kill()
    assert proc.returncode == code and err.strip() == message, (proc.returncode, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.atk", "small.png"]
    assert out.read_bytes() == b"an earlier good output"


def test_two_runs_writing_one_folder_of_samples_at_once_do_not_mix(tmp_path, monkeypatch):
    """Found by review: two `adatok generate --out F` at once both found F empty, each removed the other's
    work folder, and the one that moved its samples in last replaced the other's (or mixed with them: 300
    PNGs beside a samples.npz of 200), both saying all went well. Now a run writes F alone: the second
    waits, then finds the first's samples there and is refused (without --force), as run after it."""
    import threading

    from adatok.generate import report

    out = tmp_path / "samples"
    first_images = [np.full((4, 4, 1), 10 * i, np.uint8) for i in range(3)]
    second_images = [np.full((4, 4, 1), 200, np.uint8)]
    saving, go_on = threading.Event(), threading.Event()
    real_savez = np.savez

    def savez(*args, **kwargs):  # the first run is slow to write its samples.npz
        if threading.current_thread().name == "first":
            saving.set()
            go_on.wait(5)
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(report.np, "savez", savez)
    errors = []

    def first():
        try:
            report.write_samples(out, [None] * 3, first_images, [0, 1, 2])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=first, name="first")
    thread.start()
    try:
        assert saving.wait(10)
        threading.Timer(0.5, go_on.set).start()
        with pytest.raises(adatok.AdatokError, match="is not empty"):
            report.write_samples(out, [None], second_images, [0])
    finally:
        go_on.set()
        thread.join(10)
    assert not errors, errors
    assert sorted(p.name for p in out.iterdir()) == ["0000.png", "0001.png", "0002.png", "samples.npz"]
    with np.load(out / "samples.npz") as npz:
        assert np.array_equal(npz["images"], np.stack(first_images))


def test_samples_interrupted_while_written_leave_no_folder(tmp_path, monkeypatch):
    from adatok.generate import report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_samples(tmp_path / "new", [None], [np.zeros((4, 4, 1), np.uint8)], [0])
    assert list(tmp_path.iterdir()) == []


# --- found by an outside tester (2026-12-02): link loops, endless inputs, sizes in two orders ------


def test_a_symbolic_link_loop_is_one_error_line(tmp_path, photo_png):
    """A link loop (``ln -s loop1 loop2.atk; ln -s loop2.atk loop1``) as an input, an output, a mask, a
    checkpoint folder or a report folder ended in a traceback (RuntimeError from Path.resolve, exit 1);
    `info` said "no such file" of a name that is there."""
    pytest.importorskip("torch")  # (generate)
    (tmp_path / "loop2.atk").symlink_to("loop1")
    (tmp_path / "loop1").symlink_to("loop2.atk")
    loop, out, good = tmp_path / "loop1", tmp_path / "o.atk", tmp_path / "good.atk"
    assert_ok(run("encode", photo_png, good, "-q"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv in (["encode", photo_png, tmp_path / "loop2.atk"], ["encode", loop, out],
                 ["encode", photo_png, loop / "x.atk"], ["encode", photo_png, out, "--roi", loop],
                 ["encode", photo_png, out, "-t", loop], ["decode", good, loop], ["decode", loop, tmp_path / "o.png"],
                 ["info", loop], ["info", good, "-t", loop], ["saliency", loop, tmp_path / "s.png"],
                 ["saliency", photo_png, loop], ["eval", "--data", loop, "--out", tmp_path / "e"],
                 ["eval", "--data", tmp_path, "--out", loop], ["eval", "--data", tmp_path, "--roi", loop, "--out",
                                                                tmp_path / "e"],
                 ["demo", "--out", loop], ["generate", "--out", loop], ["train", "--out", loop],
                 ["train-generator", "--out", loop], ["train-generator", "--data", loop, "--out", tmp_path / "g"],
                 ["tokenize-dataset", tmp_path, loop, "--workers", "0"],
                 ["tokenize-dataset", loop, tmp_path / "ds", "--workers", "0"]):
        result = run(*argv)
        assert_user_error(result, "symbolic link loop")
        assert re.search(r"error: \S*(loop1|loop2\.atk)\S* goes through", result.stderr), result.stderr  # (named)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _fed_pipe(path, chunks):
    """A named pipe at ``path`` that a thread fills with ``chunks`` once a reader opens it, and how many
    bytes went in (``[n]``): a reader that closes it early stops the rest."""
    import os
    import threading

    os.mkfifo(path)
    written = [0]

    def feed():
        try:
            fd = os.open(path, os.O_WRONLY)  # (waits for the reader)
            try:
                for chunk in chunks:
                    written[0] += os.write(fd, chunk)
            finally:
                os.close(fd)
        except BrokenPipeError:  # the reader is done
            pass

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread, written


@pytest.mark.parametrize("command", ["decode", "info"])
def test_an_endless_input_is_read_no_further_than_a_container_goes(tmp_path, photo_png, command):
    """`adatok decode /dev/zero o.png` and `adatok info /dev/zero` read the whole input before any check:
    a MemoryError after 5 s, or a machine out of memory. Now the first bytes are checked (the magic
    number, the header) and the header's payload length bounds the rest. Here a pipe offers 16 MB."""
    good = tmp_path / "good.atk"
    assert_ok(run("encode", photo_png, good, "-q"))
    data = good.read_bytes()
    zeros = [bytes(4096)] * 4096
    for name, chunks, needle in (("zeros", zeros, "not an adatok container"),
                                 ("joined", [data, *zeros], f"longer than the {len(data):,}-byte container")):
        thread, written = _fed_pipe(tmp_path / name, chunks)
        assert_user_error(run(command, tmp_path / name, *([tmp_path / "o.png"] if command == "decode" else [])),
                          needle)
        thread.join(10)
        assert not thread.is_alive() and written[0] < len(data) + 2**20, written  # (a pipe holds 64 kB)
    assert not (tmp_path / "o.png").exists()
    thread, _ = _fed_pipe(tmp_path / "whole", [data])  # a container and its end: read as from a file
    assert_ok(run(command, tmp_path / "whole", *([tmp_path / "o.png"] if command == "decode" else [])))
    thread.join(10)
    (tmp_path / "two.atk").write_bytes(data + data)
    assert_user_error(run(command, tmp_path / "two.atk", *([tmp_path / "o2.png"] if command == "decode" else [])),
                      "two files were joined")


def test_decode_bytes_reads_only_the_bytes_asked_for(tmp_path, photo_png):
    """--bytes N decodes as the first N bytes of the file do, whatever follows them (even no end)."""
    good = tmp_path / "good.atk"
    assert_ok(run("encode", photo_png, good, "-q"))
    data = good.read_bytes()
    cut = header_size(data) + 40
    (tmp_path / "cut.atk").write_bytes(data[:cut])
    assert_ok(run("decode", tmp_path / "cut.atk", tmp_path / "want.png", "-q"))
    thread, written = _fed_pipe(tmp_path / "endless", [data[:cut], *[bytes(4096)] * 4096])
    assert_ok(run("decode", tmp_path / "endless", tmp_path / "got.png", "--bytes", cut, "-q"))
    thread.join(10)
    assert written[0] < cut + 2**20
    assert np.array_equal(read_image(tmp_path / "got.png"), read_image(tmp_path / "want.png"))


def test_image_sizes_are_said_height_by_width(tmp_path, photo_png):
    """Messages gave sizes W x H and H x W alike: `image 0 is 64x48 (H x W x C = 48 x 64 x 3)`, `Bpp(2.0)
    allows 12 bytes for this 50x1 image` of an image 1 pixel high; `info` and the rest say H x W."""
    from adatok import Bpp
    from adatok.core.budget import too_small

    pytest.importorskip("torch")
    result = run("encode", photo_png, tmp_path / "o.atk", "-t", "fashion-mnist-32")  # (a 48 x 64 photo)
    assert_user_error(result, f"{photo_png} is 48x64x3", "28x28x1")   # (the file's name, not "image 0")
    assert "64x48" not in result.stderr and "image 0" not in result.stderr
    assert "for this 1x50 image (H x W)" in str(too_small(Bpp(2), 12, (1, 50, 3), 80))


def test_the_wavelet_budget_message_says_height_by_width(tmp_path):
    path = tmp_path / "row.png"
    Image.fromarray(np.zeros((1, 50, 3), np.uint8)).save(path)
    assert_user_error(run("encode", path, tmp_path / "o.atk", "--bpp", "2"), "for this 1x50 image")


def test_an_unknown_tokenizer_is_told_every_name_that_loads(tmp_path, photo_png):
    """The list left out the word views, wavelet-w8 and wavelet-lossless-w8, which load by name."""
    from adatok.core.registry import names, pattern_names

    result = run("encode", photo_png, tmp_path / "o.atk", "-t", "nonexist")
    assert_user_error(result, "unknown tokenizer 'nonexist'")
    listed = re.search(r"use one of (.*) or a checkpoint folder", result.stderr).group(1).split(", ")
    assert listed == names(views=True) + pattern_names() and {"wavelet-w8", "wavelet-lossless-w8"} <= set(listed)
    assert pattern_names() == ["wavelet-wN / wavelet-lossless-wN (N = 1 to 10)"]  # (the words of any n)
    for name in names(views=True):
        adatok.load(name)


def test_a_missing_mask_is_said_missing_before_it_is_compared_with_the_output(tmp_path, photo_png):
    """`encode photo.png m.atk --roi m.atk`, no m.atk anywhere, said "m.atk is also the input m.atk": the
    output was compared with a mask that is not there. An input that is missing is its reader's to say."""
    out = tmp_path / "m.atk"
    assert_user_error(run("encode", photo_png, out, "--roi", out), "neither a saliency method nor an existing file")
    assert_user_error(run("decode", tmp_path / "x.png", tmp_path / "x.png"), "no such file")
    assert not out.exists() and not (tmp_path / "x.png").exists()
    mask = tmp_path / "mask.png"  # an existing one is an input as before
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(mask)
    assert_user_error(run("encode", photo_png, mask, "--roi", mask, "--force"), "is also the input")


def test_a_cut_file_is_said_to_be_cut_and_memory_running_out_is_one_line(tmp_path, photo_png, monkeypatch):
    """Found by review: `info` named a file cut only when it held fewer tokens than its header, and
    `decode` never; a payload short by a byte that still coded every token read as a whole file.
    Running out of memory (a header may ask for a huge image) was a 119-line traceback."""
    assert_ok(run("encode", photo_png, tmp_path / "a.atk", "--bpp", "2", "-q"))
    data = (tmp_path / "a.atk").read_bytes()
    (tmp_path / "cut.atk").write_bytes(data[:-200])
    info = run("info", tmp_path / "cut.atk")
    assert_ok(info)
    flat = " ".join(info.stdout.split())
    assert re.search(r"tokens: [0-9,]+ of [0-9,]+ \(the file is cut: its payload holds [0-9,]+ of [0-9,]+ bytes", flat)
    out = run("decode", tmp_path / "cut.atk", tmp_path / "cut.png")
    assert_ok(out)
    assert "the file is cut" in out.stdout and re.search(r"from [0-9,]+ of [0-9,]+ tokens", out.stdout)
    whole = run("decode", tmp_path / "a.atk", tmp_path / "a.png")
    assert "the file is cut" not in whole.stdout and " of " not in whole.stdout
    asked = run("decode", tmp_path / "a.atk", tmp_path / "b.png", "--bytes", len(data) - 200)  # (a cut asked for)
    assert_ok(asked)
    assert "the file is cut" not in asked.stdout

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 572. MiB for an array with shape (149960160,) and data type int32")

    monkeypatch.setattr(adatok.TokenSequence, "from_bytes", out_of_memory)
    assert_user_error(run("decode", tmp_path / "a.atk", tmp_path / "c.png"), "out of memory (Unable to allocate 572.")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("command", ["decode", "info"])
def test_a_file_that_is_no_container_is_named_in_the_error(tmp_path, command):
    """``adatok decode x.png y.png`` said "not an adatok container", naming no file (found by an
    outside user: with several files in a script, which one?)."""
    (tmp_path / "x.png").write_bytes(b"hello, I am not tokens\n")
    r = run(command, tmp_path / "x.png", *([tmp_path / "y.png"] if command == "decode" else []))
    assert r.exit_code == 2, r.output
    assert f"error: {tmp_path / 'x.png'}: not an adatok container" in r.output
    assert not (tmp_path / "y.png").exists()


# --- found by an outside user's review: CLI wording, an ignored -t, unmet targets -----------------


@pytest.mark.parametrize("command", ["decode", "info"])
def test_a_tokenizer_given_for_a_file_of_another_is_refused(tmp_path, small_png, command):
    """`decode shoe.atk x.png -t fashion-mnist-32` of a wavelet file dropped -t without a word and
    decoded with the file's own tokenizer; the -t a file was not made by is now an error."""
    atk = tmp_path / "in.atk"
    assert_ok(run("encode", small_png, atk, "-q"))
    out = [tmp_path / "out.png"] if command == "decode" else []
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(command, atk, *out, "-t", "wavelet-lossless")
    assert_user_error(result, str(atk), "'wavelet'", "'wavelet-lossless'", "leave out --tokenizer")
    assert "adatok.load" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert_ok(run(command, atk, *out, "-t", "wavelet"))  # (the one that made it: read as without -t)
    with pytest.raises(adatok.TokenizerMismatchError, match=r"adatok.load\('wavelet'\)"):  # (Python's own advice)
        adatok.load("wavelet-lossless").decode([adatok.TokenSequence.from_bytes(atk.read_bytes())])


@pytest.mark.parametrize("n_bytes", [0, 3, 50])
def test_bytes_that_cut_the_header_say_so_and_do_not_blame_the_file(tmp_path, small_png, n_bytes):
    """`decode photo.atk x.png --bytes 0` said "not an adatok container: wrong magic number" of a
    good file; --bytes 50 said "truncated header": both are the --bytes cut, and say so alike."""
    atk = tmp_path / "in.atk"
    assert_ok(run("encode", small_png, atk, "-q"))
    need = header_size(atk.read_bytes())
    result = run("decode", atk, tmp_path / "out.png", "--bytes", n_bytes)
    assert_user_error(result, str(atk), f"--bytes {n_bytes} keeps", f"header alone needs {need} bytes",
                      f"--bytes {need} or more")
    assert "magic" not in result.stderr and "corrupt" not in result.stderr
    assert ("nothing" in result.stderr) == (n_bytes == 0)
    assert not (tmp_path / "out.png").exists()


def test_errors_give_command_line_advice_not_python(tmp_path, photo_png):
    """The library's advice (adatok.load('wavelet-lossless'), resize=True, `>> 8` for a float TIFF)
    was printed by the command line, which has no such thing; it says what to type instead."""
    out = tmp_path / "o.atk"
    for name, sibling in (("wavelet", "wavelet-lossless"), ("wavelet-w8", "wavelet-lossless-w8"),
                          ("wavelet-w3", "wavelet-lossless-w3")):
        result = run("encode", photo_png, out, "--lossless", "-t", name)
        assert_user_error(result, f"'{name}' is not lossless", f"-t {sibling}", "leave out -t")
        assert "adatok.load" not in result.stderr and "Lossless()" not in result.stderr
    big = tmp_path / "big.png"
    Image.fromarray(np.full((96, 128), 255, np.uint8)).save(big)
    result = run("encode", photo_png, out, "--roi", big)
    assert_user_error(result, "96x128", "48x64", "resize the mask file")
    assert "resize=True" not in result.stderr
    tif = tmp_path / "f.tif"
    Image.fromarray(np.zeros((8, 8), np.float32)).save(tif)
    result = run("encode", tif, out)
    assert_user_error(result, "32-bit float", "magick")
    assert ">> 8" not in result.stderr and "np." not in result.stderr
    assert not out.exists()
    # the Python API keeps its own advice, fitting the kind of data
    img = read_image(photo_png)
    with pytest.raises(adatok.BudgetError, match=r"adatok.load\('wavelet-lossless'\)"):
        adatok.load("wavelet").encode([img], adatok.Lossless())
    with pytest.raises(adatok.ImageFormatError, match="resize=True"):
        from adatok.core.saliency import read_mask
        read_mask(big, img.shape)
    with pytest.raises(adatok.ImageFormatError) as caught:
        read_image(tif)
    assert ">> 8" not in str(caught.value) and "np.clip" in str(caught.value)


def test_a_learned_tokenizer_refusing_lossless_gives_command_line_advice(tmp_path, small_png):
    pytest.importorskip("torch")
    result = run("encode", small_png, tmp_path / "o.atk", "--lossless", "-t", "fashion-mnist-32")
    assert_user_error(result, "'fashion-mnist-32' is not lossless", "-t wavelet-lossless", "leave out -t")
    assert "adatok.load" not in result.stderr


def test_a_tokenizer_that_looks_like_a_path_is_said_missing(tmp_path, photo_png):
    """`-t out/neural/my-ckpt` said "unknown tokenizer 'out/neural/my-ckpt': use one of ...": a path
    is a folder that is not there (or a file that is not a folder)."""
    atk = tmp_path / "p.atk"
    assert_ok(run("encode", photo_png, atk, "-q"))
    missing = tmp_path / "out" / "my-ckpt"
    for args in (("encode", photo_png, tmp_path / "o.atk"), ("decode", atk, tmp_path / "o.png"), ("info", atk)):
        result = run(*args, "-t", missing)
        assert_user_error(result, f"no such folder: {missing}")
        assert "unknown tokenizer" not in result.stderr
    assert_user_error(run("encode", photo_png, tmp_path / "o.atk", "-t", photo_png), f"{photo_png} is a file")
    assert_user_error(run("encode", photo_png, tmp_path / "o.atk", "-t", "wavlet"), "unknown tokenizer 'wavlet'")
    with pytest.raises(adatok.UnknownTokenizerError, match="no such folder"):
        adatok.load("./no-such-ckpt")


@pytest.mark.parametrize("option, value, measure", [("--psnr", 80, "PSNR"), ("--ssim", 1, "SSIM")])
def test_an_unmet_quality_target_is_a_warning(tmp_path, small_png, option, value, measure):
    """`encode --psnr 80` kept the full sequence (as documented) and exited 0 without saying the
    target was missed; --ssim did not even print the SSIM reached."""
    out = tmp_path / "o.atk"
    result = run("encode", small_png, out, option, value)
    assert_ok(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {option} {value} not reached"), result.stderr
    assert f"the full sequence reaches {measure} " in lines[0]
    assert out.exists()
    met = run("encode", small_png, tmp_path / "met.atk", option, 20 if option == "--psnr" else 0.5)
    assert_ok(met)
    assert met.stderr == ""


def test_a_progress_bar_writes_nothing_where_no_terminal_shows_it(capsys, tmp_path, small_png):
    """generate, tokenize-dataset and eval (its error line too) began with an empty line: the rich
    progress bar, transient, ended with a newline on a stream that is no terminal. And the summary
    said "1 images in 1 shards"."""
    from adatok.cli.common import EvalProgress

    with EvalProgress(False) as progress:
        progress(1, 2, "x")
        progress(2, 2, "x")
    assert capsys.readouterr() == ("", "")
    pytest.importorskip("pyarrow")
    src = tmp_path / "photos"
    src.mkdir()
    Image.open(small_png).save(src / "a.png")
    result = run("tokenize-dataset", src, tmp_path / "shards", "--workers", "0", "--psnr", 30)
    assert_ok(result)
    assert result.stderr == ""
    assert re.match(r"\S+: 1 image in 1 shard, [0-9,]+ tokens$", result.stdout.strip()), result.stdout


def test_exif_orientation_is_not_applied(tmp_path):
    """A phone photo's EXIF orientation is left alone (the pixels as stored, documented in README and
    docs/reliability.md): a JPEG that viewers show 16 wide and 24 high decodes 24 wide, 16 high."""
    from PIL import ImageOps

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    im.save(tmp_path / "phone.jpg", exif=exif)
    assert ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg")).size == (16, 24)  # (W x H, as shown)
    assert_ok(run("encode", tmp_path / "phone.jpg", tmp_path / "p.atk", "--lossless", "-q"))
    assert_ok(run("decode", tmp_path / "p.atk", tmp_path / "p.png", "-q"))
    assert np.array_equal(read_image(tmp_path / "p.png"), np.asarray(Image.open(tmp_path / "phone.jpg")))


# --- found by an outside user's review (2026-12-03): outputs written over, alpha, pipes, cut files ----------


@pytest.mark.parametrize("command", ["encode", "decode", "saliency"])
def test_an_existing_output_is_refused_without_force_and_replaced_with_it(tmp_path, small_png, command):
    """`decode x.atk photo.png` wrote over the photo (the user's original, replaced by a lossy decode)
    and `encode` over an existing .atk (perhaps the only copy of a lossless one), without a word. Now a
    file or a symbolic link of OUT's name is refused (one line, exit 2, nothing written) unless --force;
    with it the file is replaced, and a link itself, never what it points to."""
    atk = tmp_path / "in.atk"
    assert_ok(run("encode", small_png, atk, "-q", "--tokens", 300))
    src, name = (small_png, "out.atk") if command == "encode" else (atk if command == "decode" else small_png,
                                                                    "out.png")
    out, link, target = tmp_path / name, tmp_path / f"link{Path(name).suffix}", tmp_path / "target.txt"
    out.write_bytes(b"precious")
    target.write_text("the link's target")
    link.symlink_to(target)
    for path, says in ((out, f"{out} exists: give --force"), (link, f"{link} is a symbolic link (to ")):
        assert_user_error(run(command, src, path, "-q"), says, "--force")
    assert out.read_bytes() == b"precious" and link.is_symlink() and target.read_text() == "the link's target"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.atk", "small.png", name, link.name, "target.txt"])
    for path in (out, link):
        assert_ok(run(command, src, path, "-q", "--force"))
        assert not path.is_symlink() and path.read_bytes() != b"precious"
    assert target.read_text() == "the link's target"
    assert_user_error(run(command, src, src, "--force"), "is also the input")  # (never an input, even so)


def test_encode_warns_that_transparency_was_flattened(tmp_path):
    """--lossless of an RGBA PNG said "PSNR exact" without a word that its alpha was dropped (flattened
    onto white, as documented): now a `warning:` line says so; an opaque alpha loses nothing, and is not
    warned of."""
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, np.arange(16, dtype=np.uint8) * 16
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    result = run("encode", tmp_path / "alpha.png", tmp_path / "alpha.atk", "--lossless")
    assert_ok(result)
    assert "PSNR exact" in result.stdout
    assert result.stderr.startswith("warning: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "transparency" in result.stderr and "flattened onto white" in result.stderr
    result = run("encode", tmp_path / "opaque.png", tmp_path / "opaque.atk", "--lossless")
    assert_ok(result)
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["encode", "saliency"])
def test_an_image_from_a_pipe_reads_as_a_file_does(tmp_path, small_png, command):
    """`cat photo.png | adatok encode /dev/stdin x.atk` (and `saliency`) was a raw traceback, exit 1: the
    check of a PNG's rows seeks, and a pipe cannot. A pipe's bytes are now read into memory first."""
    import os

    out = tmp_path / ("x.atk" if command == "encode" else "x.png")
    read, write = os.pipe()
    try:
        os.write(write, small_png.read_bytes())  # (a small PNG fits in the pipe's buffer)
        os.close(write)
        assert_ok(run(command, f"/dev/fd/{read}", out, "-q"))
    finally:
        os.close(read)
    assert_ok(run(command, small_png, tmp_path / f"from-file{out.suffix}", "-q"))
    assert out.read_bytes() == (tmp_path / f"from-file{out.suffix}").read_bytes()


def test_decode_bytes_says_the_file_itself_is_cut(tmp_path, photo_png):
    """`decode --bytes N` of a file shorter than its header says (a cut download) said nothing of the
    cut, where decode without --bytes says it: a pipeline passing the bytes received so far was never
    told. Now it is said whenever the file ends before N (or at N); a cut that --bytes makes is not."""
    assert_ok(run("encode", photo_png, tmp_path / "a.atk", "--bpp", "2", "-q"))
    data = (tmp_path / "a.atk").read_bytes()
    (tmp_path / "cut.atk").write_bytes(data[:-200])
    for i, n in enumerate((len(data) - 200, len(data) - 100, 10**9)):
        result = run("decode", tmp_path / "cut.atk", tmp_path / f"{i}.png", "--bytes", n)
        assert_ok(result)
        assert "the file is cut" in result.stdout and re.search(r"from [0-9,]+ of [0-9,]+ tokens", result.stdout)
    asked = run("decode", tmp_path / "cut.atk", tmp_path / "asked.png", "--bytes", len(data) - 300)
    assert_ok(asked)
    assert "the file is cut" not in asked.stdout


def test_encode_in_roi_prints_the_psnr_inside_the_region(tmp_path, photo_png):
    """`--psnr 30 --roi m.png --in-roi` printed the whole image's PSNR, not the region's it targeted."""
    from adatok.core.metrics import region_mask

    mask = np.zeros((48, 64), np.uint8)
    mask[8:24, 8:32] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    result = run("encode", photo_png, tmp_path / "r.atk", "--psnr", 30, "--roi", tmp_path / "m.png", "--in-roi")
    assert_ok(result)
    seq = adatok.TokenSequence.from_bytes((tmp_path / "r.atk").read_bytes())
    img = read_image(photo_png)
    back = adatok.load("wavelet").decode([seq])[0]
    inside = psnr(img, back, mask=region_mask(mask / 255.0))
    assert inside >= 30 and abs(inside - psnr(img, back)) > 0.01
    assert f"PSNR inside the region of interest {inside:.2f} dB" in result.stdout, result.stdout


def test_a_closed_output_pipe_ends_quietly_with_141(tmp_path, small_png):
    """`adatok info F | head -1` exited 1 with nothing on stderr (rich and typer turn a BrokenPipeError
    into exit code 1): now exit code 141 (128 + SIGPIPE), as a Unix tool that SIGPIPE ends, and no word."""
    import subprocess
    import sys

    assert_ok(run("encode", small_png, tmp_path / "a.atk", "-q", "--tokens", 100))
    for argv in (["info", str(tmp_path / "a.atk")], ["encode", "--help"]):  # (rich; typer's echo)
        proc = subprocess.Popen([sys.executable, "-m", "adatok.cli", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141 and err == b"", (argv, proc.returncode, err)


def test_quality_help_says_the_shortest_only_up_to_a_size():
    """`--psnr`'s help promised "the shortest prefix reaching this PSNR"; past a size the answer is a
    bisection's (docs/wavelet-language.md), which can be longer."""
    text = " ".join(run("encode", "--help").output.split())
    assert "the shortest prefix reaching" not in text
    assert "bisection" in text


def test_an_os_error_the_checks_could_not_foresee_is_one_line(tmp_path, photo_png, monkeypatch):
    """A full disk, an I/O error, a folder that cannot be made (/proc/x as root, where os.access says
    yes) while a command works: a traceback until 2026-12-03, now one error line and exit code 2."""
    import errno

    assert_ok(run("encode", photo_png, tmp_path / "a.atk", "--tokens", "300", "-q"))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.png"))

    monkeypatch.setattr(adatok.TokenSequence, "from_bytes", disk_full)
    result = run("decode", tmp_path / "a.atk", tmp_path / "a.png")
    assert_user_error(result, "No space left on device")
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a.png").exists()


# --- found by an outside user's review (explore-A, 2026-12-03) --------------------------------------

def test_a_damaged_chunk_names_the_file_and_the_bytes_intact_before_it(tmp_path, photo_png):
    """`decode mid.atk a.png --tokens 100` of a file damaged in its payload said "payload checksum mismatch
    in bytes 16128..20159: the data is corrupt": the only error of a file not naming it, with no way out,
    though every byte before the damaged chunk is intact. Now the file's name comes first, and the bytes
    intact before the chunk with the option that reads them (`from_bytes(data[:N])` in Python)."""
    from adatok import ContainerError, TokenSequence

    atk = tmp_path / "mid.atk"
    assert_ok(run("encode", photo_png, atk, "-q"))
    data = bytearray(atk.read_bytes())
    start = header_size(bytes(data))
    assert len(data) - start > 3 * 512  # (several checksum chunks)
    damaged = bytearray(data)
    damaged[len(data) - 10] ^= 0xFF  # in the last chunk
    atk.write_bytes(bytes(damaged))
    for args in (("decode", atk, tmp_path / "a.png", "--tokens", 100), ("info", atk)):
        result = run(*args)
        assert_user_error(result, f"error: {atk}: payload checksum mismatch in bytes ")
        n = int(re.search(r"its first ([0-9,]+) bytes are intact: adatok decode --bytes ([0-9]+) reads",
                          result.stderr).group(2))
        assert "from_bytes" not in result.stderr
    assert start < n <= len(data) - 10
    assert_ok(run("decode", atk, tmp_path / "b.png", "--bytes", n, "-q"))
    result = run("generate", "-m", "fmnist-gpt-wavelet", "--complete", atk, "--out", tmp_path / "g.png")
    assert_user_error(result, f"--complete: {atk}: payload checksum mismatch", f"adatok decode --bytes {n} ")
    with pytest.raises(ContainerError, match=rf"from_bytes\(data\[:{n}\]\)"):
        TokenSequence.from_bytes(bytes(damaged))
    assert len(TokenSequence.from_bytes(bytes(damaged[:n]))) > 0
    first = bytearray(data)
    first[start + 5] ^= 0xFF  # in the first chunk: nothing but the header before it, no way out to offer
    atk.write_bytes(bytes(first))
    result = run("decode", atk, tmp_path / "c.png")
    assert_user_error(result, f"error: {atk}: payload checksum mismatch in bytes {start:,}..")
    assert "--bytes" not in result.stderr


def test_encode_warns_that_only_the_first_frame_is_encoded(tmp_path):
    """An animated GIF, an APNG and a multi-page TIFF were encoded by their first frame without a word;
    `encode` now says so in a `warning:` line, as it does of flattened transparency; one frame, no word."""
    frames = [Image.fromarray(np.full((12, 16, 3), 40 * i, np.uint8)) for i in range(3)]
    for name, n in (("anim.gif", 3), ("anim.png", 3), ("multi.tif", 2), ("one.gif", 1)):
        frames[0].save(tmp_path / name, save_all=n > 1, append_images=frames[1:n])
        result = run("encode", tmp_path / name, tmp_path / f"{name}.atk", "-q")
        assert_ok(result)
        if n == 1:
            assert result.stderr == ""
        else:
            assert result.stderr == f"warning: {tmp_path / name} has {n} frames: only the first is encoded\n"
    assert (adatok.read_image(tmp_path / "anim.gif") == 0).all()  # (the library reads the first, as documented)


def test_one_token_is_said_in_the_singular(tmp_path, small_png):
    """`encode -t fashion-mnist-32 --psnr 20` printed "1 tokens"; decode alike."""
    result = run("encode", small_png, tmp_path / "a.atk", "--tokens", 1)
    assert_ok(result)
    assert ": 1 token, " in result.stdout
    result = run("decode", tmp_path / "a.atk", tmp_path / "a.png")
    assert_ok(result)
    assert " from 1 token (" in result.stdout


def test_a_python_warning_of_any_command_is_one_warning_line(monkeypatch):
    """A library warning left `tokenize-dataset` as Python's two lines (the source file, its line and
    the line of code that warned) where `eval` printed one `warning:` line: every command now does."""
    import warnings

    from adatok.cli.common import reporting_errors

    @reporting_errors
    def command() -> None:
        warnings.warn("something the user\n    should know", UserWarning, stacklevel=1)

    import sys
    from io import StringIO

    err = StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    command()
    assert err.getvalue() == "warning: something the user should know\n"


# --- found by an outside user's review (2026-12-04): numbers cut to "…" on a pipe, a cut file under -q ------


def test_info_on_a_pipe_prints_every_number_and_name_whole(tmp_path, photo_png):
    """`adatok info x.atk | cat` cut the table's numbers to `2,788,5…` (rich lays out a pipe, a file or a
    test runner at 80 columns, or $COLUMNS): off a terminal the console is as wide as the lines need, and
    a table column folds a long value rather than cut it. A narrow $COLUMNS stands for a wide table."""
    folder = tmp_path / ("a-folder-whose-name-is-long-enough-to-pass-eighty-columns-by-itself-" + "x" * 30)
    folder.mkdir()
    atk = folder / "photo.atk"
    assert_ok(run("encode", photo_png, atk, "-q", "--lossless"))
    seq = adatok.TokenSequence.from_bytes(atk.read_bytes())
    result = runner.invoke(app, ["info", str(atk)], env={"COLUMNS": "30"})
    assert_ok(result)
    assert "…" not in result.stdout, result.stdout
    assert f"file:      {atk}\n" in result.stdout  # (on one line: a path is not wrapped either)
    total = re.search(r"^│ total\s*│(.*)│\s*$", result.stdout, re.MULTILINE)
    assert total, result.stdout
    cells = [c.strip() for c in total.group(1).split("│")]
    assert cells[-1] == f"{len(seq):,}" and len(seq) >= 10_000  # (the longest number, whole)
    levels = seq.pos[:, list(seq.pos_fields).index("level")]
    assert cells[:-1] == [f"{int((levels == lev).sum()):,}" for lev in range(int(levels.max()), 0, -1)]


def test_tables_fold_a_long_value_on_a_narrow_terminal():
    """On a terminal too narrow for a table, rich cut a number to `…`; the commands' tables fold it onto
    the next line instead, every digit kept (a `no_wrap` column keeps rich's `…`)."""
    from rich.console import Console

    from adatok.cli.tables import WholeTable

    table = WholeTable()
    for name in ("a", "b", "c"):
        table.add_column(name, justify="right")
    table.add_row("1,234,567", "2,345,678", "3,456,789")
    console = Console(record=True, width=24, force_terminal=True, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "…" not in text, text
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    assert len(rows) > 1, text  # (folded: one value on several lines)
    assert ["".join(col) for col in zip(*rows)] == ["1,234,567", "2,345,678", "3,456,789"], text


def test_decode_quiet_still_warns_of_a_cut_file(tmp_path, photo_png):
    """`decode cut.atk out.png -q` decoded a file cut short without a word (exit 0): a cut file is said on
    stderr as one `warning:` line, with --quiet too, as encode's warnings are; a whole file, or a cut
    that --bytes asks for, warns of nothing."""
    assert_ok(run("encode", photo_png, tmp_path / "a.atk", "--bpp", "2", "-q"))
    data = (tmp_path / "a.atk").read_bytes()
    (tmp_path / "cut.atk").write_bytes(data[: len(data) - 200])
    for quiet in (["-q"], []):
        result = run("decode", tmp_path / "cut.atk", tmp_path / f"cut{len(quiet)}.png", *quiet)
        assert_ok(result)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"warning: {tmp_path / 'cut.atk'}: the file is cut: its "
                                                       "payload holds"), result.stderr
        assert re.search(r"is decoded from [0-9,]+ of [0-9,]+ tokens$", lines[0]), lines[0]
        assert (result.stdout == "") == bool(quiet), result.stdout
    for args in ((tmp_path / "a.atk", tmp_path / "whole.png", "-q"),
                 (tmp_path / "a.atk", tmp_path / "asked.png", "-q", "--bytes", len(data) - 200)):
        result = run("decode", *args)
        assert_ok(result)
        assert result.stderr == "" and result.stdout == "", (result.stdout, result.stderr)
