"""TokenSequence: an ordered, prefix-decodable token sequence, and its byte form (``.atk``).

Byte layout (fixed-width integers big-endian; ``varint`` = LEB128; ``str`` = u8 length + UTF-8)::

    magic        4 bytes   b"\x89ATK"
    version      u8        container format version (FORMAT_VERSION)
    header_len   u16       length of the header that follows
    header:
      tokenizer  str       name of the tokenizer that made the sequence
      tok_ver    str       that tokenizer's version
      codec      str       how the payload is coded
      ndim       u8        then one varint per dimension of the image shape
      n_tokens   u32       tokens in the full sequence
      payload    u32       payload length in bytes
      n_chunks   u8        then a u16 per chunk: CRC-32 (low 16 bits) of each payload chunk
      params     JSON      the rest of the header: what the decoder needs (tokenizer-specific)
    header_crc   u32       CRC-32 of the version, header_len and header bytes
    payload      bytes     the token ids, coded by the tokenizer's payload codec

The payload is embedded: bytes cut anywhere after the header decode to the longest token prefix
they determine. The payload is split into equal chunks, one per started 512 bytes and at most 8, and each
complete chunk is checked, so flipped bytes are caught (in a cut payload, all but the last,
partial chunk). Token positions are not stored: the tokenizer recomputes them from the ids. The
header is binary and small (about 100 bytes) because it counts against every bit budget.
"""

from __future__ import annotations

import json
import struct
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import JSON_ERRORS, is_whole, shown, whole_index
from .errors import ContainerError, InvalidTokensError, TokenizerMismatchError, UnknownTokenizerError

