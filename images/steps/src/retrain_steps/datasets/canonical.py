"""Building one canonical dataset from images of any source: the checks every format shares.

A canonical dataset is ``dataset.npz`` with ``images`` uint8 ``(n, H, W, C)`` (one size for all,
C = 1 for grayscale or 3 for RGB), ``target`` int64 ``(n,)``, ``class_names`` and an optional
``profile``; its sha256 is the dataset version. :class:`DatasetBuilder` collects labelled images
one by one, shrinks each to at most ``RETRAIN_MAX_STORED_SIDE`` pixels a side as it arrives, and
refuses (naming the file or class) mixed grayscale/colour images, empty or single classes, and
more images than ``RETRAIN_MAX_IMAGES``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from retrain_steps import settings
from retrain_steps.data import DataError, dump_npz
from retrain_steps.errors import InputError
from retrain_steps.images import open_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


@dataclass
class Canonical:
    """A dataset in canonical form plus what its card says about where it came from."""

    images: np.ndarray
    target: np.ndarray
    class_names: list[str]
    profile: str | None = None
    details: dict = field(default_factory=dict)

    def payload(self) -> bytes:
        arrays = {"images": self.images, "target": self.target, "class_names": np.array(self.class_names)}
        if self.profile:
            arrays["profile"] = np.array(self.profile)
        return dump_npz(**arrays)

    def card(self, sha256: str) -> dict:
        counts = np.bincount(self.target, minlength=len(self.class_names))
        return {
            "sha256": sha256,
            "version": sha256[:12],
            "samples": int(len(self.target)),
            "class_names": self.class_names,
            "class_counts": {name: int(n) for name, n in zip(self.class_names, counts)},
            "image_size": [int(self.images.shape[1]), int(self.images.shape[2])],
            "channels": int(self.images.shape[3]),
            "profile": self.profile or "image",
            **self.details,
        }


def check_classes(target: np.ndarray, class_names: list[str], source: str) -> None:
    """At least two classes, each with at least one image; the message names an empty class."""
    if len(class_names) < 2:
        raise DataError(f"{source}: needs at least two classes, found {class_names or 'none'}")
    counts = np.bincount(target, minlength=len(class_names))
    empty = [name for name, n in zip(class_names, counts) if n == 0]
    if empty:
        raise DataError(f"{source}: class {empty[0]!r} has no images" + (f" (nor {empty[1:]})" if empty[1:] else ""))


class DatasetBuilder:
    """Collect ``(name, class, image bytes)`` and build a :class:`Canonical` dataset."""

    def __init__(self, source: str, fmt: str) -> None:
        self.source, self.fmt = source, fmt
        self.images: list[np.ndarray] = []
        self.labels: list[str] = []
        self.sizes: Counter = Counter()
        self.modes: dict[str, str] = {}  # mode → first file seen in it
        self.mode_counts: Counter = Counter()
        self.skipped: Counter = Counter()

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def add(self, name: str, label: str, data: bytes) -> None:
        if len(self.images) >= settings.current().max_images:
            raise DataError(f"{self.source}: more than {settings.current().max_images} images (RETRAIN_MAX_IMAGES)")
        try:
            image = open_image(data, name)
        except InputError as err:
            raise DataError(f"{self.source}: {err}") from None
        self.sizes[f"{image.width}x{image.height}"] += 1
        self.modes.setdefault(image.mode, name)
        self.mode_counts[image.mode] += 1
        if len(self.modes) > 1:
            (gray_mode, gray_file), (_, color_file) = sorted(self.modes.items())  # "L" < "RGB"
            raise DataError(f"{self.source}: mixed image modes: {gray_file} is grayscale, {color_file} is colour; "
                            "convert the dataset to one mode")
        side = settings.current().max_stored_side
        if max(image.size) > side:
            image.thumbnail((side, side))
        self.images.append(np.asarray(image, np.uint8))
        self.labels.append(label)

    def build(self, class_names: list[str] | None = None) -> Canonical:
        """The canonical dataset: every image at the most common size (others resized), classes sorted."""
        from PIL import Image

        names = class_names if class_names is not None else sorted(set(self.labels))
        if not self.images:
            raise DataError(f"{self.source}: no images found" + (f" (skipped: {dict(self.skipped)})" if self.skipped else ""))
        index = {name: i for i, name in enumerate(names)}
        target = np.array([index[label] for label in self.labels], np.int64)
        check_classes(target, names, self.source)
        shapes = Counter(image.shape[:2] for image in self.images)
        height, width = shapes.most_common(1)[0][0]
        resized = 0
        stack = np.empty((len(self.images), height, width, 1 if self.images[0].ndim == 2 else 3), np.uint8)
        for i, image in enumerate(self.images):
            if image.shape[:2] != (height, width):
                image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
                resized += 1
            stack[i] = image.reshape(stack.shape[1:])
        details = {"format": self.fmt, "sizes_seen": dict(self.sizes), "modes_seen": dict(self.mode_counts),
                   "resized_to_common_size": resized, "skipped": dict(self.skipped)}
        return Canonical(stack, target, list(names), details=details)
