"""Set partitioning in hierarchical trees over any wavelet layout: the wavelet language's grammar.

The coder walks integer wavelet coefficients bit-plane by bit-plane, from the most significant
plane down to plane 0, and emits one token per coding decision (see ``docs/wavelet-language.md``).
Three lists drive it, as in SPIHT: the list of insignificant pixels (LIP), of insignificant sets
(LIS; type A = all descendants of a node, type B = all descendants but the children) and of
significant pixels (LSP). Each plane has a sorting pass (LIP, then LIS) and a refinement pass over
the coefficients that were significant before the plane began.

The trees are general (children given as CSR arrays), so odd sizes, 1-pixel axes and several
channels need no special case. Both hot loops are compiled with numba; there is no Python loop
per coefficient or per token. Hand-written because no maintained library offers an embedded
set-partitioning coder with token-level output.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The alphabet. Significance tokens of a single coefficient carry its sign.
SIG0, SIG_POS, SIG_NEG, D0, D1, L0, L1, REF0, REF1 = range(9)
VOCAB_SIZE = 9
TOKEN_NAMES = ("SIG0", "SIG+", "SIG-", "D0", "D1", "L0", "L1", "REF0", "REF1")

# Decoder status codes.
OK, BAD_TOKEN, TOO_LONG = 0, 1, 2


@njit(cache=True)
def set_maxima(mag, parent):
    """Largest magnitude among each node's descendants (D) and grandchildren-and-below (L).

    Nodes are numbered so that a parent comes before its children.
    """
    n = mag.shape[0]
    max_d = np.zeros(n, np.int64)
    max_l = np.zeros(n, np.int64)
    for i in range(n - 1, -1, -1):
        p = parent[i]
        if p >= 0:
            v = mag[i] if mag[i] > max_d[i] else max_d[i]
            if v > max_d[p]:
                max_d[p] = v
            if max_d[i] > max_l[p]:
                max_l[p] = max_d[i]
    return max_d, max_l


@njit(cache=True)
def _grow(ids, tnode, tplane):
    cap = ids.shape[0] * 2
    ids2 = np.empty(cap, np.uint8)
    tn2 = np.empty(cap, np.int32)
    tp2 = np.empty(cap, np.int8)
    ids2[: ids.shape[0]] = ids
    tn2[: ids.shape[0]] = tnode
    tp2[: ids.shape[0]] = tplane
    return ids2, tn2, tp2


@njit(cache=True)
def encode_tokens(mag, neg, parent, child_ptr, child_idx, has_l, roots, nmax, max_tokens):
    """Emit the token stream of integer magnitudes ``mag`` (with signs ``neg``).

    ``roots`` are the tree roots (the LL coefficients), in scan order. Stops after ``max_tokens``
    tokens (a negative value means no limit). Returns ``(ids, node, plane)`` per token.
    """
    n = mag.shape[0]
    max_d, max_l = set_maxima(mag, parent)
    cap = 1024
    ids = np.empty(cap, np.uint8)
    tnode = np.empty(cap, np.int32)
    tplane = np.empty(cap, np.int8)
    t = 0
    lip = np.empty(n, np.int32)
    lsp = np.empty(n, np.int32)
    lis = np.empty(3 * n + 1, np.int32)
    lis_b = np.empty(3 * n + 1, np.bool_)
    nlip = 0
    nlsp = 0
    nlis = 0
    for r in range(roots.shape[0]):
        i = roots[r]
        lip[nlip] = i
        nlip += 1
        if child_ptr[i + 1] > child_ptr[i]:
            lis[nlis] = i
            lis_b[nlis] = False
            nlis += 1
    limit = max_tokens if max_tokens >= 0 else np.int64(1) << 62
    for plane in range(nmax, -1, -1):
        thr = np.int64(1) << plane
        nlsp_old = nlsp
        # sorting pass, LIP
        w = 0
        for r in range(nlip):
            if t >= limit:
                return ids[:t], tnode[:t], tplane[:t]
            if t >= ids.shape[0]:
                ids, tnode, tplane = _grow(ids, tnode, tplane)
            i = lip[r]
            tnode[t] = i
            tplane[t] = plane
            if mag[i] >= thr:
                ids[t] = SIG_NEG if neg[i] else SIG_POS
                lsp[nlsp] = i
                nlsp += 1
            else:
                ids[t] = SIG0
                lip[w] = i
                w += 1
            t += 1
        nlip = w
        # sorting pass, LIS (entries appended at the end are processed in the same pass)
        r = 0
        w = 0
        e = nlis
        while r < e:
            i = lis[r]
            is_b = lis_b[r]
            r += 1
            if t >= limit:
                return ids[:t], tnode[:t], tplane[:t]
            if t >= ids.shape[0]:
                ids, tnode, tplane = _grow(ids, tnode, tplane)
            tnode[t] = i
            tplane[t] = plane
            if not is_b:
                if max_d[i] >= thr:
                    ids[t] = D1
                    t += 1
                    for c in range(child_ptr[i], child_ptr[i + 1]):
                        k = child_idx[c]
                        if t >= limit:
                            return ids[:t], tnode[:t], tplane[:t]
                        if t >= ids.shape[0]:
                            ids, tnode, tplane = _grow(ids, tnode, tplane)
                        tnode[t] = k
                        tplane[t] = plane
                        if mag[k] >= thr:
                            ids[t] = SIG_NEG if neg[k] else SIG_POS
                            lsp[nlsp] = k
                            nlsp += 1
                        else:
                            ids[t] = SIG0
                            lip[nlip] = k
                            nlip += 1
                        t += 1
                    if has_l[i]:
                        lis[e] = i
                        lis_b[e] = True
                        e += 1
                else:
                    ids[t] = D0
                    t += 1
                    lis[w] = i
                    lis_b[w] = False
                    w += 1
            else:
                if max_l[i] >= thr:
                    ids[t] = L1
                    t += 1
                    for c in range(child_ptr[i], child_ptr[i + 1]):
                        k = child_idx[c]
                        if child_ptr[k + 1] > child_ptr[k]:
                            lis[e] = k
                            lis_b[e] = False
                            e += 1
                else:
                    ids[t] = L0
                    t += 1
                    lis[w] = i
                    lis_b[w] = True
                    w += 1
        nlis = w
        # refinement pass
        for r in range(nlsp_old):
            if t >= limit:
                return ids[:t], tnode[:t], tplane[:t]
            if t >= ids.shape[0]:
                ids, tnode, tplane = _grow(ids, tnode, tplane)
            i = lsp[r]
            tnode[t] = i
            tplane[t] = plane
            ids[t] = REF1 if (mag[i] >> plane) & 1 else REF0
            t += 1
    return ids[:t], tnode[:t], tplane[:t]


@njit(cache=True)
def decode_tokens(ids, child_ptr, child_idx, has_l, roots, nmax):
    """Replay the coder on ``ids``: the decoder's half of :func:`encode_tokens`.

    Returns ``(status, at, value, low, neg, node, plane)``: ``status`` is OK, BAD_TOKEN (the token
    at index ``at`` is not one that may stand there) or TOO_LONG (tokens past the end of the
    stream, from ``at``); ``value`` holds the magnitude bits decoded so far, ``low`` the lowest
    plane known for each significant coefficient (-1: never significant), ``neg`` the signs, and
    ``node``/``plane`` the place of every token decoded.
    """
    n = child_ptr.shape[0] - 1
    nt = ids.shape[0]
    value = np.zeros(n, np.int64)
    low = np.full(n, -1, np.int8)
    neg = np.zeros(n, np.bool_)
    tnode = np.empty(nt, np.int32)
    tplane = np.empty(nt, np.int8)
    lip = np.empty(n, np.int32)
    lsp = np.empty(n, np.int32)
    lis = np.empty(3 * n + 1, np.int32)
    lis_b = np.empty(3 * n + 1, np.bool_)
    nlip = 0
    nlsp = 0
    nlis = 0
    for r in range(roots.shape[0]):
        i = roots[r]
        lip[nlip] = i
        nlip += 1
        if child_ptr[i + 1] > child_ptr[i]:
            lis[nlis] = i
            lis_b[nlis] = False
            nlis += 1
    t = 0
    for plane in range(nmax, -1, -1):
        thr = np.int64(1) << plane
        nlsp_old = nlsp
        w = 0
        for r in range(nlip):
            i = lip[r]
            if t >= nt:
                return OK, t, value, low, neg, tnode, tplane
            tok = ids[t]
            tnode[t] = i
            tplane[t] = plane
            if tok == SIG_POS or tok == SIG_NEG:
                value[i] = thr
                low[i] = plane
                neg[i] = tok == SIG_NEG
                lsp[nlsp] = i
                nlsp += 1
            elif tok == SIG0:
                lip[w] = i
                w += 1
            else:
                return BAD_TOKEN, t, value, low, neg, tnode, tplane
            t += 1
        nlip = w
        r = 0
        w = 0
        e = nlis
        while r < e:
            i = lis[r]
            is_b = lis_b[r]
            r += 1
            if t >= nt:
                return OK, t, value, low, neg, tnode, tplane
            tok = ids[t]
            tnode[t] = i
            tplane[t] = plane
            if not is_b:
                if tok == D1:
                    t += 1
                    for c in range(child_ptr[i], child_ptr[i + 1]):
                        k = child_idx[c]
                        if t >= nt:
                            return OK, t, value, low, neg, tnode, tplane
                        tok = ids[t]
                        tnode[t] = k
                        tplane[t] = plane
                        if tok == SIG_POS or tok == SIG_NEG:
                            value[k] = thr
                            low[k] = plane
                            neg[k] = tok == SIG_NEG
                            lsp[nlsp] = k
                            nlsp += 1
                        elif tok == SIG0:
                            lip[nlip] = k
                            nlip += 1
                        else:
                            return BAD_TOKEN, t, value, low, neg, tnode, tplane
                        t += 1
                    if has_l[i]:
                        lis[e] = i
                        lis_b[e] = True
                        e += 1
                elif tok == D0:
                    t += 1
                    lis[w] = i
                    lis_b[w] = False
                    w += 1
                else:
                    return BAD_TOKEN, t, value, low, neg, tnode, tplane
            else:
                if tok == L1:
                    t += 1
                    for c in range(child_ptr[i], child_ptr[i + 1]):
                        k = child_idx[c]
                        if child_ptr[k + 1] > child_ptr[k]:
                            lis[e] = k
                            lis_b[e] = False
                            e += 1
                elif tok == L0:
                    t += 1
                    lis[w] = i
                    lis_b[w] = True
                    w += 1
                else:
                    return BAD_TOKEN, t, value, low, neg, tnode, tplane
        nlis = w
        for r in range(nlsp_old):
            i = lsp[r]
            if t >= nt:
                return OK, t, value, low, neg, tnode, tplane
            tok = ids[t]
            tnode[t] = i
            tplane[t] = plane
            if tok == REF1:
                value[i] |= thr
            elif tok != REF0:
                return BAD_TOKEN, t, value, low, neg, tnode, tplane
            low[i] = plane
            t += 1
    if t < nt:
        return TOO_LONG, t, value, low, neg, tnode, tplane
    return OK, t, value, low, neg, tnode, tplane


def reconstruct(value: np.ndarray, low: np.ndarray, neg: np.ndarray, bias: float = 0.5) -> np.ndarray:
    """Signed coefficient estimates from what the decoder knows.

    A coefficient significant with bits known down to plane ``low`` lies in
    ``[value, value + 2**low - 1]``; it is put at ``value + bias * (2**low - 1)`` (``bias = 0.5``:
    the centre of the remaining uncertainty interval). Exact once ``low == 0``.
    """
    out = value.astype(np.float64)
    sig = low >= 0
    out[sig] += bias * (np.left_shift(1, low[sig].astype(np.int64)) - 1)
    out[neg] = -out[neg]
    return out
