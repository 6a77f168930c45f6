"""The stepper of tokenizers without a grammar: every id may stand at every place, and a sequence
ends after a fixed number of tokens (a learned tokenizer's K slots, a grid's patches).

The wavelet tokenizers have their own (:mod:`adatok.wavelet.stepper`), whose next id depends on
the prefix. Both follow :class:`adatok.core.protocol.Stepper`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np

from . import imageio
from .checks import is_bool, shown
from .errors import ImageFormatError, InvalidTokensError
from .sequence import TokenSequence


def check_starts(starts) -> list:
    """A stepper's starts (image shapes or sequences) as a list; a single one is an error."""
    single = isinstance(starts, TokenSequence | np.ndarray | str) or (
        isinstance(starts, tuple) and all(isinstance(v, int | np.integer) for v in starts))
    if single or not hasattr(starts, "__len__") or not len(starts):
        raise ImageFormatError("stepper takes a non-empty list of starts (image shapes or sequences); "
                               "wrap a single one as [start]")
    return list(starts)


def start_shape(shape, i: int, what: str | None = None) -> tuple[int, ...]:
    """A stepper start's image shape, checked: ``(H, W)`` or ``(H, W, C)`` with C 1 or 3, whole
    numbers (not bools, not floats), at most ``adatok.core.imageio.MAX_PIXELS`` pixels. Bytes are
    refused (iterated, they are whole numbers: a cut ``.atk`` file would start a made-up image).
    ``what``: who asks, for the message (default: ``start i``, which may also be a TokenSequence)."""
    start = what is None
    try:
        out = () if isinstance(shape, str | bytes | bytearray | memoryview) else tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        out = ()
    if (len(out) not in (2, 3) or min(out[:2]) < 1 or (len(out) == 3 and out[2] not in (1, 3))
            or any(not isinstance(v, int | np.integer) or isinstance(v, bool) for v in shape)):
        raise ImageFormatError(f"{what or f'start {i}'}: {shown(shape)} is not an image shape: give (H, W) or (H, W, C) "
                               "with C 1 or 3" + (", or a TokenSequence" if start else ""))
    if out[0] * out[1] > imageio.MAX_PIXELS:
        raise ImageFormatError(f"{what or f'start {i}'}: {out[0]} x {out[1]} pixels is over the limit "
                               f"adatok.core.imageio.MAX_PIXELS ({imageio.MAX_PIXELS})")
    return out


def check_which(which, batch: int) -> list[int]:
    """The sequences a stepper's ``images(which)`` names, as indices 0..batch-1 (``None``: all;
    negative ones count from the end, as in a list)."""
    if which is None:
        return list(range(batch))
    if isinstance(which, str | bytes) or not hasattr(which, "__iter__") or getattr(which, "ndim", 1) != 1:
        raise InvalidTokensError(f"images takes a list of sequence indices (or None for all), got {shown(which)}")
    out = []
    for b in which:
        try:  # any integer, as a list takes it (numpy and torch ones too), not a bool, float or string
            i = None if is_bool(b) else operator.index(b)
        except TypeError:
            i = None
        if i is None or not -batch <= i < batch:
            raise InvalidTokensError(f"images: {shown(b)} is not the index of one of the {batch} sequences "
                                     f"(whole numbers {-batch}..{batch - 1})")
        out.append(i % batch)
    return out


def check_ids(ids, batch: int) -> np.ndarray:
    """The ids given to a stepper's ``push``, as a contiguous int64 array of shape ``(batch,)``."""
    if type(ids) is np.ndarray and ids.dtype == np.int64 and ids.shape == (batch,) and ids.flags.c_contiguous:
        return ids  # (the common case, checked in a third of the time: this runs once per token)
    new = np.asarray(ids)
    if new.shape != (batch,) or not (np.issubdtype(new.dtype, np.integer) or new.size == 0):
        raise InvalidTokensError(f"push takes one integer id per sequence, an array of shape ({batch},); "
                                 f"got {new.dtype} of shape {new.shape}")
    if new.dtype == np.uint64 and new.size and int(new.max()) > np.iinfo(np.int64).max:  # would wrap (2**64 - 1 to -1)
        raise InvalidTokensError(f"token id {int(new.max())} is out of range")
    return np.ascontiguousarray(new, dtype=np.int64)


