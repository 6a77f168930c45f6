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


def naming_image(exc: AdatokError, name: str) -> AdatokError:
    """``exc``, raised by a tokenizer given a list of one image, with that image called ``name``:
    the library names an image by its place in the list it was given (``image 0``), which says
    nothing to a shell that encodes one file at a time (``adatok encode``, ``adatok
    tokenize-dataset``) and knows its name. The same exception, its message changed; returned for
    ``raise naming_image(exc, name) from None``."""
    import re

    message = re.sub(r"\bimage 0\b", lambda _: name, str(exc))
    if message != str(exc):
        exc.args = (message,)
    return exc
