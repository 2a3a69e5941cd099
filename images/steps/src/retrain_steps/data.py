"""Dataset files: the ``.npz`` format every step exchanges, and the embedded default set."""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import numpy as np

from retrain_steps import artifacts
from retrain_steps.features import MAX_PIXEL, N_CLASSES, SIDE


class DataError(ValueError):
    """A dataset that does not have the expected format; the message names the problem."""


MAX_ARRAY_BYTES = int(os.environ.get("RETRAIN_MAX_DATASET_BYTES", str(4 * 1024**3)))


def load_npz(data: bytes, uri: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Parse an ``.npz`` object and check it holds ``keys``.

    A corrupt archive (bad CRC, truncated) is bad input, as is one whose arrays would unpack
    past ``RETRAIN_MAX_DATASET_BYTES`` (checked from the archive's directory, before unpacking).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_ARRAY_BYTES:
            raise DataError(f"{uri} unpacks to {unpacked} bytes, over the limit of {MAX_ARRAY_BYTES} "
                            "(RETRAIN_MAX_DATASET_BYTES)")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{uri} is not a valid .npz archive: {err}") from None
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DataError(f"{uri} lacks arrays {missing}; it has {sorted(arrays)}")
    return arrays


def dump_npz(**arrays: np.ndarray) -> bytes:
    """Serialize arrays to ``.npz`` bytes (uncompressed, so identical inputs give identical bytes)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def check_dataset(arrays: dict[str, np.ndarray], uri: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a raw dataset: ``images`` (n, 8, 8) on 0..16 and ``target`` (n,) in 0..9."""
    images, target = arrays["images"], arrays["target"]
    if images.ndim == 2 and images.shape[1] == SIDE * SIDE:
        images = images.reshape(-1, SIDE, SIDE)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{uri}: 'images' must have shape (n, 8, 8), got {images.shape}")
    if target.shape != (images.shape[0],):
        raise DataError(f"{uri}: 'target' must have shape ({images.shape[0]},), got {target.shape}")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > MAX_PIXEL:
        raise DataError(f"{uri}: pixel values must be finite and within [0, {MAX_PIXEL:g}]")
    if target.min() < 0 or target.max() >= N_CLASSES:
        raise DataError(f"{uri}: labels must lie in 0..{N_CLASSES - 1}")
    if len(np.unique(target)) < 2:
        raise DataError(f"{uri}: needs at least two classes")
    return images.astype(np.float32), target.astype(np.int64)


def export_default(output: str) -> str:
    """Write scikit-learn's embedded digits set (1,797 images) to ``output``; return its sha256."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    payload = dump_npz(images=digits.images.astype(np.float32), target=digits.target.astype(np.int64))
    return artifacts.write_bytes(output, payload)