MAGIC = b"\x89ATK"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class TokenSequence:
    """An ordered token sequence of one image; any prefix of it decodes to an image.

    Attributes:
        ids: int32 token ids, shape (n,).
        pos: int32 token positions, shape (n, P); the column names are ``pos_fields``. A tokenizer
            may pass a function of no arguments instead, which makes them on first access (a new
            array each call: the sequence keeps it without a copy).
        shape: shape of the encoded image (H, W) or (H, W, C).
        tokenizer: name of the tokenizer that made it (e.g. ``"wavelet"``).
        version: that tokenizer's version; a decoder refuses sequences of another version.
        params: what the decoder needs besides the ids (JSON-serialisable).
        pos_fields: names of the ``pos`` columns.
    """

    ids: np.ndarray
    pos: np.ndarray
    shape: tuple[int, ...]
    tokenizer: str
    version: str
    params: Mapping[str, Any] = field(default_factory=dict)
    pos_fields: tuple[str, ...] = ()
    #: What a tokenizer already computed for these exact ids (coded payloads by codec name, the
    #: decoder's state): spares doing it again. Not part of the sequence's value; ``prefix`` drops it.
    #: Not an argument: a sequence made by ``dataclasses.replace`` (other ids) starts without it.
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = _checked_ids(self.ids)
        ids.flags.writeable = False
        object.__setattr__(self, "ids", ids)
        if callable(self.pos):
            # Positions on first access (see __getattr__): building them takes ~10 ms of a 768x512
            # encode at Bpp(1.0) (~120 ms at full length), and coding to or from bytes never reads them.
            self.__dict__["_make_pos"] = self.pos
            del self.__dict__["pos"]
        else:
            self._set_pos(self.pos)
        object.__setattr__(self, "shape", _checked_shape(self.shape))
        object.__setattr__(self, "pos_fields", tuple(self.pos_fields))
        object.__setattr__(self, "params", frozen_params(self.params))

    def _set_pos(self, pos, fresh: bool = False) -> np.ndarray:
        pos = _checked_ints(pos, "pos", fresh)
        if pos.ndim != 2 or pos.shape[0] != self.ids.shape[0]:
            raise InvalidTokensError(f"pos must have shape (n, P) with n = {self.ids.shape[0]}, got {pos.shape}")
        pos.flags.writeable = False
        self.__dict__["pos"] = pos
        self.__dict__.pop("_make_pos", None)
        return pos

    def __getattr__(self, name: str):
        """Called only for attributes not set: ``pos`` not made yet."""
        if name == "pos":
            make = self.__dict__.get("_make_pos")
            if make is not None:  # (a maker's positions are made for this sequence alone: not copied)
                return self._set_pos(make(), fresh=True)
            if "pos" in self.__dict__:  # another thread made them after this one looked
                return self.__dict__["pos"]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> dict:
        self.pos  # noqa: B018  (a pickled sequence carries its positions, not the function that makes them)
        return {k: v for k, v in self.__dict__.items() if k != "cache"} | {"cache": {}}

    def __setstate__(self, state: dict) -> None:
        """An unpickled (or deep-copied) sequence is as frozen as the original: its arrays read-only."""
        self.__dict__.update(state)
        for name in ("ids", "pos"):  # (arrays an unpickling made: held by no one else, unless views)
            if isinstance(state.get(name), np.ndarray):
                arr = state[name]
                self.__dict__[name] = _frozen(arr if arr.flags.owndata else arr.copy())

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"TokenSequence(tokenizer={self.tokenizer!r}, n={len(self)}, shape={self.shape})"

    def prefix(self, k: int) -> TokenSequence:
        """The first ``min(k, len(self))`` tokens, as a sequence of the same image. ``k``: a whole
        number >= 0, of any integer type (``np.int64(3)``, ``torch.tensor(3)``: a scalar)."""
        n = whole_index(k)
        if n is None or n < 0:
            raise InvalidTokensError(f"prefix length must be a whole number >= 0, got {k!r}")
        k = min(n, len(self))
        make = self.__dict__.get("_make_pos")  # (read first: a thread making them sets pos, then drops this)
        if make is not None:  # not made yet: the prefix makes its own from the maker (not from self, whose
            pos = lambda: make()[:k]  # noqa: E731  (cache it would otherwise keep alive)
        else:
            pos = self.__dict__["pos"][:k]
        return TokenSequence(self.ids[:k], pos, self.shape, self.tokenizer, self.version, self.params,
                             self.pos_fields)

    @property
    def num_pixels(self) -> int:
        """H * W of the encoded image."""
        return int(self.shape[0] * self.shape[1])

    def to_bytes(self) -> bytes:
        """The sequence as a self-describing, embedded byte string (the ``.atk`` format)."""
        from .registry import maker

        try:
            tok = maker(self)
        except UnknownTokenizerError:
            raise UnknownTokenizerError(
                f"the .atk container is for sequences of the tokenizers adatok.load finds; "
                f"{self.tokenizer!r} is not one: write this sequence with its own tokenizer's to_bytes (the grid "
                "baseline: grid.to_bytes(seq), with the grid that made it)") from None
        codec = getattr(tok, "payload_codec", None) or RAW_CODEC
        key = "payload:" + codec.codec_name
        payload = self.cache.get(key)
        if payload is None:
            payload = self.cache[key] = codec.pack(self)
        return _container(self, codec.codec_name, payload)

    @classmethod
    def from_bytes(cls, data: bytes, max_tokens: int | None = None) -> TokenSequence:
        """Parse bytes made by :meth:`to_bytes`, or any cut of them past the header.

        A cut payload gives the longest token prefix its bytes determine. ``max_tokens``: at most
        that many tokens (``from_bytes(data).prefix(k)``, without decoding the rest of a long
        payload: the wavelet codecs stop their walk there). Raises
        :class:`~adatok.ContainerError` for anything that is not such bytes. Every complete chunk of
        the payload is checked (flipped, inserted or deleted bytes there are refused); the last,
        partial chunk of a cut payload has no checksum to check, so a file with bytes lost from that
        chunk reads as a cut one (its tokens from the gap on are wrong), unless it then codes all its
        tokens, which no cut does (refused).
        """
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer)
                                       or max_tokens < 0):
            raise InvalidTokensError(f"max_tokens must be a whole number >= 0, got {max_tokens!r}")
        from .registry import find, known, names, pattern_names

        header, payload = parse_container(data)
        if not known(header["tokenizer"]):
            raise ContainerError(f"made by tokenizer {header['tokenizer']!r}, which is not registered here "
                                 f"(known: {', '.join(names(views=True) + pattern_names())}); a checkpoint of your "
                                 "own: load it first "
                                 "with adatok.load(FOLDER), or give --tokenizer FOLDER on the command line")
        tok = find(header["tokenizer"], header.get("version"))
        codec = getattr(tok, "payload_codec", None) or RAW_CODEC
        if codec.codec_name != header["codec"] and header.get("version") != getattr(tok, "version", None):
            # another version of the name (a checkpoint of your own trained under a shipped name): say so
            check_maker(header["tokenizer"], header["version"], tok, OTHER_WEIGHTS)
        if codec.codec_name != header["codec"]:
            raise ContainerError(f"payload codec {header['codec']!r} is not the one {header['tokenizer']!r} uses "
                                 f"({codec.codec_name!r}): the file is corrupt or from another adatok")
        if hasattr(codec, "unpack_sequence"):  # ids and positions in one pass
            seq = codec.unpack_sequence(header, payload, limit=max_tokens)
        else:
            seq = tok.sequence_from_ids(codec.unpack(header, payload), header)
        full = int(header["n_tokens"])
        if len(payload) < header["payload_len"] and full and len(seq) >= full:
            # No cut of a payload codes all of its tokens: every codec ends its payload with the fewest
            # bytes that pin its last token (the arithmetic coder's termination; one or four bytes a
            # token in the raw one), so a payload short of its length that still gives every token
            # lost bytes from inside, and the tokens after the gap were read from the wrong bytes. A
            # gap in the last, partial chunk of a cut payload is otherwise unchecked (its checksum is
            # of the whole chunk).
            raise ContainerError(f"the payload holds {len(payload):,} of its {header['payload_len']:,} bytes yet "
                                 f"codes all {full:,} tokens, which no cut of it does: bytes are missing from "
                                 "inside it (the file is damaged)")
        return seq if max_tokens is None or len(seq) <= max_tokens else seq.prefix(int(max_tokens))


