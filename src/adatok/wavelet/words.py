"""Wavelet words: one token for ``n`` consecutive decisions of the wavelet language.

A word tokenizer (``wavelet-w8``, ``wavelet-lossless-w8``) is a view of a decision tokenizer
(``wavelet``, ``wavelet-lossless``): the same walk, the same decisions, the same bytes, read ``n``
decisions at a time. Each decision has a *digit*: 0 for SIG0, D0, L0 and REF0, 1 for SIG+, D1, L1
and REF1, 2 for SIG-. A word is the number whose base-3 digits, most significant first, are those
of its ``n`` decisions: vocabulary ``3**n`` (6,561 for ``n = 8``). The kind of each decision
(significance, set test, refinement) is not in the word: the walk knows it from the decisions
before, so a word's digits are decisions again only where the walk reads them, one after another
(:func:`push`).

* A sequence of ``k`` words holds ``n * k`` decisions, or ends with its stream: the last word of a
  full sequence may hold fewer, and its digits after the end are 0 (a word is padded with zeros;
  the walk knows where its stream ends, so the padding is not ambiguous and needs no ids of its own).
* ``pos`` of a word is the ``pos`` row of its first decision, and one more column, ``kind``: the
  kind of that decision (0 significance, 1 type-A set test D, 2 type-B set test L, 3 refinement;
  -1 at the end), which the word's digit alone does not say.
* The ``.atk`` bytes of a word sequence are those of its decisions (the payload is the same), in a
  container that names the word tokenizer and counts words.
* The stepper's ``legal()`` is the mask of the words whose decisions the decision stepper would
  take one after another (:func:`legal_words`: every path of ``n`` decisions below each
  sequence's state, walked by the stepper's own walk and undone through its journal).

See ``docs/words.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from ..core.budget import Tokens, check_budget
from ..core.checks import shown
from ..core.errors import AdatokError, InvalidTokensError, TokenizerMismatchError
from ..core.protocol import decode_each, named
from ..core.registry import registered, remember
from ..core.sequence import TokenSequence, check_maker
from ..core.stepper import check_ids, check_starts
from . import spiht
from .layout import POS_FIELDS
from .spiht import (BAD_TOKEN, K_D, K_END, K_L, K_L_FORCED, K_REF, K_SIG, K_SIG_FORCED, LEGAL, OK, PH_CHILD,
                    TOO_LONG, WS_C, WS_KIND, WS_LAST, WS_LOPEN, WS_NODE, WS_PHASE, WS_PLANE, WS_SET, WS_SIZE, WS_T,
                    _advance, undo, walk_row)
from .stepper import WaveletStepper
from .tokenizer import WaveletTokenizer

#: The ``pos`` columns of a word: its first decision's, and that decision's kind.
WORD_POS_FIELDS = (*POS_FIELDS, "kind")
#: The largest word: 3**10 = 59,049 ids (a vocabulary of at most 65,536).
MAX_WORD = 10
_NO_IDS = np.zeros(0, np.int32)

#: The digit of each decision id (SIG0, SIG+, SIG-, D0, D1, L0, L1, REF0, REF1).
DIGIT = np.array([0, 1, 2, 0, 1, 0, 1, 0, 1], np.int64)
#: By decision kind (spiht.K_*): the id of digit 0 (a decision's id is FIRST[kind] + digit), ...
FIRST = np.array([spiht.SIG0, spiht.SIG0, spiht.D0, spiht.L0, spiht.L0, spiht.REF0, 0], np.int64)
#: ... the digits that may stand (bit v: digit v; from spiht.LEGAL, the grammar's one table) ...
DIGITS = np.array([sum(1 << v for v in range(3) if FIRST[k] + v < spiht.VOCAB_SIZE and LEGAL[k, FIRST[k] + v]
                       and DIGIT[FIRST[k] + v] == v) for k in range(LEGAL.shape[0])], np.int64)
#: ... and the ``kind`` column of ``pos``.
KIND = np.array([0, 0, 1, 2, 2, 3, -1], np.int64)
#: The ``kind`` column by decision id.
KIND_OF_ID = KIND[[K_SIG, K_SIG, K_SIG, K_D, K_D, K_L, K_L, K_REF, K_REF]]
# The decisions the walk below a state tries at a decision of each kind, by class: a class is a
# set of digits after which the walk goes on alike (CLASS_BITS, its digits; CLASS_REP, the one it
# walks). REF0 and REF1, SIG+ and SIG-, change no later decision; SIG0 and SIG+ change the next
# plane (and, for a child of a D1 set, its siblings and its L test), so they are two classes unless
# the walk below SIG0 reaches none of those (see legal_words).
CLASS_REP = np.full((7, 3), -1, np.int64)
CLASS_BITS = np.zeros((7, 3), np.int64)
for _k, _classes in ((K_SIG, ((0, 0b001), (1, 0b110))), (K_SIG_FORCED, ((1, 0b110),)), (K_D, ((0, 0b01), (1, 0b10))),
                     (K_L, ((0, 0b01), (1, 0b10))), (K_L_FORCED, ((1, 0b10),)), (K_REF, ((0, 0b11),))):
    for _c, (_rep, _bits) in enumerate(_classes):
        CLASS_REP[_k, _c] = _rep
        CLASS_BITS[_k, _c] = _bits
for _table in (DIGIT, FIRST, DIGITS, KIND, KIND_OF_ID, CLASS_REP, CLASS_BITS):
    _table.flags.writeable = False


def powers(n: int) -> np.ndarray:
    """The place value of each digit of an ``n``-decision word, first decision first."""
    return 3 ** np.arange(n - 1, -1, -1, dtype=np.int64)


# --- compiled: words into decisions, and the legal words below a state ------------------------------


@njit(cache=True, _nrt=False)
def push(n, words, counts, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift, smin_d, smin_l,
         parent, child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos, legal, nbf, status, at):
    """Walk each row ``b`` on its next ``counts[b]`` words ``words[b]`` (ids in ``0 .. 3**n - 1``):
    each digit, first to last, is the decision ``FIRST[kind] + digit`` at the walk's next decision,
    and after the end of the stream every digit must be 0 (``ids`` needs room for the decisions).
    ``status[b]``: OK; BAD_TOKEN (word ``at[b]`` cannot stand: a digit no decision there takes) or
    TOO_LONG (word ``at[b]`` starts after the end), the walk then stands inside or before that word.
    The other arguments are :func:`spiht.step`'s."""
    for b in range(ws.shape[0]):
        status[b] = OK
        at[b] = counts[b]
        for k in range(counts[b]):
            word = words[b, k]
            if ws[b, WS_KIND] == K_END:
                status[b] = TOO_LONG
                at[b] = k
                break
            place = np.int64(1)
            for _ in range(n - 1):
                place *= 3
            for _ in range(n):
                digit = (word // place) % 3
                place //= 3
                kind = ws[b, WS_KIND]
                if kind == K_END:
                    if digit != 0:
                        status[b] = BAD_TOKEN
                    continue
                if not (DIGITS[kind] >> digit) & 1:
                    status[b] = BAD_TOKEN
                    break
                t = ws[b, WS_T]
                ids[b, t] = FIRST[kind] + digit
                s, _ = _advance(b, t + 1, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift,
                                smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos,
                                legal, nbf)
                if s != OK:  # (the walk refused a decision LEGAL allows: never)
                    status[b] = BAD_TOKEN
                    break
            if status[b] != OK:
                at[b] = k
                break


# Columns of legal_words' record of the decision at each depth of the path it walks.
_KIND, _PHASE, _PLANE, _SET, _NODE, _VALUE, _MARK, _CLS, _LEAF = range(9)
_AT_SIZE = 9


@njit(cache=True)
def legal_words(n, mask, jr, first, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift,
                smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls, nbf):
    """Write in ``mask[b]`` (B x 3**n) the words that may stand next in each row ``b`` from row
    ``first`` on: those whose digits the walk takes one after another from the row's state
    (:func:`push`). Returns ``(walked, over, peak)``: the number of paths walked, the row whose
    walk the journal ``jr`` had no room for (-1: none) and the most entries the journal held.

    Every path of ``n`` decisions below the state is walked by the walk itself (``walk_row``, on
    the row's own arrays), and undone: the journal notes the list entries the walk overwrites
    (:func:`spiht.undo`), the rest of the state is the row's ``ws`` and the knowledge of the
    node each decision stands at. Only the classes of :data:`CLASS_REP` are walked, and SIG0's
    walk counts for SIG+ and SIG- too where it met nothing they change: for a coefficient of the
    LIP, no decision of a later plane; for a child of a D1 set, also no later sibling and not the
    set's L test. A row that has ended has no legal word.

    The journal holds what one path changes (a few entries a decision, but a walk past sets
    known to be 0 may move many LIS entries down): its size is the caller's, not the image's.
    When a path's changes do not fit, the walk has changed the row without a note of every
    entry: the row's ``ws`` is put back and the call returns ``over``, with the masks of the rows
    before it written; the caller walks that row again from its tokens
    (:meth:`adatok.wavelet.stepper._Walks.replay`) and calls again from it with a larger
    journal. The other arguments are those of :func:`spiht.step` (but ``node_pos``, ``pos`` and
    ``legal``)."""
    nb = ws.shape[0]
    nv = mask.shape[1]
    saved = np.empty((n, WS_SIZE), np.int64)  # per depth: the walk's state before its decision,
    at = np.zeros((n, _AT_SIZE), np.int64)  # what that decision was (columns _KIND ...),
    slow = np.zeros(n, np.int8)  # and its node's knowledge (with at[:, _VALUE])
    sneg = np.zeros(n, np.bool_)
    sens = np.zeros(n, np.bool_)  # whether the walk below class 0 met what the other class changes
    path = np.zeros(n, np.int64)  # the digits (bit v: digit v) of the class walked at each depth
    leaves = np.zeros((64, n), np.int64)  # the digits of each path walked to its end
    buf = np.empty(nv, np.int64)
    buf2 = np.empty(nv, np.int64)
    walked = 0
    peak = 0
    jr[0] = 0
    jr[1] = 0
    for b in range(first, nb):
        mask[b, :] = False
        if ws[b, WS_KIND] == K_END:
            continue
        nleaves = 0
        d = 0
        entering = True
        while d >= 0:
            if entering:
                kind = ws[b, WS_KIND]
                if kind == K_END or d == n - 1:  # a leaf: the word ends here
                    if nleaves == leaves.shape[0]:
                        bigger = np.zeros((2 * nleaves, n), np.int64)
                        bigger[:nleaves] = leaves
                        leaves = bigger
                    for j in range(d):
                        leaves[nleaves, j] = path[j]
                    if kind == K_END:
                        for j in range(d, n):
                            leaves[nleaves, j] = 1  # padding: digit 0
                    else:
                        leaves[nleaves, d] = DIGITS[kind]
                    nleaves += 1
                    d -= 1
                    entering = False
                    continue
                at[d, _KIND] = kind
                at[d, _PHASE] = ws[b, WS_PHASE]
                at[d, _PLANE] = ws[b, WS_PLANE]
                at[d, _SET] = ws[b, WS_SET]
                for j in range(WS_SIZE):
                    saved[d, j] = ws[b, j]
                at[d, _MARK] = jr[0]
                nd = ws[b, WS_NODE]
                at[d, _NODE] = nd
                at[d, _VALUE] = value[b, nd]
                slow[d] = low[b, nd]
                sneg[d] = neg[b, nd]
                at[d, _CLS] = 0
                at[d, _LEAF] = nleaves
            else:  # back from the walk below a class of depth d's decision: undo it
                undo(jr, at[d, _MARK], lip[b], lis[b], lis_b[b], lis_f[b])
                nd = at[d, _NODE]
                value[b, nd] = at[d, _VALUE]
                low[b, nd] = slow[d]
                neg[b, nd] = sneg[d]
                for j in range(WS_SIZE):
                    ws[b, j] = saved[d, j]
                if at[d, _CLS] == 0 and at[d, _KIND] == K_SIG and not sens[d]:
                    for q in range(at[d, _LEAF], nleaves):  # SIG+ and SIG- go on as SIG0 did
                        leaves[q, d] |= 0b110
                    at[d, _CLS] = 2
                else:
                    at[d, _CLS] += 1
            kind = at[d, _KIND]
            c = at[d, _CLS]
            rep = CLASS_REP[kind, c] if c < 3 else -1
            if rep < 0:  # every class walked: back to the decision before
                d -= 1
                entering = False
                continue
            path[d] = CLASS_BITS[kind, c]
            sens[d] = False
            t = ws[b, WS_T]
            ids[b, t] = FIRST[kind] + rep
            walk_row(b, t + 1, jr, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift, smin_d,
                     smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls, nbf)
            if jr[1]:  # no room for this path's changes: the row's lists cannot be undone (see above)
                for j in range(WS_SIZE):
                    ws[b, j] = saved[0, j]
                jr[0] = 0
                jr[1] = 0
                return walked, b, peak
            peak = max(peak, jr[0])
            plane = ws[b, WS_PLANE]
            for a in range(d + 1):  # what the decisions above this one would see changed
                if at[a, _KIND] == K_SIG and not sens[a]:
                    if plane < at[a, _PLANE]:
                        sens[a] = True
                    elif at[a, _PHASE] == PH_CHILD:  # the set's last child (known significant or not), its L test
                        i, k2 = at[a, _SET], ws[b, WS_KIND]
                        last = (ws[b, WS_PHASE] == PH_CHILD and ws[b, WS_SET] == i and ws[b, WS_C] == ws[b, WS_LAST]
                                and ws[b, WS_LOPEN] == 0)
                        if last or ((k2 == K_L or k2 == K_L_FORCED) and ws[b, WS_NODE] == i):
                            sens[a] = True
            d += 1
            entering = True
        walked += nleaves
        for q in range(nleaves):  # each leaf: every word of its digit sets
            cnt = 1
            buf[0] = 0
            for j in range(n):
                bits = leaves[q, j]
                m = 0
                for x in range(cnt):
                    for v in range(3):
                        if (bits >> v) & 1:
                            buf2[m] = buf[x] * 3 + v
                            m += 1
                for x in range(m):
                    buf[x] = buf2[x]
                cnt = m
            for x in range(cnt):
                mask[b, buf[x]] = True
    return walked, -1, peak


# --- the tokenizer -------------------------------------------------------------------------------------


class WordTokenizer:
    """Words of ``n`` decisions of a wavelet tokenizer (see the module docstring and ``docs/words.md``).

    Args:
        base: the decision tokenizer (``adatok.load("wavelet")`` or ``"wavelet-lossless"``).
        n: decisions per word, 1 to 10 (vocabulary ``3**n``).
        name: ``f"{base.name}-w{n}"`` (the default; any other is refused): the ``.atk``
            container names the tokenizer. Every such name loads by name (``adatok.load("wavelet-w4")``:
            registered as a pattern in :mod:`adatok.wavelet`), so that its bytes read back in any
            process; words of another base tokenizer's name are remembered in this process
            (:func:`adatok.core.registry.remember`)

    Example:
        >>> import numpy as np, adatok
        >>> words, decisions = adatok.load("wavelet-w8"), adatok.load("wavelet")
        >>> img = np.arange(64, dtype=np.uint8).reshape(8, 8)
        >>> w, = words.encode([img])
        >>> d, = decisions.encode([img])
        >>> len(w) == -(-len(d) // 8), words.vocab_size
        (True, 6561)
        >>> bool((words.decode([w])[0] == decisions.decode([d])[0]).all())
        True
    """

    pos_fields = WORD_POS_FIELDS
    #: Regions of interest steer the decisions, and so the words.
    supports_roi = True

    def __init__(self, base, n: int, name: str | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORD:
            raise AdatokError(f"a word holds 1 to {MAX_WORD} decisions (a vocabulary of at most 3**{MAX_WORD}), "
                              f"got {n!r}")
        if not isinstance(base, WaveletTokenizer):  # words are a wavelet tokenizer's decisions, nothing else's
            raise AdatokError(f"words are made of the decisions of a wavelet tokenizer (wavelet, wavelet-lossless), "
                              f"not of {getattr(base, 'name', type(base).__name__)!r}")
        # The name says what the words are: the container stores only the name (and the decisions'
        # version), so another n under a name in use would be read back as that tokenizer's words.
        expected = f"{base.name}-w{n}"
        if name is not None and name != expected:
            raise AdatokError(f"words of {n} decisions of {base.name!r} are named {expected!r}, not {name!r}: the "
                              ".atk container names the tokenizer, and another n under one name would be misread")
        name = expected
        self.base = base
        self.n = n
        self.name = name
        self.vocab_size = 3**n
        self.version = base.version  # the same decisions, the same bytes; n is in the name
        self.lossless = base.lossless
        self.max_levels = base.max_levels
        self.payload_codec = self
        self._powers = powers(n)
        if not registered(name):  # its bytes read back by name in this process (wavelet-w8 is registered)
            remember(self)

    @property
    def decoder_revision(self) -> int:
        """The base tokenizer's (it decodes the words' decisions)."""
        return self.base.decoder_revision

    def __repr__(self) -> str:
        return f"WordTokenizer({self.name!r}, n={self.n}, base={self.base.name!r})"

    # --- the contract --------------------------------------------------------------------------

    def encode(self, images: Sequence[np.ndarray], budget=None, roi=None, *,
               fixed_header: bool = False) -> list[TokenSequence]:
        """Tokenize each image into words: the decision tokenizer's sequence, in whole words.

        ``Tokens(k)``: ``k`` words (``n * k`` decisions, or the full sequence); ``Bpp(x)``: the
        longest whole-word prefix whose ``.atk`` bytes fit; ``Quality(..)``: the shortest
        whole-word prefix that reaches the target; ``Lossless()`` and no budget: the full sequence.
        ``roi`` and ``fixed_header`` as in :meth:`WaveletTokenizer.encode
        <adatok.wavelet.WaveletTokenizer.encode>`."""
        check_budget(budget)
        if isinstance(budget, Tokens):
            budget = Tokens(budget.k * self.n)
        seqs = self.base._encode(images, budget, roi, fixed_header, unit=self.n, maker=self)
        return [self._words(s) for s in seqs]

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """Decode each word sequence (any whole-word prefix) to a uint8 image of the encoded shape."""
        return decode_each(seqs, lambda s: self.base._decode_one(self.to_decisions(s)))  # (sequence 5: ...)

    def stepper(self, starts: Sequence[tuple[int, ...] | TokenSequence], nmax: int | None = None) -> WordStepper:
        """Start B word sequences to grow one word at a time (:class:`WordStepper`): ``starts`` and
        ``nmax`` as in :meth:`WaveletTokenizer.stepper <adatok.wavelet.WaveletTokenizer.stepper>`,
        with word sequences of this tokenizer to go on from."""
        starts = check_starts(starts)
        for i, start in enumerate(starts):
            if isinstance(start, TokenSequence):
                with named(i, "start"):  # (start 5: ..., as the decision tokenizer's stepper names it)
                    check_maker(start.tokenizer, start.version, self, what=f"start {i}", use="step it")
                    starts[i] = self.to_decisions(start)
        return WordStepper(self, self.base.stepper(starts, nmax))

    def top_plane(self, shape: tuple[int, ...]) -> int:
        """The top bit-plane of the fixed header (the decision tokenizer's :meth:`top_plane
        <adatok.wavelet.WaveletTokenizer.top_plane>`)."""
        return self.base.top_plane(shape)

    def with_top_plane(self, seq: TokenSequence, nmax: int | None = None) -> TokenSequence:
        """``seq`` re-expressed from top bit-plane ``nmax`` (default: :meth:`top_plane`): its
        decisions with those of the planes above in front (:meth:`WaveletTokenizer.with_top_plane
        <adatok.wavelet.WaveletTokenizer.with_top_plane>`), regrouped into words; the longest
        whole-word prefix of them, unless they are a whole stream."""
        return self.from_decisions(self.base.with_top_plane(self.to_decisions(seq), nmax))

    # --- words and decisions -----------------------------------------------------------------------

    def from_decisions(self, seq: TokenSequence) -> TokenSequence:
        """The words of a sequence of the decision tokenizer: all of them when it is a whole
        stream, else its longest whole-word prefix. Raises
        :class:`~adatok.TokenizerMismatchError` for a sequence of another tokenizer (these words' too)."""
        if seq.tokenizer != self.base.name:  # (check_maker would say to decode it: not what this call does)
            how = ("it is words already (to_decisions gives its decisions)" if seq.tokenizer == self.name else
                   f"it was made by {shown(seq.tokenizer)}; encode the image with adatok.load({self.base.name!r}) "
                   f"for its decisions, or with adatok.load({self.name!r}) for its words directly")
            raise TokenizerMismatchError(f"from_decisions takes a sequence of {self.base.name!r} decisions: {how}")
        check_maker(seq.tokenizer, seq.version, self.base)
        layout = self.base._layout(seq.shape, seq.params)
        self.base._replay(seq.ids, layout, seq.params)  # (checks the ids)
        if len(seq) % self.n:
            if not self.base._ends(seq.ids, layout, seq.params):
                seq = seq.prefix(len(seq) // self.n * self.n)
        return self._words(seq)

    def to_decisions(self, seq: TokenSequence) -> TokenSequence:
        """The sequence of the decision tokenizer a word sequence stands for (its decoder state
        included). Raises :class:`~adatok.InvalidTokensError` for words that cannot stand."""
        check_maker(seq.tokenizer, seq.version, self)
        known = seq.cache.get("decisions")
        if known is not None:
            return known
        ids = np.asarray(seq.ids, np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(np.nonzero((ids < 0) | (ids >= self.vocab_size))[0][0])
            raise InvalidTokensError(f"word id {int(ids[bad])} at index {bad} is out of range: {self.name} ids are "
                                     f"0..{self.vocab_size - 1}")
        st = WaveletStepper(self.base, [(tuple(seq.shape), dict(seq.params), _NO_IDS)])
        (g,) = st._groups
        g.reserve(self.n * len(ids) + 1)
        status, at = np.zeros(1, np.int64), np.zeros(1, np.int64)
        push(self.n, ids[None, :], np.array([len(ids)], np.int64), g.ws, *g.args, status, at)
        g.longest = int(g.ws[0, WS_T])
        if status[0] == BAD_TOKEN:
            k = int(at[0])
            raise InvalidTokensError(f"word {int(ids[k])} at index {k} cannot stand there (its digits are not "
                                     "decisions the walk takes one after another): the sequence is corrupt or "
                                     "was edited")
        if status[0] == TOO_LONG:
            extra = len(ids) - int(at[0])
            raise InvalidTokensError(f"the sequence has {extra} word{'s' if extra != 1 else ''} past the end of its "
                                     f"stream (it ends at {int(at[0])})")
        out = st.sequences()[0]
        seq.cache["decisions"] = out
        return out

    def _words(self, seq: TokenSequence) -> TokenSequence:
        """The word sequence of a decision sequence that is ``n`` times a whole number of decisions
        long or a whole stream (not checked)."""
        n = self.n
        k = -(-len(seq) // n)
        digits = np.zeros(k * n, np.int64)
        digits[: len(seq)] = DIGIT[seq.ids]
        words = (digits.reshape(k, n) @ self._powers).astype(np.int32)

        def positions() -> np.ndarray:
            pos = np.empty((k, len(WORD_POS_FIELDS)), np.int32)
            pos[:, :-1] = seq.pos[::n]
            pos[:, -1] = KIND_OF_ID[seq.ids[::n]]
            return pos

        out = TokenSequence(words, positions, seq.shape, self.name, self.version, dict(seq.params),
                            WORD_POS_FIELDS)
        out.cache["decisions"] = seq
        return out

    # --- bytes ------------------------------------------------------------------------------------

    @property
    def codec_name(self) -> str:
        return self.base.codec_name

    def pack(self, seq: TokenSequence) -> bytes:
        """The payload of a word sequence's ``.atk`` bytes: its decisions', byte for byte."""
        return self.base.pack(self.to_decisions(seq))

    def unpack_sequence(self, header: dict, payload: bytes, limit: int | None = None) -> TokenSequence:
        """The word sequence a payload codes (its header counts words): its decisions, decoded by
        the decision tokenizer, in whole words. A cut payload gives the longest whole-word prefix
        its bytes determine (all of its decisions when they are a whole stream). ``limit``: at
        most that many words."""
        check_maker(header["tokenizer"], header["version"], self)
        dseq = self.base.unpack_sequence(dict(header, tokenizer=self.base.name), payload, unit=self.n, limit=limit)
        if len(dseq) % self.n:
            layout = self.base._layout(dseq.shape, dseq.params)
            if not self.base._ends(dseq.ids, layout, dseq.params):
                dseq = dseq.prefix(len(dseq) // self.n * self.n)
        return self._words(dseq)


# --- the stepper ---------------------------------------------------------------------------------------


#: The entries a word stepper's first journal has room for (``legal_words``): a path of 8 decisions
#: notes a few each; a journal is doubled when a mask fills half of it, and when a path overflows
#: it (its row is then walked again from its tokens), so it grows with what the walks change, not
#: with the image (it was sized by the image: room for twice the LIS and the LIP, grown 3x, 336
#: bytes a coefficient, 1 GB for a 1024x1024 RGB image).
FIRST_JOURNAL = 256


def journal(entries: int) -> np.ndarray:
    """An empty journal with room for ``entries`` entries (see :func:`spiht.undo`)."""
    return np.zeros(2 + 2 * entries, np.int64)


class WordStepper:
    """B word sequences, grown one word at a time under the wavelet language's grammar.

    Made by :meth:`WordTokenizer.stepper`; the same members as the decision stepper
    (:class:`~adatok.wavelet.stepper.WaveletStepper`), in words: :meth:`next_pos` is the ``pos``
    row of the next word (its first decision's, and that decision's ``kind``), :meth:`legal` the
    mask of the words that may stand next (the words whose decisions the decision stepper would
    take one after another; a word that runs past the end of the stream only there, padded with
    0 digits), :meth:`push` pushes one word's decisions per sequence. For one thread, as every
    stepper (``docs/stepper.md``).
    """

    pos_fields = WORD_POS_FIELDS

    def __init__(self, tok: WordTokenizer, decisions: WaveletStepper) -> None:
        self._tok = tok
        self._st = decisions
        self.n = tok.n
        self.vocab_size = tok.vocab_size
        self._mask: np.ndarray | None = None
        self._seen = decisions._pushes  # the decision stepper's pushes the mask and this stepper know of
        self._journals = [journal(FIRST_JOURNAL) for _ in decisions._groups]
        self.walked = 0  #: paths walked by the legal-word masks so far (see legal_words)

    def __len__(self) -> int:
        return len(self._st)

    def __repr__(self) -> str:
        return f"WordStepper({self._tok.name!r}, B={len(self)}, done={int(self.done.sum())})"

    @property
    def decisions(self) -> WaveletStepper:
        """The decision stepper underneath, to read (its ``sequences()``, ``context()``, and the
        ``legal()`` and ``next_pos()`` of the next decision). Decisions pushed to it directly are
        words only in whole words: while a sequence stands inside a word, this stepper refuses to
        go on (``legal``, ``next_pos``, ``push``, ``sequences`` raise
        :class:`~adatok.InvalidTokensError`) until the word's other decisions are pushed there."""
        return self._st

    @property
    def done(self) -> np.ndarray:
        """``(B,)`` bool: whether each sequence's stream has ended."""
        return self._st.done

    @property
    def lengths(self) -> np.ndarray:
        """``(B,)`` int64: words in each sequence so far."""
        return -(-self._st.lengths // self.n)

    def _whole_words(self) -> None:
        """Raise unless every sequence holds whole words (or has ended): decisions pushed to
        :attr:`decisions` directly may leave one inside a word, whose words would not be its
        decisions (ids that decode to another image, or not at all)."""
        t = self._st.lengths
        inside = (t % self.n != 0) & ~self._st.done
        if inside.any():
            b = int(np.argmax(inside))
            k = int(t[b])
            raise InvalidTokensError(f"sequence {b} holds {k} decisions, {k % self.n} into a word of {self.n}: "
                                     "decisions were pushed to the word stepper's .decisions directly. Push the "
                                     f"word's other {self.n - k % self.n} there too, or push words to the word "
                                     "stepper only")

    def _synced(self) -> None:
        """Take in decisions pushed to :attr:`decisions` directly since the last call: the mask is
        made again, and only from whole words (:meth:`_whole_words`)."""
        if self._st._pushes != self._seen:
            self._mask = None
            self._whole_words()
            self._seen = self._st._pushes

    def next_pos(self) -> np.ndarray:
        """``(B, 7)`` int32: the ``pos`` row of each sequence's next word (``pos_fields``: its first
        decision's plane, level, band, channel, y, x, and kind); -1 throughout once ended."""
        self._synced()
        pos = self._st.next_pos()
        kinds = np.empty((len(self), 1), np.int32)
        for g in self._st._groups:
            kinds[g.rows, 0] = KIND[g.ws[:, WS_KIND]]
        return np.concatenate([pos, kinds], axis=1)

    def legal(self) -> np.ndarray:
        """``(B, 3**n)`` bool: the words that may stand next in each sequence (none once ended)."""
        return self._legal().copy()

    def _legal(self) -> np.ndarray:
        self._synced()
        if self._mask is None:
            groups = self._st._groups
            mask = np.zeros((len(self), self.vocab_size), np.bool_)
            for k, g in enumerate(groups):
                g.reserve(self.n + 1)
                out = mask if len(groups) == 1 else np.zeros((len(g.rows), self.vocab_size), np.bool_)
                first = 0
                while True:
                    walked, over, peak = legal_words(self.n, out, self._journals[k], first, g.ws, *g.args[:-4],
                                                     g.args[-1])
                    self.walked += walked
                    room = (len(self._journals[k]) - 2) // 2
                    if over < 0:
                        break
                    # a path changed more than the journal holds: walk its row again, go on with 4x the room
                    g.replay(over, int(g.ws[over, WS_T]))
                    self._journals[k] = journal(4 * room)
                    first = over
                if 2 * peak > room:
                    self._journals[k] = journal(2 * room)
                if out is not mask:
                    mask[g.rows] = out
            self._mask = mask
        return self._mask

    def push(self, ids) -> None:
        """Append word ``ids[b]`` to each sequence ``b`` (its decisions, one after another).

        ``ids``: one word id per sequence, shape ``(B,)``; -1 leaves a sequence as it is; the entry
        of a sequence that has ended is ignored. Raises :class:`~adatok.InvalidTokensError` if a
        word may not stand next in its sequence (see :meth:`legal`); nothing changes then, in any
        sequence."""
        new = check_ids(ids, len(self))
        mask = self._legal()
        live = ~self.done & (new != -1)
        ok = ~live | ((new >= 0) & (new < self.vocab_size)
                      & mask[np.arange(len(self)), np.clip(new, 0, self.vocab_size - 1)])
        if not ok.all():
            b = int(np.argmin(ok))
            v = int(new[b])
            what = f"word {v}" if 0 <= v < self.vocab_size else f"word id {v} (ids are 0..{self.vocab_size - 1})"
            raise InvalidTokensError(f"{what} cannot stand next in sequence {b} ({int(mask[b].sum())} words can); "
                                     f"choose among legal()[{b}]")
        groups = self._st._groups
        before = []  # each group's decisions before the push, to put back a refused one
        for g in groups:
            before.append(g.ws[:, WS_T].copy())
            go = live[g.rows]
            g.reserve(self.n + 1)
            status, at = np.zeros(len(g.rows), np.int64), np.zeros(len(g.rows), np.int64)
            push(self.n, new[g.rows][:, None], go.astype(np.int64), g.ws, *g.args, status, at)
            g.longest += self.n
            if (status != OK).any():  # the mask and the walk disagree: the state changed under the mask
                self._undo_push(groups, before)
                b = int(g.rows[np.argmax(status != OK)])
                raise InvalidTokensError(f"word {int(new[b])} was offered by legal() but does not walk in sequence "
                                         f"{b} now: the stepper changed between legal() and push() (a stepper is for "
                                         "one thread); nothing was pushed")
        if live.any():  # (a push that moves no row keeps the mask)
            self._mask = None

    def _undo_push(self, groups, before: list[np.ndarray]) -> None:
        """Put every row a push moved back where it stood (``before``: each group's decisions then),
        walking it again from its tokens."""
        for g, t in zip(groups, before):  # (zip: the groups the push reached)
            for r in np.flatnonzero(g.ws[:, WS_T] != t):
                g.replay(int(r), int(t[r]))
        self._mask = None

    def images(self, which: Sequence[int] | None = None) -> list[np.ndarray]:
        """Each sequence's current prefix (or those of the sequences ``which``), decoded."""
        return self._st.images(which)

    def sequences(self) -> list[TokenSequence]:
        """Each sequence as it stands, as a word :class:`~adatok.TokenSequence` (whole words: see
        :attr:`decisions`)."""
        self._whole_words()
        return [self._tok._words(s) for s in self._st.sequences()]
