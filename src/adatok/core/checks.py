"""Checks of values a caller gives, shared by every layer (one rule, one place)."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np


def is_whole(value: Any) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy integer, not a ``bool`` (so ``2.7``,
    ``"3"`` and ``True`` are not: nothing is truncated or read as a number by accident)."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def whole_index(value: Any) -> int | None:
    """``value`` as an ``int`` when it is a whole number given as a scalar of any integer type: a
    Python or numpy integer, a 0-d array or tensor of an integer dtype (``torch.tensor(3)``, taken by
    ``operator.index``, with no torch imported here); ``None`` for anything else: a ``bool`` (of any
    kind), a float (``3.0``), a string, an array of one or more elements (``[3]``)."""
    if is_bool(value) or getattr(value, "ndim", 0) != 0:
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def is_bool(value: Any) -> bool:
    """Whether ``value`` is a truth value: a ``bool``, or a scalar or 0-d array of a bool dtype
    (numpy's or torch's), which ``int()``, ``float()`` and ``operator.index`` would take as 0 or 1."""
    return isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (Python or numpy, not a ``bool``, not NaN or inf)."""
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating) \
        and bool(np.isfinite(value))


#: What ``json.loads`` raises on text that is not JSON: ``ValueError`` (``UnicodeDecodeError``
#: among them) and ``RecursionError`` (arrays nested deeper than Python's stack, ``"[" * 100000``).
#: Catch these, with ``OSError`` for the read, wherever a user's file is parsed.
JSON_ERRORS = (ValueError, RecursionError)


def size_text(shape: tuple[int, ...]) -> str:
    """An image's size as every message and page gives it: ``512x768 (H x W)`` (the serve page's
    notes gave JPEG's ``WxH`` and the eval report ``WxH`` beside results.csv's ``HxW``)."""
    return f"{shape[0]:,}x{shape[1]:,} (H x W)"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one (``1 image``, ``3 shards``, ``1,024 tokens``): every count
    a message, a table or a page gives with its noun (``1 tokens``, ``(1 points)`` until 2026-12-03)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (a request's field of up
    to 1 MB came back whole in the message, several times its size once escaped; a file's header
    may name a tokenizer of any length)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