_INT32 = np.iinfo(np.int32)


def _checked_ints(values, what: str, fresh: bool = False) -> np.ndarray:
    """``values`` as a contiguous int32 array, refusing what a cast would change: values that are
    not whole numbers (a float array is taken only when every value is whole: 2.7 is not truncated;
    bools, strings and objects are not numbers here) and values outside int32 (a cast would wrap
    ``2**32`` to 0). The array is read-only and no one else's: ``values`` is copied unless it is
    already such (a view of a sequence's arrays, or of ``bytes``), or ``fresh`` (made for this
    sequence, held by no one else: a tokenizer's own output)."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidTokensError(f"{what} must be an array of whole numbers ({exc})") from None
    if arr.size == 0:
        return _frozen(np.zeros(arr.shape, np.int32))
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise InvalidTokensError(f"{what} must be whole numbers, got {arr.dtype} values that are not")
    elif arr.dtype.kind not in "iu":
        raise InvalidTokensError(f"{what} must be whole numbers (an integer array), got dtype {arr.dtype}")
    # (compared as Python numbers: float32(2**31) equals float32(int32 max), and it wrapped to -2**31)
    if int(arr.min()) < _INT32.min or int(arr.max()) > _INT32.max:
        raise InvalidTokensError(f"{what} must fit in int32, got values from {arr.min()} to {arr.max()}")
    out = np.ascontiguousarray(arr, dtype=np.int32)
    if fresh or (out is not arr and not np.may_share_memory(out, arr)):  # no one else holds it: kept as it is
        return _frozen(out)
    return out if _owned(out) else _frozen(out.copy())  # a sequence is frozen: not a view of the caller's array


#: The arrays this module froze (by id, while they live): memory no one else holds, so that views of
#: it (a sequence's prefixes) need no copy. (Read-only is not enough: the owner of an array may make
#: it writable again.)
_FROZEN: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def _frozen(arr: np.ndarray) -> np.ndarray:
    """``arr`` (an array only this module holds) made read-only and noted as such."""
    arr.flags.writeable = False
    _FROZEN[id(arr)] = arr
    return arr


def _owned(arr: np.ndarray) -> bool:
    """Whether no one can write to ``arr``'s memory: read-only, and so is every array it views,
    down to one this module froze or to ``bytes``."""
    a: Any = arr
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        if _FROZEN.get(id(a)) is a:
            return True
        a = a.base
    return isinstance(a, bytes)


def _checked_shape(shape) -> tuple[int, ...]:
    """An image shape as a tuple of whole numbers >= 0 (:class:`~adatok.InvalidTokensError` else:
    ``12.7`` is not truncated, nor ``"12"`` read as digits)."""
    if isinstance(shape, str | bytes) or not isinstance(shape, tuple | list | np.ndarray):
        raise InvalidTokensError(f"shape must be a tuple of whole numbers, got {shape!r}")
    dims = list(shape)
    if not all(is_whole(d) and d >= 0 for d in dims):
        raise InvalidTokensError(f"shape must be a tuple of whole numbers >= 0, got {shape!r}")
    if len(dims) not in (2, 3):  # (accepted, then num_pixels raised IndexError and to_bytes refused it)
        raise InvalidTokensError(f"shape must be an image's (H, W) or (H, W, C), got {shape!r}")
    return tuple(int(d) for d in dims)


class FrozenParams(dict):
    """A sequence's params: a ``dict`` that refuses changes (a sequence is frozen, and its prefixes
    share its params; a change would have left bytes cached for the old ones). Make a new one with
    ``dict(seq.params) | {...}``."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a TokenSequence's params cannot be changed; build new ones: dict(seq.params) | {...}")

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = __ior__ = _refuse

    def __reduce__(self):
        return (FrozenParams, (dict(self),))

    def __copy__(self) -> FrozenParams:
        return self

    def __deepcopy__(self, memo) -> FrozenParams:
        return self


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays made Python's; containers copied)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InvalidTokensError(f"params must have string keys, got {list(value)!r} in {where}")
        return {k: _plain(v, where) for k, v in value.items()}
    raise InvalidTokensError(f"params hold JSON values only, got {type(value).__name__} {value!r} in {where}")


