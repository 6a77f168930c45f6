"""Quality of a reconstruction: PSNR and SSIM (from :mod:`adatok.core.metrics`) and MS-SSIM.

MS-SSIM is sewar's implementation (Wang, Simoncelli and Bovik 2003: Gaussian window 11, sigma 1.5,
the five standard scale weights, 2 x 2 average-and-decimate between scales), computed on each
channel of the 8-bit image and averaged over channels, as pytorch-msssim does for RGB. Images
whose shorter side is under 176 pixels get fewer scales (sewar drops the coarsest ones that no
longer hold an 11 x 11 window, without renormalising the weights); images under 11 pixels on a
side have no MS-SSIM (``nan``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core.errors import AdatokError
from ..core.metrics import check_same_shape, psnr, ssim

__all__ = ["EXACT_PSNR", "MS_SSIM_MIN_SIDE", "mean_psnr", "ms_ssim", "quality"]

#: Smallest side (pixels) with an MS-SSIM: one 11 x 11 window.
MS_SSIM_MIN_SIDE = 11

#: What an exact reconstruction (PSNR infinite) counts as in a mean PSNR, in dB: the rule of
#: ``benchmarks/monotonicity.py`` (``EXACT_DB``) too. One flat image decoded exactly made every
#: method's mean ``inf``, and its curve vanish from the plots.
EXACT_PSNR = 100.0


def mean_psnr(values) -> tuple[float, int]:
    """The mean of PSNRs in dB with each exact one (``inf``) counted as :data:`EXACT_PSNR`, and how
    many were exact; ``(nan, 0)`` for none. NaN values (not measured) are left out."""
    vals = [float(v) for v in values if not np.isnan(v)]
    if not vals:
        return float("nan"), 0
    exact = sum(1 for v in vals if v == float("inf"))
    return float(np.mean([min(v, EXACT_PSNR) for v in vals])), exact


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM of two 8-bit images of the same shape, mean over channels (1 = identical).

    ``nan`` when the shorter side is under :data:`MS_SSIM_MIN_SIDE` pixels.
    """
    try:
        from sewar.full_ref import msssim
    except ImportError as exc:  # pragma: no cover - the eval extra installs it
        raise AdatokError("MS-SSIM needs sewar: pip install 'adatok[eval]'") from exc
    check_same_shape(a, b)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return float("nan")
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "image too small for 5 scales": documented above
        for c in range(a.shape[2]):
            # one channel at a time: sewar's 2 x 2 decimation filter would mix the channels of an H x W x C array
            vals.append(float(msssim(a[:, :, c], b[:, :, c], MAX=255)))
    return float(np.mean(vals))


def quality(original: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
    """``{"psnr": dB, "ssim": .., "ms_ssim": ..}`` of a reconstruction against its original."""
    return {"psnr": psnr(original, reconstruction), "ssim": ssim(original, reconstruction),
            "ms_ssim": ms_ssim(original, reconstruction)}
