"""Where generators' checkpoints are, found without importing torch (the server lists them on every
page load; only a generation needs torch)."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.checks import JSON_ERRORS
from ..core.errors import AdatokError
from ..neural import CHECKPOINT_DIR  # (where shipped generators live too: folders whose family is "generator")


def _family(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, *JSON_ERRORS):
        return None
    return config.get("family") if isinstance(config, dict) else None


def shipped() -> list[str]:
    """Names of the generators shipped in the package."""
    out = []
    for folder in sorted(CHECKPOINT_DIR.iterdir()) if CHECKPOINT_DIR.is_dir() else []:
        if _family(folder) == "generator":
            out.append(folder.name)
    return out


def generator_folder(name_or_folder: str | Path) -> Path:
    """The checkpoint folder given, or that of a shipped generator's name. A shipped name written
    bare (``fmnist-gpt-learned``, or with a trailing slash) is the shipped generator even where the
    working folder holds a folder of that name, as a tokenizer's name is (:func:`adatok.load`): a
    user's run trained into ``--out fmnist-gpt-learned`` stood in for the shipped model, named as it
    in every message. Such a folder is ``./fmnist-gpt-learned``."""
    folder = Path(name_or_folder)
    own = CHECKPOINT_DIR / folder.name
    bare = str(name_or_folder).rstrip("/") == folder.name
    if bare and folder.name and own.is_dir():
        return own
    if folder.is_dir():
        return folder
    if folder.name and own.is_dir():  # (./NAME where no folder of that name is: the shipped one)
        return own
    raise AdatokError(f"unknown generator {str(name_or_folder)!r}: use one of {', '.join(shipped()) or '(none)'} "
                      "or a checkpoint folder")


