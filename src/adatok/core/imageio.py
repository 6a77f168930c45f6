"""Reading, validating and writing images as ``uint8`` numpy arrays (numpy and Pillow only).

Every image adatok handles is a C-contiguous ``uint8`` array of shape ``H x W x C`` with
``C == 1`` (gray) or ``C == 3`` (RGB); it is always 3-D, even for gray images.

:func:`read_image` turns any file Pillow can open (PNG, JPEG, WebP, TIFF, GIF, BMP, ...) into
such an array. The conversion rule, by Pillow mode of the (first) frame:

==========================================  ==================================================
Pillow mode                                 result
==========================================  ==================================================
``'1'``, ``'L'``                            gray (``'1'`` becomes 0 / 255)
``'LA'``                                    gray, alpha flattened onto white
``'RGB'``                                   RGB, as is
``'RGBA'``                                  RGB, alpha flattened onto white
``'P'`` (palette)                           RGB; if it has transparency, RGBA flattened onto
                                            white (a palette of grays still gives RGB)
``'PA'``                                    RGB, alpha flattened onto white
``'CMYK'``, ``'YCbCr'``, ``'LAB'``,         RGB (Pillow's own conversion; no ICC colour
``'HSV'``, ``'RGBX'``                       management)
``'I;16'``, ``'I;16B'``, ``'I;16L'``,       rejected (:class:`ImageFormatError`): adatok reads
``'I;16N'``, ``'I'``, ``'F'``               8-bit images; convert to 8-bit first
anything else                               rejected (:class:`ImageFormatError`) naming the mode
==========================================  ==================================================

"Flattened onto white" means each pixel is composited over a white background:
``out = (colour * alpha + 255 * (255 - alpha)) / 255``, rounded, so a fully transparent pixel
becomes 255 and an opaque one keeps its colour (:func:`flatten_alpha`). Multi-frame files
(animated GIF / PNG / WebP, multi-page TIFF) give their first frame. EXIF orientation is not
applied: the array holds the pixels as stored.

Files whose width * height exceeds :data:`MAX_PIXELS` are rejected from the header alone, before
any pixel is decoded (a guard against decompression bombs); Pillow's own check
(``PIL.Image.MAX_IMAGE_PIXELS``) is set to the same limit while adatok opens a file, so that what
Pillow allocates while opening one (a GIF's first frame) is bounded too.

:func:`as_image` validates an array handed to a public function and :func:`write_image` /
:func:`atomic_write_bytes` write files atomically (temporary file in the same folder, then
:func:`os.replace`, via :func:`atomic_path`), so a failed write never leaves a half-written file
nor clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from adatok.core.errors import AdatokError, ImageFormatError, ImageReadError

__all__ = [
    "MAX_PIXELS",
    "read_image",
    "read_image_bytes",
    "as_image",
    "flatten_alpha",
    "write_image",
    "atomic_write_bytes",
    "atomic_path",
    "folder_lock",
]

PathLike = Union[str, "os.PathLike[str]"]

MAX_PIXELS: int = 50_000_000
"""Largest accepted image area, ``H * W`` pixels (the decompression-bomb limit).

