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
