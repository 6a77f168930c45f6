"""Training-free saliency maps and regions of interest: where the early tokens should go.

Every map is a ``float64`` array of the image's ``H x W`` with values in ``[0, 1]`` (1 = most
important). Images are the contract's ``uint8`` arrays, ``H x W`` or ``H x W x C`` with C 1 or 3;
colour images are turned to gray with the ITU-R BT.601 luma weights (0.299, 0.587, 0.114).

Maps
    :func:`spectral_residual`
        Hou & Zhang (2007): on a gray copy shrunk to at most 64 pixels on its longer side, the
        log-amplitude spectrum minus its 3 x 3 local mean, back-transformed with the original
        phase, squared, Gaussian-smoothed, resized to ``H x W``. Picks out what differs from the
        image's statistics (isolated objects on plain backgrounds).
    :func:`gradient_entropy`
        Multi-scale energy: Gaussian gradient magnitude at three scales and local entropy (a disk
        of gray levels), each normalised, averaged and smoothed. Picks out texture and edges.
    :func:`centre_prior`
        A Gaussian centred on the image (people put subjects near the middle).

Rules
    *Normalisation* (:func:`normalise`): ``(m - min) / (max - min)``; a map with no contrast
    (``max - min`` below ``1e-12``, e.g. of a flat image) becomes all zeros: nothing stands out.
    Every map above is normalised this way as its last step, except :func:`centre_prior`, which
    is divided by its peak (values in ``(0, 1]``, exactly 1 at the centre pixel of odd sizes).

    *Combination* (:func:`combine`): the weighted mean ``sum(w_i * m_i) / sum(w_i)``, then
    :func:`normalise`. ``saliency(image, "auto")`` combines the three maps with
    :data:`AUTO_WEIGHTS`: equal weights, i.e. the plain mean of the three. Of a flat image it is
    the stretched centre prior (1 at the centre pixels); where that mean has no contrast (a flat
    image of 1 or 2 pixels a side, whose every pixel is a centre pixel), all 1: no place stands out
    from another, and every place is as salient as the centre of a larger flat image.

Regions of interest
    :func:`read_mask` reads a user's PNG mask (value = brightest channel / 255, so white is 1,
    black 0, gray levels give graded importance); :func:`roi_from` turns whatever a user gives as
    a region (``"auto"``, a method name, a mask path, an array) into a map of the image's size;
    :func:`write_map` writes a map as an 8-bit gray PNG.

>>> import numpy as np
>>> from adatok.core.saliency import saliency
>>> img = np.zeros((48, 64), np.uint8); img[16:32, 24:40] = 255
>>> m = saliency(img)
>>> m.shape, m.dtype, float(m.min()), float(m.max())
((48, 64), dtype('float64'), 0.0, 1.0)
>>> bool(m[16:32, 24:40].mean() > m.mean())
True
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Union

import numpy as np
from scipy import ndimage

from adatok.core.errors import AdatokError, ImageFormatError
from adatok.core.imageio import as_image, read_image, write_image
from adatok.core.metrics import as_map as _as_map, region_values

__all__ = [
    "METHODS",
    "AUTO_WEIGHTS",
    "SaliencyError",
    "normalise",
    "to_gray",
    "spectral_residual",
    "gradient_entropy",
    "centre_prior",
    "combine",
    "saliency",
    "read_mask",
    "roi_from",
    "write_map",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The saliency methods :func:`saliency` (and ``adatok saliency --method``) accepts.
METHODS: tuple[str, ...] = ("auto", "spectral", "gradient", "centre")

#: Weights of the three maps in ``saliency(image, "auto")``: equal, so "auto" is
#: ``normalise(mean(spectral, gradient, centre))`` (see :func:`combine`; only ratios matter).
AUTO_WEIGHTS: Mapping[str, float] = MappingProxyType({"spectral": 1.0, "gradient": 1.0, "centre": 1.0})

_ALIASES = {"center": "centre"}  # US spelling accepted too
_FLAT = 1e-12  # below this max - min a map has no contrast


class SaliencyError(AdatokError):
    """A saliency method, weight or region-of-interest spec that adatok does not understand."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def normalise(m: np.ndarray) -> np.ndarray:
    """Stretch a map to ``[0, 1]``: ``(m - min) / (max - min)``, as ``float64``.

    A map with no contrast (``max - min < 1e-12``) becomes all zeros. Non-finite values are not
    accepted.

    Raises:
        ImageFormatError: ``m`` is empty, not numbers, or holds NaN or infinite values.
    """
    try:
        m = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ImageFormatError(f"a map is an array of numbers, got {type(m).__name__}: {exc}") from None
    if m.size == 0:
        raise ImageFormatError(f"a map needs at least one value, got an empty array of shape {m.shape}")
    if not np.isfinite(m).all():
        raise ImageFormatError("map holds NaN or infinite values; give a finite float array")
    lo, hi = float(m.min()), float(m.max())
    if hi - lo < _FLAT:
        return np.zeros(m.shape, np.float64)
    return np.clip((m - lo) / (hi - lo), 0.0, 1.0)


