"""The input spec of a model and :func:`prepare`, the one function that turns images into its input.

A spec says what a model takes: image size, channels (1: grayscale, 3: RGB), the class names
it predicts, the normalisation statistics measured on the train split, and a preprocessing
*profile*:

* ``image``: resize to the spec's size, convert to its channels, scale to 0..1, normalise with
  the train split's per-channel mean and std (any image-classification dataset);
* ``digits``: the crop-and-centre canonicalisation of handwritten digits
  (:func:`retrain_steps.digits_profile.canonicalize`), the embedded default's profile.

Raw images everywhere (datasets, splits, uploads after :func:`decode_upload`, JSON instances
after :func:`from_instances`) are ``uint8`` arrays ``(n, H, W, C)`` on 0..255. ``preprocess``,
``train``, ``evaluate`` and the server all call :func:`prepare` with the model's spec, which
``train`` stores in ``model.json`` and the registry and the bento carry. Only numpy and Pillow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from retrain_steps.digits_profile import MAX_PIXEL, SIDE, InputError, canonicalize, image_to_pixels
from retrain_steps.images import open_image

PROFILES = ("image", "digits")
# Uploads are decoded under a tighter pixel limit than datasets: a server decodes many at once.
# The server passes its own (serving.settings: DIGITS_MAX_UPLOAD_PIXELS); this is the default.
MAX_UPLOAD_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int
    class_names: tuple[str, ...]
    profile: str = "image"
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown preprocessing profile {self.profile!r}; expected one of {PROFILES}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not (4 <= self.height <= 512 and 4 <= self.width <= 512):
            raise ValueError(f"image size must be 4..512 pixels a side, got {self.height}x{self.width}")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"need at least two distinct class names, got {list(self.class_names)}")
        if self.profile == "digits" and (self.channels, self.height, self.width) != (1, SIDE, SIDE):
            raise ValueError(f"the digits profile takes {SIDE}x{SIDE} grayscale images")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The model's input shape, channels first: ``(C, H, W)``."""
        return self.channels, self.height, self.width

    @property
    def instance_scale(self) -> float:
        """The largest pixel value of a JSON instance: 16 for digits (the digits set's scale), else 255."""
        return MAX_PIXEL if self.profile == "digits" else 255.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(class_names=list(self.class_names), mean=list(self.mean), std=list(self.std))
        return out

    @classmethod
    def from_dict(cls, value: dict) -> InputSpec:
        return cls(
            height=int(value["height"]), width=int(value["width"]), channels=int(value["channels"]),
            class_names=tuple(str(name) for name in value["class_names"]), profile=value.get("profile", "image"),
            mean=tuple(float(m) for m in value.get("mean", ())), std=tuple(float(s) for s in value.get("std", ())),
        )

    def with_statistics(self, train_images: np.ndarray) -> InputSpec:
        """This spec with the per-channel mean and std of ``train_images`` (raw, at the spec's size)."""
        if self.profile == "digits":
            return self
        scaled = convert(train_images, self).astype(np.float64) / 255.0
        std = scaled.std(axis=(0, 1, 2))
        return replace(self, mean=tuple(float(m) for m in scaled.mean(axis=(0, 1, 2))),
                       std=tuple(float(max(s, 1e-3)) for s in std))

    def compatible(self, other: InputSpec) -> str | None:
        """None when a model of spec ``other`` takes this spec's inputs and classes, else why not."""
        if other.class_names != self.class_names:
            return f"it predicts classes {list(other.class_names)}, this data has {list(self.class_names)}"
        if (other.profile, other.shape) != (self.profile, self.shape):
            return (f"it takes {other.profile} inputs of shape {other.shape}, this run prepares "
                    f"{self.profile} inputs of shape {self.shape}")
        return None


# The spec of every digits model trained before specs were stored.
DIGITS = InputSpec(height=SIDE, width=SIDE, channels=1, class_names=tuple(str(d) for d in range(10)), profile="digits")


def spec_of_model(info: dict) -> InputSpec:
    """The input spec recorded in a ``model.json``; models from before specs are digits models."""
    return InputSpec.from_dict(info["input_spec"]) if info.get("input_spec") else DIGITS


