"""Checks of values a caller gives, shared by every layer (one rule, one place)."""

from __future__ import annotations

from typing import Any

import numpy as np


def is_whole(value: Any) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy integer, not a ``bool`` (so ``2.7``,
    ``"3"`` and ``True`` are not: nothing is truncated or read as a number by accident)."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer)
