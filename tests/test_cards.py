"""Every shipped checkpoint has a model card that names its licence and its data's, and
``adatok info NAME`` prints the card's summary; the judge's card states the accuracy it has."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from adatok.cli import app
from adatok.neural import CHECKPOINT_DIR

FOLDERS = sorted(p for p in CHECKPOINT_DIR.iterdir() if (p / "model.safetensors").is_file())


def test_there_are_shipped_checkpoints():
    assert {"fashion-mnist-32", "fmnist-judge"} <= {p.name for p in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_checkpoint_has_a_card_with_its_licences(folder):
    card = (folder / "README.md").read_text()
    assert card.startswith(f"# {folder.name}")
    flat = " ".join(card.split())
    assert "Licence: MIT" in flat and "Fashion-MNIST (MIT licence" in flat
    for section in ("## Data", "## Training", "## Measured", "## Limits"):
        assert section in card, section
    assert json.loads((folder / "config.json").read_text())["family"]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_info_prints_the_card_summary(folder):
    result = CliRunner().invoke(app, ["info", folder.name])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# {folder.name}") and "Licence" in result.output and "## " not in result.output


def test_the_judge_has_the_accuracy_its_card_states():
    torch = pytest.importorskip("torch")  # noqa: F841
    from adatok.datasets import load
    from adatok.generate.judge import JUDGE_DIR, accuracy, load_judge

    stated = float(re.search(r"Test accuracy: ([\d.]+)%", (JUDGE_DIR / "README.md").read_text()).group(1))
    test = load("fashion-mnist", split="test")
    measured = accuracy(load_judge(), np.stack(test.images), test.labels)
    assert abs(100 * measured - stated) < 0.005
