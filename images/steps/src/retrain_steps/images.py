"""Decoding image files, bounded before anything is allocated: the one decoder of datasets and uploads.

The pixel count and aspect ratio are read from the header and checked before the pixels are
decoded; a JPEG far larger than needed is reduced while decoding (``reduce_to``). Only Pillow.
"""

from __future__ import annotations

import io
import re

from retrain_steps import settings
from retrain_steps.errors import InputError

MAX_ASPECT = 100
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def open_image(data: bytes, name: str = "the image", *, max_pixels: int | None = None,
               reduce_to: tuple[int, int] | None = None):
    """Decode an image file to a Pillow image in mode ``L`` or ``RGB`` (alpha composited on white).

    Raise :class:`InputError` naming ``name`` for an empty or unreadable file, more than
    ``max_pixels`` (default ``RETRAIN_MAX_IMAGE_PIXELS``) or an aspect ratio over 100:1.
    """
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels or settings.current().max_image_pixels
    if not data:
        raise InputError(f"{name} is empty")
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > limit:
            raise InputError(f"{name} has {width}x{height} pixels, over the pixel limit of {limit}")
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise InputError(f"{name} has an aspect ratio over {MAX_ASPECT}:1 ({width}x{height})")
        if reduce_to:
            image.draft(image.mode, reduce_to)  # JPEG: decode at a fraction of the size (DCT scaling)
        image.load()
    except InputError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own header check, for the largest ones
        raise InputError(f"{name} is over the pixel limit of {limit}: {err}") from None
    except UnidentifiedImageError:
        raise InputError(f"{name} is not a readable image: not a known image format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # truncated or corrupt: say how, no object reprs
        raise InputError(f"{name} is not a readable image: {_OBJECT_REPR.sub('the file', str(err))}") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if image.mode in GRAY_MODES else "RGB")
