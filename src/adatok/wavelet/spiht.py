"""Set partitioning in hierarchical trees over any wavelet layout: the wavelet language's grammar,
and the context-adaptive binary arithmetic coder that turns its tokens into bytes.

The coder walks integer wavelet coefficients bit-plane by bit-plane, from the most significant
plane down to plane 0, and emits one token per coding decision (see ``docs/wavelet-language.md``).
Three lists drive it, as in SPIHT: the list of insignificant pixels (LIP), of insignificant sets
(LIS; type A = all descendants of a node, type B = all descendants but the children) and of
significant pixels (LSP). Each plane has a sorting pass (LIP, then LIS) and a refinement pass over
the coefficients that were significant before the plane began.

One traversal, :func:`walk`, serves every use; only the source of each decision changes:

* ``SRC_COEF`` — decisions from the coefficients (the encoder);
* ``SRC_IDS`` — decisions read from a token sequence (the decoder of a prefix; also the replay
  that recovers token positions);
* ``SRC_AC`` — decisions read from arithmetic-coded bytes.

With ``code=True`` every decision is also arithmetic-coded, in a context chosen from the decision
type, channel, band, level and the significance (and signs) of the coefficient's neighbours, its
parent and its children — what the decoder knows at that point, so it can choose the same.

The trees are general (children as CSR arrays), so odd sizes, 1-pixel axes and several channels
need no special case. Compiled with numba; no Python loop per coefficient or per token.
Hand-written because no maintained library offers an embedded set-partitioning coder with
token-level output, and the arithmetic coder must share the walk's state for its contexts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import GEO_DOWN, GEO_LEFT, GEO_RIGHT, GEO_UP

# The alphabet. Significance tokens of a single coefficient carry its sign.
SIG0, SIG_POS, SIG_NEG, D0, D1, L0, L1, REF0, REF1 = range(9)
VOCAB_SIZE = 9
TOKEN_NAMES = ("SIG0", "SIG+", "SIG-", "D0", "D1", "L0", "L1", "REF0", "REF1")

# Where decisions come from.
SRC_COEF, SRC_IDS, SRC_AC = 0, 1, 2
#: Token limits at or above this mean no limit (the walk counts in int64).
MAX_TOKENS = 2**62
# Walk status codes.
OK, BAD_TOKEN, TOO_LONG = 0, 1, 2

# Context layout: a static class per node (channel kind x band kind x level bucket) times a
# decision-specific part.
N_CLASS = 18  # 2 channel kinds (luma/gray, chroma) x 3 band kinds (LL, HL/LH, HH) x 3 level buckets
_SIG_SUB = 2 * 2 * 27  # from LIP or new child x parent significant x neighbourhood (h, v, d: 27)
_SIGN_SUB = 9
_D_SUB = 2 * 3
_L_SUB = 3
_REF_SUB = 2 * 2
CTX_SIG = 0
CTX_SIGN = CTX_SIG + N_CLASS * _SIG_SUB
CTX_D = CTX_SIGN + N_CLASS * _SIGN_SUB
CTX_L = CTX_D + N_CLASS * _D_SUB
CTX_REF = CTX_L + N_CLASS * _L_SUB
N_CTX = CTX_REF + N_CLASS * _REF_SUB

# Adaptive probability model: 16-bit P(bit = 0), adapting fast at first and then at a fixed rate.
# UNIFORM_PRIOR: every context starts at 1/2 with no weight.
_PROB_ONE = 1 << 16
_RATE_LIMIT = 255
_FAST = 16


def uniform_prior() -> np.ndarray:
    """A prior that knows nothing: P(0) = 1/2, weight 0, for every context."""
    prior = np.zeros((N_CTX, 2), np.int64)
    prior[:, 0] = _PROB_ONE // 2
    return prior


def fit_prior(stats: np.ndarray, weight: int = 12) -> np.ndarray:
    """A prior from coded statistics (zeros, ones per context): the smoothed frequency of zeros,
    worth ``weight`` decisions where the context was seen, nothing where it was not."""
    zeros, ones = stats[:, 0].astype(np.float64), stats[:, 1].astype(np.float64)
    p0 = (zeros + 0.5) / (zeros + ones + 1.0)
    prior = np.zeros((N_CTX, 2), np.int64)
    prior[:, 0] = np.clip(np.rint(p0 * _PROB_ONE), 32, _PROB_ONE - 32)
    prior[:, 1] = np.where(zeros + ones > 0, min(weight, _RATE_LIMIT), 0)
    return prior


@njit(cache=True)
def set_minima(shift, parent):
    """Smallest shift among each node's descendants (D) and grandchildren-and-below (L); 127 if none.
    int8, like the shifts the walk takes: it reads them at every decision, and small types keep
    more of them in the cache."""
    n = shift.shape[0]
    min_d = np.full(n, 127, np.int8)
    min_l = np.full(n, 127, np.int8)
    for i in range(n - 1, -1, -1):
        p = parent[i]
        if p >= 0:
            v = shift[i] if shift[i] < min_d[i] else min_d[i]
            if v < min_d[p]:
                min_d[p] = v
            if min_d[i] < min_l[p]:
                min_l[p] = min_d[i]
    return min_d, min_l


@njit(cache=True, inline="always")
def _bit_length(v):
    """Bits of ``v >= 0`` (0 for 0), by halving (32, 16, ..., 1 bits: a fixed loop the compiler
    unrolls; a loop bit by bit mispredicts its exit)."""
    b = 0
    for k in (32, 16, 8, 4, 2, 1):
        if v >= np.int64(1) << k:
            v >>= k
            b += k
    return b + v


@njit(cache=True)
def set_bits(mag, parent):
    """Bit length of each node's magnitude and the largest one among its descendants (D) and its
    grandchildren-and-below (L): ``mag >= 2**plane`` is ``bits > plane``. int8, not the int64
    magnitudes: the encoder reads them at every decision, and 8 times smaller they stay in the
    cache.

    Nodes are numbered so that a parent comes before its children.
    """
    n = mag.shape[0]
    bits = np.empty(n, np.int8)
    for i in range(n):
        bits[i] = _bit_length(mag[i])
    max_d = np.zeros(n, np.int8)
    max_l = np.zeros(n, np.int8)
    for i in range(n - 1, -1, -1):
        p = parent[i]
        if p >= 0:  # always storing the maximum (no branch on it): 4.2 vs 5.7 ms on a 768x512 photo
            md = max_d[i]
            v = bits[i] if bits[i] > md else md
            a = max_d[p]
            max_d[p] = v if v > a else a
            c = max_l[p]
            max_l[p] = md if md > c else c
    return bits, max_d, max_l


# --- the binary arithmetic coder (a carry-propagating range coder, 32-bit) ----------------------
# Encoder state es: [low, range, cache, pending, outpos, first]; decoder state ds: [code, range, inpos].


@njit(cache=True, inline="always")
def _put(out, es, byte):
    """Append a byte (the caller keeps ``out`` large enough: see :func:`_room`)."""
    if es[5] == 1:  # the first byte out is always 0: leave it out (the decoder knows)
        es[5] = 0
        return
    out[es[4]] = byte
    es[4] += 1


_ROOM = 32  # bytes one more token can write, its pending bytes aside (see _room, _before_token)


@njit(cache=True)
def _room(out, es):
    """``out`` with room for what one more token can write (its pending bytes included)."""
    need = es[4] + es[3] + _ROOM
    if need <= out.shape[0]:
        return out
    bigger = np.empty(max(2 * out.shape[0], need + 1024), np.uint8)
    bigger[: es[4]] = out[: es[4]]
    return bigger


@njit(cache=True, inline="always")
def _shift_low(out, es):
    low = es[0]
    if low < 0xFF000000 or low >= 0x100000000:
        carry = low >> 32
        _put(out, es, (es[2] + carry) & 0xFF)
        for _ in range(es[3]):
            _put(out, es, (0xFF + carry) & 0xFF)
        es[3] = 0
        es[2] = (low >> 24) & 0xFF
    else:
        es[3] += 1
    es[0] = (low & 0x00FFFFFF) << 8


@njit(cache=True, inline="always")
def _encode_bit(out, es, prob, cnt, ctx, bit):
    p = prob[ctx, 0]
    bound = (es[1] >> 16) * p
    if bit == 0:
        es[1] = bound
    else:
        es[0] += bound
        es[1] -= bound
    _adapt(prob, cnt, ctx, bit)
    while es[1] < 0x1000000:
        es[1] <<= 8
        _shift_low(out, es)


@njit(cache=True)
def _finish(out, es):
    """Terminate with the fewest bytes that pin every coded decision, whatever follows them."""
    low = es[0]
    rng = es[1]
    for k in range(5):
        step = np.int64(1) << (32 - 8 * k)
        v = ((low + step - 1) // step) * step
        if v + step <= low + rng:
            break
    es[0] = v
    out = _room(out, es)
    # out the pending cache and 0xFF bytes (with the carry of v), then the top k bytes of v
    carry = v >> 32
    _put(out, es, (es[2] + carry) & 0xFF)
    for _ in range(es[3]):
        _put(out, es, (0xFF + carry) & 0xFF)
    for j in range(k):
        _put(out, es, (v >> (24 - 8 * j)) & 0xFF)
    return out[: es[4]]


@njit(cache=True, inline="always")
def _term_len(es):
    """Bytes the coder would have written if it were terminated now."""
    low = es[0]
    rng = es[1]
    k = 4
    for j in range(5):
        step = np.int64(1) << (32 - 8 * j)
        v = ((low + step - 1) // step) * step
        if v + step <= low + rng:
            k = j
            break
    return es[4] + (1 - es[5]) + es[3] + k


@njit(cache=True, inline="always")
def _over(es, max_bytes, es_prev):
    """True when the last token pushed the terminated length past ``max_bytes``; the coder state
    then goes back to before that token (its bytes already written are simply overwritten).
    Element by element: a slice copy may allocate, which :func:`_walk_core` cannot."""
    if es[4] + es[3] + 6 <= max_bytes or _term_len(es) <= max_bytes:
        for j in range(es.shape[0]):
            es_prev[j] = es[j]
        return False
    for j in range(es.shape[0]):
        es[j] = es_prev[j]
    return True


@njit(cache=True, inline="always")
def _next_byte(data, ds, pad):
    i = ds[2]
    ds[2] += 1
    if i < data.shape[0]:
        return np.int64(data[i])
    return np.int64(pad)


@njit(cache=True, inline="always")
def _decode_bit(data, ds, pad, prob, cnt, ctx):
    p = prob[ctx, 0]
    bound = (ds[1] >> 16) * p
    if ds[0] < bound:
        ds[1] = bound
        bit = 0
    else:
        ds[0] -= bound
        ds[1] -= bound
        bit = 1
    _adapt(prob, cnt, ctx, bit)
    while ds[1] < 0x1000000:
        ds[1] <<= 8
        ds[0] = ((ds[0] << 8) | _next_byte(data, ds, pad)) & 0xFFFFFFFF
    return bit


# 65536 / (n + 2) for the running-average phase, so that adapting needs no division.
_RECIP = np.array([(1 << 16) // (n + 2) for n in range(_RATE_LIMIT + 1)], dtype=np.int64)


@njit(cache=True, inline="always")
def _adapt(prob, cnt, ctx, bit):
    """Two estimates per context, a fast and a slow one (both start as running averages from
    the prior's count); the coder uses their mean, which tracks changes and still settles.
    ``cnt[ctx]`` holds [count, zeros seen, ones seen]."""
    n = cnt[ctx, 0]
    cnt[ctx, 1 + bit] += 1
    if n < _RATE_LIMIT:
        cnt[ctx, 0] = n + 1
    target = 0 if bit else _PROB_ONE
    fast = prob[ctx, 1] + (((target - prob[ctx, 1]) * _RECIP[n if n < _FAST else _FAST]) >> 16)
    slow = prob[ctx, 2] + (((target - prob[ctx, 2]) * _RECIP[n]) >> 16)
    prob[ctx, 1] = fast
    prob[ctx, 2] = slow
    p = (fast + slow) >> 1
    if p < 32:
        p = 32
    elif p > _PROB_ONE - 32:
        p = _PROB_ONE - 32
    prob[ctx, 0] = p


# --- contexts ------------------------------------------------------------------------------------


# Each node's neighbourhood as the contexts see it is one uint16, ``nbf``: significant horizontal
# neighbours (bits 0-1, 0..2), vertical ones (bits 2-3, 0..2), diagonal ones (bits 4-6, 0..4),
# and the signs of its significant horizontal and vertical neighbours (positive and negative
# horizontal ones in bits 8-9 and 10-11, vertical ones in bits 12-13 and 14-15). Kept up to date
# as nodes become significant (:func:`_mark`), so a context is one read: as separate arrays (and
# the neighbours' states read through the band geometry) these were the walk's cache misses on
# large images. (The parent's significance is still read through ``parent``: marking it in the
# children's words at each significance measured slower during the speed work.)
# ``geo`` (from the layout) holds each node's band width (above bit 4) and which neighbours exist:
# GEO_LEFT, GEO_RIGHT, GEO_UP, GEO_DOWN.
_NB_H, _NB_V, _NB_D = 1, 4, 16
_NB_HPOS, _NB_HNEG, _NB_VPOS, _NB_VNEG = 1 << 8, 1 << 10, 1 << 12, 1 << 14


@njit(cache=True, inline="always")
def _nb_count(f):
    """Significant neighbours (all directions) in a ``nbf`` value."""
    return (f & 3) + ((f >> 2) & 3) + ((f >> 4) & 7)


@njit(cache=True, inline="always")
def _sign_ctx(f):
    """Sign context 0..8 from a ``nbf`` value: the signs of the node's significant horizontal and
    vertical neighbours, each direction summed to -1, 0 or 1."""
    hs = ((f >> 8) & 3) - ((f >> 10) & 3)
    vs = ((f >> 12) & 3) - ((f >> 14) & 3)
    hs = 1 if hs > 0 else (-1 if hs < 0 else 0)
    vs = 1 if vs > 0 else (-1 if vs < 0 else 0)
    return (hs + 1) * 3 + (vs + 1)


@njit(cache=True, inline="always")
def _mark(i, negative, nbf, geo, parent, nsig):
    """Node ``i`` became significant (``negative``: its sign): count it in its neighbours' ``nbf``
    and in its parent's significant children ``nsig`` (saturating at 255: the L context only asks
    0, 1-2 or more; counting them at each L decision was a loop of scattered reads)."""
    p = parent[i]
    if p >= 0 and nsig[p] < 255:
        nsig[p] += 1
    g = geo[i]
    w = g >> 4
    h_add = _NB_H + (_NB_HNEG if negative else _NB_HPOS)
    v_add = _NB_V + (_NB_VNEG if negative else _NB_VPOS)
    if g & GEO_LEFT:
        nbf[i - 1] += h_add
    if g & GEO_RIGHT:
        nbf[i + 1] += h_add
    if g & GEO_UP:
        u = i - w
        nbf[u] += v_add
        if g & GEO_LEFT:
            nbf[u - 1] += _NB_D
        if g & GEO_RIGHT:
            nbf[u + 1] += _NB_D
    if g & GEO_DOWN:
        d = i + w
        nbf[d] += v_add
        if g & GEO_LEFT:
            nbf[d - 1] += _NB_D
        if g & GEO_RIGHT:
            nbf[d + 1] += _NB_D


@njit(cache=True, inline="always")
def _sig_ctx(i, from_lip, nbf, ncls, parent, low):
    f = nbf[i]
    dg = (f >> 4) & 7
    nb = ((f & 3) * 3 + ((f >> 2) & 3)) * 3 + (dg if dg < 2 else 2)
    p = parent[i]
    psig = 1 if (p >= 0 and low[p] >= 0) else 0
    return CTX_SIG + ncls[i] * _SIG_SUB + (from_lip * 2 + psig) * 27 + nb


@njit(cache=True, inline="always")
def _code_choice(src, tok, zero, one, ctx, data, ds, pad, prob, cnt, out, es):
    """A two-way decision (``zero`` or ``one``) in context ``ctx``: read from the bytes with
    SRC_AC, else arithmetic-coded from ``tok``. Returns the token."""
    if src == SRC_AC:
        return one if _decode_bit(data, ds, pad, prob, cnt, ctx) else zero
    _encode_bit(out, es, prob, cnt, ctx, 1 if tok == one else 0)
    return tok


@njit(cache=True, inline="always")
def _sig_decision(src, code, i, from_lip, forced, plane, t, bits, sgn, ids_in, data, ds, pad, prob, cnt,
                  out, es, low, nbf, ncls, parent):
    """One coefficient's significance decision (with its sign when significant), from the walk's
    source, arithmetic-coded when asked; ``forced``: known to be significant, its bit not coded.
    Returns the token, or -1 when ``ids_in`` holds one that cannot stand here."""
    tok = 0
    if src == SRC_COEF:
        tok = (SIG_NEG if sgn[i] else SIG_POS) if bits[i] > plane else SIG0
    elif src == SRC_IDS:
        tok = ids_in[t]
        if tok > SIG_NEG or (forced and tok == SIG0):
            return -1
    if code or src == SRC_AC:
        ctx = _sig_ctx(i, from_lip, nbf, ncls, parent, low)
        if src == SRC_AC:
            if forced or _decode_bit(data, ds, pad, prob, cnt, ctx):
                sc = _sign_ctx(nbf[i])
                tok = SIG_NEG if _decode_bit(data, ds, pad, prob, cnt, CTX_SIGN + ncls[i] * _SIGN_SUB + sc) else SIG_POS
            else:
                tok = SIG0
        else:
            if not forced:
                _encode_bit(out, es, prob, cnt, ctx, 0 if tok == SIG0 else 1)
            if tok != SIG0:
                sc = _sign_ctx(nbf[i])
                _encode_bit(out, es, prob, cnt, CTX_SIGN + ncls[i] * _SIGN_SUB + sc, 1 if tok == SIG_NEG else 0)
    return tok


# --- the walk ----------------------------------------------------------------------------------
#
# The walk is two functions. :func:`walk` allocates every array and runs :func:`_walk_core`, which
# is compiled without numba's reference counting (``_nrt=False``): with it, every inlined helper's
# array arguments cost an atomic increment and decrement per call, which measured as 40-50% of
# the walk's time. Without it the core cannot allocate, so when its token or byte buffers run out
# it says so (NO_ROOM_IDS, NO_ROOM_OUT) and :func:`walk` runs it again with larger ones.

# The four places that stop on _before_token's answer each write out the same return: an inlined
# helper for it measured slower (1.23-1.28x JPEG 2000 at Bpp(1.0) against 1.13-1.16x without it,
# benchmarks/wavelet_speed.py --repeat 7, runs alternated on the same machine).

NO_ROOM_IDS, NO_ROOM_OUT = 3, 4  # statuses of _walk_core only
_GO, _LIMIT, _OVER = 0, 1, 2

# The walk can stop before any token and go on later from there: its loop variables live in a
# state array ``ws`` (int64), written when it stops and read when it starts. The encoder and the
# decoder run it once from a fresh state; the stepper (:func:`step`) runs it one token at a time.
# So generating a sequence follows the very code that encodes and decodes it: one grammar.
# Slots of ``ws``: tokens so far, the plane, the phase (PH_*), the pass's read, write and end
# indices, the list lengths, the LSP length before the plane, the D1 set whose children are being
# tested with its next child, last testable child, whether one was significant and whether its L
# set is open; and, once stopped, the kind (K_*) and node of the decision that comes next.
WS_T, WS_PLANE, WS_PHASE, WS_R, WS_W, WS_E, WS_NLIP, WS_NLSP, WS_NLIS, WS_NLSP_OLD = range(10)
WS_SET, WS_C, WS_LAST, WS_ANY, WS_LOPEN, WS_KIND, WS_NODE = range(10, 17)
WS_SIZE = 17
PH_START, PH_PLANE, PH_LIP, PH_LIS, PH_CHILD, PH_REF, PH_END = range(7)
#: Kinds of decision: a significance test (forced: known significant, only the sign is open), a
#: type-A set test, a type-B set test (forced: known significant), a refinement bit, the end.
K_SIG, K_SIG_FORCED, K_D, K_L, K_L_FORCED, K_REF, K_END = range(7)
KIND_NAMES = ("significance", "forced significance", "D set test", "L set test", "forced L set test",
              "refinement", "end of stream")
#: ``LEGAL[kind, id]``: whether token ``id`` may stand at a decision of ``kind`` (what
#: :func:`_walk_core` accepts from ``SRC_IDS``).
LEGAL = np.zeros((7, VOCAB_SIZE), np.bool_)
LEGAL[K_SIG, [SIG0, SIG_POS, SIG_NEG]] = True
LEGAL[K_SIG_FORCED, [SIG_POS, SIG_NEG]] = True
LEGAL[K_D, [D0, D1]] = True
LEGAL[K_L, [L0, L1]] = True
LEGAL[K_L_FORCED, L1] = True
LEGAL[K_REF, [REF0, REF1]] = True
LEGAL.flags.writeable = False


@njit(cache=True)
def fresh_state(nmax):
    """A walk state that starts at plane ``nmax`` (nothing walked yet; see :func:`_walk_core`)."""
    ws = np.zeros(WS_SIZE, np.int64)
    ws[WS_PLANE] = nmax
    ws[WS_PHASE] = PH_START
    ws[WS_KIND] = K_END
    ws[WS_NODE] = -1
    return ws


@njit(cache=True, inline="always")
def _before_token(t, limit, bcheck, max_bytes, code, ids, out, es, es_prev):
    """Before each token: _LIMIT (the token limit is reached), _OVER (the last token went past the
    byte limit: the coder is back before it), a NO_ROOM status (a buffer is full) or _GO."""
    if t >= limit:
        return _LIMIT
    if bcheck and t > 0 and _over(es, max_bytes, es_prev):  # (t = 0: no token to take back; the empty
        return _OVER  # sequence's payload is empty, see WaveletTokenizer.pack)
    if t >= ids.shape[0]:
        return NO_ROOM_IDS
    if code and es[4] + es[3] + _ROOM > out.shape[0]:
        return NO_ROOM_OUT
    return _GO


@njit(cache=True, inline="always")
def _stop(ws, t, plane, phase, r, w, e, nlip, nlsp, nlis, nlsp_old, i, c, last, any_sig, l_open, kind, node):
    """Keep where the walk stands in ``ws`` (see WS_*), with the kind and node of the decision
    it stopped before."""
    ws[WS_T] = t
    ws[WS_PLANE] = plane
    ws[WS_PHASE] = phase
    ws[WS_R] = r
    ws[WS_W] = w
    ws[WS_E] = e
    ws[WS_NLIP] = nlip
    ws[WS_NLSP] = nlsp
    ws[WS_NLIS] = nlis
    ws[WS_NLSP_OLD] = nlsp_old
    ws[WS_SET] = i
    ws[WS_C] = c
    ws[WS_LAST] = last
    ws[WS_ANY] = any_sig
    ws[WS_LOPEN] = l_open
    ws[WS_KIND] = kind
    ws[WS_NODE] = node


# The journal lets a caller walk on and come back: a walk from ids (SRC_IDS) given one writes the
# old value of every list entry it overwrites into it, and :func:`undo` puts them back, latest
# first. Only the LIP and LIS entries need it: a walk changes the decoder's knowledge only at the
# node of a decision, it only appends to the LSP, and ``ws`` is small enough to copy (see
# :mod:`adatok.wavelet.words`, which walks every path of a few decisions below a stepper's state this
# way). It is an int64 array: ``jr[0]`` the number of entries, ``jr[1]`` set when one did not fit,
# entry k at ``jr[2k]`` (which entry: ``2 * index`` in the LIP, ``2 * index + 1`` in the LIS) and
# ``jr[2k + 1]`` (its old value). The walk takes it in place of ``mag``, which only the encoder
# reads: an argument more would cost every step of a stepper (13% measured), this costs nothing.


@njit(cache=True, inline="always")
def _jot(jr, code, old):
    """Note that entry ``code`` held ``old``."""
    k = jr[0] + 1
    if 2 * k + 1 < jr.shape[0]:
        jr[2 * k] = code
        jr[2 * k + 1] = old
        jr[0] = k
    else:
        jr[1] = 1  # full: the caller gave too small a journal and cannot undo


@njit(cache=True, inline="always")
def _jot_lis(jr, e, lis, lis_b, lis_f):
    _jot(jr, 2 * e + 1, np.int64(lis[e]) * 4 + lis_b[e] * 2 + lis_f[e])


@njit(cache=True, _nrt=False)
def undo(jr, mark, lip, lis, lis_b, lis_f):
    """Put back the list entries the journal ``jr`` noted after its first ``mark`` entries (latest
    first), and forget them."""
    for k in range(jr[0], mark, -1):
        code = jr[2 * k]
        old = jr[2 * k + 1]
        e = code >> 1
        if code & 1:
            lis[e] = old >> 2
            lis_b[e] = ((old >> 1) & 1) != 0
            lis_f[e] = (old & 1) != 0
        else:
            lip[e] = old
    jr[0] = mark


@njit(cache=True, _nrt=False)
def _walk_core(src, code, limit, max_bytes, mag, sgn, ids_in, data, pad, shift, smin_d, smin_l, parent,
               child_ptr, child_idx, has_l, roots, geo, ncls, bits, max_d, max_l, value, low, neg, ids, tnode,
               tplane, prob, cnt, out, es, es_prev, ds, lip, lsp, lis, lis_b, lis_f, nbf, nsig, ws):
    """The traversal of :func:`walk`, from where ``ws`` says (see WS_*) to the next stop. Returns
    ``(status, n)``.

    A fresh ``ws`` (:func:`fresh_state`) starts at its top plane, on fresh arrays (zeros, ``low``
    all -1, the coder's state initialised). The walk stops at the token limit, the byte limit, a
    full buffer or the end of the stream (phase PH_END), and then leaves in ``ws`` where it stood
    and the kind (K_*) and node of the decision it stopped before, so that a later call with the
    same arrays continues from there. A token from ``ids_in`` that cannot stand (BAD_TOKEN) stops
    it before anything changed: ``ws`` still holds the place before that token. With SRC_IDS, a
    non-empty ``mag`` is a journal (see :func:`undo`): every LIP and LIS entry the walk overwrites
    is noted in it first.
    """
    bcheck = code and max_bytes >= 0
    jot = src == SRC_IDS and mag.shape[0] > 0
    jr = mag
    t = ws[WS_T]
    plane = ws[WS_PLANE]
    phase = ws[WS_PHASE]
    r = ws[WS_R]
    w = ws[WS_W]
    e = ws[WS_E]
    nlip = ws[WS_NLIP]
    nlsp = ws[WS_NLSP]
    nlis = ws[WS_NLIS]
    nlsp_old = ws[WS_NLSP_OLD]
    i = ws[WS_SET]  # (with PH_CHILD: the D1 set whose children are tested, from child c0)
    c0 = ws[WS_C]
    last = ws[WS_LAST]
    any_sig = ws[WS_ANY] != 0
    l_open = ws[WS_LOPEN] != 0
    if phase == PH_START:
        if src == SRC_AC:  # the encoder left out its first byte (always 0): start with four of code
            ds[1] = 0xFFFFFFFF
            for _ in range(4):
                ds[0] = ((ds[0] << 8) | _next_byte(data, ds, pad)) & 0xFFFFFFFF
        nlip = 0
        nlsp = 0
        nlis = 0
        for q in range(roots.shape[0]):
            k = roots[q]
            lip[nlip] = k
            nlip += 1
            if child_ptr[k + 1] > child_ptr[k]:
                lis[nlis] = k
                lis_b[nlis] = False
                nlis += 1
        phase = PH_PLANE
    while plane >= 0:
        if phase == PH_PLANE:
            nlsp_old = nlsp
            r = 0
            w = 0
            phase = PH_LIP
        if phase == PH_LIP:
            # ---- sorting pass over the LIP, then the new children found in the LIS pass ----
            while r < nlip:
                i = lip[r]
                if plane < shift[i]:
                    r += 1
                    continue  # still insignificant below its own bit 0: it is 0, drop it
                go = _before_token(t, limit, bcheck, max_bytes, code, ids, out, es, es_prev)
                if go != _GO:
                    _stop(ws, t, plane, PH_LIP, r, w, e, nlip, nlsp, nlis, nlsp_old, i, c0, last, any_sig, l_open,
                          K_SIG, i)
                    return (OK, t - (go == _OVER)) if go <= _OVER else (go, t)
                r += 1
                # coefficient significance decision (from the LIP)
                tok = _sig_decision(src, code, i, 1, False, plane, t, bits, sgn, ids_in, data, ds, pad, prob, cnt,
                                    out, es, low, nbf, ncls, parent)
                if tok < 0:
                    return BAD_TOKEN, t
                ids[t] = tok
                tnode[t] = i
                tplane[t] = plane
                t += 1
                if tok != SIG0:
                    value[i] = np.int64(1) << (plane - shift[i])
                    low[i] = plane - shift[i]
                    if code or src == SRC_AC:
                        _mark(i, tok == SIG_NEG, nbf, geo, parent, nsig)
                    neg[i] = tok == SIG_NEG
                    lsp[nlsp] = i
                    nlsp += 1
                else:
                    if jot:
                        _jot(jr, 2 * w, lip[w])
                    lip[w] = i
                    w += 1
            nlip = w
            r = 0
            w = 0
            e = nlis
            phase = PH_LIS
        if phase != PH_REF:
            # ---- sorting pass over the LIS (sets appended at the end are walked in the same pass) ----
            while r < e or phase == PH_CHILD:
                if phase == PH_CHILD:
                    phase = PH_LIS  # back among the children of the D1 set i, from child c0
                else:
                    i = lis[r]
                    is_b = lis_b[r]
                    forced = lis_f[r]
                    r += 1
                    if plane < (smin_l[i] if is_b else smin_d[i]):
                        if jot and (lis[w] != i or lis_b[w] != is_b or lis_f[w]):
                            _jot_lis(jr, w, lis, lis_b, lis_f)
                        lis[w] = i  # every member is known to be 0 already: nothing to test
                        lis_b[w] = is_b
                        lis_f[w] = False
                        w += 1
                        continue
                    go = _before_token(t, limit, bcheck, max_bytes, code, ids, out, es, es_prev)
                    if go != _GO:
                        _stop(ws, t, plane, PH_LIS, r - 1, w, e, nlip, nlsp, nlis, nlsp_old, i, c0, last, any_sig,
                              l_open, (K_L_FORCED if forced else K_L) if is_b else K_D, i)
                        return (OK, t - (go == _OVER)) if go <= _OVER else (go, t)
                    if is_b:
                        tok = 0
                        if src == SRC_COEF:
                            tok = L1 if max_l[i] > plane else L0
                        elif src == SRC_IDS:
                            tok = ids_in[t]
                            if tok != L0 and tok != L1 or (forced and tok == L0):
                                return BAD_TOKEN, t
                        if code or src == SRC_AC:
                            ns = nsig[i]  # significant children (see _mark)
                            ctx = CTX_L + ncls[i] * _L_SUB + (0 if ns == 0 else (1 if ns < 3 else 2))
                            if forced:
                                tok = L1  # not coded: D(i) was significant and none of its children
                            else:
                                tok = _code_choice(src, tok, L0, L1, ctx, data, ds, pad, prob, cnt, out, es)
                        ids[t] = tok
                        tnode[t] = i
                        tplane[t] = plane
                        t += 1
                        if tok == L1:
                            for c in range(child_ptr[i], child_ptr[i + 1]):
                                k = child_idx[c]
                                if child_ptr[k + 1] > child_ptr[k]:
                                    if jot:
                                        _jot_lis(jr, e, lis, lis_b, lis_f)
                                    lis[e] = k
                                    lis_b[e] = False
                                    e += 1
                        else:
                            if jot:
                                _jot_lis(jr, w, lis, lis_b, lis_f)
                            lis[w] = i
                            lis_b[w] = True
                            lis_f[w] = False
                            w += 1
                        continue
                    tok = 0
                    if src == SRC_COEF:
                        tok = D1 if max_d[i] > plane else D0
                    elif src == SRC_IDS:
                        tok = ids_in[t]
                        if tok != D0 and tok != D1:
                            return BAD_TOKEN, t
                    if code or src == SRC_AC:
                        nb = _nb_count(nbf[i])
                        ctx = CTX_D + ncls[i] * _D_SUB + (1 if low[i] >= 0 else 0) * 3 + (nb if nb < 2 else 2)
                        tok = _code_choice(src, tok, D0, D1, ctx, data, ds, pad, prob, cnt, out, es)
                    ids[t] = tok
                    tnode[t] = i
                    tplane[t] = plane
                    t += 1
                    if tok != D1:
                        if jot:
                            _jot_lis(jr, w, lis, lis_b, lis_f)
                        lis[w] = i
                        lis_b[w] = False
                        lis_f[w] = False
                        w += 1
                        continue
                    # Some descendant is significant: if L(i) cannot be, and every child tested
                    # before the last one was not, the last one is (its bit is not coded).
                    l_open = has_l[i] and plane >= smin_l[i]
                    last = -1
                    for c in range(child_ptr[i + 1] - 1, child_ptr[i] - 1, -1):
                        if plane >= shift[child_idx[c]]:
                            last = c
                            break
                    any_sig = False
                    c0 = child_ptr[i]
                # ---- the children of a D1 set i, from child c0 ----
                for c in range(c0, child_ptr[i + 1]):
                    k = child_idx[c]
                    if plane < shift[k]:
                        continue  # known to be 0
                    forced = c == last and not any_sig and not l_open
                    go = _before_token(t, limit, bcheck, max_bytes, code, ids, out, es, es_prev)
                    if go != _GO:
                        _stop(ws, t, plane, PH_CHILD, r, w, e, nlip, nlsp, nlis, nlsp_old, i, c, last, any_sig,
                              l_open, K_SIG_FORCED if forced else K_SIG, k)
                        return (OK, t - (go == _OVER)) if go <= _OVER else (go, t)
                    tok = _sig_decision(src, code, k, 0, forced, plane, t, bits, sgn, ids_in, data, ds, pad, prob,
                                        cnt, out, es, low, nbf, ncls, parent)
                    if tok < 0:
                        return BAD_TOKEN, t
                    ids[t] = tok
                    tnode[t] = k
                    tplane[t] = plane
                    t += 1
                    if tok != SIG0:
                        any_sig = True
                        value[k] = np.int64(1) << (plane - shift[k])
                        low[k] = plane - shift[k]
                        if code or src == SRC_AC:
                            _mark(k, tok == SIG_NEG, nbf, geo, parent, nsig)
                        neg[k] = tok == SIG_NEG
                        lsp[nlsp] = k
                        nlsp += 1
                    else:
                        if jot:
                            _jot(jr, 2 * nlip, lip[nlip])
                        lip[nlip] = k
                        nlip += 1
                if has_l[i]:
                    if jot:
                        _jot_lis(jr, e, lis, lis_b, lis_f)
                    lis[e] = i
                    lis_b[e] = True
                    lis_f[e] = not any_sig  # then L(i) must be significant at this plane
                    e += 1
            nlis = w
            r = 0
            phase = PH_REF
        # ---- refinement pass ----
        for q in range(r, nlsp_old):
            i = lsp[q]
            bit = plane - shift[i]
            if bit < 0:
                continue  # every bit known
            go = _before_token(t, limit, bcheck, max_bytes, code, ids, out, es, es_prev)
            if go != _GO:
                _stop(ws, t, plane, PH_REF, q, w, e, nlip, nlsp, nlis, nlsp_old, i, c0, last, any_sig, l_open,
                      K_REF, i)
                return (OK, t - (go == _OVER)) if go <= _OVER else (go, t)
            tok = 0
            if src == SRC_COEF:
                tok = REF1 if (mag[i] >> plane) & 1 else REF0
            elif src == SRC_IDS:
                tok = ids_in[t]
                if tok != REF0 and tok != REF1:
                    return BAD_TOKEN, t
            if code or src == SRC_AC:
                first = 1 if value[i] < (np.int64(1) << (bit + 2)) else 0
                ctx = CTX_REF + ncls[i] * _REF_SUB + first * 2 + (1 if nbf[i] & 0x7F else 0)
                tok = _code_choice(src, tok, REF0, REF1, ctx, data, ds, pad, prob, cnt, out, es)
            ids[t] = tok
            tnode[t] = i
            tplane[t] = plane
            t += 1
            if tok == REF1:
                value[i] |= np.int64(1) << bit
            low[i] = bit
        plane -= 1
        phase = PH_PLANE
    _stop(ws, t, plane, PH_END, 0, 0, 0, nlip, nlsp, nlis, nlsp_old, i, c0, last, any_sig, l_open, K_END, -1)
    if bcheck and t > 0 and _over(es, max_bytes, es_prev):
        return OK, t - 1
    if src == SRC_IDS and t < limit:
        return TOO_LONG, t
    return OK, t


@njit(cache=True)
def walk(src, code, nmax, max_tokens, max_bytes, mag, sgn, ids_in, data, pad, prior, stats, shift, smin_d, smin_l,
         parent, child_ptr, child_idx, has_l, roots, geo, ncls):
    """Run the coder once. See the module docstring for ``src``; ``code`` arithmetic-codes too.

    Every node ``i`` has a bit-plane ``shift[i]``: it is coded as if its magnitude were
    ``mag[i] << shift[i]`` (so it reaches each plane earlier) but no token is spent on the planes
    below its own bit 0; ``smin_d``/``smin_l`` are the smallest shifts in each node's D and L sets.
    ``mag`` (already shifted) and ``sgn`` are read with SRC_COEF (with SRC_IDS ``mag`` is
    empty, or a journal: see :func:`undo`), ``ids_in`` with SRC_IDS, ``data`` (bytes, read past
    their end as ``pad``) with SRC_AC. ``prior`` (N_CTX x 2) gives each context's starting
    P(bit = 0) in 1/65536 and how many decisions that is worth; ``stats`` (N_CTX x 2, or empty)
    receives the zeros and ones each context coded. At most ``max_tokens`` tokens (negative: no limit); with
    ``code``, at most as many tokens as fit in ``max_bytes`` terminated bytes (negative: no limit).

    Returns ``(status, n, ids, node, plane, value, low, neg, out)``: ``status`` OK, BAD_TOKEN (the
    token at ``n`` cannot stand there) or TOO_LONG (``ids_in`` goes on past the end of the stream,
    from ``n``); the ``n`` tokens walked with each one's node and bit-plane; the decoder's
    knowledge (magnitude bits ``value``, lowest known plane ``low``, -1 if insignificant, signs
    ``neg``); and the arithmetic-coded bytes when ``code``.
    """
    n = child_ptr.shape[0] - 1
    if src == SRC_COEF:
        bits, max_d, max_l = set_bits(mag, parent)
    else:
        bits = np.zeros(1, np.int8)
        max_d = bits
        max_l = bits
    limit = np.int64(max_tokens) if 0 <= max_tokens < MAX_TOKENS else np.int64(MAX_TOKENS)
    if src == SRC_IDS and ids_in.shape[0] < limit:
        limit = ids_in.shape[0]
    # Token buffer: from the coefficients, a guess (at most the token limit + 1) that a walk past it
    # doubles: a node's magnitude bits (significance, refinements) plus 2 (its sign, its tests while
    # insignificant). Measured 2.7-3.1 tokens a node on photos, 8.0 on noise, both under it; a
    # sparse pattern can exceed it and walk again. Exact when replaying ids; else 4 tokens a node, or
    # the token count a header gives when that is fewer (a header's count is not trusted further:
    # a hostile one would allocate gigabytes before a byte of payload is read). (Each byte limit
    # also bounds the bytes.)
    if src == SRC_COEF:
        cap = np.int64(2 * n + 1024)
        for i in range(n):
            cap += bits[i]
    elif src == SRC_IDS:
        cap = limit + 1
    else:
        cap = np.int64(4 * n + 1024)
    if limit + 1 < cap:
        cap = limit + 1
    ocap = (cap // 2 + 1024) if code else 1
    if code and max_bytes >= 0:
        ocap = min(ocap, max_bytes + 2 * _ROOM + 64)
    lip = np.empty(n, np.int32)
    lsp = np.empty(n, np.int32)
    lis = np.empty(3 * n + 1, np.int32)
    lis_b = np.empty(3 * n + 1, np.bool_)
    while True:
        value = np.zeros(n, np.int64)
        low = np.full(n, -1, np.int8)
        neg = np.zeros(n, np.bool_)
        ids = np.empty(cap, np.uint8)
        tnode = np.empty(cap, np.int32)
        tplane = np.empty(cap, np.int8)
        # arithmetic coder
        prob = np.empty((N_CTX, 3), np.int64)
        cnt = np.zeros((N_CTX, 3), np.int64)
        for c in range(N_CTX):
            prob[c, 0] = prior[c, 0]
            prob[c, 1] = prior[c, 0]
            prob[c, 2] = prior[c, 0]
            cnt[c, 0] = prior[c, 1]
        out = np.empty(ocap, np.uint8)
        es = np.zeros(6, np.int64)
        es[1] = 0xFFFFFFFF
        es[5] = 1
        es_prev = es.copy()  # the coder's state before the last token: what a byte limit falls back to
        ds = np.zeros(3, np.int64)
        lis_f = np.zeros(3 * n + 1, np.bool_)  # a type B set that must be significant (set with each B entry)
        nbf = np.zeros(n, np.uint16)  # each node's neighbourhood (see _mark)
        nsig = np.zeros(n, np.uint8)  # each node's significant children (see _mark)
        ws = fresh_state(nmax)
        status, t = _walk_core(src, code, limit, max_bytes, mag, sgn, ids_in, data, pad, shift, smin_d, smin_l,
                               parent, child_ptr, child_idx, has_l, roots, geo, ncls, bits, max_d, max_l, value,
                               low, neg, ids, tnode, tplane, prob, cnt, out, es, es_prev, ds, lip, lsp, lis, lis_b,
                               lis_f, nbf, nsig, ws)
        if status == NO_ROOM_IDS:
            cap *= 2
        elif status == NO_ROOM_OUT:
            ocap *= 2
        else:
            break
    if stats.shape[0] == N_CTX:
        stats[:, :] = cnt[:, 1:]
    out = _finish(out, es) if code else out[:0]
    return status, t, ids[:t], tnode[:t], tplane[:t], value, low, neg, out



@njit(cache=True, nogil=True)  # (frames of several requests decode at once: adatok serve)
def apply_tokens(ids, tnode, tplane, shift, value, low, neg, start, stop):
    """Apply tokens ``start .. stop - 1`` of a sequence to what the decoder knows (``value``,
    ``low``, ``neg`` as :func:`walk` leaves them), in place, given each token's node ``tnode`` and
    bit-plane ``tplane`` (from a walk): a ``SIG+``/``SIG-`` of node ``i`` at plane ``p`` sets its
    value to ``2**b`` (``b = p - shift[i]``), its lowest known bit to ``b`` and its sign; a ``REF1``
    sets bit ``b``, and either refinement lowers the known bit to ``b``; the other tokens change no
    coefficient. So the knowledge of prefix after prefix costs their tokens once, not a walk each."""
    for t in range(start, stop):
        tok = ids[t]
        if tok == SIG_POS or tok == SIG_NEG:
            i = tnode[t]
            b = tplane[t] - shift[i]
            value[i] = np.int64(1) << b
            low[i] = b
            neg[i] = tok == SIG_NEG
        elif tok == REF0 or tok == REF1:
            i = tnode[t]
            b = tplane[t] - shift[i]
            if tok == REF1:
                value[i] |= np.int64(1) << b
            low[i] = b


def knowledge(ids, tnode, tplane, shift, k, n):
    """What the decoder knows of the ``n`` coefficients after the first ``k`` tokens (``value``,
    ``low``, ``neg``; see :func:`apply_tokens`)."""
    value = np.zeros(n, np.int64)
    low = np.full(n, -1, np.int8)
    neg = np.zeros(n, np.bool_)
    apply_tokens(ids, tnode, tplane, shift, value, low, neg, 0, k)
    return value, low, neg


@njit(cache=True)
def reconstruct(value, low, neg, bias, parent, shift, hold_roots=True):
    """Signed coefficient estimates from what the decoder knows.

    A coefficient significant with bits known down to plane ``low`` lies in
    ``[value, value + 2**low - 1]``; it is put at ``value + bias * (2**low - 1)`` (``bias = 0.5``:
    the centre of that interval; nearer zero suits the 9/7's peaked detail coefficients). Exact
    once ``low == 0``.

    Except a *quiet root*: an LL coefficient (``parent < 0``) none of whose descendants is
    significant yet, which alone carries its block (all of a flat image, or a flat area of a
    screenshot). It stays where it was put when it became significant, ``top + bias * (top - 1)``
    with ``top = 2**p`` at its significance plane ``p``, and moves only as far as a later bit
    forces it: to the nearest value still possible (the projection of that first estimate onto
    the current interval; projections onto nested intervals compose into one, so no history is
    needed). Its estimate then only ever moves toward the true value, never past it, so the block
    never gets worse with a longer prefix, and an estimate past the pixel range (clipped to an
    exact black or white on output) stays on that side. The quiet roots move together: each is
    taken as known only down to its plane in the earliest pass any of them has had its bit of (plane
    plus ``shift``, the node's bit-plane shift: a region's roots are refined passes ahead of the
    rest), so a refinement pass cut after some of them and before the others leaves them all where
    they were, and the blocks of a flat area stay alike (moved one by one, a flat black 8x12 image exact at 16 tokens decoded to 49.4 dB at
    32, the refined blocks beside the held ones rippling through the synthesis). Re-centred at every bit like the others, a
    flat black 64x1 image decoded to 48.1 dB at 8 tokens and 22.6 dB at 16 (the second bit moved a
    lucky first estimate away). Once a root's tree has a significant coefficient it is one of many
    and is centred like them: the projection costs rate-distortion where a root is refined many
    times (applied to every coefficient it cost photos 0.4 dB). ``benchmarks/monotonicity.py``
    measures both sides (``hold_roots=False``: every coefficient centred, as before).

    One compiled pass (the numpy version of the plain estimate took ~24 ms on a full-length
    768x512 state).
    """
    n = value.shape[0]
    busy = np.zeros(n, np.bool_)  # some descendant is significant (nodes come after their parents)
    for i in range(n - 1, -1, -1):
        p = parent[i]
        if p >= 0 and (low[i] >= 0 or busy[i]):
            busy[p] = True
    # the pass every quiet root has had its bit of, the earliest of theirs: a plane plus the node's shift
    # (one known to its last bit, low 0, is done whatever pass that was)
    common = -1
    if hold_roots:
        for i in range(n):
            if parent[i] < 0 and not busy[i] and low[i] > 0 and low[i] + shift[i] > common:
                common = low[i] + shift[i]
    out = np.empty(n, np.float64)
    for i in range(n):
        v = np.float64(value[i])
        if low[i] >= 0:
            width = np.float64((np.int64(1) << low[i]) - 1)
            if hold_roots and parent[i] < 0 and not busy[i]:
                top = np.float64(np.int64(1) << (_bit_length(value[i]) - 1))
                coarse = np.int64(1) << min(62, max(np.int64(low[i]), common - shift[i]))
                v = np.float64((value[i] // coarse) * coarse)  # its bits down to that pass's plane
                v = min(max(top + bias * (top - 1.0), v), v + np.float64(coarse - 1))
            else:
                v += bias * width
        out[i] = -v if neg[i] else v
    return out


# --- stepping: B walks, one token at a time ------------------------------------------------------
#
# Each row b of the arrays below is one walk (its ``ws``, lists, decoder state and tokens), all on
# the same tree. A step is one compiled call for the whole batch: a call per sequence from Python
# would cost more than the token itself. Compiled without reference counting, like the core (the
# row views would each cost two atomic operations per sequence and step).


@njit(cache=True, _nrt=False, inline="always")
def walk_row(b, limit, jr, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift, smin_d, smin_l,
             parent, child_ptr, child_idx, has_l, roots, geo, ncls, nbf):
    """Walk row ``b`` on the ids in ``ids[b]`` until it holds ``limit`` tokens; ``jr``: a journal
    (see :func:`undo`), or an empty int64 array. Returns the walk's ``(status, n)``."""
    # What only the encoder and the arithmetic coder read, as empty views of arrays of their types
    # (this code cannot allocate, and passing them in costs a step more than the token).
    none8 = ids[b, :0]
    none64 = ws[b, :0]
    row = ids[b]
    # The constants as plain int64 and bool, not numba literals: the core then has the types it
    # has in walk, and is compiled (or loaded from numba's cache) once for both (the literals made
    # a second compile of it, about 50 s in a fresh environment).
    return _walk_core(np.int64(SRC_IDS), np.bool_(False), limit, np.int64(-1), jr, neg[b, :0], row, none8,
                      np.int64(0), shift, smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls,
                      low[b, :0], low[b, :0], low[b, :0], value[b], low[b], neg[b], row, tnode[b], tplane[b],
                      value[:0], value[:0], none8, none64, none64, none64, lip[b], lsp[b], lis[b], lis_b[b],
                      lis_f[b], nbf, none8, ws[b])


@njit(cache=True, _nrt=False)
def _advance(b, limit, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift, smin_d, smin_l,
             parent, child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos, legal, nbf):
    """Walk row ``b`` on the ids in ``ids[b]`` until it holds ``limit`` tokens, then write the pos
    row and the legal ids of the decision it stands before (pos -1 and no id at the end).
    Returns the walk's ``(status, n)``. ``nbf``: an empty uint16 array."""
    status, n = walk_row(b, limit, ws[b, :0], ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f,
                         shift, smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls, nbf)
    kind = ws[b, WS_KIND]
    for v in range(VOCAB_SIZE):
        legal[b, v] = LEGAL[kind, v]
    if kind == K_END:
        for j in range(pos.shape[1]):
            pos[b, j] = -1
    else:
        node = ws[b, WS_NODE]
        pos[b, 0] = ws[b, WS_PLANE]
        for j in range(node_pos.shape[1]):
            pos[b, 1 + j] = node_pos[node, j]
    return status, n


@njit(cache=True, _nrt=False)
def start(counts, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift, smin_d, smin_l,
          parent, child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos, legal, nbf, status):
    """Walk every row ``b`` (fresh: see :func:`fresh_state`) over its first ``counts[b]`` ids in
    ``ids[b]``, writing its next pos row and legal ids; ``status[b]``, ``counts[b]``: the walk's
    status (OK, BAD_TOKEN, TOO_LONG) and where it stopped. ``nbf``: an empty uint16 array."""
    for b in range(ws.shape[0]):
        s, n = _advance(b, counts[b], ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift,
                        smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos, legal,
                        nbf)
        status[b] = s
        counts[b] = n


@njit(cache=True, _nrt=False)
def step(new, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift, smin_d, smin_l, parent,
         child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos, legal, nbf):
    """Append token ``new[b]`` to every walk ``b`` that has not ended (``ids`` needs room for it)
    and walk on to the next decision, writing its pos row and legal ids. The ids are checked
    first, all of them: returns -1, or the first row whose id cannot stand (nothing has changed
    then). A walk that has ended ignores its id, and an id of -1 leaves its walk as it is.
    (Returns ``B + b`` if the walk of row ``b`` refused an id ``LEGAL`` allows: a bug.)"""
    nb = ws.shape[0]
    for b in range(nb):
        kind = ws[b, WS_KIND]
        v = new[b]
        if kind != K_END and v != -1 and (v < 0 or v >= VOCAB_SIZE or not LEGAL[kind, v]):
            return b
    for b in range(nb):
        if ws[b, WS_KIND] == K_END or new[b] == -1:
            continue
        t = ws[b, WS_T]
        ids[b, t] = new[b]
        status, _ = _advance(b, t + 1, ws, ids, tnode, tplane, value, low, neg, lip, lsp, lis, lis_b, lis_f, shift,
                             smin_d, smin_l, parent, child_ptr, child_idx, has_l, roots, geo, ncls, node_pos, pos,
                             legal, nbf)
        if status != OK:
            return nb + b
    return -1
