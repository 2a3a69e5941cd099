"""Dataset files: the ``.npz`` format every step exchanges, and the embedded default set."""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np

from retrain_steps import artifacts, settings
from retrain_steps.digits_profile import MAX_PIXEL


class DataError(ValueError):
    """A dataset that does not have the expected format; the message names the problem."""


def load_npz(data: bytes, uri: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Parse an ``.npz`` object and check it holds ``keys``.

    A corrupt archive (bad CRC, truncated) is bad input, as is one whose arrays would unpack
    past ``RETRAIN_MAX_DATASET_BYTES`` (checked from the archive's directory, before unpacking).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        limit = settings.current().max_dataset_bytes
        if unpacked > limit:
            raise DataError(f"{uri} unpacks to {unpacked} bytes, over the limit of {limit} "
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
    """Serialize arrays to ``.npz`` bytes, byte-stable: uncompressed, sorted, fixed timestamps.

    The same arrays always give the same bytes, so a dataset's sha256 is its content hash.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buffer.getvalue()


def check_canonical(arrays: dict[str, np.ndarray], uri: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate a canonical dataset (what ``download`` writes): ``images`` uint8 ``(n, H, W, C)``,
    ``target`` ``(n,)`` indexing ``class_names``; return the three."""
    images, target = arrays["images"], arrays["target"]
    names = [str(name) for name in arrays["class_names"]]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{uri}: 'images' must be uint8 (n, H, W, 1|3), got {images.dtype} {images.shape}")
    if target.shape != (images.shape[0],) or target.dtype.kind not in "iu":
        raise DataError(f"{uri}: 'target' must be integers of shape ({images.shape[0]},), got {target.shape}")
    if len(target) and (target.min() < 0 or target.max() >= len(names)):
        raise DataError(f"{uri}: labels must index the {len(names)} class names")
    return images, target.astype(np.int64), names


def profile_of(arrays: dict[str, np.ndarray]) -> str | None:
    """The preprocessing profile a dataset declares (its optional 0-d ``profile`` array)."""
    return str(arrays["profile"]) if "profile" in arrays else None


def export_default(output: str) -> str:
    """Write scikit-learn's embedded digits set (1,797 8x8 images, classes "0".."9") to ``output``
    as a canonical dataset that declares the ``digits`` profile; return its sha256."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / MAX_PIXEL)).astype(np.uint8)[..., None]
    payload = dump_npz(images=images, target=digits.target.astype(np.int64),
                       class_names=np.array([str(d) for d in range(10)]), profile=np.array("digits"))
    return artifacts.write_bytes(output, payload)
