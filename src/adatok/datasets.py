"""Images to try adatok on: the sample photos bundled with scikit-image.

Every image is returned the way :func:`adatok.read_image` returns files: a C-contiguous ``uint8``
array ``H x W x C`` with ``C`` 1 (gray) or 3 (RGB). The photos ship inside scikit-image, so nothing
is downloaded.

>>> from adatok.datasets import sample_images
>>> [(name, img.shape) for name, img in sample_images(["camera"], max_side=64)]
[('camera', (64, 64, 1))]

This module will grow into adatok's datasets module (folders of images, the evaluation sets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .core.errors import AdatokError
from .core.imageio import as_image

__all__ = ["SAMPLE_IMAGES", "sample_images", "shrink"]

#: Names of the bundled sample photos, in demo order; each is a function of ``skimage.data``.
SAMPLE_IMAGES: tuple[str, ...] = ("astronaut", "camera", "coffee", "chelsea", "rocket")


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale ``image`` (Lanczos) so that its longer side is at most ``max_side`` pixels.

    Images already small enough are returned unchanged. The result is ``H x W x C`` uint8.
    """
    from PIL import Image

    img = as_image(image)
    if isinstance(max_side, bool) or not isinstance(max_side, int | np.integer) or max_side < 1:
        raise AdatokError(f"max_side must be a whole number >= 1, got {max_side!r}")
    h, w, c = img.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray(img[:, :, 0] if c == 1 else img).resize(size, Image.Resampling.LANCZOS)
    return as_image(np.asarray(pil, dtype=np.uint8))


def sample_images(names: Sequence[str] | None = None,
                  max_side: int | None = None) -> list[tuple[str, np.ndarray]]:
    """The bundled sample photos as ``(name, image)`` pairs.

    Args:
        names: which photos, from :data:`SAMPLE_IMAGES` (default: all of them, in that order).
        max_side: if given, shrink each photo so that its longer side is at most this many pixels
            (for quick runs and tests).

    Raises:
        AdatokError: a name that is not one of :data:`SAMPLE_IMAGES`.
    """
    from skimage import data

    names = SAMPLE_IMAGES if names is None else tuple(names)
    unknown = [n for n in names if n not in SAMPLE_IMAGES]
    if unknown:
        raise AdatokError(f"unknown sample image {unknown[0]!r}: use one of {', '.join(SAMPLE_IMAGES)}")
    out = []
    for name in names:
        img = as_image(getattr(data, name)(), what=f"sample image {name!r}")
        if max_side is not None:
            img = shrink(img, max_side)
        out.append((name, img))
    return out
