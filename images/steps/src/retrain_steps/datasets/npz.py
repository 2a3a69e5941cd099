"""``.npz`` datasets: ``images`` (n, H, W) or (n, H, W, C), any numeric range; ``target`` (n,);
optional ``class_names`` and ``profile``.

Pixel values are mapped to 0..255: uint8 as they are; values within [0, 1] scaled by 255;
within [0, 255] taken as they are; any other range stretched linearly from its min and max.
Labels are integers 0..k-1 (with ``class_names`` of length k), or any values when
``class_names`` is absent: then the sorted distinct labels become the class names.
"""

from __future__ import annotations

import numpy as np

from retrain_steps import settings
from retrain_steps.data import DataError, load_npz, profile_of
from retrain_steps.datasets.canonical import Canonical, check_classes


def to_uint8(images: np.ndarray, source: str) -> tuple[np.ndarray, str]:
    """Pixels on 0..255 and the rule applied (recorded in the dataset card)."""
    if images.dtype == np.uint8:
        return images, "uint8 as is"
    if images.dtype.kind not in "iuf":
        raise DataError(f"{source}: 'images' must be numeric, got dtype {images.dtype}")
    values = images.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{source}: 'images' contains NaN or infinity")
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    if low >= 0 and high <= 1:
        return np.round(values * 255).astype(np.uint8), "[0, 1] scaled by 255"
    if low >= 0 and high <= 255:
        return np.round(values).astype(np.uint8), "[0, 255] as is"
    return np.round((values - low) / (high - low) * 255).astype(np.uint8), f"[{low:g}, {high:g}] stretched to 0..255"


def read(data: bytes, source: str) -> Canonical:
    arrays = load_npz(data, source, ("images", "target"))
    images, target = arrays["images"], arrays["target"]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or min(images.shape[1:3], default=0) < 1:
        raise DataError(f"{source}: 'images' must have shape (n, H, W) or (n, H, W, 1|3), got {arrays['images'].shape}")
    if len(images) > settings.current().max_images:
        raise DataError(f"{source}: {len(images)} images, over the limit of {settings.current().max_images} "
                        "(RETRAIN_MAX_IMAGES)")
    if target.shape != (images.shape[0],):
        raise DataError(f"{source}: 'target' must have shape ({images.shape[0]},), got {target.shape}")
    if "class_names" in arrays:
        names = [str(name) for name in np.asarray(arrays["class_names"]).ravel()]
        if target.dtype.kind not in "iu" or (len(target) and (target.min() < 0 or target.max() >= len(names))):
            raise DataError(f"{source}: 'target' must be integers indexing the {len(names)} class names")
        labels = target.astype(np.int64)
    else:
        if target.dtype.kind not in "iuU":
            raise DataError(f"{source}: 'target' must hold integer or string labels, got dtype {target.dtype}")
        distinct, labels = np.unique(target, return_inverse=True)
        names = [str(value) for value in distinct]
    if len(set(names)) != len(names):
        raise DataError(f"{source}: class names repeat: {names}")
    check_classes(labels, names, source)
    pixels, rule = to_uint8(images, source)
    details = {"format": "npz", "pixel_range": rule, "sizes_seen": {f"{images.shape[2]}x{images.shape[1]}": len(images)},
               "modes_seen": {"L" if images.shape[-1] == 1 else "RGB": len(images)}, "skipped": {}}
    return Canonical(pixels, labels, names, profile=profile_of(arrays), details=details)