def frozen_params(params: Any) -> FrozenParams:
    """``params`` checked and copied into a :class:`FrozenParams` (a mapping with string keys and
    JSON values; numpy numbers become Python's): :class:`~adatok.InvalidTokensError` else."""
    if isinstance(params, FrozenParams):
        return params
    if not isinstance(params, Mapping):
        raise InvalidTokensError(f"params must be a mapping (a dict), got {type(params).__name__}")
    try:
        return FrozenParams(_plain(params, "params"))
    except RecursionError:  # (nested past Python's limit, or holding itself)
        raise InvalidTokensError("params are nested too deeply (or hold themselves): JSON values only") from None


def _checked_ids(ids) -> np.ndarray:
    """Token ids as a flat int32 array (see :func:`_checked_ints`); a 2-D array is refused (it was
    flattened into one sequence)."""
    arr = _checked_ints(ids, "token ids")
    if arr.ndim > 1:
        raise InvalidTokensError(f"token ids must be one row of ids, got an array of shape {arr.shape}: one "
                                 "TokenSequence is one image's sequence")
    return arr.reshape(-1)


#: What to do about a sequence made by another version of a tokenizer's name: other weights (a
#: checkpoint of your own trained under a shipped checkpoint's name, read back without its folder).
OTHER_WEIGHTS = ("other weights: read it with the checkpoint folder that made it (--tokenizer FOLDER on the command "
                 "line, adatok.load(FOLDER) first in Python)")


def check_maker(name: str, version: str, tokenizer, mismatch: str = "use the adatok that made it",
                what: str = "this sequence", use: str = "decode it") -> None:
    """Raise :class:`TokenizerMismatchError` unless a sequence made by ``name`` / ``version`` is one
    ``tokenizer`` (with ``.name`` and ``.version``) can decode; ``mismatch`` says what to do about a
    version that differs; ``what`` is the sequence (a file's name); ``use``: what to do with it
    (a stepper steps it). On the command line the tokenizer is ``--tokenizer``'s, which a file names
    itself unless a checkpoint of your own made it."""
    from .registry import registered

    if name != tokenizer.name:
        made = f"{what} was made by {name!r}, not {tokenizer.name!r}"
        raise TokenizerMismatchError(
            f"{made}: {use} with adatok.load({name!r})",
            cli=f"{made}: " + ("leave out --tokenizer (a file names the tokenizer that made it)" if registered(name)
                               else f"give --tokenizer the checkpoint folder of {name!r} that made it"))
    if version != tokenizer.version:
        raise TokenizerMismatchError(f"{what} was made by {name!r} version {version}, this is "
                                     f"version {tokenizer.version}: {mismatch}")


