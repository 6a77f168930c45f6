"""The wavelet tokenizers' stepper: B sequences built one token at a time, with the grammar.

Each sequence keeps the decoder's lists, its place in the passes and its coefficient knowledge
between tokens (:mod:`adatok.wavelet.spiht`: the walk that encodes and decodes, stopped before
each token). A step is one compiled call for the whole batch; the image of a prefix is
synthesised from the kept knowledge, not from a replay. Made by
:meth:`adatok.wavelet.WaveletTokenizer.stepper`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import InvalidTokensError
from ..core.sequence import TokenSequence
from ..core.stepper import check_ids, check_which
from . import spiht
from .layout import GEO_DOWN, GEO_LEFT, GEO_RIGHT, GEO_UP, POS_FIELDS, Layout

_FIRST_CAP = 1024  # tokens each sequence has room for at first (doubled as needed)
_NO_NBF = np.zeros(0, np.uint16)

#: The coefficients :meth:`WaveletStepper.context` reports on, around the next decision's.
CONTEXT_FIELDS = ("self", "parent", "grandparent", "left", "right", "up", "down")
#: Bit-planes above the current one that :meth:`WaveletStepper.context` tells apart.
CONTEXT_REL = 5
#: States of a coefficient in :meth:`WaveletStepper.context`: none (no such coefficient, or the
#: stream has ended), not yet significant, significant with its top bit 0..CONTEXT_REL planes above
#: the current plane (the last: that many or more) and positive or negative (2 + 2 * rel + negative).
CONTEXT_STATES = 2 + 2 * (CONTEXT_REL + 1)


def context_nodes(layout: Layout) -> np.ndarray:
    """``(N, len(CONTEXT_FIELDS))`` int32: for every node, itself, its parent, its grandparent and
    its left, right, upper and lower neighbours in its band (-1: none)."""
    n = layout.size
    idx = np.arange(n, dtype=np.int64)
    parent = layout.parent.astype(np.int64)
    grand = np.where(parent >= 0, parent[np.maximum(parent, 0)], -1)
    geo = layout.geo.astype(np.int64)
    width = geo >> 4
    out = np.stack([idx, parent, grand, np.where(geo & GEO_LEFT, idx - 1, -1), np.where(geo & GEO_RIGHT, idx + 1, -1),
                    np.where(geo & GEO_UP, idx - width, -1), np.where(geo & GEO_DOWN, idx + width, -1)], 1)
    return out.astype(np.int32)


class _Walks:
    """The rows of the batch that share a tree (one shape and header but ``nmax``): the walks'
    state, lists and decoder knowledge, one row per sequence."""

    def __init__(self, tok, layout: Layout, params: dict, rows: list[int], prefixes: list[np.ndarray],
                 nmaxes: list[int]) -> None:
        self.layout = layout
        self.params = params
        self.rows = np.array(rows, np.int64)
        b, n = len(rows), layout.size
        self.tree = (*tok._shifts(layout, params), *layout.tree_args(), layout.node_pos)
        self._near: np.ndarray | None = None  # context_nodes(layout), made by the first context()
        self.nmax = np.array(nmaxes, np.int64)  # each row's top plane (its fresh state's: see replay)
        self.ws = np.stack([spiht.fresh_state(m) for m in nmaxes])
        self.value = np.zeros((b, n), np.int64)
        self.low = np.full((b, n), -1, np.int8)
        self.neg = np.zeros((b, n), np.bool_)
        self.lip = np.empty((b, n), np.int32)
        self.lsp = np.empty((b, n), np.int32)
        self.lis = np.empty((b, 3 * n + 1), np.int32)
        self.lis_b = np.empty((b, 3 * n + 1), np.bool_)
        self.lis_f = np.zeros((b, 3 * n + 1), np.bool_)
        self.cap = max(len(p) for p in prefixes) + _FIRST_CAP
        self.ids = np.empty((b, self.cap), np.uint8)
        self.tnode = np.empty((b, self.cap), np.int32)
        self.tplane = np.empty((b, self.cap), np.int8)
        for r, p in enumerate(prefixes):
            self.ids[r, : len(p)] = p
        self.pos = np.empty((b, len(POS_FIELDS)), np.int32)
        self.legal = np.empty((b, spiht.VOCAB_SIZE), np.bool_)
        counts = np.array([len(p) for p in prefixes], np.int64)
        status = np.empty(b, np.int64)
        self.args = self._arrays()
        spiht.start(counts, self.ws, *self.args, status)
        self.longest = int(counts.max())  # at least the longest row's tokens (see reserve)
        for r, p in enumerate(prefixes):
            if status[r] == spiht.BAD_TOKEN:
                at = int(counts[r])
                raise InvalidTokensError(f"start {rows[r]}: token {spiht.TOKEN_NAMES[p[at]]} (id {int(p[at])}) at "
                                         f"index {at} cannot stand there: the sequence is corrupt or was edited")
            if status[r] == spiht.TOO_LONG:
                extra = len(p) - int(counts[r])
                raise InvalidTokensError(f"start {rows[r]}: the sequence has {extra} token{'s' if extra != 1 else ''} "
                                         f"past the end of its stream (it ends at {int(counts[r])})")

    def _arrays(self) -> tuple:
        """The arguments of :func:`spiht.start` / :func:`spiht.step` after ``ws``."""
        return (self.ids, self.tnode, self.tplane, self.value, self.low, self.neg, self.lip, self.lsp, self.lis,
                self.lis_b, self.lis_f, *self.tree, self.pos, self.legal, _NO_NBF)

    def reserve(self, extra: int) -> None:
        """Room in the token buffers for ``extra`` more tokens in every row.

        ``longest`` is an upper bound on the tokens of the longest row, raised by every push
        whether or not a row moved (a held or ended row does not); it is made exact here before
        the buffers grow, so pushes that move no row never grow them (200,000 held pushes grew
        them to 262,144 tokens a row, and a word stepper's to 2,097,152)."""
        if self.longest + extra > self.cap:
            self.longest = int(self.ws[:, spiht.WS_T].max())
            while self.longest + extra > self.cap:
                self._grow()

    def replay(self, r: int, t: int) -> None:
        """Walk row ``r`` again, from a fresh state, over the first ``t`` tokens it holds: its
        state becomes the one those tokens leave (the ids are kept; what lies past them is
        forgotten). For a caller whose walk changed the row without being able to undo it: see
        :mod:`adatok.wavelet.words`, whose journal may be too small for a path, and whose refused
        push puts rows back."""
        one = slice(r, r + 1)
        self.ws[r] = spiht.fresh_state(self.nmax[r])
        self.value[r] = 0
        self.low[r] = -1
        self.neg[r] = False
        self.lis_f[r] = False  # (the start of a walk writes the LIS without it)
        status = np.empty(1, np.int64)
        spiht.start(np.array([t], np.int64), self.ws[one], self.ids[one], self.tnode[one], self.tplane[one],
                    self.value[one], self.low[one], self.neg[one], self.lip[one], self.lsp[one], self.lis[one],
                    self.lis_b[one], self.lis_f[one], *self.tree, self.pos[one], self.legal[one], _NO_NBF, status)
        if status[0] != spiht.OK:  # tokens the row held: never, unless another thread changed them meanwhile
            raise InvalidTokensError(f"the tokens of row {r} no longer walk: the stepper was changed while in use "
                                     "(a stepper is for one thread)")

    def context(self) -> np.ndarray:
        """The rows' :meth:`WaveletStepper.context`."""
        ws = self.ws
        node = ws[:, spiht.WS_NODE]
        if self._near is None:  # (not at construction: every word decode makes a stepper, few read this)
            self._near = context_nodes(self.layout)
        near = self._near[np.maximum(node, 0)].astype(np.int64)  # (b, fields)
        rows = np.arange(len(ws))[:, None]
        at = np.maximum(near, 0)
        value, low, neg = self.value[rows, at], self.low[rows, at], self.neg[rows, at]
        top = np.frexp(np.maximum(value, 1).astype(np.float64))[1] - 1 + self.tree[0][at]  # the top bit's plane
        rel = np.clip(top - ws[:, spiht.WS_PLANE, None], 0, CONTEXT_REL)
        state = np.where(near < 0, 0, np.where(low < 0, 1, 2 + 2 * rel + neg))
        state[(ws[:, spiht.WS_KIND] == spiht.K_END) | (node < 0)] = 0
        return state.astype(np.int8)

    def step(self, new: np.ndarray) -> int:
        """One token per row (see :func:`spiht.step`); -1 or the first row whose id cannot stand."""
        if self.longest + 1 > self.cap:
            self.reserve(1)
        bad = spiht.step(new, self.ws, *self.args)
        if bad >= len(self.rows):  # the walk and LEGAL disagree: never (tests/test_stepper.py)
            raise AssertionError(f"the walk refused an id LEGAL allows, in row {bad - len(self.rows)}")
        if bad < 0:
            self.longest += 1  # (an upper bound: some rows may have been held; see reserve)
        return bad

    def _grow(self) -> None:
        self.cap *= 2
        for name in ("ids", "tnode", "tplane"):
            old = getattr(self, name)
            new = np.empty((old.shape[0], self.cap), old.dtype)
            new[:, : old.shape[1]] = old
            setattr(self, name, new)
        self.args = self._arrays()


class WaveletStepper:
    """B wavelet token sequences, grown one token at a time under the wavelet language's grammar.

    Made by :meth:`WaveletTokenizer.stepper <adatok.wavelet.WaveletTokenizer.stepper>`. At every
    step, for each sequence: :meth:`next_pos` is the ``pos`` row its next token will have (the row
    ``TokenSequence.pos`` holds for it in the finished sequence) and :meth:`legal` the ids that may
    stand there (the grammar of ``docs/wavelet-language.md``: one, two or three ids; none once the
    stream has ended, see :attr:`done`). :meth:`push` appends one id to each sequence.
    :meth:`images` decodes every current prefix and :meth:`sequences` returns them as
    :class:`~adatok.TokenSequence` objects (to ``decode``, ``to_bytes``, ...).

    The cost of a step does not grow along the sequence: each sequence keeps the decoder's lists,
    its place in the passes and what it knows of every coefficient between tokens, and a step is
    one compiled call for the whole batch. Memory: about 36 bytes per coefficient and 6 per token,
    per sequence (7 MB for a 256x256 RGB image). For one thread (``docs/stepper.md``).
    """

    pos_fields = POS_FIELDS
    vocab_size = spiht.VOCAB_SIZE

    def __init__(self, tok, starts: Sequence[tuple[tuple[int, ...], dict, np.ndarray]]) -> None:
        """``starts``: per sequence, the image shape, its header (``params``, checked) and the ids
        it starts with (checked here: an id that cannot stand raises InvalidTokensError)."""
        self._tok = tok
        self._shapes = [s for s, _, _ in starts]
        self._params = [p for _, p, _ in starts]
        groups: dict = {}
        for b, (shape, params, _) in enumerate(starts):
            key = (shape, tuple(sorted((k, repr(v)) for k, v in params.items() if k != "nmax")))
            groups.setdefault(key, []).append(b)
        self._groups = []
        for rows in groups.values():
            shape, params, _ = starts[rows[0]]
            layout = tok._layout(shape, params)
            self._groups.append(_Walks(tok, layout, params, rows, [starts[b][2].astype(np.uint8) for b in rows],
                                       [int(starts[b][1]["nmax"]) for b in rows]))
        self._one = self._groups[0] if len(self._groups) == 1 else None
        self._row = {}  # batch index -> (walks, row)
        self._pushes = 0  # pushes so far (a word stepper reads it: were decisions pushed to it directly?)
        for g in self._groups:
            for r, b in enumerate(g.rows):
                self._row[int(b)] = (g, r)

    def __len__(self) -> int:
        return len(self._shapes)

    def __repr__(self) -> str:
        return f"WaveletStepper({self._tok.name!r}, B={len(self)}, done={int(self.done.sum())})"

    def _gather(self, attr: str, width: int, dtype) -> np.ndarray:
        if self._one is not None:
            return getattr(self._one, attr).copy()
        out = np.empty((len(self), width), dtype)
        for g in self._groups:
            out[g.rows] = getattr(g, attr)
        return out

    @property
    def done(self) -> np.ndarray:
        """``(B,)`` bool: whether each sequence's stream has ended (its full sequence is made)."""
        if self._one is not None:
            return self._one.ws[:, spiht.WS_KIND] == spiht.K_END
        return self._gather("ws", spiht.WS_SIZE, np.int64)[:, spiht.WS_KIND] == spiht.K_END

    @property
    def lengths(self) -> np.ndarray:
        """``(B,)`` int64: tokens in each sequence so far."""
        return self._gather("ws", spiht.WS_SIZE, np.int64)[:, spiht.WS_T]

    def next_pos(self) -> np.ndarray:
        """``(B, 6)`` int32: the ``pos`` row (``pos_fields``: plane, level, band, channel, y, x) of
        each sequence's next token; -1 throughout for a sequence that has ended."""
        return self._gather("pos", len(POS_FIELDS), np.int32)

    def context(self) -> np.ndarray:
        """``(B, len(CONTEXT_FIELDS))`` int8: what the decoder knows, before each sequence's next
        decision, of that decision's coefficient (a set's: its root), the coefficient's parent and
        grandparent, and its four neighbours in its band, each as one of :data:`CONTEXT_STATES`
        states: 0 none (no such coefficient, or the stream has ended), 1 not significant yet, else
        ``2 + 2 * rel + negative`` with ``rel`` the planes its top bit stands above the current
        plane (at most :data:`CONTEXT_REL`). A generator reads it beside the next position: the
        context an entropy coder would use, which a small model cannot be trusted to work out from
        the whole prefix (``docs/generation.md``)."""
        if self._one is not None:
            return self._one.context()
        out = np.empty((len(self), len(CONTEXT_FIELDS)), np.int8)
        for g in self._groups:
            out[g.rows] = g.context()
        return out

    def legal(self) -> np.ndarray:
        """``(B, vocab_size)`` bool: the ids that may stand next in each sequence (all False for a
        sequence that has ended)."""
        return self._gather("legal", spiht.VOCAB_SIZE, np.bool_)

    def push(self, ids) -> None:
        """Append ``ids[b]`` to each sequence ``b`` and move on to its next decision.

        ``ids``: one integer id per sequence, shape ``(B,)``; -1 leaves a sequence as it is (to
        stop it early, or hold it). The entry of a sequence that has ended is ignored. Raises
        :class:`~adatok.InvalidTokensError` if an id may not stand next in its sequence (see
        :meth:`legal`); nothing changes then, in any sequence.
        """
        new = check_ids(ids, len(self))
        if self._one is not None:
            bad = self._one.step(new)
            if bad >= 0:
                self._refuse(int(bad), new)
            self._pushes += 1
            return
        for g in self._groups:  # check every group before any steps: all or nothing
            kind = g.ws[:, spiht.WS_KIND]
            v = new[g.rows]
            ok = (kind == spiht.K_END) | (v == -1) | ((v >= 0) & (v < self.vocab_size)
                                                      & spiht.LEGAL[kind, np.clip(v, 0, self.vocab_size - 1)])
            if not ok.all():
                self._refuse(int(g.rows[np.argmin(ok)]), new)
        for g in self._groups:
            g.step(new[g.rows])
        self._pushes += 1

    def _refuse(self, b: int, new: np.ndarray) -> None:
        g, r = self._row[b]
        kind = int(g.ws[r, spiht.WS_KIND])
        v = int(new[b])
        allowed = ", ".join(spiht.TOKEN_NAMES[i] for i in np.nonzero(spiht.LEGAL[kind])[0])
        what = (f"token {spiht.TOKEN_NAMES[v]} (id {v})" if 0 <= v < self.vocab_size
                else f"token id {v} (ids are 0..{self.vocab_size - 1})")
        raise InvalidTokensError(f"{what} cannot stand next in sequence {b}, at a {spiht.KIND_NAMES[kind]} where "
                                 f"only {allowed} can; choose among legal()[{b}]")

    def images(self, which: Sequence[int] | None = None) -> list[np.ndarray]:
        """Each sequence's current prefix (or those of the sequences ``which``), decoded as
        ``decode`` would, from the knowledge the stepper keeps: no replay of the prefix."""
        out = []
        for b in check_which(which, len(self)):
            g, r = self._row[b]
            out.append(self._tok._image(g.layout, g.value[r], g.low[r], g.neg[r], self._params[b], self._shapes[b]))
        return out

    def sequences(self) -> list[TokenSequence]:
        """Each sequence as it stands: a :class:`~adatok.TokenSequence` (the full sequence where
        :attr:`done`, else a prefix), with its positions and header."""
        out = []
        for b in range(len(self)):
            g, r = self._row[b]
            t = int(g.ws[r, spiht.WS_T])
            seq = self._tok._sequence(g.ids[r, :t].astype(np.int32), g.tnode[r, :t].copy(), g.tplane[r, :t].copy(),
                                      g.layout, self._shapes[b], dict(self._params[b]))
            seq.cache["state"] = (g.value[r].copy(), g.low[r].copy(), g.neg[r].copy())
            out.append(seq)
        return out
