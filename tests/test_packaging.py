"""``pip install .`` gives a working ``adatok``: a wheel built from the project, installed in a fresh
venv, encodes and decodes from the command line and loads the shipped checkpoint.

The wheel is built without build isolation (no download) from a copy of the project in a temporary
folder, so the build never writes into the source tree and never picks up a stale ``build/``. The
venv is made without pip (the running pip installs into it with ``--python``) and sees the running
environment's dependencies through a ``.pth`` line, so numpy, numba and torch are not installed
again. That line adds the folder only: the ``.pth`` files in it (an editable install of adatok
among them) are not read, so the ``adatok`` the venv imports is the wheel's, which is checked.
About a minute, most of it numba compiling the wavelet coder for the new install.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

import adatok
from adatok.core.imageio import write_image

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "adatok"


def package_files() -> set[str]:
    """The files of the package that are not Python, as paths in a wheel (``adatok/...``): those
    git tracks, or without git every file outside ``__pycache__``."""
    try:
        listed = subprocess.run(["git", "ls-files", "src/adatok"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split()
        paths = [ROOT / p for p in listed]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return {p.relative_to(PACKAGE.parent).as_posix() for p in paths if p.suffix != ".py" and p.exists()}


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's bin folder, the environment to run it in, a working folder) of a wheel install."""
    tmp = tmp_path_factory.mktemp("wheel")
    project = tmp / "project"
    shutil.copytree(PACKAGE, project / "src" / "adatok", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    work = tmp / "work"
    work.mkdir()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp / "dist"), str(project)], work, env)
    (wheel,) = (tmp / "dist").glob("adatok-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        missing = package_files() - set(zf.namelist())
    assert not missing, f"the wheel lacks files of the package (add them to package-data): {sorted(missing)}"

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work, env)
    bin_dir = venv / "bin"
    site = Path(run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    work, env).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "running-environment.pth").write_text("".join(f"{p}\n" for p in deps))
    run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "--no-deps", "--no-index",
         "-q", str(wheel)], work, env)
    return bin_dir, env, work


def test_the_wheel_is_what_the_venv_imports(installed):
    bin_dir, env, work = installed
    where = run([str(bin_dir / "python"), "-c", "import adatok; print(adatok.__file__)"], work, env).stdout.strip()
    assert Path(where).resolve().is_relative_to(bin_dir.parent.resolve()), where
    version = run([str(bin_dir / "adatok"), "--version"], work, env).stdout.strip()
    assert version == f"adatok {adatok.__version__}"


def test_installed_cli_encodes_and_decodes_like_the_source(installed):
    """Same bytes as this source tree: a wheel without the wavelet priors would code other bytes."""
    bin_dir, env, work = installed
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (24, 20, 3)), 0, 255).astype(np.uint8)
    write_image(work / "small.png", img)
    run([str(bin_dir / "adatok"), "encode", "small.png", "small.atk", "--bpp", "2", "-q"], work, env)
    run([str(bin_dir / "adatok"), "decode", "small.atk", "back.png", "-q"], work, env)
    (seq,) = adatok.load("wavelet").encode([img], adatok.Bpp(2))
    assert (work / "small.atk").read_bytes() == seq.to_bytes()
    assert np.array_equal(adatok.read_image(work / "back.png"), adatok.load("wavelet").decode([seq])[0])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the neural extra is not installed")
def test_installed_package_loads_the_shipped_checkpoint(installed):
    bin_dir, env, work = installed
    write_image(work / "item.png", np.full((28, 28), 200, np.uint8))
    run([str(bin_dir / "adatok"), "encode", "item.png", "item.atk", "-t", "fashion-mnist-32", "-q"], work, env)
    info = run([str(bin_dir / "adatok"), "info", "item.atk"], work, env).stdout
    assert re.search(r"^tokenizer:\s+fashion-mnist-32$", info, re.M), info
    assert re.search(r"^tokens:\s+32$", info, re.M), info
    run([str(bin_dir / "adatok"), "decode", "item.atk", "item-back.png", "--tokens", "4", "-q"], work, env)
    assert adatok.read_image(work / "item-back.png").shape == (28, 28, 1)