def _chunking(payload_len: int) -> tuple[int, int]:
    """(chunk size, number of chunks) of the payload checksums: one chunk per started 512 bytes, at
    most 8, of equal size (the last one shorter)."""
    if payload_len == 0:
        return 0, 0
    n = min(8, -(-payload_len // 512))
    size = -(-payload_len // n)
    return size, -(-payload_len // size)


def unchecked_bytes(header: dict, payload: bytes) -> int:
    """How many bytes at the end of a cut ``payload`` (as :func:`parse_container` gives it) no
    checksum covers: those past its last complete chunk. 0 for a whole payload."""
    if len(payload) >= header["payload_len"]:
        return 0
    size, _ = _chunking(header["payload_len"])
    return len(payload) - len(payload) // size * size


def _crc16(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFF


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ContainerError(f"{text[:20]!r}... ({len(raw)} bytes) is too long for a container header (at most "
                             "255 bytes): give the tokenizer a shorter name")
    return bytes([len(raw)]) + raw


class _Reader:
    """Reads the header fields, raising ContainerError when they run past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ContainerError("malformed header: a field runs past its end (the file is corrupt)")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        v, shift = 0, 0
        while True:
            b = self.u8()
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v
            if shift > 63:
                raise ContainerError("malformed header: an integer is too long (the file is corrupt)")

    def str(self) -> str:
        try:
            return self.take(self.u8()).decode()
        except UnicodeDecodeError:
            raise ContainerError("malformed header: a name is not UTF-8 (the file is corrupt)") from None


def _frame(seq: TokenSequence, codec: str, payload_len: int, crcs: list[int]) -> bytes:
    """Everything a container holds before its payload."""
    header = b"".join([
        _str(seq.tokenizer), _str(seq.version), _str(codec),
        bytes([len(seq.shape)]), *(_varint(d) for d in seq.shape),
        struct.pack(">II", len(seq), payload_len),
        struct.pack(f">B{len(crcs)}H", len(crcs), *crcs),
        json.dumps(dict(seq.params), sort_keys=True, separators=(",", ":")).encode(),
    ])
    if len(header) > 0xFFFF:
        raise ContainerError(f"the sequence's header takes {len(header):,} bytes, more than a container holds "
                             "(65,535): its parameters are too large (a region of interest finer than such an image "
                             "can carry?)")
    body = struct.pack(">BH", FORMAT_VERSION, len(header)) + header
    return MAGIC + body + struct.pack(">I", zlib.crc32(body))


def _container(seq: TokenSequence, codec: str, payload: bytes) -> bytes:
    size, n = _chunking(len(payload))
    crcs = [_crc16(payload[i * size : (i + 1) * size]) for i in range(n)]
    return _frame(seq, codec, len(payload), crcs) + payload


def container_overhead(seq: TokenSequence, payload_len: int, codec: str) -> int:
    """Bytes the container adds around a ``payload_len``-byte payload of ``seq`` coded by ``codec``
    (whatever its token count: the counts are fixed-width, so a bit budget is met in one pass)."""
    return len(_frame(seq, codec, payload_len, [0] * _chunking(payload_len)[1]))


def header_size(data: bytes) -> int:
    """Bytes taken by everything before the payload (the part that cannot be cut)."""
    return len(data) - len(parse_container(data)[1])


def parse_container(data: bytes) -> tuple[dict, bytes]:
    """Check magic, version, header and payload checksums; return ``(header, payload)``.

    The header dict has the keys tokenizer, version, shape, params, n_tokens, codec, payload_len.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ContainerError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ContainerError("not an adatok container: wrong magic number (is this an .atk file?)")
    m = len(MAGIC)
    if len(data) < m + 3:
        raise ContainerError("truncated header: the data ends inside the fixed header")
    version, hlen = struct.unpack_from(">BH", data, m)
    if version > FORMAT_VERSION:
        raise ContainerError(f"container format version {version} is newer than this adatok reads "
                             f"({FORMAT_VERSION}): upgrade adatok to read it")
    if version < 1:
        raise ContainerError(f"invalid container format version {version}: the file is corrupt")
    end = m + 3 + hlen
    if len(data) < end + 4:
        raise ContainerError(f"truncated header: need {end + 4} bytes, got {len(data)}")
    (crc,) = struct.unpack_from(">I", data, end)
    if zlib.crc32(data[m:end]) != crc:
        raise ContainerError("header checksum mismatch: the header is corrupt")
    r = _Reader(data[m + 3 : end])
    header = {"tokenizer": r.str(), "version": r.str(), "codec": r.str()}
    header["shape"] = [r.varint() for _ in range(r.u8())]
    header["n_tokens"], header["payload_len"] = struct.unpack(">II", r.take(8))
    n = r.u8()
    crcs = struct.unpack(f">{n}H", r.take(2 * n))
    try:
        header["params"] = json.loads(r.data[r.at :].decode())
        if not isinstance(header["params"], dict):
            raise TypeError("params")
    except (*JSON_ERRORS, TypeError) as exc:
        raise ContainerError(f"malformed header ({type(exc).__name__}: {shown(str(exc), 160)}): the file is corrupt") from None
    size, n_expected = _chunking(header["payload_len"])
    if n != n_expected:
        raise ContainerError("malformed header: payload checksums do not match its length (the file is corrupt)")
    payload = data[end + 4 :]
    total = header["payload_len"]
    if len(payload) > total:
        raise ContainerError(f"{len(payload) - total} bytes past the end of the payload: "
                             "the file is corrupt or two files were joined")
    for i in range(n):
        chunk = payload[i * size : (i + 1) * size]
        if len(chunk) < min(size, total - i * size):
            break  # the cut, partial chunk
        if _crc16(chunk) != crcs[i]:
            raise _damaged(i * size, i * size + len(chunk) - 1, end + 4)
    return header, payload


def _damaged(first: int, last: int, start: int) -> ContainerError:
    """The error of a payload whose checksum fails in its bytes ``first..last`` (the payload starting at
    byte ``start`` of the data; the message counts the data's bytes, as a cut does, until 2026-12-03 the
    payload's): the bytes before that chunk are intact, and when they hold any of the payload, a cut
    there reads the tokens they code; said in Python's terms, and the command line's (``--bytes N``:
    until 2026-12-03 the message gave no way out)."""
    message = f"payload checksum mismatch in bytes {start + first:,}..{start + last:,}: the data is corrupt"
    if not first:  # (nothing before the damage but the header: no token to read)
        return ContainerError(message)
    n = start + first
    return ContainerError(f"{message}; its first {n:,} bytes are intact: TokenSequence.from_bytes(data[:{n}]) "
                          "reads the tokens they hold",
                          cli=f"{message}; its first {n:,} bytes are intact: adatok decode --bytes {n} reads the "
                              "tokens they hold")


class RawCodec:
    """Payload codec of one byte (or four) per token; embedded trivially."""

    codec_name = "raw"

    def pack(self, seq: TokenSequence) -> bytes:
        """Token ids as bytes (uint8 when they fit, else big-endian int32)."""
        if len(seq) and (seq.ids.min() < 0 or seq.ids.max() > 255):
            return b"\x04" + seq.ids.astype(">i4").tobytes()
        return b"\x01" + seq.ids.astype(np.uint8).tobytes()

    def unpack(self, header: dict, payload: bytes) -> np.ndarray:
        """Inverse of :meth:`pack`, on a payload that may be cut short."""
        if not payload:
            return np.zeros(0, np.int32)
        width = payload[0]
        if width == 1:
            return np.frombuffer(payload[1:], np.uint8).astype(np.int32)
        if width == 4:
            body = payload[1 : 1 + (len(payload) - 1) // 4 * 4]
            return np.frombuffer(body, ">i4").astype(np.int32)
        raise ContainerError(f"unknown token width {width} in the payload: the file is corrupt")


RAW_CODEC = RawCodec()
