"""``adatok.load``: tokenizers by registered name or checkpoint folder."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from .checks import JSON_ERRORS
from .errors import UnknownTokenizerError

_NAMED: dict[str, Callable[[], object]] = {}
#: (pattern, factory of its match, how messages name the family): names made on demand, a family too
#: large to list (the wavelet words of any n: ``wavelet-w4``; see register_pattern)
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], object], str]] = []
_UNLISTED: set[str] = set()  # registered views of another tokenizer (see register)
_FOLDERS: dict[str, Callable[[Path], object]] = {}
#: key -> (tokenizer, its folder's files' sizes and times when it was loaded, or None): one entry, read
#: in one look-up (a tokenizer and its stamp in two dicts, read without the lock, could pair the old
#: weights with the new stamp another thread had just written)
_CACHE: dict[str, tuple[object, tuple | None]] = {}
_VERSIONS: dict[tuple[str, str], object] = {}  # (name, version) -> a checkpoint folder loaded by path
_LOADING = threading.RLock()  # one load at a time: threads asking at once get one tokenizer


def register(name: str, factory: Callable[[], object], listed: bool = True) -> None:
    """Register a tokenizer ``factory`` under ``name`` (called once, on first ``load``).

    ``listed=False``: a view of another registered tokenizer, with its bytes and rate–distortion
    (the wavelet words, ``wavelet-w8``): loaded by name like any other, but not in :func:`names`,
    so that what iterates them (``adatok demo``) does not measure the same tokenizer twice."""
    _NAMED[name] = factory
    if not listed:
        _UNLISTED.add(name)


def register_pattern(pattern: str, factory: Callable[[re.Match[str]], object], shown: str) -> None:
    """Register the tokenizers of every name that matches ``pattern`` whole (``factory(match)`` makes
    one, on first ``load``), named ``shown`` in messages: a family of views too large to list, whose
    names say what they are, so that a file of any of them reads back in any process (a
    ``wavelet-w4`` file was refused in a new process as made by a tokenizer not registered, and the
    command line could not read it at all). Such names are registered (:func:`registered`) but not
    listed."""
    _PATTERNS.append((re.compile(pattern), factory, shown))


def _pattern(name: str) -> tuple[Callable[[re.Match[str]], object], re.Match[str]] | None:
    for pattern, factory, _ in _PATTERNS:
        match = pattern.fullmatch(name)
        if match is not None:
            return factory, match
    return None


def pattern_names() -> list[str]:
    """How messages name the families registered by :func:`register_pattern` (``wavelet-wN``)."""
    return [shown for _, _, shown in _PATTERNS]


def register_family(family: str, loader: Callable[[Path], object]) -> None:
    """Register a loader for checkpoint folders whose ``config.json`` names ``family``."""
    _FOLDERS[family] = loader


def names(views: bool = False) -> list[str]:
    """The registered tokenizer names (built-in and shipped; not folders loaded in this process, nor
    views registered with ``listed=False`` unless ``views``: what must handle any input, the fuzz
    targets, takes them all)."""
    return sorted(set(_NAMED) if views else set(_NAMED) - _UNLISTED)


def remember(tokenizer) -> None:
    """Make ``load(tokenizer.name)`` return ``tokenizer`` in this process (a checkpoint folder
    loaded by path, so that its ``.atk`` bytes are read back by name), without registering the
    name: :func:`names` and what iterates it (``adatok demo``) do not list it. Its sequences find it
    by name and version (:func:`find`) even when a shipped checkpoint has the same name (a
    retrained ``fashion-mnist-32``)."""
    held = _VERSIONS.get((tokenizer.name, tokenizer.version))
    if held is not None and held is not tokenizer and getattr(held, "cfg", None) != getattr(tokenizer, "cfg", None):
        # (the version covers the weights, not the config: a config edited by hand that keeps their
        # shapes took over the other's files, decoding them with another network)
        raise UnknownTokenizerError(f"{tokenizer.name!r} version {tokenizer.version} is loaded already with another "
                                    "configuration (the same weights, a config.json edited since?): two tokenizers "
                                    "cannot read the same files; load one of them in a process")
    _VERSIONS[(tokenizer.name, tokenizer.version)] = tokenizer
    if tokenizer.name not in _NAMED:
        _CACHE[tokenizer.name] = (tokenizer, None)  # the folder loaded last (a retrained one: its new weights)


def find(name: str, version: str | None = None):
    """The tokenizer for sequences made by ``name`` at ``version``: a folder loaded in this process
    with exactly that name and version, else ``load(name)`` (whose version the caller checks)."""
    tok = _VERSIONS.get((name, version))
    return tok if tok is not None else load(name)


def maker(seq):
    """The tokenizer that made ``seq`` (a :class:`~adatok.TokenSequence`): :func:`find` by its
    tokenizer name and version."""
    return find(seq.tokenizer, seq.version)


def registered(name: str) -> bool:
    """Whether ``name`` is a registered tokenizer name (listed or not), which :func:`load` prefers
    to a folder of that name."""
    return name in _NAMED or _pattern(name) is not None


def known(name: str) -> bool:
    """Whether ``load(name)`` finds a tokenizer by that name (registered or remembered)."""
    return name in _NAMED or name in _CACHE or _pattern(name) is not None


def load(name_or_path: str | Path):
    """Return a tokenizer: a registered name (``"wavelet"``, ``"wavelet-lossless"``, a shipped
    checkpoint) or a checkpoint folder holding ``config.json`` and ``model.safetensors``."""
    key = str(name_or_path)
    if not key:  # (Path("") is the working folder: " is not a checkpoint folder", the name left out)
        raise UnknownTokenizerError("the tokenizer name is empty: use one of "
                                    f"{', '.join(names(views=True) + pattern_names())} or a checkpoint folder "
                                    "('.' for the working folder)")
    stamp = None if registered(key) else _stamp(key)
    hit = _CACHE.get(key)
    if hit is not None and hit[1] == stamp:
        return hit[0]
    with _LOADING:
        hit = _CACHE.get(key)
        if hit is None or hit[1] != stamp:  # a folder trained again since: its new weights
            hit = _CACHE[key] = (_make(key), stamp)
        return hit[0]


def _stamp(key: str) -> tuple | None:
    """The sizes and modification times of a checkpoint folder's files (``None`` for anything that
    is not a folder): a folder written again since it was loaded gets loaded again."""
    path = Path(key)
    if not path.is_dir():
        return None
    out = []
    for name in ("config.json", "model.safetensors"):
        try:
            st = (path / name).stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


#: Checkpoint families of the project that are not tokenizers, and what to do with one instead.
_NOT_TOKENIZERS = {"generator": "give it to adatok generate --model (or adatok.generate.sample.load_generator)",
                   "judge": "the Fashion-MNIST classifier of adatok.generate.judge (load_judge)"}


def _make(key: str):
    """A new tokenizer for a registered name or a checkpoint folder (what load caches). An unknown
    name is told every name that loads, views included (``wavelet-w8`` worked but went unnamed)."""
    if key in _NAMED:
        tok = _NAMED[key]()
    elif (made := _pattern(key)) is not None:
        factory, match = made
        tok = factory(match)
    else:
        path = Path(key)
        if not path.is_dir():
            known = f"{', '.join(names(views=True) + pattern_names())} or a checkpoint folder"
            if path.exists():
                raise UnknownTokenizerError(f"{key} is a file, not a checkpoint folder (a tokenizer is one of {known})")
            if "/" in key or os.sep in key or (os.altsep or "/") in key or key.startswith("."):
                # a path (out/neural/my-ckpt), not a name mistyped: said "unknown tokenizer"
                raise UnknownTokenizerError(f"no such folder: {key} (a tokenizer is one of {known})")
            raise UnknownTokenizerError(f"unknown tokenizer {key!r}: use one of {known}")
        cfg = path / "config.json"
        try:
            family = json.loads(cfg.read_text())["family"]
        except (OSError, *JSON_ERRORS, KeyError, TypeError):
            raise UnknownTokenizerError(f"{key} is not a checkpoint folder: it needs a config.json naming "
                                        "its 'family'") from None
        if isinstance(family, str) and family in _NOT_TOKENIZERS:
            raise UnknownTokenizerError(f"{key} is a {family} checkpoint, not a tokenizer: "
                                        f"{_NOT_TOKENIZERS[family]}")
        if not isinstance(family, str) or family not in _FOLDERS:
            raise UnknownTokenizerError(f"checkpoint family {family!r} of {key} is not available here"
                                        + (": install adatok[neural] for learned tokenizers" if family == "neural"
                                           else ""))
        tok = _FOLDERS[family](path)
    return tok
