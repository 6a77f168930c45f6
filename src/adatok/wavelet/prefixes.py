"""Every prefix of one wavelet sequence, fast: its image and the size of its ``.atk`` file.

A slider over a sequence (``adatok serve``) asks for the image of the first ``k`` tokens, for ``k``
after ``k``, and for the bytes those tokens take. ``decode(seq.prefix(k))`` replays the walk over
the ``k`` tokens (its lists and passes: 0.2 s for the 3.2 million tokens of a 768x512 photo at full
length), and ``len(seq.prefix(k).to_bytes())`` arithmetic-codes them again.

What the decoder knows after ``k`` tokens depends on those tokens alone, each touching one
coefficient: a ``SIG+``/``SIG-`` of node ``i`` at plane ``p`` sets its value to ``2**b`` (``b = p -
shift[i]``), its lowest known bit to ``b`` and its sign; a ``REF1`` sets bit ``b``, and either
refinement lowers the known bit to ``b``; the other tokens change no coefficient. So
:class:`Prefixes` walks the sequence once, arithmetic-coding it as :meth:`to_bytes
<adatok.TokenSequence.to_bytes>` does and stopping after every token to note the node and plane it
stood at and the length the payload would have if it ended there. After that, the knowledge of
any prefix is one compiled pass over its tokens that touches three arrays (a few milliseconds), its
image is synthesised by the code ``decode`` ends in, and the ``.atk`` size of every prefix is a
lookup.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..core.checks import is_whole
from ..core.errors import InvalidTokensError, TokenizerMismatchError
from ..core.sequence import TokenSequence, check_maker, container_overhead
from . import spiht
from .tokenizer import CODEC, WaveletTokenizer


@njit(cache=True)
def _coded_walk(ids, every, nmax, prior, stats, shift, smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots,
                geo, ncls):
    """Walk ``ids`` (uint8) arithmetic-coding them as :func:`spiht.walk` does in one call, here in
    calls of ``every`` tokens to the walk's core. Returns ``(status, n, node, plane, payload)``: the
    walk's status and the tokens it took, each token's node and bit-plane, and the payload bytes of
    the first ``t`` tokens at every ``t`` a call stopped at (``payload[t]``; -1 elsewhere;
    ``payload[0] = 0``: the empty sequence's payload is empty)."""
    n = child_ptr.shape[0] - 1
    total = ids.shape[0]
    cap = total + 1
    ocap = cap // 2 + 1024
    none64 = np.zeros(0, np.int64)
    none8 = np.zeros(0, np.uint8)
    nosgn = np.zeros(0, np.bool_)
    bits = np.zeros(1, np.int8)
    payload = np.full(total + 1, -1, np.int64)
    payload[0] = 0
    lip = np.empty(n, np.int32)
    lsp = np.empty(n, np.int32)
    lis = np.empty(3 * n + 1, np.int32)
    lis_b = np.empty(3 * n + 1, np.bool_)
    while True:  # as spiht.walk: fresh arrays, again with a larger output buffer when it runs out
        value = np.zeros(n, np.int64)
        low = np.full(n, -1, np.int8)
        neg = np.zeros(n, np.bool_)
        tok_ids = np.empty(cap, np.uint8)
        tnode = np.empty(cap, np.int32)
        tplane = np.empty(cap, np.int8)
        prob = np.empty((spiht.N_CTX, 3), np.int64)
        cnt = np.zeros((spiht.N_CTX, 3), np.int64)
        for c in range(spiht.N_CTX):
            prob[c, 0] = prior[c, 0]
            prob[c, 1] = prior[c, 0]
            prob[c, 2] = prior[c, 0]
            cnt[c, 0] = prior[c, 1]
        out = np.empty(ocap, np.uint8)
        es = np.zeros(6, np.int64)
        es[1] = 0xFFFFFFFF
        es[5] = 1
        es_prev = es.copy()
        ds = np.zeros(3, np.int64)
        lis_f = np.zeros(3 * n + 1, np.bool_)
        nbf = np.zeros(n, np.uint16)
        nsig = np.zeros(n, np.uint8)
        ws = spiht.fresh_state(nmax)
        status = spiht.OK
        t = 0
        while t < total:
            status, got = spiht._walk_core(np.int64(spiht.SRC_IDS), np.bool_(True), np.int64(min(t + every, total)), np.int64(-1),
                                           none64, nosgn, ids, none8, np.int64(0), shift, smin_d, smin_l, parent,
                                           child_ptr, child_idx, has_l, roots, geo, ncls, bits, bits, bits, value,
                                           low, neg, tok_ids, tnode, tplane, prob, cnt, out, es, es_prev, ds, lip,
                                           lsp, lis, lis_b, lis_f, nbf, nsig, ws)
            if status != spiht.OK:
                break
            t = got
            payload[t] = spiht._term_len(es)
        if status != spiht.NO_ROOM_OUT:
            break
        ocap *= 2
    return status, t, tnode[:t], tplane[:t], payload


class Prefixes:
    """Every prefix of one sequence of a wavelet tokenizer: :meth:`image` of any ``k`` is
    ``tok.decode([seq.prefix(k)])[0]`` and :meth:`nbytes` is ``len(seq.prefix(k).to_bytes())``.

    Made in one arithmetic-coded walk of the sequence, which notes the file size of the prefixes
    at :attr:`cuts`: every ``step``-th length and the full one (``step`` 1 up to 65,536 tokens,
    then the smallest that gives at most 65,537 cuts: the walk stops at each, which costs about
    0.7 us). :meth:`nbytes` of another length codes that prefix again; :meth:`longest` finds the
    longest cut whose file fits a number of bytes. Memory: 6 bytes a token (the ids as bytes, each
    token's node and plane) besides the sequence.

    >>> import numpy as np, adatok
    >>> tok = adatok.load("wavelet")
    >>> img = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)
    >>> seq, = tok.encode([img])
    >>> p = Prefixes(tok, seq)
    >>> bool((p.image(500) == tok.decode([seq.prefix(500)])[0]).all())
    True
    >>> p.nbytes(500) == len(seq.prefix(500).to_bytes())
    True
    """

    #: At most this many cuts past 0 get their file size noted.
    MAX_CUTS = 65_536

    def __init__(self, tok, seq: TokenSequence, step: int | None = None) -> None:
        if not isinstance(tok, WaveletTokenizer):
            raise TokenizerMismatchError(f"Prefixes reads sequences of a decision tokenizer (wavelet, "
                                         f"wavelet-lossless), not of {getattr(tok, 'name', tok)!r}; for words, "
                                         "read their decisions: Prefixes(tok.base, tok.to_decisions(seq))")
        if step is not None and not (is_whole(step) and step >= 1):
            raise InvalidTokensError(f"step must be a whole number >= 1, got {step!r}")
        check_maker(seq.tokenizer, seq.version, tok)
        self.tok, self.seq = tok, seq
        self._layout = tok._layout(seq.shape, seq.params)
        self._ids = seq.ids.astype(np.uint8)
        tok._check_range(seq.ids)
        args = tok._walk_args(self._layout, seq.params)
        self.step = max(1, -(-len(seq) // self.MAX_CUTS)) if step is None else int(step)
        status, n, node, plane, payload = _coded_walk(self._ids, np.int64(self.step), np.int64(seq.params["nmax"]),
                                                      *args)
        if status != spiht.OK:
            tok._replay(seq.ids, self._layout, seq.params)  # raises the error decode would raise
            raise InvalidTokensError(f"the sequence cannot be walked (status {status} at token {n})")
        self._shift = args[2]
        self._node, self._plane = node, plane
        #: The prefix lengths whose file size is noted (``0, step, 2 * step, ..., len(seq)``).
        self.cuts = np.flatnonzero(payload >= 0)
        # the container around each payload: a fixed part and a 16-bit checksum per chunk (see
        # adatok.core.sequence): its size for one payload length, plus 2 bytes per chunk beyond one
        chunks = _chunks(payload[self.cuts])
        #: The ``.atk`` bytes of the prefix of each cut.
        self.sizes = payload[self.cuts] + container_overhead(seq, 1, CODEC) + 2 * (chunks - 1)
        self.sizes[0] = container_overhead(seq, 0, CODEC)
        self._fits = np.maximum.accumulate(self.sizes)  # what a byte limit walks against

    def __len__(self) -> int:
        return len(self.seq)

    def _k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k <= len(self.seq):
            raise InvalidTokensError(f"prefix length must be a whole number from 0 to {len(self.seq)}, got {k!r}")
        return int(k)

    def knowledge(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the decoder knows after ``k`` tokens (``value``, ``low``, ``neg``; see :func:`spiht.walk`)."""
        k = self._k(k)
        return spiht.knowledge(self._ids, self._node, self._plane, self._shift, k, self._layout.size)

    def image(self, k: int) -> np.ndarray:
        """The image of the first ``k`` tokens: ``decode`` of ``seq.prefix(k)``."""
        value, low, neg = self.knowledge(k)
        return self.tok._image(self._layout, value, low, neg, self.seq.params, self.seq.shape)

    def nbytes(self, k: int) -> int:
        """Bytes of the ``.atk`` file of the first ``k`` tokens (header included): looked up at a
        cut, else the prefix is coded again."""
        k = self._k(k)
        at = int(np.searchsorted(self.cuts, k))
        if self.cuts[at] == k:
            return int(self.sizes[at])
        return len(self.sequence(k).to_bytes())

    def snap(self, k: int) -> int:
        """The longest cut of at most ``k`` tokens."""
        return int(self.cuts[int(np.searchsorted(self.cuts, self._k(k), side="right")) - 1])

    def longest(self, nbytes: int) -> int:
        """The longest cut whose ``.atk`` file fits in ``nbytes``, taking cuts in order while their
        files fit (a file's size does not always grow with its tokens: the coder's last bytes vary);
        0 when not even the empty sequence's file does."""
        return int(self.cuts[max(int(np.searchsorted(self._fits, int(nbytes), side="right")) - 1, 0)])

    def sequence(self, k: int) -> TokenSequence:
        """``seq.prefix(k)``, with its decoder state cached (``decode`` needs no replay of it) and
        positions made from its own ``k`` tokens when asked for (``seq.prefix(k).pos`` makes those
        of the whole sequence first)."""
        k = self._k(k)
        out = self.tok._sequence(self.seq.ids[:k], self._node[:k], self._plane[:k], self._layout, self.seq.shape,
                                 dict(self.seq.params))
        out.cache["state"] = self.knowledge(k)
        return out


def _chunks(payload: np.ndarray) -> np.ndarray:
    """Payload checksum chunks of each payload length (vectorised ``adatok.core.sequence._chunking``:
    at most 8 chunks of at least 512 bytes; none for an empty payload)."""
    p = np.asarray(payload, np.int64)
    n = np.minimum(8, -(-p // 512))
    size = -(-p // np.maximum(n, 1))
    return np.where(p > 0, -(-p // np.maximum(size, 1)), 0)