def to_gray(image: np.ndarray) -> np.ndarray:
    """An image as a ``float64`` ``H x W`` gray array in ``[0, 1]`` (BT.601 luma for RGB).

    Raises:
        ImageFormatError: ``image`` is not a uint8 image array (see
            :func:`adatok.core.imageio.as_image`).
    """
    img = as_image(image).astype(np.float64) / 255.0
    if img.shape[2] == 1:
        return img[:, :, 0]
    return img @ np.array([0.299, 0.587, 0.114])


def _resize(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a float map (bilinear; anti-aliased when shrinking)."""
    from skimage.transform import resize

    shape = (int(shape[0]), int(shape[1]))
    if m.shape == shape:
        return m
    shrink = shape[0] < m.shape[0] or shape[1] < m.shape[1]
    return resize(m, shape, order=1, mode="edge", anti_aliasing=shrink, preserve_range=True)


def _shrunk(gray: np.ndarray, max_side: int) -> np.ndarray:
    """``gray`` shrunk so that its longer side is at most ``max_side`` (never enlarged).

    A shrink by 32 or more along a side first averages blocks of pixels (edge-padded to whole
    blocks) down to between 16 and 32 times the target, then resizes with anti-aliasing: the
    anti-aliasing Gaussian grows with the shrink factor, so on its own it cost O(pixels x factor)
    (26 s for a 1 x 1,000,000 image, against 0.13 s for 1000 x 750 pixels). A shrink under 32 is
    as it was (the maps of photos up to 2048 pixels on their longer side are unchanged)."""
    h, w = gray.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return gray
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    by, bx = max(1, h // (16 * th)), max(1, w // (16 * tw))
    if by > 1 or bx > 1:
        padded = np.pad(gray, ((0, -h % by), (0, -w % bx)), mode="edge")
        gray = padded.reshape(padded.shape[0] // by, by, padded.shape[1] // bx, bx).mean(axis=(1, 3))
    return _resize(gray, (th, tw))


def _shape_of(shape: Any) -> tuple[int, int]:
    """Validate an ``(H, W)`` or ``(H, W, C)`` shape; return ``(H, W)``."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = ()
    if len(dims) not in (2, 3) or not all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ImageFormatError(
            f"shape must be (H, W) or (H, W, C) with whole numbers >= 1, got {shape!r}; "
            f"pass image.shape"
        )
    return int(dims[0]), int(dims[1])


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


def _check_params(**params: Any) -> None:
    """Raise :class:`SaliencyError` unless every ``size``/``radius`` is a whole number (``size`` at
    least 1, ``radius`` at least 0) and every other parameter a finite number >= 0 (``scales``:
    a non-empty list of numbers > 0)."""
    for name, value in params.items():
        if name in ("size", "radius"):
            low = 1 if name == "size" else 0
            ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low
            if not ok:
                raise SaliencyError(f"{name} must be a whole number >= {low}, got {value!r}")
            continue
        vals = list(value) if name == "scales" else [value]
        if not vals or not all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
                               and math.isfinite(v) and (v > 0 if name == "scales" else v >= 0) for v in vals):
            what = "a non-empty list of finite numbers > 0" if name == "scales" else "a finite number >= 0"
            raise SaliencyError(f"{name} must be {what}, got {value!r}")


