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
    """The checkpoint folder given, or that of a shipped generator's name. A folder without a
    config.json (samples written by ``adatok generate -m NAME -o NAME``) does not hide the shipped
    generator of its name."""
    folder = Path(name_or_folder)
    own = CHECKPOINT_DIR / folder.name  # (a shipped name, written as "name/" or "./name" too)
    bare = str(name_or_folder) == folder.name
    if folder.is_dir() and ((folder / "config.json").is_file() or not bare or not own.is_dir()):
        return folder
    if folder.name and own.is_dir():
        return own
    raise AdatokError(f"unknown generator {str(name_or_folder)!r}: use one of {', '.join(shipped()) or '(none)'} "
                      "or a checkpoint folder")


