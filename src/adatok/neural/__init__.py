"""The learned tokenizers (ViT encoder + K latent tokens, FSQ, ViT decoder; nested dropout).

Importing this package does not import torch: it only registers the shipped checkpoints and the
``neural`` checkpoint family with :func:`adatok.load`, whose loaders import torch when called.
The model is in :mod:`adatok.neural.model`, training in :mod:`adatok.neural.trainer`, the
tokenizer contract in :mod:`adatok.neural.tokenizer` (each imports torch).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.checks import JSON_ERRORS
from ..core.errors import AdatokError
from ..core.registry import register, register_family

#: Where the shipped checkpoints live (one folder per registered name).
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


def load_checkpoint(folder: str | Path, name: str | None = None):
    """A :class:`~adatok.neural.tokenizer.NeuralTokenizer` from a checkpoint folder (imports torch)."""
    try:
        from .tokenizer import NeuralTokenizer
    except ImportError as exc:
        raise AdatokError(f"learned tokenizers need the neural extra ({exc.name} is missing): "
                          "pip install 'adatok[neural]'") from None
    tok = NeuralTokenizer.from_folder(folder, name)
    from ..core import registry

    registry.remember(tok)  # so that its .atk bytes can be read back by name
    return tok


def _register_shipped() -> None:
    """Register each shipped learned-tokenizer checkpoint by its folder's name (the folder also
    holds other models, the generators and the judge: their config.json names another family)."""
    if not CHECKPOINT_DIR.is_dir():
        return
    for folder in sorted(CHECKPOINT_DIR.iterdir()):
        if not (folder / "model.safetensors").is_file():
            continue
        try:
            family = json.loads((folder / "config.json").read_text()).get("family")
        except (OSError, *JSON_ERRORS, AttributeError):
            continue
        if family == "neural":
            register(folder.name, lambda folder=folder: load_checkpoint(folder, folder.name))


register_family("neural", load_checkpoint)
_register_shipped()