def spectral_residual(image: np.ndarray, size: int = 64, sigma: float = 2.5) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007) as an ``H x W`` map in ``[0, 1]``.

    1. Gray copy, shrunk (anti-aliased) so that its longer side is at most ``size`` pixels.
    2. ``F = fft2(gray)``; log amplitude ``L = log(|F| + 1e-9)``, phase ``P = angle(F)``.
    3. Spectral residual ``R = L - mean3x3(L)`` (the spectrum wraps around).
    4. ``S = |ifft2(exp(R + iP))| ** 2``, smoothed by a Gaussian of ``sigma`` pixels at
       ``size`` (scaled down with smaller images).
    5. Resized (bilinear) to ``H x W`` and normalised (:func:`normalise`).

    A flat image (one gray level) gives all zeros.

    Args:
        image: uint8 image, ``H x W`` or ``H x W x C`` (C 1 or 3).
        size: longer side of the working copy (64 in the paper).
        sigma: Gaussian smoothing at the working size, in pixels.

    Raises:
        ImageFormatError: ``image`` is not a uint8 image array.
        SaliencyError: a parameter out of its range (e.g. ``size`` 0).
    """
    _check_params(size=size, sigma=sigma)
    gray = to_gray(image)
    h, w = gray.shape
    if np.ptp(gray) < _FLAT:  # a flat image: nothing stands out (its spectrum is DC alone)
        return np.zeros((h, w), np.float64)
    small = _shrunk(gray, size)
    spectrum = np.fft.fft2(small)
    log_amp = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amp - ndimage.uniform_filter(log_amp, size=3, mode="wrap")
    s = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    s = ndimage.gaussian_filter(s, sigma * max(small.shape) / size, mode="nearest")
    return normalise(_resize(normalise(s), (h, w)))


def gradient_entropy(image: np.ndarray, size: int = 256, scales: Sequence[float] = (1.0, 2.0, 4.0),
                     radius: int = 4, smooth: float = 2.0) -> np.ndarray:
    """Multi-scale gradient and local-entropy energy as an ``H x W`` map in ``[0, 1]``.

    On a gray copy shrunk so that its longer side is at most ``size`` pixels:

    - for each ``s`` in ``scales``, the Gaussian gradient magnitude at ``s`` pixels, normalised;
    - the local entropy of the gray levels (uint8) in a disk of ``radius`` pixels
      (:func:`skimage.filters.rank.entropy`), normalised;

    these ``len(scales) + 1`` maps are averaged with equal weights, smoothed by a Gaussian of
    ``smooth`` pixels, resized (bilinear) to ``H x W`` and normalised (:func:`normalise`; a flat
    image gives all zeros). Textured and edged areas score high, flat areas low.

    Raises:
        ImageFormatError: ``image`` is not a uint8 image array.
        SaliencyError: a parameter out of its range (e.g. ``size`` 0).
    """
    from skimage.filters.rank import entropy
    from skimage.morphology import disk

    _check_params(size=size, scales=scales, radius=radius, smooth=smooth)
    gray = to_gray(image)
    h, w = gray.shape
    small = _shrunk(gray, size)
    maps = [normalise(ndimage.gaussian_gradient_magnitude(small, s, mode="reflect")) for s in scales]
    gray8 = np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)
    maps.append(normalise(entropy(gray8, disk(radius))))
    energy = ndimage.gaussian_filter(np.mean(maps, axis=0), smooth, mode="nearest")
    return normalise(_resize(energy, (h, w)))


def centre_prior(shape: Any, sigma: float = 0.3) -> np.ndarray:
    """A Gaussian centred on the image, as an ``H x W`` map in ``(0, 1]``.

    ``exp(-((y - cy)^2 / (2 (sigma H)^2) + (x - cx)^2 / (2 (sigma W)^2)))`` with
    ``cy = (H - 1) / 2``, ``cx = (W - 1) / 2``, divided by its peak: exactly 1 at the centre pixel
    when H and W are odd, at the central 2 x 2 (or 1 x 2) pixels otherwise. ``sigma`` is a
    fraction of each side, so the prior stretches with the image's aspect ratio.

    Args:
        shape: ``(H, W)`` or ``(H, W, C)``, e.g. ``image.shape``.
        sigma: spread as a fraction of the side (> 0).

    Raises:
        ImageFormatError: ``shape`` is not a valid image shape.
        SaliencyError: ``sigma`` is not a positive number.
    """
    h, w = _shape_of(shape)
    if not (isinstance(sigma, int | float) and np.isfinite(sigma) and sigma > 0):
        raise SaliencyError(f"centre prior sigma must be a number > 0 (a fraction of each side), "
                            f"got {sigma!r}")
    y = (np.arange(h) - (h - 1) / 2) / (sigma * h)
    x = (np.arange(w) - (w - 1) / 2) / (sigma * w)
    g = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return g / g.max()


# --------------------------------------------------------------------------------------------
# Combining
# --------------------------------------------------------------------------------------------


def combine(maps: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Combine maps of one shape into one: the weighted mean, then :func:`normalise`.

    ``combine([m1, ..., mn], [w1, ..., wn]) = normalise(sum(wi * mi) / sum(wi))``; without
    ``weights`` every map weighs the same. Weights are numbers >= 0, not all 0; a map with weight
    0 is ignored. Because of the final stretch to ``[0, 1]``, only the weights' ratios matter,
    and a result with no contrast is all zeros.

    Raises:
        SaliencyError: no maps, or weights of the wrong count, negative, non-finite or all zero.
        ImageFormatError: a map is not a finite ``H x W`` array, or the maps' shapes differ.
    """
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        maps = [maps]
    arrays = [_as_map(m, f"map {i}") for i, m in enumerate(maps)]
    if not arrays:
        raise SaliencyError("combine needs at least one map")
    shapes = {m.shape for m in arrays}
    if len(shapes) > 1:
        raise ImageFormatError(
            f"maps to combine have different shapes {sorted(shapes)}; resize them to one H x W first"
        )
    if weights is None:
        w = np.ones(len(arrays))
    else:
        try:
            w = np.asarray(weights, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise SaliencyError(f"weights must be numbers, got {weights!r}") from exc
        if w.size != len(arrays):
            raise SaliencyError(f"got {w.size} weights for {len(arrays)} maps; give one weight per map")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise SaliencyError(f"weights must be finite numbers >= 0, not all 0, got {list(w)}")
    mean = sum(wi * m for wi, m in zip(w, arrays, strict=True)) / w.sum()
    return normalise(mean)


def is_method(name: Any) -> bool:
    """Whether ``name`` names a saliency method (an alias such as ``"center"`` included)."""
    return isinstance(name, str) and _ALIASES.get(name, name) in METHODS


def check_method(method: Any) -> str:
    """The canonical name of a saliency method (``"center"`` -> ``"centre"``).

    Raises:
        SaliencyError: an unknown method, naming the choices.
    """
    name = _ALIASES.get(method, method) if isinstance(method, str) else method
    if name not in METHODS:
        raise SaliencyError(
            f"unknown saliency method {method!r}; use one of {', '.join(METHODS)}"
        )
    return name


def saliency(image: np.ndarray, method: str = "auto") -> np.ndarray:
    """The saliency map of ``image``: ``H x W`` float64 in ``[0, 1]``.

    Methods:
        ``"spectral"``: :func:`spectral_residual`; ``"gradient"``: :func:`gradient_entropy`;
        ``"centre"`` (or ``"center"``): :func:`centre_prior` of the image's shape;
        ``"auto"``: ``combine([spectral, gradient, centre], [1, 1, 1])``, the three maps'
        mean stretched to ``[0, 1]`` (:data:`AUTO_WEIGHTS`, :func:`combine`); all 1 when that
        mean has no contrast (a flat 1 x 1 or 2 x 2 image: every pixel is its centre).

    Raises:
        ImageFormatError: ``image`` is not a uint8 image array.
        SaliencyError: an unknown method.
    """
    name = check_method(method)
    img = as_image(image)
    if name == "spectral":
        return spectral_residual(img)
    if name == "gradient":
        return gradient_entropy(img)
    if name == "centre":
        return centre_prior(img.shape)
    parts = {"spectral": spectral_residual(img), "gradient": gradient_entropy(img),
             "centre": centre_prior(img.shape)}
    m = combine(list(parts.values()), [AUTO_WEIGHTS[k] for k in parts])
    if not m.any():  # no contrast (a flat image whose every pixel is a centre pixel, 1 or 2 a side): stretched to
        # all 0 it had no region at all, where a larger flat image's centre pixels are 1
        return np.ones(m.shape, np.float64)
    return m


# --------------------------------------------------------------------------------------------
# Masks and regions of interest
# --------------------------------------------------------------------------------------------


def _mask_transparency(name: str) -> bool:
    """Whether an image file has pixels that are not fully opaque (False if Pillow can't tell)."""
    from PIL import Image

    try:
        with Image.open(name) as im:
            if "transparency" not in im.info and im.mode not in ("RGBA", "LA", "PA"):
                return False
            lo, _ = im.convert("RGBA").getchannel("A").getextrema()
            return lo < 255
    except Exception:  # noqa: BLE001 - read_image reports unreadable files properly
        return False


def _fit(m: np.ndarray, shape: Any, resize: bool, what: str) -> np.ndarray:
    """Check (or, with ``resize``, make) a map's size equal to ``shape``'s ``(H, W)``."""
    h, w = _shape_of(shape)
    if m.shape == (h, w):
        return m
    if not resize:
        sizes = f"{what} is {m.shape[0]}x{m.shape[1]} (H x W) but the image is {h}x{w}"
        raise ImageFormatError(
            f"{sizes}; make it the image's size, or stretch it with roi_from(..., resize=True) or "
            "read_mask(..., resize=True) (adatok.core.saliency) first",
            cli=f"{sizes}; resize the mask file to the image's size first, e.g. `magick MASK -resize '{w}x{h}!' "
                "OUT.png`",
        )
    return np.clip(_resize(m, (h, w)), 0.0, 1.0)


def read_mask(path: PathLike, shape: Any = None, resize: bool = False) -> np.ndarray:
    """Read a region-of-interest mask from an image file (PNG) as a float64 map in ``[0, 1]``.

    The file is read with :func:`adatok.core.imageio.read_image`. Each pixel's value is its
    brightest channel divided by 255: for a gray mask its gray level / 255, so white (255) is
    1 (inside), black (0) is 0 (outside) and gray levels give graded importance; for an RGB mask
    any coloured pixel counts (pure red ``(255, 0, 0)`` is 1). Masks with transparent pixels are
    rejected, because ``read_image`` flattens alpha onto white and would count transparent pixels
    as inside.

    Args:
        path: the mask file.
        shape: if given, the image's ``(H, W)`` (or ``(H, W, C)``, e.g. ``image.shape``); the mask
            must be that size unless ``resize`` is true.
        resize: stretch (bilinear) a mask of another size to ``shape``.

    Raises:
        ImageReadError: the file is missing or not a readable image.
        ImageFormatError: the mask has transparent pixels, or its size differs from ``shape`` and
            ``resize`` is false.
    """
    name = os.fspath(path)
    img = read_image(name)
    if _mask_transparency(name):
        raise ImageFormatError(
            f"mask {name} has transparent pixels, which would count as inside (alpha is flattened "
            f"onto white); save the mask without transparency: white (255) inside, black (0) outside"
        )
    m = img.max(axis=2).astype(np.float64) / 255.0
    if shape is None:
        return m
    return _fit(m, shape, resize, f"mask {name}")


def roi_from(spec: Any, image: np.ndarray, resize: bool = False) -> np.ndarray | None:
    """Turn a user's region of interest into a float64 map of ``image``'s ``H x W`` in ``[0, 1]``.

    ``spec`` may be:

    - ``None``: no region; returns ``None``.
    - a method name from :data:`METHODS` (``"auto"``, ``"spectral"``, ``"gradient"``,
      ``"centre"``/``"center"``): ``saliency(image, spec)``. Names win over files of that name
      (write ``./auto`` for a file called ``auto``).
    - any other ``str`` or path: a mask file, read by :func:`read_mask` with ``image``'s shape.
    - a numpy array ``H x W`` (or ``H x W x 1``): ``bool`` as 0 / 1, floats as they are (they
      must lie in ``[0, 1]``), integers as value / 255 (uint8 masks, 255 inside) except an integer
      array whose values are all 0 or 1 (``(mask > 0).astype(int)``), read as 0 / 1 (as value / 255
      it would weigh nothing, and a mask of 1s steer nothing).

    Args:
        spec: the region, as above.
        image: the uint8 image the region belongs to.
        resize: stretch a mask file or array of another size to the image's size instead of
            raising.

    Raises:
        SaliencyError: ``spec`` is of another type, or a string that is neither a method nor an
            existing file.
        ImageReadError: a mask file cannot be read.
        ImageFormatError: ``image`` is not an image array; the mask's size differs from the
            image's (and ``resize`` is false); an array holds values outside ``[0, 1]``
            (floats) or ``0..255`` (integers), NaN or infinity.
    """
    if spec is None:
        return None
    img = as_image(image)
    if is_method(spec):
        return saliency(img, spec)
    if isinstance(spec, str | os.PathLike):
        name = os.fspath(spec)
        if not os.path.exists(name):
            raise SaliencyError(
                f"roi {name!r} is neither a saliency method nor an existing file; use one of "
                f"{', '.join(METHODS)}, or the path of a PNG mask (white inside, black outside)"
            )
        return read_mask(name, img.shape, resize=resize)
    if isinstance(spec, np.ndarray):
        return _fit(region_values(spec, "roi array"), img.shape, resize, "roi array")
    raise SaliencyError(
        f"roi must be None, a method ({', '.join(METHODS)}), a mask file path or a numpy array, "
        f"got a {type(spec).__name__}"
    )


def write_map(path: PathLike, m: np.ndarray, replace_link: bool = False) -> None:
    """Write a map as an 8-bit gray PNG, atomically: pixel = ``round(255 * value)`` (``replace_link``:
    as :func:`adatok.core.imageio.write_image`'s).

    ``m`` is an ``H x W`` (or ``H x W x 1``) array with values in ``[0, 1]`` (bool counts as 0 / 1).
    :func:`read_mask` reads the file back to within ``1 / 510`` of each value.

    Raises:
        ImageFormatError: ``m`` is not a finite ``H x W`` array with values in ``[0, 1]``.
        AdatokError: ``path`` does not end in ``.png``, or the file cannot be written (see
            :func:`adatok.core.imageio.write_image`).
    """
    name = os.fspath(path)
    if not name.lower().endswith(".png"):
        raise AdatokError(f"{name}: saliency maps are written as PNG; give a path ending in .png")
    arr = _as_map(m, "map")
    if arr.min() < 0 or arr.max() > 1:
        raise ImageFormatError(
            f"map holds values in [{arr.min():.4g}, {arr.max():.4g}], outside [0, 1]; rescale it, "
            f"e.g. with adatok.core.saliency.normalise"
        )
    write_image(name, np.rint(arr * 255).astype(np.uint8), replace_link)