:func:`read_image` checks it from the file header before decoding any pixel; :func:`as_image` and
:func:`write_image` check arrays against it. Raise it (``adatok.core.imageio.MAX_PIXELS = ...``)
if you need larger images and trust their source.
"""

_LIMIT_NAME = "adatok.core.imageio.MAX_PIXELS"

# Exceptions Pillow raises while parsing or decoding a damaged file: its format plugins parse
# untrusted bytes and raise whatever their parsing runs into (OSError, SyntaxError, ValueError,
# EOFError, IndexError, struct.error, and, found by fuzz/targets.py: image, TypeError from a TIFF
# whose strip offsets are text); every one but MemoryError means the file cannot be read.
_DECODE_ERRORS = (Exception,)


def _corrupt(name: str, exc: Exception, what: str = "truncated or corrupt") -> ImageReadError:
    """The error for a file Pillow failed on (``exc``); a MemoryError is raised again as it is."""
    if isinstance(exc, MemoryError):
        raise exc
    text = str(exc)
    if "Ghostscript" in text or "not available" in text:  # (a helper program or codec this machine lacks: the file
        # may be whole; "re-download it" was wrong advice for an EPS that adatok decode had just written)
        return ImageReadError(f"{name} cannot be decoded on this machine (Pillow: {type(exc).__name__}: {text}): it "
                              "needs a program or codec that is not installed; convert it to PNG elsewhere")
    return ImageReadError(f"{name} is {what} (Pillow: {type(exc).__name__}: {exc}); re-export or re-download it")

_HIGH_DEPTH_MODES = {
    "I;16": "16-bit",
    "I;16B": "16-bit",
    "I;16L": "16-bit",
    "I;16N": "16-bit",
    "I": "32-bit integer",
    "F": "32-bit float",
}
_TO_RGB_MODES = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}


# --------------------------------------------------------------------------------------------
# Validation of arrays
# --------------------------------------------------------------------------------------------


def _pixel_limit_message(what: str, h: int, w: int) -> str:
    return (
        f"{what} is {h}x{w} = {h * w:,} pixels, more than the limit of {MAX_PIXELS:,} "
        f"({_LIMIT_NAME}, a guard against decompression bombs); downscale it first, or raise "
        f"{_LIMIT_NAME} if you trust its source"
    )


def as_image(array: Any, what: str = "image") -> np.ndarray:
    """Validate an image array given at a public boundary; return it as ``H x W x C`` uint8.

    Accepts a ``uint8`` numpy array of shape ``H x W`` (returned as ``H x W x 1``) or
    ``H x W x C`` with ``C`` 1 (gray) or 3 (RGB). The result is C-contiguous; it shares memory
    with ``array`` when no copy is needed.

    ``what`` names the array in error messages (e.g. ``"image 3"``).

    Raises:
        ImageFormatError: for anything else, with a message saying how to fix it: not a numpy
            array (lists, PIL images), a dtype other than uint8 (bool, 16-bit, float, ...),
            ndim other than 2 or 3, a channel count other than 1 or 3 (RGBA: use
            :func:`flatten_alpha`), a zero-size dimension, or more than :data:`MAX_PIXELS`
            pixels.
    """
    if not isinstance(array, np.ndarray):
        if isinstance(array, Image.Image):
            raise ImageFormatError(
                f"{what} is a PIL image, not a numpy array; convert with np.asarray(img) "
                f"(or read files with adatok.core.imageio.read_image)"
            )
        raise ImageFormatError(
            f"{what} is a {type(array).__name__}, not a numpy array; convert with "
            f"np.asarray(..., dtype=np.uint8)"
        )
    dtype = array.dtype
    if dtype != np.uint8:
        if dtype == np.bool_:
            raise ImageFormatError(
                f"{what} has dtype bool; adatok images are uint8, convert with "
                f"a.astype(np.uint8) * 255"
            )
        if dtype.kind in "ui" and dtype.itemsize == 2:
            raise ImageFormatError(
                f"16-bit image: {what} has dtype {dtype}; adatok images are 8-bit, convert to "
                f"8-bit, e.g. (a >> 8).astype(np.uint8)"
            )
        if dtype.kind == "f":
            raise ImageFormatError(
                f"{what} has float dtype {dtype}; adatok images are uint8 in 0..255, convert, "
                f"e.g. (np.clip(a, 0, 1) * 255).round().astype(np.uint8) for values in [0, 1]"
            )
        raise ImageFormatError(
            f"{what} has dtype {dtype}; adatok images are uint8 in 0..255, convert, e.g. "
            f"np.clip(a, 0, 255).astype(np.uint8)"
        )
    if array.ndim not in (2, 3):
        raise ImageFormatError(
            f"{what} has shape {array.shape} ({array.ndim}-D); expected H x W (gray) or "
            f"H x W x C with C 1 or 3; pass one image at a time"
        )
    if array.ndim == 3 and array.shape[2] not in (1, 3):
        c = array.shape[2]
        if c == 4:
            hint = "RGBA: flatten the alpha first, e.g. with adatok.core.imageio.flatten_alpha"
        elif c == 2:
            hint = (
                "gray + alpha: flatten the alpha first, e.g. with "
                "adatok.core.imageio.flatten_alpha"
            )
        else:
            hint = "channels must be last (H x W x C) with C 1 (gray) or 3 (RGB)"
        raise ImageFormatError(f"{what} has shape {array.shape}, {c} channels; {hint}")
    h, w = array.shape[:2]
    if h == 0 or w == 0:
        raise ImageFormatError(f"{what} is a zero-size image {h}x{w}; it holds no pixels")
    if h * w > MAX_PIXELS:
        raise ImageFormatError(_pixel_limit_message(what, h, w))
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return np.ascontiguousarray(array)


def flatten_alpha(array: np.ndarray) -> np.ndarray:
    """Composite an image with alpha over a white background.

    ``H x W x 4`` (RGBA) uint8 becomes ``H x W x 3``; ``H x W x 2`` (gray + alpha) becomes
    ``H x W x 1``. Each pixel is ``round((colour * alpha + 255 * (255 - alpha)) / 255)``: a
    fully transparent pixel becomes 255 (white), an opaque one keeps its colour. This is the
    rule :func:`read_image` applies to ``'RGBA'``, ``'LA'`` and transparent palette images.

    Raises:
        ImageFormatError: if ``array`` is not a uint8 ``H x W x 4`` or ``H x W x 2`` array.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise ImageFormatError(
            f"flatten_alpha needs a uint8 numpy array H x W x 4 (RGBA) or H x W x 2 "
            f"(gray + alpha), got {got}"
        )
    if array.ndim != 3 or array.shape[2] not in (2, 4):
        raise ImageFormatError(
            f"flatten_alpha needs an H x W x 4 (RGBA) or H x W x 2 (gray + alpha) array, "
            f"got shape {array.shape}"
        )
    colour = array[:, :, :-1].astype(np.uint32)
    alpha = array[:, :, -1:].astype(np.uint32)
    out = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(out.astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

_bomb_lock = threading.Lock()
_bomb_depth = 0
_bomb_saved: int | None = None


@contextlib.contextmanager
def pillow_pixel_limit() -> Iterator[None]:
    """Set Pillow's decompression-bomb check to :data:`MAX_PIXELS` while reading (ours applies
    from the header; Pillow's still guards what it allocates while opening a file: a GIF's first
    frame, which can be far larger than the size the file declares, is allocated inside
    ``Image.open``: with Pillow's check off, a 96-byte GIF took gigabytes). Pillow raises only
    above twice its limit, so images up to that get our message, and it warns between its limit
    and twice it. Restored on exit.

    Reference-counted, so concurrent reads in several threads restore the original value only
    when the last one finishes. One limit for every read: Pillow's is one for the process, and a
    lower one set by one thread refused another thread's images.
    """
    global _bomb_depth, _bomb_saved
    with _bomb_lock:
        if _bomb_depth == 0:
            _bomb_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        _bomb_depth += 1
    try:
        yield
    finally:
        with _bomb_lock:
            _bomb_depth -= 1
            if _bomb_depth == 0:
                Image.MAX_IMAGE_PIXELS = _bomb_saved


def _check_decoded_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageFormatError(f"{name}: zero-size image {h}x{w}; it holds no pixels")
    if w * h > MAX_PIXELS:
        raise ImageFormatError(_pixel_limit_message(name, h, w))


def _bomb_error(name: str, exc: BaseException) -> ImageFormatError:
    """Our message for Pillow's decompression-bomb error (raised above twice :data:`MAX_PIXELS`)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else "larger than that"
    return ImageFormatError(
        f"{name} is {size}, more than the limit of {MAX_PIXELS:,} pixels ({_LIMIT_NAME}, a guard "
        f"against decompression bombs); downscale it first, or raise {_LIMIT_NAME} if you trust its source"
    )


def _raw_mode(tile) -> str | None:
    """A tile's raw mode: its args, or the first of them (``('RGB;16L', 0, 1)``)."""
    args = getattr(tile, "args", None)
    raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
    return raw if isinstance(raw, str) else None


def _gray_bits(im: Image.Image) -> int:
    """Bits a sample of a gray image stored with fewer than 8 (a PNG's ``L;2``: Pillow scales the
    pixels to 0..255 but leaves its transparent colour key on the file's scale), else 8."""
    return next((int(raw[2:]) for raw in map(_raw_mode, im.tile or []) if raw in ("L;1", "L;2", "L;4")), 8)


def _flattened(array: np.ndarray) -> tuple[np.ndarray, bool]:
    """:func:`flatten_alpha` of ``array``, and whether any of its pixels was less than opaque (what
    the flattening lost: an image whose alpha is 255 everywhere loses nothing)."""
    return flatten_alpha(array), bool(array[:, :, -1].min() < 255)


def _pillow_to_array(im: Image.Image, name: str, gray_bits: int = 8) -> tuple[np.ndarray, bool]:
    """Apply the module's conversion rule to a loaded Pillow image (``gray_bits``: see
    :func:`_gray_bits`); with it, whether transparency was flattened (:func:`_flattened`)."""
    mode = im.mode
    key = im.info.get("transparency")
    if mode == "L" and gray_bits < 8 and isinstance(key, int):  # the key on the pixels' scale
        arr = np.array(im, dtype=np.uint8)
        key = key * 255 // (2**gray_bits - 1)
        return _flattened(np.stack([arr, np.where(arr == key, 0, 255).astype(np.uint8)], axis=-1))
    if mode in _HIGH_DEPTH_MODES:
        # (a float's values are taken as 0..1, as ImageMagick takes a float TIFF's; `>> 8` fails on floats)
        scaled = "(np.clip(a, 0, 1) * 255).round()" if mode == "F" else "(a >> 8)"
        values = " (values in 0..1)" if mode == "F" else " (16-bit values)" if mode == "I" else ""
        if mode == "I":  # 32-bit integers hold any range: the advice by the values there (`>> 8` of values
            # already in 0..255, a mode-I TIFF made from an 8-bit image, gave a black image)
            pixels = np.asarray(im)
            lo, hi = int(pixels.min(initial=0)), int(pixels.max(initial=0))
            if 0 <= lo and hi <= 255:
                scaled, values = "a", f" (its values are {lo}..{hi} already: keep them, do not rescale)"
            elif hi > 65535 or lo < 0:
                scaled, values = "(np.clip(a, 0, None) * 255 // max(a.max(), 1))", f" (values {lo}..{hi})"
        what = f"{_HIGH_DEPTH_MODES[mode]} image (Pillow mode {mode}) {name}: adatok reads 8-bit images"
        magick = (f"`magick IN -depth 8 OUT.png`{values}" if scaled != "a" else  # (-depth 8 rescales: black)
                  f"a converter that keeps the values{values}")
        raise ImageFormatError(
            f"{what}; convert to 8-bit first, e.g. {magick}, or in Python with a = np.asarray(PIL.Image.open(IN)): "
            f"{scaled}.astype(np.uint8){values}, then adatok.core.imageio.write_image",
            cli=f"{what}; convert it to 8-bit first, e.g. {magick}",
        )
    if mode in ("1", "L", "RGB") and im.has_transparency_data:  # a tRNS colour key: flattened as alpha is
        return _flattened(np.array(im.convert("RGBA" if mode == "RGB" else "LA"), dtype=np.uint8))
    if mode == "1":
        im = im.convert("L")
        mode = "L"
    if mode == "L":
        return np.array(im, dtype=np.uint8)[:, :, np.newaxis], False
    if mode == "RGB":
        return np.array(im, dtype=np.uint8), False
    if mode in ("LA", "RGBA"):
        return _flattened(np.array(im, dtype=np.uint8))
    if mode == "P":
        if im.has_transparency_data:
            return _flattened(np.array(im.convert("RGBA"), dtype=np.uint8))
        return np.array(im.convert("RGB"), dtype=np.uint8), False
    if mode == "PA":
        return _flattened(np.array(im.convert("RGBA"), dtype=np.uint8))
    if mode in _TO_RGB_MODES:
        return np.array(im.convert("RGB"), dtype=np.uint8), False
    raise ImageFormatError(
        f"{name}: unsupported image mode {mode!r}; adatok reads gray, RGB, RGBA, palette and "
        f"CMYK images with 8 bits per channel; convert the file first, e.g. to an 8-bit RGB PNG"
    )


#: Raw modes of 16 bits a *pixel* (5-6-5 or 5-5-5 packed RGB, as 16-bit BMPs hold), which Pillow
#: decodes to ordinary 8-bit RGB: not 16 bits a sample.
_PACKED_PIXELS = frozenset({"RGB;16", "BGR;16", "RGB;15", "BGR;15", "RGB;15B", "RGB;16B;565"})


def _sixteen_bit_tile(im: Image.Image) -> str | None:
    """How an opened image's tiles say its samples are 16-bit (Pillow keeps their high bytes in an
    8-bit mode for some formats), or ``None``."""
    # from the tag: a planar TIFF's tiles name one band each ("R"), without the ";16" (the high-depth modes,
    # float and 32-bit integer, have their own message)
    if im.format == "TIFF" and im.mode not in _HIGH_DEPTH_MODES:
        bits = im.tag_v2.get(258)
        bits = bits if isinstance(bits, tuple) else (bits,) if bits is not None else ()
        if any(isinstance(b, int) and b > 8 for b in bits):
            return f"{max(bits)} bits a sample"
    for tile in im.tile or []:
        args = getattr(tile, "args", None)
        raw = _raw_mode(tile)
        if raw is not None and ";16" in raw and raw not in _PACKED_PIXELS:
            return f"Pillow raw mode {raw}"
        if im.format == "PPM" and isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) \
                and args[1] > 255:
            return f"largest value {args[1]}"
    return None


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as a C-contiguous ``H x W x C`` uint8 array, ``C`` 1 (gray) or 3 (RGB).

    Reads anything Pillow opens (PNG, JPEG, WebP, TIFF, GIF, BMP, ...); multi-frame files (an
    animated GIF, PNG or WebP, a multi-page TIFF) give their first frame, without a word
    (:func:`read_image_noting` counts the frames, for ``adatok encode``'s warning). Modes are converted by the rule in the module docstring: ``'1'``/``'L'``
    give gray, ``'LA'`` gray with alpha flattened onto white, ``'RGBA'`` (and transparent
    palettes) RGB with alpha flattened onto white, ``'P'``, ``'CMYK'``, ``'YCbCr'``, ``'LAB'``,
    ``'HSV'`` RGB; 16-bit, 32-bit integer and float images are rejected. The file is closed
    before returning. A file that cannot seek (a pipe: ``/dev/stdin``, a FIFO) is read into memory
    first, at most 8 bytes a pixel of :data:`MAX_PIXELS`.

    Raises:
        ImageReadError: the file is missing, is a folder, cannot be opened, is not an image
            (including empty files), or is truncated or corrupt (a PNG whose image data end
            before its last row too, which Pillow alone returns with the missing rows black).
        ImageFormatError: the image is wider * taller than :data:`MAX_PIXELS` (checked before
            decoding), has a zero-size dimension, or has a mode adatok does not read.
    """
    return read_image_and_alpha(path)[0]


@dataclass(frozen=True)
class ImageNotes:
    """What :func:`read_image_noting` tells of a file beside its array: what the array leaves out."""

    #: The file had transparency (an alpha channel, a transparent colour) that made a pixel less than
    #: opaque: flattened onto white, it is not in the array (an alpha opaque everywhere loses nothing).
    transparent: bool
    #: The frames (pages) the file holds: an animated GIF, PNG or WebP, a multi-page TIFF may hold
    #: more than one, and the array is the first (a camera's MPO JPEG counts 1: its other images are
    #: previews of the first).
    frames: int = 1


def read_image_and_alpha(path: PathLike) -> tuple[np.ndarray, bool]:
    """:func:`read_image` of ``path``, and whether the file had transparency (an alpha channel, a
    transparent colour) that made any pixel less than opaque: flattened onto white, it is not in the
    array (for a command to say so; an image whose alpha is opaque everywhere loses nothing).

    Raises what :func:`read_image` raises."""
    image, notes = _read_path(path)
    return image, notes.transparent


def read_image_noting(path: PathLike) -> tuple[np.ndarray, ImageNotes]:
    """:func:`read_image` of ``path``, and what the array leaves out of the file (:class:`ImageNotes`:
    transparency flattened onto white, frames after the first), for a command to say so in a
    ``warning:`` line (``adatok encode``; an animated GIF's other frames went without a word until
    2026-12-03). Counting the frames walks a GIF's or a TIFF's frames (their headers, not their
    pixels), which :func:`read_image` does not.

    Raises what :func:`read_image` raises."""
    return _read_path(path, count_frames=True)


def _read_path(path: PathLike, count_frames: bool = False) -> tuple[np.ndarray, ImageNotes]:
    """The image of the file at ``path`` and its :class:`ImageNotes` (frames counted when asked)."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise ImageReadError(f"no such file: {name}")
    if os.path.isdir(name):
        raise ImageReadError(f"{name} is a folder, not an image file; give the path of a file")
    try:
        fp = open(name, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ImageReadError(f"cannot open {name}: {exc.strerror or exc}") from exc
    with fp:
        return _read_open(fp if _seekable(fp) else _read_stream(fp, name), name, count_frames)


def _seekable(fp: Any) -> bool:
    """Whether the open file ``fp`` can seek (a pipe cannot)."""
    try:
        return fp.seekable()
    except (OSError, ValueError):
        return False


def _read_stream(fp: Any, name: str) -> Any:
    """The bytes of ``fp``, a file that cannot seek (a pipe: ``/dev/stdin``, a FIFO, ``<(cmd)``), as an
    in-memory file: Pillow and the check of a PNG's rows seek (a PNG from a pipe was a raw
    UnsupportedOperation). At most 8 bytes a pixel of :data:`MAX_PIXELS` are read, more than an
    uncompressed 8-bit RGBA file of that size needs."""
    import io

    limit = 8 * MAX_PIXELS
    data = fp.read(limit + 1)
    if len(data) > limit:
        raise ImageReadError(f"{name} is a pipe, not a file, and holds more than {limit:,} bytes (more "
                             f"than any 8-bit image within the pixel limit, {_LIMIT_NAME}, needs); save it to a file "
                             "first")
    return io.BytesIO(data)


def read_image_bytes(data: bytes, name: str = "image bytes") -> np.ndarray:
    """:func:`read_image` of a file's bytes held in memory (an image column of a Parquet table, a
    member of an archive): the same conversion, checks and errors, with ``name`` in the messages.

    Raises:
        ImageReadError: the bytes are not an image (or are empty), or are truncated or corrupt.
        ImageFormatError: as :func:`read_image` (pixel limit, 16-bit, unknown mode).
    """
    import io

    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageReadError(f"{name} is a {type(data).__name__}, not bytes of an image file")
    return _read_open(io.BytesIO(bytes(data)), name)[0]


def _read_open(fp: Any, name: str, count_frames: bool = False) -> tuple[np.ndarray, ImageNotes]:
    """The image of an open binary file ``fp`` (named ``name`` in error messages), and its
    :class:`ImageNotes` (the frames counted when ``count_frames``, else 1)."""
    with pillow_pixel_limit():
        try:
            im = Image.open(fp)
        except UnidentifiedImageError as exc:
            raise ImageReadError(
                f"{name} is not an image file (or not a format Pillow can read); give a PNG, "
                f"JPEG, WebP or TIFF file"
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb_error(name, exc) from exc
        except _DECODE_ERRORS as exc:
            raise _corrupt(name, exc) from exc
        with im:
            _check_decoded_size(im.size, name)  # from the header, before decoding any pixel
            # Pillow opens 16-bit RGB(A) PNGs and TIFFs as plain 'RGB'/'RGBA', keeping the high bytes
            # only: their raw mode (e.g. 'RGB;16B', or the first of a tuple: ('RGB;16L', 0, 1)) gives
            # them away; a 16-bit PPM says it by its largest value ('RGB', 65535).
            wide = _sixteen_bit_tile(im)
            if wide is not None:
                raise ImageFormatError(
                    f"16-bit image ({wide}) {name}: adatok reads 8-bit images; convert to "
                    f"8-bit first, e.g. `magick IN -depth 8 OUT.png`"
                )
            bits = _gray_bits(im)  # (from the tiles, which load() clears)
            try:
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise _bomb_error(name, exc) from exc
            except _DECODE_ERRORS as exc:
                raise _corrupt(name, exc) from exc
            _check_decoded_size(im.size, name)
            if im.format == "PNG":
                _check_png_rows(fp, name)
            try:
                image, transparent = _pillow_to_array(im, name, bits)
            except AdatokError:
                raise
            except _DECODE_ERRORS as exc:  # a conversion of a damaged image's palette or mode
                raise _corrupt(name, exc, "corrupt") from exc
            return image, ImageNotes(transparent, _frames(im) if count_frames else 1)


def _frames(im: Image.Image) -> int:
    """The frames (pages) of an opened image file, after its first was read: 1 for an MPO (a camera's
    JPEG with previews of itself), and when walking the frames fails (a damaged later frame: the first
    was read whole)."""
    if im.format == "MPO":
        return 1
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except _DECODE_ERRORS:
        return 1


# Channels a PNG pixel has, by its colour type (PNG specification, IHDR).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7's passes: first column, first row, column step, row step.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_data_size(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes the inflated image data of a PNG with this header holds: each row of each pass
    (one pass without interlacing) is a filter byte and ``ceil(width * channels * depth / 8)``."""
    bits = _PNG_CHANNELS.get(colour, 4) * depth
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-(w * bits) // 8))
    return total


def _check_png_rows(fp: Any, name: str) -> None:
    """Refuse a PNG whose image data ends before its last row.

    Pillow's PNG decoder stops without an error when the zlib stream ends early, whatever rows are
    still missing (its check of "image and data end together" is commented out), and returns them
    as zeros: a PNG of 1,000 rows whose complete data hold one row read as a black image. No
    library here checks it, so this walks the chunks again (the file is already read; a second
    inflate costs what the first did) and counts the inflated bytes against the header's."""
    import struct
    import zlib

    fp.seek(8)  # after the signature, which Pillow checked
    head = fp.read(8 + 13)
    if len(head) < 21 or head[4:8] != b"IHDR":
        return  # Pillow read it: not a layout this check knows (nothing to say)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[8:21])
    expected = _png_data_size(width, height, depth, colour, interlace)
    fp.seek(8 + 8 + 13 + 4)
    inflate, got, seen = zlib.decompressobj(), 0, False
    while got < expected:
        header = fp.read(8)
        if len(header) < 8:
            break
        length, kind = struct.unpack(">I4s", header)
        if kind != b"IDAT":
            if seen:
                break  # the image data are consecutive IDAT chunks
            fp.seek(length + 4, os.SEEK_CUR)
            continue
        seen = True
        data = fp.read(length)
        fp.seek(4, os.SEEK_CUR)  # CRC
        try:
            while data and got < expected:  # in pieces: a bomb's data are never held whole
                got += len(inflate.decompress(data, 1 << 20))
                data = inflate.unconsumed_tail
        except zlib.error as exc:
            raise _corrupt(name, exc) from exc
        if inflate.eof:
            break
    if got < expected:
        rows = f"{height:,} rows of {width:,} pixels"
        raise ImageReadError(f"{name} is truncated: its image data end after {got:,} of the {expected:,} bytes its "
                             f"{rows} need (the rest would read as black); re-export or re-download it")


def folder_problem(folder: PathLike) -> str | None:
    """Why files could not be written into the folder ``folder`` once it is made (it need not exist
    yet), or None: a file, or a symbolic link to nothing, on its path; no permission to write into it,
    or to make a folder in its nearest existing parent. Nothing is made. One check for every command
    that writes a folder after long work (training, sampling, tokenizing a corpus), so that it is told
    before the work, not as a raw NotADirectoryError after it."""
    out = Path(folder)
    for path in (out, *out.parents):
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT and os.path.islink(path):
                return f"cannot make the folder {out}: {path} is a link to {os.readlink(path)}, which does not exist"
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):  # (not there, or under a file: found further up)
                continue
            return f"cannot make the folder {out}: {path}: {exc.strerror or exc}"
        if not stat.S_ISDIR(st.st_mode):
            return f"cannot make the folder {out}: {path} is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return (f"cannot write into the folder {out}: permission denied" if path == out else
                    f"cannot make the folder {out}: no permission to make a folder in {path}")
        return None
    return None


# --------------------------------------------------------------------------------------------
# Writing files atomically
# --------------------------------------------------------------------------------------------


def check_new_file(path: PathLike, replace: bool = False) -> None:
    """Refuse to write a file ``path`` where a file or a symbolic link (dangling or not) of that name
    is already, unless ``replace`` (the command line's ``--force``): a decode wrote over the photo it
    came from, an encode over the only copy of a lossless archive. With ``replace``, one that is not a
    regular file nor a link (a device, pipe or socket) is refused still; a link is then replaced itself,
    not what it points to (``replace_link`` of :func:`write_image`, :func:`atomic_write_bytes`). A
    folder is left to the writer, which names it. One check for every command that writes one file."""
    out = Path(os.fspath(path))
    if out.is_symlink():
        if not replace:
            raise AdatokError(f"{out} is a symbolic link (to {os.readlink(out)}): give --force to replace the link "
                              "(not what it points to), or another name")
        return
    if not out.exists() or out.is_dir():
        return
    if not replace:
        raise AdatokError(f"{out} exists: give --force to replace it, or another name")
    if not out.is_file():
        raise AdatokError(f"{out} is not a regular file (a device, pipe or socket): give another name")


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _create_temp(folder: Path, target: Path) -> Path:
    """Create an empty, not-yet-existing temporary file next to ``target``; return its path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # (at most 100 bytes of the name: with the dot, tag and suffix within 255 bytes for any encoding)
        short = os.fsencode(target.name)[:100].decode(errors="ignore") if os.name == "posix" else target.name[:100]
        tmp = folder / f".{short}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
        except FileExistsError:
            continue
        except OSError as exc:
            raise AdatokError(
                f"cannot write {target}: cannot create a file in folder {folder} "
                f"({exc.strerror or exc}); check that it is writable"
            ) from exc
        os.close(fd)
        return tmp
    raise AdatokError(f"cannot write {target}: no free temporary file name in {folder}")


@contextlib.contextmanager
def atomic_path(path: PathLike, replace_link: bool = False) -> Iterator[Path]:
    """Context manager for writing ``path`` atomically; yields a temporary path to write to.

    The temporary file is created (empty) in the same folder as ``path``. When the ``with``
    block ends normally its content is flushed to disk and it replaces ``path`` in one step
    (:func:`os.replace`), keeping the permission bits of a file it replaces; if the block (or
    the replacement) fails, the temporary file is removed, ``path`` is left untouched and the
    exception propagates. Exceptions from the block are not translated. A symbolic link
    ``path`` is written through (the file it points at is replaced, and the link stays), or with
    ``replace_link`` replaced itself, never what it points to (the command line's ``--force``:
    :func:`check_new_file`).

    Raises:
        AdatokError: the folder does not exist, is not a folder or is not writable, ``path`` is
            a folder, or the final replacement fails.
    """
    target = Path(os.fspath(path))
    link = target.is_symlink() and replace_link
    if target.is_symlink() and not replace_link:  # the file it points at is replaced, and the link stays
        target = Path(os.path.realpath(target))
    folder = target.parent
    if not folder.exists():
        raise AdatokError(f"cannot write {target}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise AdatokError(f"cannot write {target}: {folder} is not a folder")
    if target.is_dir() and not link:
        raise AdatokError(f"cannot write {target}: it is a folder; give a file name")
    if target.exists() and not target.is_file() and not link:  # renamed over, a device or pipe would be gone
        raise AdatokError(f"cannot write {target}: it is not a regular file (a device, pipe or socket); adatok "
                          "writes a file whole, then renames it into place: give a file name")
    tmp = _create_temp(folder, target)
    try:
        yield tmp
        try:
            with contextlib.suppress(OSError):
                if not link:  # (a link's target's mode is not the new file's)
                    os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            raise AdatokError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable; best effort
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


#: The folders (device, inode) each thread holds a :func:`folder_lock` on, with the thread's id: a
#: second lock of the same folder in the same thread is the same hold (``flock`` on a second open of
#: the folder would wait for the first, in the same process, forever or until its time is up).
_HELD: set[tuple[int, int, int]] = set()


@contextlib.contextmanager
def folder_lock(folder: PathLike, what: str, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (an existing folder) while a command writes into it, so
    that two processes writing one folder at once (two ``adatok generate --out F``, two
    ``tokenize-dataset`` into one DST) do not mix their files or remove each other's temporary ones.

    The lock is ``flock`` on the folder itself: nothing is written for it, and it goes with the process
    however that ends (a kill too). Waits up to ``wait`` seconds for another holder, then raises
    :class:`AdatokError` naming ``what`` (the command, for the message). A thread that holds the lock
    already takes it again at once (a training run holds its folder while each save locks it). Where
    the system has no such lock (Windows, some network file systems), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # (Windows)
        yield
        return
    import errno
    import time

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise AdatokError(f"cannot open the folder {os.fspath(folder)}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino, threading.get_ident())
    if key in _HELD:  # held by this thread already (a training run holds its folder, and each save locks it again)
        os.close(fd)
        yield
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    break  # no locks here: go on unlocked
                if time.monotonic() >= deadline:
                    raise AdatokError(f"{os.fspath(folder)} is being written by {what} now; wait for it to finish, "
                                      "or give another folder") from None
                time.sleep(0.05)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # (releases the lock)


def atomic_writes(files: list[tuple[Path, Callable[[Path], None]]], mode: int | None = None) -> None:
    """Several files written as one: each ``write(tmp)`` to a temporary file first (a new one of its own
    next to its path, ``.NAME.XXXXXXXX.tmp`` as :func:`atomic_path` makes), and only when every one is
    complete are they renamed over their paths (in the order given). A write that fails (a full disk, an
    interrupt) leaves every path as it was and no temporary file behind; another process writing the
    same paths at the same time never writes into, renames or removes this call's files."""
    # (a link is written through, as a plain write would; a file keeps its own mode, a new one the umask's,
    # unless ``mode`` is given: checkpoints are 0644 whatever safetensors makes)
    targets = [Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path) for path, _ in files]
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, (_, write) in zip(targets, files, strict=True):
            # (a fixed name, NAME.tmp, was shared by two runs writing one folder at once: one renamed the
            # other's half-written file into place, or removed it under it)
            tmp = _create_temp(path.parent, path)
            tmps.append((tmp, path))
            write(tmp)
            if mode is not None:
                os.chmod(tmp, mode)
            elif path.is_file():
                shutil.copymode(path, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())  # on disk before any rename makes it current
        blocked = [path for _, path in tmps if path.exists() and not path.is_file()]
        if blocked:  # (a folder where a file goes: found before any rename, not after the first ones)
            raise IsADirectoryError(21, "not a file", str(blocked[0]))
    except BaseException:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
        raise
    renamed = 0
    try:
        for tmp, path in tmps:
            os.replace(tmp, path)
            renamed += 1
    finally:  # (an interrupt between two renames: the ones not renamed are not left behind)
        for tmp, _ in tmps[renamed:]:
            _remove_quietly(tmp)


