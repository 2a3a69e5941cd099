"""Turning raw digits into model inputs: the one function shared by training and serving.

The dataset stores 8x8 images whose pixels count "ink" on a 0..16 scale (the scikit-learn
digits format). :func:`to_model_input` maps such arrays to the model's float input; training calls it in
``preprocess`` and serving on JSON instances and on images after :func:`image_to_pixels` has
reduced an uploaded PNG/JPEG to the same 8x8, 0..16 format.
Only numpy and Pillow are imported.
"""

from __future__ import annotations

import io

import numpy as np

SIDE = 8
N_FEATURES = SIDE * SIDE
MAX_PIXEL = 16.0
N_CLASSES = 10


class InputError(ValueError):
    """Input that cannot be turned into a digit; the message says why."""


def to_model_input(pixels: np.ndarray) -> np.ndarray:
    """Turn ``(n, 64)`` or ``(n, 8, 8)`` pixels on the 0..16 scale into float32 ``(n, 1, 8, 8)``.

    Every image is canonicalized (:func:`canonicalize`) and scaled to 0..1. ``preprocess``
    calls this on the dataset and the server on every request, so both see the same inputs.
    """
    array = np.asarray(pixels, dtype=np.float32)
    if array.ndim == 2 and array.shape[1] == N_FEATURES:
        array = array.reshape(-1, SIDE, SIDE)
    if array.ndim != 3 or array.shape[1:] != (SIDE, SIDE):
        raise InputError(f"expected pixels of shape (n, 64) or (n, 8, 8), got {array.shape}")
    if not np.isfinite(array).all():
        raise InputError("pixels contain NaN or infinity")
    if array.min(initial=0.0) < 0 or array.max(initial=0.0) > MAX_PIXEL:
        raise InputError(f"pixels must lie in [0, {MAX_PIXEL:g}]")
    canonical = np.stack([canonicalize(image / MAX_PIXEL) for image in array]) if len(array) else array
    return (canonical / MAX_PIXEL)[:, None, :, :].astype(np.float32)


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


def image_to_pixels(data: bytes) -> np.ndarray:
    """Reduce an image file (any size; dark ink on light paper or the reverse) to 8x8 on 0..16."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("the image file is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"not a readable image: {err}") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    light_paper = np.median(border) > 0.5
    ink = 1.0 - gray if light_paper else gray
    paper = np.median(1.0 - border if light_paper else border)
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
