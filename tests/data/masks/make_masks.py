"""Regenerate the subject masks in this folder (255 inside, 0 outside); see README.md.

Run from the repository root: ``.venv/bin/python tests/data/masks/make_masks.py``.
Shapes are (kind, x0, y0, x1, y1) in pixels of the full-size scikit-image photo, corners
inclusive, drawn with Pillow's ``ImageDraw.rectangle`` / ``ImageDraw.ellipse``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw
from skimage import data

#: name -> (H, W), list of (kind, x0, y0, x1, y1)
MASKS: dict[str, tuple[tuple[int, int], list[tuple[str, int, int, int, int]]]] = {
    # her face and hair, the neck ring and upper chest
    "astronaut": ((512, 512), [("ellipse", 152, 10, 302, 168),
                               ("rectangle", 112, 150, 308, 330)]),
    # the cameraman: head, coat, hands and camera (the tripod and background left out)
    "camera": ((512, 512), [("ellipse", 152, 62, 272, 212),
                            ("ellipse", 20, 100, 240, 300),
                            ("rectangle", 0, 200, 170, 511),
                            ("rectangle", 170, 135, 332, 260)]),
    # the cup and its handle (saucer and spoon left out)
    "coffee": ((400, 600), [("ellipse", 170, 14, 412, 266),
                            ("rectangle", 195, 225, 252, 308)]),
    # the cat's face: eyes, nose and mouth
    "chelsea": ((300, 451), [("ellipse", 100, 45, 380, 290)]),
    # the rocket on its pad
    "rocket": ((427, 640), [("rectangle", 300, 122, 345, 410)]),
}


def draw(name: str) -> Image.Image:
    """The mask of one photo as a Pillow 'L' image."""
    (h, w), shapes = MASKS[name]
    mask = Image.new("L", (w, h), 0)
    pen = ImageDraw.Draw(mask)
    for kind, x0, y0, x1, y1 in shapes:
        getattr(pen, kind)((x0, y0, x1, y1), fill=255)
    return mask


def main() -> None:
    """Write every mask next to this file, checking each size against the photo's."""
    here = Path(__file__).parent
    for name in MASKS:
        photo = getattr(data, name)()
        mask = draw(name)
        assert photo.shape[:2] == (mask.height, mask.width), name
        mask.save(here / f"{name}.png", optimize=True)


if __name__ == "__main__":
    main()
