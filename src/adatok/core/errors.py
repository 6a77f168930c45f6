"""The error family: every failure a user can cause raises a subclass of :class:`AdatokError`.

Messages say what was wrong and what to do about it, in one line, so that the command line can
print them without a traceback.
"""

from __future__ import annotations


class AdatokError(Exception):
    """Base class of every error adatok raises for a problem the user can fix."""


class ImageReadError(AdatokError):
    """An image file is missing, unreadable, truncated, or of an unsupported kind."""


class ImageFormatError(AdatokError):
    """An image array (or decoded file) has a shape, dtype or size adatok does not accept."""


class TokenizerMismatchError(AdatokError):
    """A token sequence was made by a different tokenizer (or version) than the one decoding it."""


class InvalidTokensError(AdatokError):
    """A token sequence holds ids that are out of range or not valid at their place in the stream."""


class BudgetError(AdatokError):
    """A budget is malformed, or not supported by the tokenizer it was given to."""


class ContainerError(AdatokError):
    """Bytes or an ``.atk`` file are not a valid adatok container (magic, version, checksum, length)."""


class UnknownTokenizerError(AdatokError):
    """``adatok.load`` was given a name that is neither registered nor a checkpoint folder."""
