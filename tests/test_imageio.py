"""Tests for adatok.core.imageio: reading, validating and atomically writing images."""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adatok.core import imageio
from adatok.core.errors import AdatokError, ImageFormatError, ImageReadError
from adatok.core.imageio import (
    MAX_PIXELS,
    as_image,
    atomic_write_bytes,
    flatten_alpha,
    read_image,
    write_image,
)

RNG = np.random.default_rng(1234)


def _rgb(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gray(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _open_fds() -> int | None:
    if not os.path.isdir("/proc/self/fd"):
        return None
    return len(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------------------------
# Round trips and formats
# --------------------------------------------------------------------------------------------


def test_max_pixels_value():
    assert MAX_PIXELS == 50_000_000


def test_round_trip_png_rgb_bit_exact(tmp_path):
    a = _rgb()
    write_image(tmp_path / "a.png", a)
    b = read_image(tmp_path / "a.png")
    assert b.dtype == np.uint8 and b.shape == (12, 17, 3) and b.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGB"


@pytest.mark.parametrize("shape", [(12, 17), (12, 17, 1)])
def test_round_trip_png_gray_bit_exact(tmp_path, shape):
    a = _gray().reshape(shape)
    write_image(str(tmp_path / "g.png"), a)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L"
    b = read_image(str(tmp_path / "g.png"))
    assert b.shape == (12, 17, 1) and b.dtype == np.uint8
    np.testing.assert_array_equal(a.reshape(12, 17, 1), b)


def test_write_non_contiguous_array(tmp_path):
    a = _rgb(20, 30)[::2, ::3]
    write_image(tmp_path / "nc.png", a)
    np.testing.assert_array_equal(read_image(tmp_path / "nc.png"), a)


def test_read_jpeg_rgb_and_gray(tmp_path):
    Image.new("RGB", (16, 8), (200, 40, 90)).save(tmp_path / "c.jpg")
    Image.new("L", (16, 8), 77).save(tmp_path / "g.jpeg")
    c = read_image(tmp_path / "c.jpg")
    g = read_image(tmp_path / "g.jpeg")
    assert c.shape == (8, 16, 3) and c.dtype == np.uint8
    assert np.abs(c.astype(int) - [200, 40, 90]).max() <= 3
    assert g.shape == (8, 16, 1)
    assert np.abs(g.astype(int) - 77).max() <= 2


def test_read_webp_lossless(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.webp", lossless=True)
    np.testing.assert_array_equal(read_image(tmp_path / "a.webp"), a)


def test_read_tiff(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), a)
    write_image(tmp_path / "b.tiff", a)
    np.testing.assert_array_equal(read_image(tmp_path / "b.tiff"), a)


def test_multi_frame_gives_first_frame(tmp_path):
    frames = [Image.new("L", (6, 4), v) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "m.tif", save_all=True, append_images=frames[1:])
    out = read_image(tmp_path / "m.tif")
    assert out.shape == (4, 6, 1)
    assert (out == 10).all()


# --------------------------------------------------------------------------------------------
# Mode conversion rule
# --------------------------------------------------------------------------------------------


def test_rgba_flattened_onto_white(tmp_path):
    a = np.zeros((1, 3, 4), np.uint8)
    a[0, 0] = (10, 20, 30, 0)  # fully transparent -> white
    a[0, 1] = (10, 20, 30, 255)  # opaque -> keeps its colour
    a[0, 2] = (0, 100, 255, 128)  # half: c*a/255 + (255 - a)
    Image.fromarray(a).save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    assert out.shape == (1, 3, 3)
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [10, 20, 30]
    assert out[0, 2].tolist() == [127, 177, 255]


def test_la_flattened_onto_white_stays_gray(tmp_path):
    a = np.array([[[40, 0], [40, 255], [0, 128]]], np.uint8)
    im = Image.new("LA", (3, 1))
    im.putdata([tuple(p) for p in a[0]])
    im.save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (1, 3, 1)
    assert out[0, :, 0].tolist() == [255, 40, 127]


def test_mode_1_becomes_0_255(tmp_path):
    im = Image.new("1", (4, 2), 0)
    im.putpixel((1, 0), 1)
    im.save(tmp_path / "bw.png")
    out = read_image(tmp_path / "bw.png")
    assert out.shape == (2, 4, 1)
    assert sorted(np.unique(out).tolist()) == [0, 255]
    assert out[0, 1, 0] == 255


def _palette_image() -> Image.Image:
    im = Image.new("P", (3, 1))
    # colours 0: red, 1: gray 50, 2: blue
    im.putpalette([255, 0, 0, 50, 50, 50, 0, 0, 255] + [0, 0, 0] * 253)
    im.putdata([0, 1, 2])
    return im


def test_palette_without_transparency_gives_rgb(tmp_path):
    _palette_image().save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (1, 3, 3)
    assert out[0].tolist() == [[255, 0, 0], [50, 50, 50], [0, 0, 255]]


def test_all_gray_palette_stays_rgb(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([v for g in range(256) for v in (g, g, g)])
    im.putdata([3, 250])
    im.save(tmp_path / "pg.png")
    out = read_image(tmp_path / "pg.png")
    assert out.shape == (1, 2, 3)
    assert out[0].tolist() == [[3, 3, 3], [250, 250, 250]]


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency_flattened_onto_white(tmp_path, suffix):
    _palette_image().save(tmp_path / f"pt{suffix}", transparency=0)
    out = read_image(tmp_path / f"pt{suffix}")
    assert out.shape == (1, 3, 3)
    assert out[0].tolist() == [[255, 255, 255], [50, 50, 50], [0, 0, 255]]


def test_cmyk_gives_rgb(tmp_path):
    im = Image.new("CMYK", (2, 1))
    im.putdata([(0, 0, 0, 0), (255, 0, 0, 0)])
    im.save(tmp_path / "cmyk.tif")
    out = read_image(tmp_path / "cmyk.tif")
    assert out.shape == (1, 2, 3)
    assert out[0].tolist() == [[255, 255, 255], [0, 255, 255]]


def test_cmyk_jpeg_gives_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    out = read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (8, 8, 3)
    assert out.min() >= 250


def test_16_bit_png_rejected(tmp_path):
    a = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    with pytest.raises(ImageFormatError, match=r"16-bit.*convert to 8-bit"):
        read_image(tmp_path / "g16.png")


def test_float_tiff_rejected(tmp_path):
    Image.fromarray(np.full((3, 4), 0.5, np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageFormatError, match=r"float.*mode F.*convert"):
        read_image(tmp_path / "f.tif")


def test_32_bit_integer_tiff_rejected(tmp_path):
    Image.fromarray(np.full((3, 4), 70000, np.int32)).save(tmp_path / "i.tif")
    with pytest.raises(ImageFormatError, match=r"32-bit integer.*convert"):
        read_image(tmp_path / "i.tif")


# --------------------------------------------------------------------------------------------
# Read errors
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_text_file(tmp_path):
    (tmp_path / "notes.png").write_text("hello, I am not a picture\n")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(tmp_path / "notes.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(tmp_path / "empty.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path, suffix):
    write_image(tmp_path / f"full{suffix}", _rgb(64, 64))
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"half{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / f"half{suffix}")


def _png(width: int, height: int, raw: bytes, colour: int = 2, depth: int = 8, interlace: int = 0,
         idat_parts: int = 1) -> bytes:
    """A PNG built by hand around the given inflated image data (filter bytes included), its zlib
    stream complete whatever its length, split over ``idat_parts`` IDAT chunks (a palette of black
    and white for colour type 3)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compress(raw)
    step = -(-len(z) // idat_parts)
    idats = b"".join(chunk(b"IDAT", z[i:i + step]) for i in range(0, len(z), step))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    plte = chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff") if colour == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + plte + chunk(b"tEXt", b"k\x00v") + idats
            + chunk(b"IEND", b""))


def _adam7_raw(width: int, height: int, row_bytes_per_pixel: int) -> bytes:
    """Inflated data of an interlaced 8-bit image: every row of each of Adam7's passes, value 7."""
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            raw += (b"\x00" + bytes([7]) * (w * row_bytes_per_pixel)) * h
    return raw


@pytest.mark.parametrize(("rows", "idat_parts"), [(1, 1), (20, 3), (39, 1)])
def test_a_png_whose_complete_data_end_early_is_refused(tmp_path, rows, idat_parts):
    """Pillow reads a PNG whose zlib stream ends after ``rows`` of its 40 rows without an error and
    fills the rest with black: a wrong image returned silently. It is refused as truncated."""
    data = _png(30, 40, (b"\x00" + b"\xc8" * 90) * rows, idat_parts=idat_parts)
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # Pillow itself says nothing
    (tmp_path / "short.png").write_bytes(data)
    with pytest.raises(ImageReadError, match=r"short.png is truncated: its image data end after .* of the 3,640 bytes"):
        read_image(tmp_path / "short.png")
    with pytest.raises(ImageReadError, match="truncated"):
        imageio.read_image_bytes(data)


@pytest.mark.parametrize(("colour", "depth", "channels"), [(2, 8, 3), (0, 8, 1), (0, 1, 1), (3, 4, 1), (6, 8, 4)])
def test_a_png_with_all_its_rows_reads_whatever_its_layout(colour, depth, channels):
    """The rows check counts bytes by the header's layout: bit depths below 8, palettes, alpha,
    several IDAT chunks read as before; one row short is refused."""
    w, h = 13, 11
    row = -(-(w * channels * depth) // 8)
    raw = (b"\x00" + bytes([1]) * row) * h
    image = imageio.read_image_bytes(_png(w, h, raw, colour, depth, idat_parts=2))
    assert image.shape[:2] == (h, w)
    with pytest.raises(ImageReadError, match="truncated"):
        imageio.read_image_bytes(_png(w, h, raw[: -(row + 1)], colour, depth))


def test_an_interlaced_png_reads_and_a_short_one_is_refused():
    for w, h in ((1, 1), (5, 3), (17, 9)):
        raw = _adam7_raw(w, h, 3)
        image = imageio.read_image_bytes(_png(w, h, raw, interlace=1))
        assert image.shape == (h, w, 3) and (image == 7).all()
        with pytest.raises(ImageReadError, match="truncated"):
            imageio.read_image_bytes(_png(w, h, raw[:-1], interlace=1))


def test_errors_are_adatok_errors_and_files_are_closed(tmp_path):
    write_image(tmp_path / "full.png", _rgb(64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "t.png").write_text("text")
    before = _open_fds()
    for name in ["half.png", "t.png", "full.png"]:
        try:
            read_image(tmp_path / name)
        except AdatokError:
            pass
    if before is not None:
        assert _open_fds() == before


def test_pixel_limit(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png", _rgb(10, 10))
    monkeypatch.setattr(imageio, "MAX_PIXELS", 99)
    with pytest.raises(ImageFormatError, match=r"adatok\.core\.imageio\.MAX_PIXELS"):
        read_image(tmp_path / "a.png")
    monkeypatch.setattr(imageio, "MAX_PIXELS", 100)
    assert read_image(tmp_path / "a.png").shape == (10, 10, 3)


def test_pixel_limit_checked_before_decoding(tmp_path, monkeypatch):
    # A truncated file over the limit must fail on the size, which is known from the header.
    write_image(tmp_path / "full.png", _rgb(64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(imageio, "MAX_PIXELS", 100)
    with pytest.raises(ImageFormatError, match="MAX_PIXELS"):
        read_image(tmp_path / "half.png")


def test_pillow_bomb_check_does_not_preempt_ours(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png", _rgb(10, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow would raise DecompressionBombError
    assert read_image(tmp_path / "a.png").shape == (10, 10, 3)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 50)
    with pytest.raises(ImageFormatError, match="MAX_PIXELS"):
        read_image(tmp_path / "a.png")
    assert Image.MAX_IMAGE_PIXELS == 10  # restored


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))


def test_decompression_bomb_header_gives_our_message(tmp_path):
    # 100000 x 100000 is over twice MAX_PIXELS, Pillow's limit while adatok opens a file: Pillow
    # raises DecompressionBombError; we answer with our message instead (the size, the limit).
    (tmp_path / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    default = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageFormatError, match=r"10,000,000,000 pixels.*adatok\.core\.imageio\.MAX_PIXELS"):
        read_image(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS == default


# --------------------------------------------------------------------------------------------
# as_image
# --------------------------------------------------------------------------------------------


def test_as_image_accepts_and_normalises():
    g = _gray()
    out = as_image(g)
    assert out.shape == (12, 17, 1) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[:, :, 0], g)
    c = _rgb()
    assert as_image(c) is c or np.shares_memory(as_image(c), c)
    nc = _rgb(10, 10)[:, ::2]
    out = as_image(nc)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, nc)
    assert as_image(g[:, :, None]).shape == (12, 17, 1)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ([[1, 2], [3, 4]], r"image 3 is a list.*np\.asarray"),
        (Image.new("RGB", (2, 2)), r"image 3 is a PIL image.*np\.asarray"),
        (np.zeros((2, 2), bool), r"image 3 has dtype bool"),
        (np.zeros((2, 2), np.uint16), r"16-bit image.*convert to 8-bit.*>> 8"),
        (np.zeros((2, 2), np.float32), r"image 3 has float dtype.*astype\(np\.uint8\)"),
        (np.zeros((2, 2, 3), np.float64), r"float dtype float64"),
        (np.zeros((2, 2), np.int64), r"dtype int64.*uint8"),
        (np.zeros((5,), np.uint8), r"image 3 has shape \(5,\).*H x W"),
        (np.zeros((1, 2, 2, 3), np.uint8), r"4-D"),
        (np.zeros((2, 2, 4), np.uint8), r"RGBA: flatten the alpha first.*flatten_alpha"),
        (np.zeros((2, 2, 2), np.uint8), r"flatten_alpha"),
        (np.zeros((2, 2, 5), np.uint8), r"5 channels.*C 1 \(gray\) or 3"),
        (np.zeros((0, 5), np.uint8), r"zero-size image 0x5"),
        (np.zeros((4, 0, 3), np.uint8), r"zero-size image 4x0"),
    ],
)
def test_as_image_rejects(value, pattern):
    with pytest.raises(ImageFormatError, match=pattern):
        as_image(value, "image 3")


def test_as_image_pixel_limit(monkeypatch):
    monkeypatch.setattr(imageio, "MAX_PIXELS", 20)
    with pytest.raises(ImageFormatError, match=r"4x6 = 24 pixels.*MAX_PIXELS"):
        as_image(np.zeros((4, 6, 3), np.uint8))
    assert as_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 1)


def test_as_image_default_what():
    with pytest.raises(ImageFormatError, match=r"^image has dtype bool"):
        as_image(np.zeros((2, 2), bool))


# --------------------------------------------------------------------------------------------
# flatten_alpha
# --------------------------------------------------------------------------------------------


def test_flatten_alpha_values():
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [0, 100, 255, 128]]], np.uint8)
    out = flatten_alpha(rgba)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 3)
    assert out.tolist() == [[[255, 255, 255], [10, 20, 30], [127, 177, 255]]]
    la = np.array([[[40, 0], [40, 255], [0, 128]]], np.uint8)
    assert flatten_alpha(la).tolist() == [[[255], [40], [127]]]


