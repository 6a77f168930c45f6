"""Image quality metrics over 8-bit images (all channels): PSNR, SSIM, and PSNR inside and
outside a region of interest."""

from __future__ import annotations

import numpy as np

from .checks import size_text
from .errors import BudgetError, ImageFormatError

#: A pixel is inside the region of interest where its map (values in [0, 1]) is at least this;
#: ``Quality(region="roi")``, the region PSNRs of ``adatok eval`` and the report all use it.
REGION_THRESHOLD = 0.5


def check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    """Raise :class:`~adatok.ImageFormatError` unless the two images have the same shape."""
    if np.shape(a) != np.shape(b):
        raise ImageFormatError(f"the images differ in shape: {np.shape(a)} against {np.shape(b)}")


def measured_pixels(mask, image: np.ndarray) -> np.ndarray | None:
    """The pixels a metric measures ``image`` on: ``None`` (all) without ``mask``, else an ``H x W``
    bool array: a bool mask as it is, any other map by :func:`region_mask` (inside where it is at
    least :data:`REGION_THRESHOLD`, as everywhere in adatok: a soft map's 0.2 is outside). An
    ``H x W x 1`` mask is read as ``H x W``, and so is a bool mask of the image's own shape that is
    alike in every channel. Raises :class:`~adatok.ImageFormatError` for a mask of
    another size than the image, or one with no pixel (a metric over no pixels has no value: PSNR
    was ``inf``, as for identical images, and SSIM ``nan``)."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype == bool:
        if m.ndim == 3 and m.shape == np.shape(image) and (m == m[:, :, :1]).all():
            m = m[:, :, 0]  # (a mask of the image's own shape, alike in every channel: whole pixels)
        m = m[:, :, 0] if m.ndim == 3 and m.shape[2] == 1 else m
        if m.ndim != 2:
            raise ImageFormatError(f"a mask is an H x W map, got an array of shape {m.shape}")
    else:
        m = region_mask(m)
    if m.shape != np.shape(image)[:2]:
        raise ImageFormatError(f"the mask is {m.shape[0]}x{m.shape[1]} but the image is "
                               f"{size_text(np.shape(image))}")
    if not m.any():
        raise ImageFormatError("the mask has no pixel inside: there is nothing to measure")
    return m


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error over all pixels and channels (inside ``mask`` if given: see
    :func:`measured_pixels`)."""
    check_same_shape(a, b)
    m = measured_pixels(mask, a)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = (a - b) ** 2
    if m is not None:
        d = d[m]  # (H x W selects whole pixels: every channel of each)
    return float(d.mean()) if d.size else 0.0


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit images; ``inf`` when they are identical (inside
    ``mask`` if given: see :func:`measured_pixels`)."""
    e = mse(a, b, mask)
    return float("inf") if e == 0 else float(10.0 * np.log10(255.0**2 / e))


def as_map(m, what: str = "map") -> np.ndarray:
    """Validate a map: a finite real ``H x W`` (or ``H x W x 1``) numpy array; as float64 ``H x W``
    (:class:`~adatok.ImageFormatError` otherwise)."""
    if not isinstance(m, np.ndarray):
        raise ImageFormatError(f"{what} is a {type(m).__name__}, not a numpy array; "
                               f"give an H x W float array with values in [0, 1]")
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2 or 0 in m.shape:
        raise ImageFormatError(f"{what} has shape {m.shape}; give an H x W map, one value per pixel (read a colour "
                               "mask with adatok.core.saliency.read_mask)")
    if m.dtype.kind not in "biuf":
        raise ImageFormatError(f"{what} has dtype {m.dtype}; give a float array with values "
                               f"in [0, 1]")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():
        raise ImageFormatError(f"{what} holds NaN or infinite values; give finite values in [0, 1]")
    return m


def region_values(roi: np.ndarray, what: str = "roi array") -> np.ndarray:
    """A region-of-interest array as the float64 ``H x W`` map every part of adatok reads it as
    (:func:`as_map`, then): ``bool`` as 0 / 1, floats as they are (in ``[0, 1]``), integers as
    value / 255 (uint8 masks, 255 inside) except an integer array whose values are all 0 or 1, read
    as 0 / 1. Values out of range raise :class:`~adatok.ImageFormatError`. (The encoder, through
    ``roi_from``, and the region's PSNR read one map alike: a uint8 mask of 100 was outside for the
    encoder, 100 / 255 < 0.5, and inside for :func:`region_psnr`, which compared the raw 100 with 0.5.)"""
    m = as_map(roi, what)
    kind = roi.dtype.kind
    if kind in "iu":
        if m.min() < 0 or m.max() > 255:
            raise ImageFormatError(f"{what} of integers must hold values 0..255 (a uint8 mask); give floats in "
                                   "[0, 1] otherwise")
        if m.max() > 1:  # a 0/1 integer mask stays 0/1
            m = m / 255.0
    elif kind == "f" and (m.min() < 0 or m.max() > 1):
        raise ImageFormatError(f"{what} holds values in [{m.min():.4g}, {m.max():.4g}], outside [0, 1]; rescale "
                               "it, e.g. with adatok.core.saliency.normalise")
    return m


def region_mask(roi: np.ndarray) -> np.ndarray:
    """The pixels inside a region of interest: :func:`region_values` of ``roi`` at least
    ``REGION_THRESHOLD``, as an ``H x W`` bool array (a list is taken as an array)."""
    return region_values(np.asarray(roi), "a region of interest") >= REGION_THRESHOLD


def quality_mask(target, roi: np.ndarray | None, what: str = "the image") -> np.ndarray | None:
    """The pixels a :class:`~adatok.Quality` target is measured on: ``None`` (the whole image) unless
    ``target.region == "roi"``, then :func:`region_mask` of ``roi``. Raises
    :class:`~adatok.BudgetError` when that region has no pixel (a quality over no pixels would be
    met by any prefix, the empty one included)."""
    if target.region != "roi":
        return None
    if roi is None:
        raise BudgetError(f"Quality(region='roi') needs a region of interest for {what}: pass roi=[...]")
    mask = region_mask(roi)
    if not mask.any():
        raise BudgetError(f"the region of interest of {what} is empty: no pixel of its map reaches "
                          f"{REGION_THRESHOLD} (its largest value is {float(np.max(roi)):.3g}); "
                          "mark the region with values >= 0.5, or drop region='roi'")
    return mask


def quality_score(ref: np.ndarray, out: np.ndarray, target, mask: np.ndarray | None = None) -> float:
    """What a :class:`~adatok.Quality` target measures of ``out`` against ``ref``: PSNR (dB) or SSIM,
    over the pixels of ``mask`` when given (:func:`psnr` and :func:`ssim` with ``mask``)."""
    if target.psnr is not None:
        return psnr(ref, out, mask)
    return ssim(ref, out, mask)


def region_psnr(a: np.ndarray, b: np.ndarray, roi: np.ndarray) -> tuple[float | None, float | None]:
    """PSNR (dB) of ``b`` against ``a`` inside the region of interest and outside it.

    ``roi`` is the region's ``H x W`` map in ``[0, 1]`` (inside: :func:`region_mask`). A side
    with no pixels has no PSNR (``None``), e.g. the outside of a region that covers the image.
    """
    inside = region_mask(roi)
    if inside.shape != np.shape(a)[:2]:
        raise ImageFormatError(f"region is {inside.shape[0]}x{inside.shape[1]} but the image is "
                         f"{size_text(np.shape(a))}")
    return (psnr(a, b, inside) if inside.any() else None,
            psnr(a, b, ~inside) if not inside.all() else None)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (scikit-image's), mean over channels.

    Gaussian weights of sigma 1.5 (scikit-image's ``gaussian_weights``: 11 x 11 taps) with
    ``win_size=7``, which only sets the border left out (3 pixels; Wang et al. leave out 5); under 7
    pixels a side a 5 x 5 or 3 x 3 uniform window.

    With ``mask`` (see :func:`measured_pixels`), the mean of the SSIM map over the mask's pixels (those a full
    window fits around, as the whole image's SSIM leaves out its border; all of the mask's pixels
    when none does), not over a box around them. Images too small for a 3 x 3 window are one
    window (of the mask's pixels)."""
    from skimage.metrics import structural_similarity

    check_same_shape(a, b)
    m = measured_pixels(mask, a)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    h, w = a.shape[:2]
    win = min(7, h, w)
    win -= 1 - win % 2  # odd
    if m is not None and win >= 3:
        pad = (win - 1) // 2
        inner = np.zeros_like(m)
        inner[pad:h - pad, pad:w - pad] = m[pad:h - pad, pad:w - pad]
        m = inner if inner.any() else m
    vals = []
    for c in range(a.shape[-1]):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        if win >= 3:
            mean, smap = structural_similarity(x, y, data_range=255, win_size=win,
                                               gaussian_weights=win == 7, sigma=1.5,
                                               use_sample_covariance=False, full=True)
            vals.append(mean if m is None else float(smap[m].mean()))
        else:  # too small for a sliding window: SSIM with the whole image (or mask) as the one window
            if m is not None:
                x, y = x[m], y[m]
            c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
            mx, my = x.mean(), y.mean()
            vx, vy, cxy = x.var(), y.var(), ((x - mx) * (y - my)).mean()
            vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))
