"""The error family: every failure a user can cause raises a subclass of :class:`AdatokError`.

Messages say what was wrong and what to do about it, in one line, so that the command line can
print them without a traceback.
"""

from __future__ import annotations


class AdatokError(Exception):
    """Base class of every error adatok raises for a problem the user can fix.

    ``cli``, when given, is the message in the command line's terms, for an error whose advice is
    Python's (``adatok.load('wavelet-lossless')``, ``resize=True``) and reads otherwise there
    (``-t wavelet-lossless``; resize the mask file): what the ``adatok`` command prints instead
    (:func:`cli_message`). The message itself stays the library's."""

    def __init__(self, *args: object, cli: str | None = None):
        super().__init__(*args)
        self.cli = cli


def cli_message(exc: BaseException) -> str:
    """What the command line says of ``exc``: its :attr:`AdatokError.cli` wording when it has one,
    else its message."""
    return getattr(exc, "cli", None) or str(exc)


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


def not_lossless_cli(name: str, lossless: str = "wavelet-lossless") -> str:
    """The command line's wording of a lossless budget refused by tokenizer ``name``, which is not
    lossless (Python is told ``adatok.load(lossless)``): ``lossless`` names the tokenizer to give."""
    return (f"{name!r} is not lossless; give -t {lossless} for --lossless, or leave out -t (--lossless alone "
            "takes wavelet-lossless)")


def naming_image(exc: AdatokError, name: str) -> AdatokError:
    """``exc``, raised by a tokenizer given a list of one image, with that image called ``name``:
    the library names an image by its place in the list it was given (``image 0``), which says
    nothing to a shell that encodes one file at a time (``adatok encode``, ``adatok
    tokenize-dataset``) and knows its name. The same exception, its message changed; returned for
    ``raise naming_image(exc, name) from None``."""
    import re

    return _reworded(exc, lambda text: re.sub(r"\bimage 0\b", lambda _: name, text))


def _reworded(exc: AdatokError, change) -> AdatokError:
    """``exc`` with ``change`` applied to its message and to its command-line wording (``exc.cli``),
    where it changes them: what :func:`naming_image` and :func:`naming_file` do to an error."""
    if change(str(exc)) != str(exc):
        exc.args = (change(str(exc)),)
    if getattr(exc, "cli", None):
        exc.cli = change(exc.cli)
    return exc


def naming_file(exc: AdatokError, name: str) -> AdatokError:
    """``exc``, raised by the library reading the bytes of a file it was not told the name of (a
    container's payload checksum, its tokens), with the file's name first, ``NAME: message`` (its
    command-line wording too), as the command line's other errors of a file begin; unchanged when it
    names the file first already (``NAME was made by ...``). The same exception, its message changed;
    returned for ``raise naming_file(exc, name) from None``."""

    return _reworded(exc, lambda text: text if text.startswith((f"{name}:", f"{name} ")) else f"{name}: {text}")


def naming_sequence(exc: AdatokError, i: int, noun: str = "sequence") -> AdatokError:
    """``exc``, raised by a tokenizer for one sequence of a list it was given, with that sequence
    named by its place in the list, as ``encode`` names an image (``image 5: ...``): ``sequence 5:
    message``, or ``sequence 5 was made by ...`` for a message about ``this sequence``; unchanged when
    it names it already. ``noun``: what the list holds (a stepper's ``start``). The same exception, its
    message changed; returned for ``raise naming_sequence(exc, i) from None`` (:func:`decode_each
    <adatok.core.protocol.decode_each>`)."""
    import re

    name = f"{noun} {i}"

    def change(text: str) -> str:
        if re.match(rf"{name}\b", text):
            return text
        if text.startswith("this sequence "):
            return name + text[len("this sequence"):]
        return f"{name}: {text}"

    return _reworded(exc, change)
