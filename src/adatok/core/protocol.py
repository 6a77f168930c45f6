"""The contract every tokenizer family implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .budget import Budget
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
               roi: Sequence[np.ndarray | None] | None = None) -> list[TokenSequence]: ...

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]: ...

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
    def done(self) -> np.ndarray: ...

    @property
    def lengths(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def next_pos(self) -> np.ndarray: ...

    def legal(self) -> np.ndarray: ...

    def push(self, ids) -> None: ...

    def images(self, which: Sequence[int] | None = None) -> list[np.ndarray]: ...

    def sequences(self) -> list[TokenSequence]: ...