def test_flatten_alpha_exhaustive_extremes():
    c = np.arange(256, dtype=np.uint8)
    opaque = np.stack([c, np.full(256, 255, np.uint8)], axis=-1)[None]
    clear = np.stack([c, np.zeros(256, np.uint8)], axis=-1)[None]
    np.testing.assert_array_equal(flatten_alpha(opaque)[0, :, 0], c)
    assert (flatten_alpha(clear) == 255).all()


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((2, 2, 4))]
)
def test_flatten_alpha_rejects(bad):
    with pytest.raises(ImageFormatError, match="flatten_alpha"):
        flatten_alpha(bad)


# --------------------------------------------------------------------------------------------
# Atomic writing
# --------------------------------------------------------------------------------------------


def test_write_image_bad_array_leaves_no_temp_and_keeps_existing(tmp_path):
    target = tmp_path / "keep.png"
    good = _rgb()
    write_image(target, good)
    before = target.read_bytes()
    with pytest.raises(ImageFormatError, match="4-D"):
        write_image(target, np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ImageFormatError, match="RGBA"):
        write_image(target, np.zeros((2, 2, 4), np.uint8))
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_write_image_failure_while_saving_keeps_existing(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    write_image(target, _rgb())
    before = target.read_bytes()

    def broken_save(self, fp, format=None, **params):
        with open(fp, "wb") as f:
            f.write(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(AdatokError, match="disk full") as info:
        write_image(target, _rgb())
    assert not isinstance(info.value, ImageReadError)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_write_image_unknown_or_missing_suffix(tmp_path):
    for name in ["a.notanimage", "noext"]:
        with pytest.raises(AdatokError, match=r"\.png") as info:
            write_image(tmp_path / name, _rgb())
        assert type(info.value) is AdatokError
    assert list(tmp_path.iterdir()) == []


def test_write_image_missing_folder(tmp_path):
    with pytest.raises(AdatokError, match="does not exist") as info:
        write_image(tmp_path / "no" / "such" / "a.png", _rgb())
    assert type(info.value) is AdatokError


def test_write_image_over_directory(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(AdatokError, match="folder"):
        write_image(tmp_path / "d.png", _rgb())
    assert _leftovers(tmp_path) == []


def test_write_image_other_formats_round_trip(tmp_path):
    a = _rgb()
    write_image(tmp_path / "a.bmp", a)
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp"), a)
    write_image(tmp_path / "a.JPG", a)
    assert read_image(tmp_path / "a.JPG").shape == a.shape
    with Image.open(tmp_path / "a.JPG") as im:
        assert im.format == "JPEG"


def test_atomic_write_bytes(tmp_path):
    target = tmp_path / "x.atk"
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_bytes(str(target), bytearray(b"second"))
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.atk"]
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "text")  # type: ignore[arg-type]
    assert target.read_bytes() == b"second"


def test_atomic_write_bytes_missing_folder(tmp_path):
    with pytest.raises(AdatokError, match="does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "x.atk", b"data")


def test_atomic_write_bytes_folder_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(AdatokError, match="not a folder"):
        atomic_write_bytes(tmp_path / "f" / "x.atk", b"data")


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="needs POSIX permissions enforced (not root)",
)
def test_atomic_write_bytes_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(AdatokError, match="writable"):
            atomic_write_bytes(folder / "x.atk", b"data")
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


def test_atomic_write_bytes_unwritable_folder_simulated(tmp_path, monkeypatch):
    real_open = os.open

    def deny(path, flags, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) == str(tmp_path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(AdatokError, match="writable"):
        atomic_write_bytes(tmp_path / "x.atk", b"data")
    with pytest.raises(AdatokError, match="writable"):
        write_image(tmp_path / "x.png", _rgb())
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_in_block_cleans_up(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with imageio.atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.exists()
            tmp.write_bytes(b"new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_atomic_write_keeps_permissions_of_replaced_file(tmp_path):
    target = tmp_path / "p.atk"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() == b"new"


def test_16_bit_rgb_png_is_rejected():
    """Pillow opens a 16-bit RGB PNG as 8-bit 'RGB' (high bytes only); adatok refuses it instead."""
    from pathlib import Path

    path = Path(__file__).parent / "data" / "rgb16.png"  # 4x3, 16 bits per sample, colour type 2
    with pytest.raises(ImageFormatError, match="16-bit"):
        read_image(path)


def test_16_bit_tiff_and_ppm_are_rejected(tmp_path):
    """Pillow opens a 16-bit RGB TIFF as 8-bit 'RGB' (raw mode 'RGB;16L', in a tuple) and a 16-bit
    PPM as 'RGB' (largest value 65535): both refused like a 16-bit PNG; an 8-bit PGM still reads."""
    tifffile = pytest.importorskip("tifffile")
    v16 = np.arange(8 * 8 * 3, dtype=np.uint16).reshape(8, 8, 3) * 257 + 3
    tifffile.imwrite(tmp_path / "rgb16.tif", v16, photometric="rgb")
    (tmp_path / "rgb16.ppm").write_bytes(b"P6\n8 8\n65535\n" + v16.astype(">u2").tobytes())
    (tmp_path / "g10.pgm").write_bytes(b"P5\n4 4\n1000\n" + (np.arange(16, dtype=">u2") * 60).tobytes())
    for name in ("rgb16.tif", "rgb16.ppm", "g10.pgm"):
        with pytest.raises(ImageFormatError, match="16-bit.*convert to 8-bit"):
            read_image(tmp_path / name)
    (tmp_path / "g8.pgm").write_bytes(b"P5\n4 4\n255\n" + (np.arange(16, dtype=np.uint8) * 10).tobytes())
    assert read_image(tmp_path / "g8.pgm")[:, :, 0].tolist() == (np.arange(16) * 10).reshape(4, 4).tolist()


def test_icon_formats_are_refused_for_writing(tmp_path):
    """ICO and ICNS hold icon sizes only: Pillow would store a 40x50 image resized. Refused, nothing
    written; other suffixes keep the image's size."""
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for suffix in (".ico", ".icns"):
        with pytest.raises(AdatokError, match="icons hold only certain sizes"):
            write_image(tmp_path / f"x{suffix}", img)
        assert list(tmp_path.iterdir()) == []
    write_image(tmp_path / "x.tif", img)
    assert (read_image(tmp_path / "x.tif") == img).all()


def test_16_bit_packed_pixel_bmps_still_read(tmp_path):
    """A 16-bit BMP packs 5-6-5 bits a pixel (Pillow's raw mode 'BGR;16'), decoded to 8-bit RGB:
    not 16 bits a sample. The check of 16-bit TIFFs and PPMs refused it for a while."""
    import struct

    w, h = 4, 2
    row = b"".join(struct.pack("<H", (31 << 11) | (i * 9)) for i in range(w))
    pix = (row + b"\0" * (-len(row) % 4)) * h
    hdr = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3, len(pix), 2835, 2835, 0, 0) + struct.pack(
        "<III", 0xF800, 0x07E0, 0x001F)
    (tmp_path / "565.bmp").write_bytes(b"BM" + struct.pack("<IHHI", 14 + 52 + len(pix), 0, 0, 66) + hdr + pix)
    img = read_image(tmp_path / "565.bmp")
    assert img.shape == (2, 4, 3) and img[0, 0].tolist() == [255, 0, 0]


# --- found by review (2026-11-30) ------------------------------------------------------------------


def test_planar_16_bit_tiff_rejected(tmp_path):
    """A planar TIFF's tiles name one band each ("R"), without the ";16": read as wrong 8-bit pixels."""
    tifffile = pytest.importorskip("tifffile")
    planes = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) * 1000
    tifffile.imwrite(tmp_path / "planar16.tif", planes, photometric="rgb", planarconfig="separate")
    with pytest.raises(ImageFormatError, match="16-bit"):
        read_image(tmp_path / "planar16.tif")
    tifffile.imwrite(tmp_path / "planar8.tif", (planes >> 8).astype(np.uint8), photometric="rgb",
                     planarconfig="separate")
    assert read_image(tmp_path / "planar8.tif")[0, 1].tolist() == (planes[:, 0, 1] >> 8).tolist()


@pytest.mark.parametrize("mode", ["L", "RGB", "1"])
def test_a_transparent_colour_key_is_flattened_onto_white(tmp_path, mode):
    """Gray, RGB and 1-bit PNGs with a tRNS colour key kept the key colour; a palette PNG was flattened."""
    px = np.array([[0, 255, 0, 0]], np.uint8)
    im = Image.fromarray(px).convert(mode)
    im.save(tmp_path / "t.png", transparency=(0, 0, 0) if mode == "RGB" else 0)
    got = read_image(tmp_path / "t.png")
    assert got.shape[2] == (3 if mode == "RGB" else 1)
    assert (got == 255).all()  # the key colour (black) transparent: white; the white pixel stays


@pytest.mark.parametrize("bits", [2, 4])
def test_a_low_bit_gray_colour_key_is_flattened(tmp_path, bits):
    """Pillow scales 2- and 4-bit gray pixels to 0..255 but leaves the tRNS key on the file's scale."""
    top = 2**bits - 1
    Image.fromarray(np.array([[0, 1, 2, top]], np.uint8) * (255 // top)).save(tmp_path / "g.png", bits=bits,
                                                                               transparency=1)
    im = Image.open(tmp_path / "g.png")
    if im.info.get("transparency") != 1:
        pytest.skip("this Pillow wrote the key on another scale")
    got = read_image(tmp_path / "g.png")[0, :, 0].tolist()
    assert got == [0, 255, 2 * (255 // top), 255]


def test_writers_that_fail_their_own_way_give_an_adatok_error(tmp_path):
    """TGA and SGI hold at most 65,535 pixels a side: OverflowError and struct.error, raw."""
    wide = np.zeros((1, 70_000), np.uint8)
    for suffix in (".tga", ".sgi"):
        with pytest.raises(AdatokError, match="cannot write"):
            write_image(tmp_path / f"w{suffix}", wide)
        assert list(tmp_path.iterdir()) == []


def test_a_long_utf8_name_is_written(tmp_path):
    name = "画" * 81 + ".png"  # 247 bytes: the temporary name, cut at 200 characters, was past 255 bytes
    write_image(tmp_path / name, np.zeros((2, 2), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_special_files_are_not_replaced_and_links_are_written_through(tmp_path):
    """Renamed over, a pipe or a device (/dev/null, as root) was replaced by a regular file."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(AdatokError, match="not a regular file"):
        write_image(fifo, np.zeros((2, 2), np.uint8))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    real = tmp_path / "real.atk"
    real.write_bytes(b"old")
    link = tmp_path / "link.atk"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_atomic_writes_of_two_writers_at_once_do_not_touch_each_others_files(tmp_path):
    """Found by review: atomic_writes wrote every file to the fixed name NAME.tmp, and removed one found
    there first: a second process writing the same folder at once (two `adatok eval --out F`, two trainings
    into one folder) removed the first's half-written file, and the first then failed, or renamed the
    second's half-written file into place. Now each call has temporary files of its own."""
    import threading

    target = tmp_path / "results.csv"
    target.write_bytes(b"old")
    half_written, other_done = threading.Event(), threading.Event()
    errors = []

    def slow(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"first, ")
            fh.flush()
            half_written.set()
            other_done.wait(10)
            fh.write(b"whole")

    def first():
        try:
            imageio.atomic_writes([(target, slow)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert half_written.wait(10)
        imageio.atomic_writes([(target, lambda tmp: tmp.write_bytes(b"second"))])  # meanwhile, whole
        assert target.read_bytes() == b"second"
    finally:
        other_done.set()
        thread.join(10)
    assert not errors, errors
    assert target.read_bytes() == b"first, whole"  # the last rename: the first writer's file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_an_interrupt_in_atomic_writes_leaves_no_temporary_file(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"old a")

    def interrupted(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imageio.atomic_writes([(a, lambda tmp: tmp.write_bytes(b"new a")), (b, interrupted)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"] and a.read_bytes() == b"old a"


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_folder_lock_refuses_or_waits_for_another_holder(tmp_path):
    import threading
    import time

    refused = []

    def try_it():  # another thread: another holder
        try:
            with imageio.folder_lock(tmp_path, "another adatok generate"):
                pass
        except AdatokError as exc:
            refused.append(str(exc))

    with imageio.folder_lock(tmp_path, "another adatok generate"):
        with imageio.folder_lock(tmp_path, "the same"):  # the holding thread takes it again at once
            other = threading.Thread(target=try_it)
            other.start()
            other.join(10)
        assert len(refused) == 1 and "is being written by another adatok generate now" in refused[0]
        other = threading.Thread(target=try_it)  # still held after the inner hold ended
        other.start()
        other.join(10)
        assert len(refused) == 2
    assert list(tmp_path.iterdir()) == []  # nothing written for the lock
    held = threading.Event()

    def hold():
        with imageio.folder_lock(tmp_path, "x"):
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    t0 = time.monotonic()
    with imageio.folder_lock(tmp_path, "x", wait=10):  # waits for the other to let go
        assert time.monotonic() - t0 > 0.1
    thread.join(10)


def test_folder_problem_says_why_a_folder_cannot_be_made_and_makes_nothing(tmp_path, monkeypatch):
    """One check for the commands that write a folder after long work (train, generate, tokenize-dataset)."""
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert imageio.folder_problem(tmp_path / "new" / "deeper") is None
    assert imageio.folder_problem(tmp_path) is None
    assert imageio.folder_problem(tmp_path / "afile" / "sub" / "x") == \
        f"cannot make the folder {tmp_path}/afile/sub/x: {tmp_path}/afile is a file, not a folder"
    assert imageio.folder_problem(tmp_path / "dangling" / "run") == \
        f"cannot make the folder {tmp_path}/dangling/run: {tmp_path}/dangling is a link to {tmp_path}/nowhere, " \
        "which does not exist"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: real(p, mode, **kw) and Path(p) != tmp_path)
    assert imageio.folder_problem(tmp_path / "run") == \
        f"cannot make the folder {tmp_path}/run: no permission to make a folder in {tmp_path}"
    assert imageio.folder_problem(tmp_path) == f"cannot write into the folder {tmp_path}: permission denied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dangling"]


def test_read_image_noting_counts_the_frames_read_image_leaves_out(tmp_path):
    """Multi-frame files give their first frame (as documented); `read_image_noting` says how many
    frames the file holds, for `adatok encode`'s warning (they went without a word until 2026-12-03)."""
    from adatok.core.imageio import read_image_noting

    frames = [Image.fromarray(np.full((6, 8, 3), 50 * i, np.uint8)) for i in range(4)]
    for name, n in (("a.gif", 4), ("a.png", 4), ("a.webp", 4), ("a.tif", 2), ("one.png", 1)):
        frames[0].save(tmp_path / name, save_all=n > 1, append_images=frames[1:n])
        img, notes = read_image_noting(tmp_path / name)
        assert (notes.frames, notes.transparent) == (n, False), name
        assert (img == read_image(tmp_path / name)).all() and (img == 0).all()


def test_a_file_this_machine_cannot_decode_is_not_called_corrupt(tmp_path):
    """Found by an outside-user review: an EPS (which adatok decode writes through Pillow) read where
    Ghostscript is missing was called 'truncated or corrupt; re-export or re-download it'."""
    import shutil

    from PIL import Image

    path = tmp_path / "x.eps"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    if shutil.which("gs") is not None:  # (Ghostscript here: it reads)
        assert read_image(path).shape == (8, 8, 3)
        return
    with pytest.raises(ImageReadError, match="cannot be decoded on this machine .*Ghostscript") as info:
        read_image(path)
    assert "corrupt" not in str(info.value) and "re-download" not in str(info.value)


def test_the_advice_for_a_32_bit_integer_image_goes_by_its_values(tmp_path):
    """Found by an outside-user review: a mode-I TIFF whose values are 0..255 (an 8-bit image saved as
    32-bit) was told to convert with (a >> 8), which makes it black."""
    from PIL import Image

    gray = (np.arange(64).reshape(8, 8) * 3).astype(np.int32)
    for values, advice in [(gray, "a.astype(np.uint8) (its values are 0..189 already"),
                           (gray * 200, "(a >> 8).astype(np.uint8) (16-bit values)"),
                           (gray * 100000, "(np.clip(a, 0, None) * 255 // max(a.max(), 1)).astype(np.uint8)")]:
        Image.fromarray(values).save(tmp_path / "i.tif")
        with pytest.raises(ImageFormatError) as info:
            read_image(tmp_path / "i.tif")
        assert advice in str(info.value), str(info.value)
        if values is gray:
            assert "-depth 8" not in info.value.cli and "keeps the values" in info.value.cli
