"""The ``digits`` preprocessing profile: handwritten digits cropped, centred and reduced to 8x8.

The scikit-learn digits set stores 8x8 images whose pixels count "ink" on a 0..16 scale.
:func:`canonicalize` maps any ink map to that layout; :func:`image_to_pixels` reduces an
uploaded PNG/JPEG (dark ink on light paper or the reverse) to it. :mod:`retrain_steps.input_spec`
applies them for models whose spec names the ``digits`` profile. Only numpy and Pillow are imported.
"""

from __future__ import annotations

import io

import numpy as np

from retrain_steps.errors import InputError
from retrain_steps.images import open_image

__all__ = ["InputError", "canonicalize", "image_to_pixels", "pixels_to_png"]

SIDE = 8
WORK_SIDE = 256  # uploads are reduced to at most this many pixels a side before any float work
MAX_PIXEL = 16.0




def canonicalize(ink: np.ndarray) -> np.ndarray:
    """Crop a 2-D ink map (0..1, any size) to its digit, centre it in a square, reduce to 8x8.

    The digit's bounding box is padded to a square, area-averaged to 8x8 and scaled so the
    darkest cell is 16: the layout of the digits set, whatever the size of the source image.
    """
    peak = float(ink.max(initial=0.0))
    if peak < 0.1:
        raise InputError("the image has no visible digit (blank or uniform)")
    rows = np.flatnonzero(ink.max(axis=1) > 0.25 * peak)
    cols = np.flatnonzero(ink.max(axis=0) > 0.25 * peak)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = ink.shape
    side = max(height, width)
    canvas = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = ink
    if side != SIDE:
        from PIL import Image

        canvas = np.asarray(Image.fromarray(canvas).resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float32)
    return np.clip(canvas / max(float(canvas.max()), 1e-6) * MAX_PIXEL, 0.0, MAX_PIXEL)


def image_to_pixels(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Reduce an image file (any size; dark ink on light paper or the reverse) to 8x8 on 0..16."""
    image = open_image(data, "the image file", max_pixels=max_pixels, reduce_to=(SIDE * 8, SIDE * 8))
    image.thumbnail((WORK_SIDE, WORK_SIDE))  # a digit needs no more: big uploads cost no more than this
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.sort(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    middle = float(border[(len(border) - 1) // 2] + border[len(border) // 2]) / 2  # the median, sorted once
    light_paper = middle > 0.5
    ink = 1.0 - gray if light_paper else gray
    paper = 1.0 - middle if light_paper else middle
    return canonicalize(np.clip(ink - paper, 0.0, 1.0))


def pixels_to_png(pixels: np.ndarray, *, scale: int = 4, invert: bool = True) -> bytes:
    """Render 8x8 0..16 pixels as a PNG (ink on white by default); used for samples and tests."""
    from PIL import Image

    array = np.asarray(pixels, dtype=np.float32).reshape(SIDE, SIDE) / MAX_PIXEL
    if invert:
        array = 1.0 - array
    image = Image.fromarray((array * 255).round().astype(np.uint8), mode="L")
    image = image.resize((SIDE * scale, SIDE * scale), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
