"""TokenSequence: an ordered, prefix-decodable token sequence, and its byte form (``.atk``).

Byte layout (all integers big-endian)::

    magic        8 bytes   b"\\x89ATK\\r\\n\\x1a\\n"
    version      u16       container format version (FORMAT_VERSION)
    header_len   u32       length of the header
    header       JSON      tokenizer, version, shape, params, pos_fields, n_tokens, codec, payload_len
    header_crc   u32       CRC-32 of the header bytes
    payload      bytes     the token ids, coded by the tokenizer's payload codec

The payload is embedded: a file cut anywhere after the header decodes to the longest token prefix
its bytes determine. Token positions are not stored; the tokenizer recomputes them from the ids.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ContainerError, InvalidTokensError

MAGIC = b"\x89ATK\r\n\x1a\n"
FORMAT_VERSION = 1
_FIXED = struct.Struct(">HI")


@dataclass(frozen=True, eq=False)
class TokenSequence:
    """An ordered token sequence of one image; any prefix of it decodes to an image.

    Attributes:
        ids: int32 token ids, shape (n,).
        pos: int32 token positions, shape (n, P); the column names are ``pos_fields``.
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

    def __post_init__(self) -> None:
        ids = np.ascontiguousarray(self.ids, dtype=np.int32).reshape(-1)
        pos = np.ascontiguousarray(self.pos, dtype=np.int32)
        if pos.ndim != 2 or pos.shape[0] != ids.shape[0]:
            raise ValueError(f"pos must have shape (n, P) with n = {ids.shape[0]}, got {pos.shape}")
        ids.flags.writeable = False
        pos.flags.writeable = False
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "pos", pos)
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "pos_fields", tuple(self.pos_fields))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"TokenSequence(tokenizer={self.tokenizer!r}, n={len(self)}, shape={self.shape})"

    def prefix(self, k: int) -> TokenSequence:
        """The first ``min(k, len(self))`` tokens, as a sequence of the same image."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise InvalidTokensError(f"prefix length must be a whole number >= 0, got {k!r}")
        k = min(int(k), len(self))
        return TokenSequence(self.ids[:k], self.pos[:k], self.shape, self.tokenizer, self.version,
                             self.params, self.pos_fields)

    @property
    def num_pixels(self) -> int:
        """H * W of the encoded image."""
        return int(self.shape[0] * self.shape[1])

    def to_bytes(self) -> bytes:
        """The sequence as a self-describing, embedded byte string (the ``.atk`` format)."""
        from .registry import load

        codec = getattr(load(self.tokenizer), "payload_codec", None) or RAW_CODEC
        payload = codec.pack(self)
        return _container(self, codec.name, payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenSequence:
        """Parse bytes made by :meth:`to_bytes`, or any cut of them past the header.

        A cut payload gives the longest token prefix its bytes determine. Raises
        :class:`~adatok.ContainerError` for anything that is not such bytes.
        """
        from .registry import load

        header, payload = parse_container(data)
        tok = load(header["tokenizer"])
        codec = getattr(tok, "payload_codec", None) or RAW_CODEC
        if codec.name != header["codec"]:
            raise ContainerError(f"payload codec {header['codec']!r} is not the one {header['tokenizer']!r} uses "
                                 f"({codec.name!r}): the file is corrupt or from another adatok")
        ids = codec.unpack(header, payload)
        return tok.sequence_from_ids(ids, header)


def header_dict(seq: TokenSequence, codec: str, payload_len: int) -> dict:
    """The JSON header of a sequence's container."""
    return {
        "tokenizer": seq.tokenizer,
        "version": seq.version,
        "shape": list(seq.shape),
        "params": dict(seq.params),
        "pos_fields": list(seq.pos_fields),
        "n_tokens": len(seq),
        "codec": codec,
        "payload_len": payload_len,
    }


def _container(seq: TokenSequence, codec: str, payload: bytes) -> bytes:
    header = json.dumps(header_dict(seq, codec, len(payload)), sort_keys=True, separators=(",", ":")).encode()
    return b"".join([MAGIC, _FIXED.pack(FORMAT_VERSION, len(header)), header,
                     struct.pack(">I", zlib.crc32(header)), payload])


def header_size(data: bytes) -> int:
    """Bytes taken by the magic, version, header and its checksum (the part that cannot be cut)."""
    parse_container(data)
    (_, hlen) = _FIXED.unpack_from(data, len(MAGIC))
    return len(MAGIC) + _FIXED.size + hlen + 4


def parse_container(data: bytes) -> tuple[dict, bytes]:
    """Check the magic, version and header checksum; return ``(header, payload)``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ContainerError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ContainerError("not an adatok container: wrong magic number (is this an .atk file?)")
    if len(data) < len(MAGIC) + _FIXED.size:
        raise ContainerError("truncated header: the data ends before the header length")
    version, hlen = _FIXED.unpack_from(data, len(MAGIC))
    if version > FORMAT_VERSION:
        raise ContainerError(f"container format version {version} is newer than this adatok reads "
                             f"({FORMAT_VERSION}): upgrade adatok to read it")
    if version < 1:
        raise ContainerError(f"invalid container format version {version}: the file is corrupt")
    start = len(MAGIC) + _FIXED.size
    if len(data) < start + hlen + 4:
        raise ContainerError(f"truncated header: need {start + hlen + 4} bytes, got {len(data)}")
    raw = data[start : start + hlen]
    (crc,) = struct.unpack_from(">I", data, start + hlen)
    if zlib.crc32(raw) != crc:
        raise ContainerError("header checksum mismatch: the header is corrupt")
    try:
        header = json.loads(raw.decode())
        for key, typ in (("tokenizer", str), ("version", str), ("shape", list), ("params", dict),
                         ("pos_fields", list), ("n_tokens", int), ("codec", str), ("payload_len", int)):
            if not isinstance(header[key], typ):
                raise TypeError(key)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ContainerError(f"malformed header ({exc}): the file is corrupt") from None
    payload = data[start + hlen + 4 :]
    if len(payload) > header["payload_len"]:
        raise ContainerError(f"{len(payload) - header['payload_len']} bytes past the end of the payload: "
                             "the file is corrupt or two files were joined")
    return header, payload


class RawCodec:
    """Payload codec of one byte (or four) per token; embedded trivially."""

    name = "raw"

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