class SlotStepper:
    """B sequences grown one token at a time, for a tokenizer whose every id (``0 ..
    vocab_size - 1``) may stand anywhere and whose sequences end at a fixed length.

    Args:
        vocab_size: the tokenizer's vocabulary.
        pos_fields: the names of the ``pos`` columns.
        full_pos: per sequence, the ``pos`` rows of its full sequence (their count is where it ends).
        prefixes: per sequence, the ids it starts with (checked).
        make: ``make(ids, *args[b])``: sequence ``b`` with ``ids`` as a :class:`TokenSequence` (a
            tokenizer's method, not a closure: the stepper pickles, as the wavelet ones do, when
            ``make`` and ``decode`` do; a lambda was a raw "Can't pickle local object").
        decode: the tokenizer's ``decode``.
        args: per sequence, the arguments after ``ids`` that ``make`` takes (its shape, ...).
    """

    def __init__(self, vocab_size: int, pos_fields: tuple[str, ...], full_pos: Sequence[np.ndarray],
                 prefixes: Sequence[np.ndarray], make: Callable[..., TokenSequence],
                 decode: Callable[[list[TokenSequence]], list[np.ndarray]], args: Sequence[tuple]) -> None:
        self.vocab_size = int(vocab_size)
        self.pos_fields = tuple(pos_fields)
        self._make, self._decode, self._args = make, decode, [tuple(a) for a in args]
        b = len(full_pos)
        self._end = np.array([len(p) for p in full_pos], np.int64)
        width = int(self._end.max()) if b else 0
        self._pos = np.full((b, width + 1, len(self.pos_fields)), -1, np.int32)  # the last row: after the end
        self._ids = np.zeros((b, max(width, 1)), np.int64)
        self._n = np.zeros(b, np.int64)
        for i, (pos, ids) in enumerate(zip(full_pos, prefixes)):
            self._pos[i, : len(pos)] = pos
            ids = np.asarray(ids, np.int64)
            if len(ids) > len(pos):
                raise InvalidTokensError(f"start {i} has {len(ids)} tokens; its sequences end at {len(pos)}")
            if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
                raise InvalidTokensError(f"start {i} has token ids outside 0..{self.vocab_size - 1}")
            self._ids[i, : len(ids)] = ids
            self._n[i] = len(ids)
        self._rows = np.arange(b)

    def __len__(self) -> int:
        return len(self._n)

    def __repr__(self) -> str:
        return f"SlotStepper(B={len(self)}, done={int(self.done.sum())})"

    @property
    def done(self) -> np.ndarray:
        """``(B,)`` bool: whether each sequence is complete."""
        return self._n >= self._end

    @property
    def lengths(self) -> np.ndarray:
        """``(B,)`` int64: tokens in each sequence so far."""
        return self._n.copy()

    def next_pos(self) -> np.ndarray:
        """``(B, P)`` int32: the ``pos`` row of each sequence's next token (-1 once complete)."""
        return self._pos[self._rows, np.minimum(self._n, self._end)]

    def legal(self) -> np.ndarray:
        """``(B, vocab_size)`` bool: every id while a sequence is not complete, none after."""
        return np.repeat(~self.done[:, None], self.vocab_size, axis=1)

    def push(self, ids) -> None:
        """Append ``ids[b]`` to each sequence ``b`` that is not complete (the entry of a complete
        one is ignored; -1 leaves a sequence as it is). An id out of range raises
        :class:`~adatok.InvalidTokensError` and changes nothing."""
        new = check_ids(ids, len(self))
        live = ~self.done & (new != -1)
        bad = live & ((new < 0) | (new >= self.vocab_size))
        if bad.any():
            b = int(np.argmax(bad))
            raise InvalidTokensError(f"token id {int(new[b])} for sequence {b} is out of range: ids are "
                                     f"0..{self.vocab_size - 1}")
        rows = self._rows[live]
        self._ids[rows, self._n[rows]] = new[rows]
        self._n[rows] += 1

    def sequences(self) -> list[TokenSequence]:
        """Each sequence as it stands (complete, or a prefix)."""
        return [self._sequence(b) for b in range(len(self))]

    def images(self, which: Sequence[int] | None = None) -> list[np.ndarray]:
        """Each sequence's current prefix (or those of the sequences ``which``), decoded (in one
        batch where the tokenizer batches)."""
        return self._decode([self._sequence(b) for b in check_which(which, len(self))])

    def _sequence(self, b: int) -> TokenSequence:
        """Sequence ``b`` as it stands."""
        return self._make(self._ids[b, : self._n[b]].copy(), *self._args[b])