def atomic_write_bytes(path: PathLike, data: bytes, replace_link: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    Either ``path`` ends up holding exactly ``data`` or, on failure, it is left as it was and no
    temporary file remains. ``replace_link``: a symbolic link ``path`` is replaced, not written
    through (:func:`atomic_path`).

    Raises:
        AdatokError: the folder does not exist or is not writable, ``path`` is a folder, or the
            write fails (e.g. disk full).
        TypeError: ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    with atomic_path(path, replace_link) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise AdatokError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from exc


def save_format(target: Path) -> str:
    """The Pillow format :func:`write_image` writes ``target`` in, chosen by its suffix
    (:class:`~adatok.AdatokError` for a suffix it cannot write an image to as it is)."""
    ext = target.suffix.lower()
    if not ext:
        raise AdatokError(
            f"cannot write {target}: no file suffix to choose the format from; use e.g. .png"
        )
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise AdatokError(
            f"cannot write {target}: unknown image suffix {ext!r}; use e.g. .png, .jpg, .webp "
            f"or .tif"
        )
    if fmt not in Image.SAVE:
        raise AdatokError(
            f"cannot write {target}: Pillow can read {fmt} ({ext}) files but not write them; "
            f"use e.g. .png"
        )
    if fmt in _RESIZING_FORMATS:
        raise AdatokError(
            f"cannot write {target}: {fmt} ({ext}) icons hold only certain sizes, so Pillow would "
            f"store the image resized; use e.g. .png"
        )
    return fmt


def image_suffixes() -> set[str]:
    """Suffixes Pillow reads or writes as images (``.png``, ``.jpg``, ``.webp``, ...)."""
    return set(Image.registered_extensions())


#: Formats Pillow writes at sizes of their own (icon sizes), not the image's.
_RESIZING_FORMATS = frozenset({"ICO", "ICNS"})


def write_image(path: PathLike, array: np.ndarray, replace_link: bool = False) -> None:
    """Write an image array to ``path`` atomically, in the format its suffix names.

    ``array`` is validated like :func:`as_image` (uint8, ``H x W``, ``H x W x 1`` or
    ``H x W x 3``); gray arrays are saved as Pillow mode ``'L'``, RGB as ``'RGB'``. Any format
    Pillow writes works (``.png`` is lossless; ``.jpg``/``.webp`` use Pillow's default, lossy,
    settings). The file is written to a temporary file in the same folder and renamed over
    ``path`` only when complete (see :func:`atomic_path`); on failure ``path`` is untouched
    and no temporary file remains. ``replace_link``: a symbolic link ``path`` is replaced, not
    written through.

    Raises:
        ImageFormatError: ``array`` is not an image array adatok accepts.
        AdatokError: the suffix is missing or not a format Pillow can write, the folder does not
            exist or is not writable, or Pillow fails to write the file.
    """
    target = Path(os.fspath(path))
    image = as_image(array)
    fmt = save_format(target)
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    with atomic_path(target, replace_link) as tmp:
        try:
            pil.save(tmp, format=fmt)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - each writer fails its own way (OverflowError, struct.error ...)
            raise AdatokError(
                f"cannot write {target} as {fmt}: {exc}; try another format, e.g. .png"
            ) from exc