def convert(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Raw ``(n, H, W, C)`` uint8 images at any size → ``(n, spec.height, spec.width, spec.channels)`` uint8."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise InputError(f"expected images of shape (n, H, W) or (n, H, W, 1|3), got {images.shape}")
    n, height, width, channels = images.shape
    if channels != spec.channels:
        if spec.channels == 1:  # ITU-R 601-2 luma, as Pillow's convert("L")
            images = (images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            images = np.clip(images.round(), 0, 255)
        else:
            images = np.repeat(images, 3, axis=-1)
    images = images.astype(np.uint8)
    if (height, width) == (spec.height, spec.width):
        return images
    mode = "L" if spec.channels == 1 else "RGB"
    out = np.empty((n, spec.height, spec.width, spec.channels), np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if spec.channels == 1 else image, mode=mode)
        resized = np.asarray(pil.resize((spec.width, spec.height), Image.Resampling.BILINEAR, reducing_gap=2.0))
        out[i] = resized.reshape(spec.height, spec.width, spec.channels)
    return out


def prepare(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Raw uint8 ``(n, H, W[, C])`` images → the model's float32 input ``(n, C, H, W)``.

    Training, evaluation and the server call this with the model's spec, so all three see the
    same inputs.
    """
    converted = convert(images, spec)
    if spec.profile == "digits":
        if not len(converted):
            return np.zeros((0, 1, SIDE, SIDE), np.float32)
        ink = converted[..., 0].astype(np.float32) / 255.0
        canonical = np.stack([canonicalize(image) for image in ink])
        return (canonical / MAX_PIXEL)[:, None, :, :].astype(np.float32)
    x = converted.astype(np.float32) / 255.0
    if spec.mean:
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)), dtype=np.float32)


def decode_upload(data: bytes, spec: InputSpec, max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """An uploaded image file of any size and mode (at most ``max_pixels``) → one raw image ``(1, H, W, C)``
    for :func:`prepare`."""
    if spec.profile == "digits":  # paper detection + crop-and-centre: the digits profile's own decoding
        pixels = image_to_pixels(data, max_pixels=max_pixels)
        return np.round(pixels * (255.0 / MAX_PIXEL)).astype(np.uint8)[None, :, :, None]
    image = open_image(data, "the uploaded image", max_pixels=max_pixels, reduce_to=(spec.width, spec.height))
    from PIL import Image

    image = image.convert("L" if spec.channels == 1 else "RGB")
    image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(image, np.uint8).reshape(1, spec.height, spec.width, spec.channels)


def from_instances(instances: list, spec: InputSpec) -> np.ndarray:
    """JSON ``instances`` of the model's own shape → raw images ``(n, H, W, C)`` for :func:`prepare`.

    Each instance is ``H*W*C`` numbers row by row, or nested ``(H, W)`` / ``(H, W, C)``, on
    ``0..spec.instance_scale`` (0..16 for digits, else 0..255). Strings and booleans are refused.
    """
    h, w, c = spec.height, spec.width, spec.channels
    shape_text = f"{h * w * c} numbers, or nested [{h}][{w}]" + (f"[{c}]" if c > 1 else "")
    try:
        array = np.asarray(instances)
    except ValueError:
        raise InputError(f"instances must all have the model's shape: {shape_text}") from None
    if array.dtype.kind not in "iuf":
        raise InputError("instances must hold numbers only (no strings, booleans or nulls)")
    n = array.shape[0] if array.ndim else 0
    if array.ndim == 2 and array.shape[1] == h * w * c:
        array = array.reshape(n, h, w, c)
    elif array.ndim == 3 and c == 1 and array.shape[1:] == (h, w):
        array = array[..., None]
    elif not (array.ndim == 4 and array.shape[1:] == (h, w, c)):
        raise InputError(f"each instance must be {shape_text}; got shape {list(array.shape[1:])}")
    array = array.astype(np.float64)
    scale = spec.instance_scale
    if not np.isfinite(array).all() or array.min(initial=0) < 0 or array.max(initial=0) > scale:
        raise InputError(f"instance values must be finite numbers in [0, {scale:g}]")
    return np.round(array * (255.0 / scale)).astype(np.uint8)
