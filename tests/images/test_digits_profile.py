"""The shared input function: images of any size and polarity reduce to the training format."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retrain_steps.digits_profile import InputError, image_to_pixels, pixels_to_png
from retrain_steps.input_spec import DIGITS, from_instances, prepare


def to_model_input(pixels: np.ndarray) -> np.ndarray:
    """What the server does with digits JSON instances (0..16): from_instances, then prepare."""
    return prepare(from_instances(np.asarray(pixels).reshape(len(pixels), -1).tolist(), DIGITS), DIGITS)
from serving.service import EXAMPLE_INSTANCE

THREE = np.array(EXAMPLE_INSTANCE, dtype=np.float32).reshape(8, 8)


def png(array: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("scale", [1, 3, 8, 40])
@pytest.mark.parametrize("invert", [True, False])
def test_an_image_reduces_to_the_same_canonical_pixels(scale, invert):
    expected = to_model_input(THREE[None])[0, 0] * 16
    got = image_to_pixels(pixels_to_png(THREE, scale=scale, invert=invert))
    assert got.shape == (8, 8) and got.max() == pytest.approx(16.0)
    assert np.abs(got - expected).mean() < 2.0, "the upload must look like the training input"


def test_position_and_margin_do_not_matter():
    canvas = np.full((100, 60), 255, dtype=np.uint8)
    digit = np.asarray(Image.open(io.BytesIO(pixels_to_png(THREE, scale=5))).convert("L"))
    canvas[10:50, 5:45] = digit
    moved = np.full((100, 60), 255, dtype=np.uint8)
    moved[55:95, 18:58] = digit
    assert np.allclose(image_to_pixels(png(canvas)), image_to_pixels(png(moved)), atol=1e-4)


def test_rgba_with_transparency_is_read_on_white():
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[8:24, 14:18] = (0, 0, 0, 255)  # a black bar on a transparent background
    pixels = image_to_pixels(png(rgba, mode="RGBA"))
    assert pixels[:, 3:5].mean() > pixels[:, :2].mean()


def test_jpeg_is_accepted():
    image = Image.open(io.BytesIO(pixels_to_png(THREE, scale=10))).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    assert image_to_pixels(buffer.getvalue()).shape == (8, 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a-not-really", "not a readable image"),
        (png(np.full((20, 20), 255)), "no visible digit"),
        (png(np.zeros((20, 20))), "no visible digit"),
    ],
)
def test_bad_images_raise_a_clear_error(data, message):
    with pytest.raises(InputError, match=message):
        image_to_pixels(data)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((1, 63)), "shape"),
        (np.full((1, 64), np.nan), r"finite numbers in \[0, 16\]"),
        (np.full((1, 64), 17.0), r"\[0, 16\]"),
        (np.full((1, 64), -1.0), r"\[0, 16\]"),
        (np.zeros((1, 64)), "no visible digit"),
    ],
)
def test_bad_pixel_arrays_raise_a_clear_error(pixels, message):
    with pytest.raises(InputError, match=message):
        to_model_input(pixels)


def test_model_input_shape_and_scale():
    x = to_model_input(np.stack([THREE.ravel(), THREE.ravel()]))
    assert x.shape == (2, 1, 8, 8) and x.dtype == np.float32
    assert x.max() == pytest.approx(1.0) and x.min() >= 0.0
