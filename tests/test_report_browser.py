"""The demo's report.html in a real browser: Debian's Chromium, headless, driven by Playwright.

Every <img> must decode, and the rate-distortion plots must carry the curves of the wavelet
tokenizer, JPEG, WebP, JPEG 2000 and the uniform grid (the legend under each plot lists the
methods drawn, with their numbers of points). No browser is ever downloaded: Playwright drives
/usr/bin/chromium, which `scripts/install-system.sh` installs (Debian package `chromium`).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from adatok.cli import app
from adatok.eval import read_results

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CURVES = {"wavelet": "wavelet", "jpeg": "JPEG", "webp": "WebP", "jp2": "JPEG 2000", "grid": "grid"}


def _chromium() -> str:
    """The path of Debian's Chromium, installing it with apt-get if it is missing and we may."""
    if not os.path.exists(CHROMIUM) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True)
    if not os.path.exists(CHROMIUM):
        reason = (f"{CHROMIUM} is missing and could not be installed (apt-get install chromium, as root; "
                  "scripts/install-system.sh does it)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """`adatok demo` on two sample photos, small: the same code path as `make demo`."""
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--limit", "2", "--max-side", "96", "--quiet"])
    assert result.exit_code == 0, (result.output, result.exception)
    return out


@pytest.fixture(scope="module")
def page(demo_report):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        try:
            tab = browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto((demo_report / "report.html").as_uri(), wait_until="load")
            tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
            yield tab, errors
        finally:
            browser.close()


def test_every_image_decodes(page):
    tab, errors = page
    images = tab.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) > 20
    broken = [alt for alt, complete, w, h in images if not (complete and w > 0 and h > 0)]
    assert broken == [], broken
    assert errors == []
    # self-contained: every picture is a data URI, nothing is fetched
    sources = tab.evaluate("Array.from(document.images).map(i => i.src.slice(0, 22))")
    assert set(sources) == {"data:image/png;base64,"}


def test_curves_are_present(page):
    tab, _ = page
    for plot in ("psnr_bpp", "ssim_bpp", "ms_ssim_bpp"):
        legend = tab.evaluate(f"""Object.fromEntries(Array.from(document.querySelectorAll(
            "figure[data-plot='{plot}'] ul.legend li")).map(li => [li.dataset.method, [+li.dataset.points, li.textContent]]))""")
        for method, label in CURVES.items():
            assert method in legend, (plot, method, legend)
            points, text = legend[method]
            assert points >= 2, (plot, method, legend)
            assert text.startswith(label)
        assert tab.evaluate(f"document.querySelector(\"figure[data-plot='{plot}'] img\").naturalWidth") > 300
    tokens = tab.evaluate("""Array.from(document.querySelectorAll("figure[data-plot='psnr_tokens'] ul.legend li"))
        .filter(li => +li.dataset.points >= 2).map(li => li.dataset.method)""")
    assert {"wavelet", "wavelet-lossless", "grid"} <= set(tokens)


def test_page_shows_the_numbers_of_results_csv(page, demo_report):
    tab, _ = page
    rows = read_results(demo_report / "results.csv")
    shown = tab.evaluate("""Array.from(document.querySelectorAll('#results-table tr[data-image]'))
        .map(tr => [tr.dataset.image, tr.dataset.method, tr.dataset.budget, tr.dataset.psnr, tr.dataset.bpp])""")
    assert shown == [[r["image"], r["method"], r["budget"], r["psnr"], r["bpp"]] for r in rows]
    # per image: the strips of reconstructions, error maps and token maps of each tokenizer
    for image in ("astronaut", "camera"):
        for method in ("wavelet", "wavelet-lossless", "grid"):
            counts = tab.evaluate(f"""['recon', 'errors', 'heat'].map(k => document.querySelectorAll(
                "section[data-image='{image}'] div.tokenizer[data-method='{method}'] div.strip." + k + " img").length)""")
            assert counts == [4, 4, 4], (image, method, counts)
