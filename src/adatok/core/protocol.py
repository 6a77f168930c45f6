"""The contract every tokenizer family implements."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .budget import Budget
from .errors import AdatokError, ImageFormatError, InvalidTokensError, naming_sequence
from .sequence import TokenSequence


@runtime_checkable
class Tokenizer(Protocol):
    """Images in, ordered variable-length token sequences out, and back.

    Images are ``uint8`` arrays ``H x W x C`` with C = 1 or 3 (a 2-D array means one channel);
    lists, because sizes differ. ``decode`` returns images of the encoded shape and dtype.
    """

    name: str
    vocab_size: int

    def encode(self, images: Sequence[np.ndarray], budget: Budget | None = None,
               roi: Sequence[np.ndarray | None] | None = None) -> list[TokenSequence]:
        """One sequence per image, its length chosen by ``budget`` (``None``: the whole
        sequence; ``Tokens(k)``, ``Bpp(x)``, ``Quality(psnr=..)`` / ``Quality(ssim=..)``,
        ``Lossless()``), its early tokens spent where ``roi`` (one map or ``None`` per image)
        or the saliency puts them.

        Raises:
            ImageFormatError: an image that is not ``H x W x C`` ``uint8`` (C = 1 or 3), or a
                ``roi`` that is not one map per image of its size.
            BudgetError: a budget this tokenizer cannot meet (an empty region for a regional
                target, ``Lossless`` on a lossy tokenizer).
        """
        ...

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """The image each sequence (or any prefix of one: ``seq.prefix(k)``) decodes to, of the
        encoded shape, ``uint8``.

        Raises:
            InvalidTokensError: a sequence of another tokenizer, or ids or parameters that no
                encoding could have written.
        """
        ...

    def stepper(self, starts: Sequence[tuple[int, ...] | TokenSequence]) -> Stepper:
        """B sequences to grow one token at a time: each start is an image shape (an empty
        sequence) or a sequence of this tokenizer (to go on from)."""
        ...


@runtime_checkable
class Stepper(Protocol):
    """B token sequences grown one token at a time, as a sampling loop needs them.

    At every step, for each sequence: ``next_pos()`` is the ``pos`` row its next token will have
    (what ``TokenSequence.pos`` holds for it once made; -1 where the sequence is complete) and
    ``legal()`` the ids that may stand there (none once complete); ``push(ids)`` appends one id per
    sequence (-1: none; ``InvalidTokensError`` for an id that may not stand, and then nothing
    changes).
    ``images()`` decodes the current prefixes (``images(which)``: some of them), ``sequences()``
    returns them.
    """

    vocab_size: int
    pos_fields: tuple[str, ...]

    @property
    def done(self) -> np.ndarray:
        """``(B,)`` bool: which sequences are complete (no token may follow)."""
        ...

    @property
    def lengths(self) -> np.ndarray:
        """``(B,)`` int: the tokens each sequence holds so far."""
        ...

    def __len__(self) -> int: ...

    def next_pos(self) -> np.ndarray:
        """``(B, len(pos_fields))`` int: the ``pos`` row of each sequence's next token (-1 rows
        where it is complete)."""
        ...

    def legal(self) -> np.ndarray:
        """``(B, vocab_size)`` bool: the ids that may stand next in each sequence."""
        ...

    def push(self, ids) -> None:
        """Append ``ids[b]`` to sequence b (-1: nothing); an id that is not legal raises
        :class:`~adatok.InvalidTokensError` and leaves every sequence unchanged."""
        ...

    def images(self, which: Sequence[int] | None = None) -> list[np.ndarray]:
        """The images the current prefixes decode to (all, or those listed in ``which``)."""
        ...

    def sequences(self) -> list[TokenSequence]:
        """The current prefixes as :class:`TokenSequence` (each one ``decode``s to its image)."""
        ...


def image_list(images, roi=None) -> tuple[list, list]:
    """``encode``'s arguments as lists: the images and one region map (or ``None``) per image.

    Any iterable of images is taken (a list, a tuple, a generator); a single array, a string or a
    non-iterable is refused with :class:`~adatok.ImageFormatError`, as is ``roi`` that is not one
    entry per image. The images themselves are checked by the tokenizer (``as_image``)."""
    if isinstance(images, np.ndarray):
        raise ImageFormatError("encode takes a list of images; wrap a single image as [image]")
    if isinstance(images, str | bytes) or not isinstance(images, Iterable):
        raise ImageFormatError(f"encode takes a list of images (H x W x C uint8 arrays), got {type(images).__name__}")
    images = list(images)
    if roi is None:
        return images, [None] * len(images)
    if isinstance(roi, np.ndarray | str | bytes) or not isinstance(roi, Iterable):
        raise ImageFormatError("roi takes one map (or None) per image, in a list as long as the images")
    roi = list(roi)
    if len(roi) != len(images):
        raise ImageFormatError(f"roi takes one map (or None) per image: got {len(roi)} for {len(images)} images")
    return images, roi


def sequence_list(seqs) -> list[TokenSequence]:
    """``decode``'s argument as a list of :class:`TokenSequence` (any iterable of them), refusing
    anything else with :class:`~adatok.InvalidTokensError`."""
    if isinstance(seqs, TokenSequence):
        raise InvalidTokensError("decode takes a list of sequences; wrap a single one as [seq]")
    if isinstance(seqs, str | bytes) or not isinstance(seqs, Iterable):
        raise InvalidTokensError(f"decode takes a list of TokenSequence, got {type(seqs).__name__}")
    seqs = list(seqs)
    for i, seq in enumerate(seqs):
        if not isinstance(seq, TokenSequence):
            raise InvalidTokensError(f"decode takes a list of TokenSequence; item {i} is a {type(seq).__name__}"
                                     + (" (bytes: read them with TokenSequence.from_bytes)" if isinstance(seq, bytes | bytearray) else ""))
    return seqs


def decode_each(seqs, decode_one: Callable[[TokenSequence], np.ndarray]) -> list[np.ndarray]:
    """``decode``: ``decode_one`` of each sequence of ``seqs`` (:func:`sequence_list`), an error of
    one of them naming it by its place in the list (``sequence 5: token id ... at index 2 ...``,
    :func:`~adatok.core.errors.naming_sequence`), as ``encode``'s name an image: the message said
    only where in its sequence the token was, not which of a batch held it."""
    out = []
    for i, seq in enumerate(sequence_list(seqs)):
        with named(i):
            out.append(decode_one(seq))
    return out


@contextlib.contextmanager
def named(i: int, noun: str = "sequence") -> Iterator[None]:
    """An :class:`~adatok.AdatokError` raised inside, about item ``i`` of a list of sequences, naming
    it (:func:`~adatok.core.errors.naming_sequence`: ``sequence 5: ...``; ``noun="start"`` for a
    stepper's starts): for a tokenizer that checks each sequence of a batch, then decodes them at once."""
    try:
        yield
    except AdatokError as exc:
        raise naming_sequence(exc, i, noun) from None
