"""Containers built field by field, with valid checksums: what a hostile (or buggy) writer can make.

Flipping bytes of an ``.atk`` file tests little past its checksums: the header's CRC-32 catches
almost every flip. :func:`frame` writes the header fields as given, however impossible, and then
the checksums that make them pass, so the decoder's own checks are what stands between the values
and an allocation. :func:`hostile_cases` turns real containers into a list of such files, one
hostile value at a time; ``tests/test_hostile.py`` decodes them all, and the ``crafted`` fuzz
target (``fuzz/targets.py``) draws the fields from the fuzzer's bytes.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from adatok.core import sequence as container

U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Fields:
    """Everything a container holds, as values (strings may be raw bytes, numbers anything)."""

    tokenizer: str | bytes
    version: str | bytes
    codec: str | bytes
    shape: tuple[int, ...]
    n_tokens: int
    payload_len: int
    params: Mapping | bytes | str = field(default_factory=dict)
    payload: bytes = b""
    format_version: int = container.FORMAT_VERSION


def _name(v: str | bytes) -> bytes:
    raw = v.encode() if isinstance(v, str) else bytes(v)
    raw = raw[:255]
    return bytes([len(raw)]) + raw


def _params(p: Mapping | bytes | str) -> bytes:
    if isinstance(p, bytes):
        return p
    if isinstance(p, str):
        return p.encode()
    return json.dumps(dict(p), sort_keys=True, separators=(",", ":")).encode()


def frame(f: Fields) -> bytes:
    """The container bytes of ``f``, with a valid header checksum and valid checksums for every
    complete payload chunk that ``f.payload`` holds (as the writer would have computed them);
    ``n_tokens`` and ``payload_len`` are taken modulo 2**32, ``shape`` entries as varints
    (negative ones as 0), the header cut at 65,535 bytes."""
    size, n = container._chunking(f.payload_len & U32)
    crcs = [container._crc16(f.payload[i * size : (i + 1) * size]) for i in range(n)]
    header = b"".join([
        _name(f.tokenizer), _name(f.version), _name(f.codec),
        bytes([len(f.shape) & 0xFF]), *(container._varint(max(0, int(d))) for d in f.shape[:255]),
        struct.pack(">II", f.n_tokens & U32, f.payload_len & U32),
        struct.pack(f">B{n}H", n, *crcs),
        _params(f.params),
    ])[:0xFFFF]
    body = struct.pack(">BH", f.format_version & 0xFF, len(header)) + header
    return container.MAGIC + body + struct.pack(">I", zlib.crc32(body)) + f.payload


def fields_of(data: bytes) -> Fields:
    """The fields of a valid container (the inverse of :func:`frame`)."""
    h, payload = container.parse_container(data)
    return Fields(h["tokenizer"], h["version"], h["codec"], tuple(h["shape"]), h["n_tokens"], h["payload_len"],
                  h["params"], payload)


# --- the hostile values ---------------------------------------------------------------------------

NESTED = "[" * 100_000 + "]" * 100_000  # json.loads: RecursionError
HUGE_INT = "9" * 400  # a JSON integer float() overflows on (within Python's 4,300-digit limit)


DELETE = object()  # an edit's value that removes the key


def _p(**kw) -> Callable[[Fields], Fields]:
    """Set params keys (:data:`DELETE`: remove the key)."""

    def edit(f: Fields) -> Fields:
        p = dict(f.params) if isinstance(f.params, Mapping) else {}
        for k, v in kw.items():
            if v is DELETE:
                p.pop(k, None)
            else:
                p[k] = v
        return replace(f, params=p)

    return edit


def _raw_param(key: str, literal: str) -> Callable[[Fields], Fields]:
    """Set a params key to a JSON literal json.dumps cannot write (a huge integer, deep nesting)."""

    def edit(f: Fields) -> Fields:
        p = dict(f.params) if isinstance(f.params, Mapping) else {}
        p[key] = "@@"
        return replace(f, params=_params(p).replace(b'"@@"', literal.encode()))

    return edit


def _roi(**kw) -> Callable[[Fields], Fields]:
    """Set keys of the region of interest (a valid one first: the coded grid all zeros)."""

    def edit(f: Fields) -> Fields:
        from adatok.wavelet.roi import ROI_SHIFT, cell_log2

        p = dict(f.params) if isinstance(f.params, Mapping) else {}
        g = cell_log2(int(p.get("levels", 0)) if isinstance(p.get("levels"), int) else 0)
        h, w = (f.shape + (1, 1))[:2]
        cells = (-(-max(h, 1) // (1 << g))) * (-(-max(w, 1) // (1 << g)))
        roi = {"g": g, "s": ROI_SHIFT, "d": base64.b64encode(zlib.compress(bytes(min(cells, 1 << 20)))).decode()}
        for k, v in kw.items():
            if v is DELETE:
                roi.pop(k, None)
            else:
                roi[k] = v
        p["roi"] = roi
        return replace(f, params=p)

    return edit


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# (label, edit): each changes one thing of a real container's fields.
EDITS: list[tuple[str, Callable[[Fields], Fields]]] = [
    # counts
    *[(f"n_tokens={v}", (lambda v: lambda f: replace(f, n_tokens=v))(v))
      for v in (0, 1, 2**16, 2**24, 2**31, U32)],
    ("n_tokens+1", lambda f: replace(f, n_tokens=f.n_tokens + 1)),
    *[(f"payload_len={v}", (lambda v: lambda f: replace(f, payload_len=v))(v)) for v in (0, 1, 511, 512, U32)],
    ("payload_len-1", lambda f: replace(f, payload_len=max(0, f.payload_len - 1))),
    ("payload_len+1 (a cut stream)", lambda f: replace(f, payload_len=f.payload_len + 1)),
    ("payload zeros", lambda f: replace(f, payload=bytes(len(f.payload)))),
    ("payload ones", lambda f: replace(f, payload=b"\xff" * len(f.payload))),
    ("payload zeros, n_tokens=2**32-1", lambda f: replace(f, payload=bytes(len(f.payload)), n_tokens=U32)),
    ("payload ones, n_tokens=2**32-1", lambda f: replace(f, payload=b"\xff" * len(f.payload), n_tokens=U32)),
    ("payload ones x 64, n_tokens=2**32-1", lambda f: replace(f, payload=b"\xff" * 64, payload_len=64, n_tokens=U32)),
    ("payload 0xfe then ones, n_tokens=2**32-1", lambda f: replace(f, payload=b"\xfe" + b"\xff" * (len(f.payload) - 1),
                                                                  n_tokens=U32)),
    ("payload 0xfe then ones, n_tokens as coded", lambda f: replace(f, payload=b"\xfe" + b"\xff" * 63, payload_len=64)),
    ("empty payload, n_tokens=2**32-1", lambda f: replace(f, payload=b"", payload_len=0, n_tokens=U32)),
    ("cut payload, payload_len=2**32-1", lambda f: replace(f, payload_len=U32, n_tokens=U32)),
    # shapes
    *[(f"shape={s}", (lambda s: lambda f: replace(f, shape=s))(s)) for s in [
        (), (5,), (0, 0), (0, 7), (7, 0), (1, 1), (1, 1, 3), (2, 2, 2), (2, 2, 4), (28, 28), (28, 28, 1),
        (28, 28, 3), (56, 56, 1), (3, 3, 3, 3), (2**40, 2**40), (2**63, 1), (1, 2**70), (2**25, 2**25, 3),
        (50_000_001, 1), (7072, 7072, 3), tuple([1] * 255)]],
    ("shape gray<->colour", lambda f: replace(f, shape=f.shape[:2] if len(f.shape) == 3 and f.shape[2] == 3
                                               else (*f.shape[:2], 3))),
    ("shape transposed", lambda f: replace(f, shape=(f.shape[1], f.shape[0], *f.shape[2:]))),
    ("shape doubled", lambda f: replace(f, shape=(2 * f.shape[0], 2 * f.shape[1], *f.shape[2:]))),
    # names
    ("tokenizer unknown", lambda f: replace(f, tokenizer="no-such")),
    ("tokenizer empty", lambda f: replace(f, tokenizer="")),
    ("tokenizer not UTF-8", lambda f: replace(f, tokenizer=b"\xff\xfe")),
    ("tokenizer a path", lambda f: replace(f, tokenizer="/etc")),
    ("tokenizer ..", lambda f: replace(f, tokenizer="..")),
    ("version other", lambda f: replace(f, version="0+deadbeef")),
    ("version not UTF-8", lambda f: replace(f, version=b"\x80")),
    ("codec other", lambda f: replace(f, codec="raw")),
    ("codec long", lambda f: replace(f, codec="x" * 255)),
    ("format version 0", lambda f: replace(f, format_version=0)),
    ("format version 2", lambda f: replace(f, format_version=2)),
    # params: not an object
    *[(f"params {lit[:12]!r}", (lambda lit: lambda f: replace(f, params=lit))(lit)) for lit in [
        "", "null", "[]", "1", '"x"', "{", "{}", '{"a":', "\xff", NESTED, '{"levels":' + NESTED[:60000] + "}",
        "{" + HUGE_INT + "}", "NaN", '{"a":1}{"b":2}']],
    ("params not UTF-8", lambda f: replace(f, params=b'{"levels":"\xff"}')),
    # params: each key of the wavelet header
    *[(f"levels={'(none)' if v is DELETE else repr(v)}", _p(levels=v)) for v in (DELETE, None, -1, 0, 7, 99, 2**64, 1.0, 1.5, "1", True, [1], {})],
    *[(f"nmax={'(none)' if v is DELETE else repr(v)}", _p(nmax=v)) for v in (DELETE, None, -2, -1, 0, 61, 62, 2**63, -2**63, 1.0, "3", False, [3])],
    *[(f"step={'(none)' if v is DELETE else repr(v)}", _p(step=v)) for v in (DELETE, None, 0, -1.0, 1, 1.0000001, 2.0, float("nan"), float("inf"),
                                             float("-inf"), "1.0", True, [1.0], 1e308)],
    ("step=9...9 (400 digits)", _raw_param("step", HUGE_INT)),
    ("levels=9...9 (400 digits)", _raw_param("levels", HUGE_INT)),
    ("nmax=9...9 (400 digits)", _raw_param("nmax", HUGE_INT)),
    ("nmax nested", _raw_param("nmax", NESTED[:2000])),
    *[(f"rep={v!r}", _p(rep=v)) for v in ([1, 1], [0, 1], [-1, -1], [1], [1, 1, 1], [2, 2], [3, 1], [1.5, 1],
                                          [True, True], "11", {"a": 1}, [2**63, 1], [1, 2**70], 7)],
    *[(f"unknown key {k!r}", _p(**{k: 1})) for k in ("x", "ROI", "__class__", "")],
    # the region of interest
    ("roi valid (all zeros)", _roi()),
    ("roi not an object", _p(roi=[1, 2])),
    ("roi null", _p(roi=None)),
    *[(f"roi g={v!r}", _roi(g=v)) for v in (-1, 31, 99, 2**64, 1.5, "0", True)],
    *[(f"roi s={v!r}", _roi(s=v)) for v in (0, 3, 5, 4.0, 4.5, "4", True, [4])],
    *[(f"roi d={'(none)' if v is DELETE else repr(v)}"[:40], _roi(d=v)) for v in ("", "??", "AAAA", [1], {"a": 1}, 5, None, DELETE,
                                                 _b64(zlib.compress(bytes(10**6))),
                                                 _b64(zlib.compress(b"\x09" * 64)),
                                                 _b64(zlib.compress(b"\x04" * 10**5)),
                                                 _b64(b"not zlib"), "A" * 65000)],
    ("roi extra key", _roi(x=1)),
    ("roi missing d", _roi(d=DELETE)),
]


def hostile_cases(seeds: Mapping[str, list[bytes]]) -> Iterator[tuple[str, bytes]]:
    """``(label, container)`` for every edit of :data:`EDITS` applied to every seed container
    (``seeds``: tokenizer name -> valid containers made by it)."""
    for name, datas in seeds.items():
        for i, data in enumerate(datas):
            base = fields_of(data)
            for label, edit in EDITS:
                yield f"{name}[{i}] {label}", frame(edit(base))
