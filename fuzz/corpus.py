"""The seed corpus of the fuzz targets, made from small images: ``fuzz/corpus/TARGET/NAME``.

``python fuzz/corpus.py`` writes it (after a change to a tokenizer's bytes, its prior or weights);
``tests/test_fuzz.py`` checks that the checked-in files are what :func:`build` makes. Small valid
files of each kind, whole and cut: ``.atk`` containers of every registered tokenizer, image files
of every kind ``read_image`` reads or refuses, and byte strings for the targets that draw their
inputs from bytes (``crafted``, ``stepper``).
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import adatok
from adatok import Bpp, Tokens
from adatok.core.sequence import header_size

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def _noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 3 + rng.uniform(0, 6)) * np.cos(yy / 4) + rng.normal(0, 6, (h, w))
    img = np.clip(base, 0, 255).astype(np.uint8)
    return img if len(shape) == 2 else np.stack([img, img[::-1], 255 - img], -1)[..., : shape[2]]


def _cuts(name: str, data: bytes) -> dict[str, bytes]:
    """The whole container, cut in the middle of its payload, and cut right after its header."""
    head = header_size(data)
    return {f"{name}.atk": data, f"{name}-cut-mid.atk": data[: head + (len(data) - head) // 2],
            f"{name}-cut-header.atk": data[:head]}


def containers() -> dict[str, bytes]:
    """``.atk`` files of every registered tokenizer (the word views too): whole and cut."""
    w, wl, fm = adatok.load("wavelet"), adatok.load("wavelet-lossless"), adatok.load("fashion-mnist-32")
    roi = np.zeros((16, 12))
    roi[:8, :6] = 1
    rep = np.repeat(np.repeat(_smooth((8, 8), 3), 2, 0), 2, 1)
    out: dict[str, bytes] = {}
    out |= _cuts("wavelet-gray-8x8", w.encode([_smooth((8, 8), 1)])[0].to_bytes())
    out |= _cuts("wavelet-rgb-16x12-roi", w.encode([_smooth((16, 12, 3), 2)], roi=[roi])[0].to_bytes())
    out["wavelet-rgb-16x12-bpp6.atk"] = w.encode([_smooth((16, 12, 3), 2)], Bpp(6.0))[0].to_bytes()
    out["wavelet-1x1.atk"] = w.encode([np.array([[7]], np.uint8)])[0].to_bytes()
    out["wavelet-fixed-header-6x5.atk"] = w.encode([_noise((6, 5), 4)], fixed_header=True)[0].to_bytes()
    out |= _cuts("wavelet-lossless-rgb-13x7", wl.encode([_noise((13, 7, 3), 5)])[0].to_bytes())
    out["wavelet-lossless-rep-16x16.atk"] = wl.encode([rep])[0].to_bytes()
    out["wavelet-lossless-mid-gray-empty.atk"] = wl.encode([np.full((5, 9), 128, np.uint8)])[0].to_bytes()
    shirt = _smooth((28, 28), 6)
    out |= _cuts("fashion-mnist-32", fm.encode([shirt])[0].to_bytes())
    out["fashion-mnist-32-tokens5.atk"] = fm.encode([shirt], Tokens(5))[0].to_bytes()
    w8, wl8 = adatok.load("wavelet-w8"), adatok.load("wavelet-lossless-w8")  # the word views
    out |= _cuts("wavelet-w8-gray-8x8", w8.encode([_smooth((8, 8), 1)])[0].to_bytes())
    out["wavelet-w8-rgb-16x12-roi.atk"] = w8.encode([_smooth((16, 12, 3), 2)], roi=[roi])[0].to_bytes()
    out |= _cuts("wavelet-lossless-w8-rgb-13x7", wl8.encode([_noise((13, 7, 3), 5)])[0].to_bytes())
    return out


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def images() -> dict[str, bytes]:
    """Image files of the kinds ``read_image`` reads (PNG, JPEG, GIF, BMP, TIFF, WebP in every
    mode it converts) and refuses (16-bit, truncated, a header too large, not an image)."""
    rgb = Image.fromarray(_smooth((9, 7, 3), 7))
    gray = Image.fromarray(_smooth((9, 7), 8))
    rgba = Image.fromarray(np.dstack([_smooth((9, 7, 3), 9), _noise((9, 7), 10)]))
    pal = rgb.quantize(8)
    pal.info["transparency"] = 0
    out = {
        "gray.png": _save(gray, "PNG"), "rgb.png": _save(rgb, "PNG"), "rgba.png": _save(rgba, "PNG"),
        "la.png": _save(rgba.convert("LA"), "PNG"), "1bit.png": _save(gray.convert("1"), "PNG"),
        "palette-transparent.png": _save(pal, "PNG"), "palette.gif": _save(rgb.quantize(4), "GIF"),
        "animated.gif": _save(rgb.quantize(4), "GIF", save_all=True, append_images=[gray.convert("P")]),
        "rgb.jpg": _save(rgb, "JPEG", quality=80), "gray.jpg": _save(gray, "JPEG"),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"), "rgb.bmp": _save(rgb, "BMP"),
        "rgb.tif": _save(rgb, "TIFF"), "i16.tif": _save(Image.fromarray(_noise((5, 4), 11).astype(np.uint16) * 257),
                                                      "TIFF"),
        "f32.tif": _save(Image.fromarray(np.ones((3, 3), np.float32)), "TIFF"),
        "rgb.webp": _save(rgb, "WEBP", lossless=True), "rgb.ppm": _save(rgb, "PPM"),
        "rgb.tga": _save(rgb, "TGA"), "rgb.ico": _save(rgb, "ICO", sizes=[(7, 9)]),
        "rgb16.png": (HERE.parent / "tests" / "data" / "rgb16.png").read_bytes(),
        "empty": b"", "text.txt": b"not an image\n",
    }
    out["truncated.png"] = out["rgb.png"][: len(out["rgb.png"]) // 2]
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 10**10 pixels claimed, valid CRCs
    out["huge-header.png"] = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                              + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))
    return out


def byte_strings(seed: int, count: int) -> dict[str, bytes]:
    """Inputs of a target that draws its values from bytes: random strings of several lengths,
    and all-zero and all-one ones."""
    rng = np.random.default_rng(seed)
    out = {f"random-{i}": rng.integers(0, 256, int(n), dtype=np.uint8).tobytes()
           for i, n in enumerate(np.geomspace(8, 1500, count).astype(int))}
    return out | {"zeros": bytes(256), "ones": b"\xff" * 256}


def uploads() -> dict[str, bytes]:
    """``.atk`` files a completion upload takes (28x28 gray: a generator's shape), whole and cut,
    and ones it refuses (another shape, another tokenizer's)."""
    w = adatok.load("wavelet")
    out = _cuts("wavelet-28x28", w.encode([_smooth((28, 28), 12)])[0].to_bytes())
    out["wavelet-28x28-fixed-header.atk"] = w.encode([_smooth((28, 28), 13)], fixed_header=True)[0].to_bytes()
    w8 = adatok.load("wavelet-w8").encode([_smooth((28, 28), 14)], fixed_header=True)[0].to_bytes()
    out |= _cuts("wavelet-w8-28x28-fixed-header", w8)
    c = containers()
    return out | {name: c[name] for name in ("fashion-mnist-32.atk", "fashion-mnist-32-cut-mid.atk",
                                             "wavelet-gray-8x8.atk")}


def build() -> dict[str, dict[str, bytes]]:
    """Target name -> seed file name -> bytes."""
    pictures = images()
    return {"container": containers(), "crafted": byte_strings(1, 12), "image": pictures,
            "stepper": byte_strings(2, 12), "serve_image": pictures, "serve_atk": uploads()}


def write(root: Path = CORPUS) -> None:
    """Write :func:`build`'s files under ``root``, replacing what was there."""
    for target, files in build().items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, data in files.items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)
    sizes = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"wrote {sum(1 for p in CORPUS.rglob('*') if p.is_file())} files, {sizes:,} bytes, under {CORPUS}")
