"""The steps' settings: read once by the step CLI's entry (:mod:`retrain_steps.__main__`), checked, a bad value named.

- ``RETRAIN_MAX_READ_BYTES`` (2 GiB): largest object a step reads (size checked first);
- ``RETRAIN_MAX_DATASET_BYTES`` (4 GiB): largest unpacked ``.npz``, archive or folder of images;
- ``RETRAIN_MAX_IMAGES`` (200000): most images in a dataset;
- ``RETRAIN_MAX_IMAGE_PIXELS`` (40 M): most pixels in one image, checked from its header before decoding;
- ``RETRAIN_MAX_STORED_SIDE`` (224): longest side an image is stored at in the canonical dataset.

No module reads the environment: the entry calls :func:`configure` with
:meth:`StepSettings.from_environment`, and the code that enforces a limit asks :func:`current` when it
runs (the defaults until configured: the server and the Airflow side use the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


class SettingError(ValueError):
    """An environment variable of the steps holds a value they cannot use (exit 2: bad input)."""


@dataclass(frozen=True)
class StepSettings:
    max_read_bytes: int = 2 * 1024**3
    max_dataset_bytes: int = 4 * 1024**3
    max_images: int = 200_000
    max_image_pixels: int = 40_000_000
    max_stored_side: int = 224  #: torchvision's input size (was 128: photos lost detail the standard architectures use)

    @staticmethod
    def variable(field_name: str) -> str:
        """The environment variable of a field: ``max_images`` → ``RETRAIN_MAX_IMAGES``."""
        return f"RETRAIN_{field_name.upper()}"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> StepSettings:
        """Every ``RETRAIN_MAX_*`` variable, a whole number >= 1 (unset or empty: the default)."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            name, raw = cls.variable(field.name), environ.get(cls.variable(field.name), "").strip()
            if not raw:
                continue
            try:
                value = int(raw)
            except ValueError:
                raise SettingError(f"{name}={raw!r} is not a whole number") from None
            if not 1 <= value <= 2**62:
                raise SettingError(f"{name}={raw!r} is out of range: expected 1 to {2**62}")
            values[field.name] = value
        return cls(**values)


_current = StepSettings()


def configure(settings: StepSettings) -> None:
    """Make ``settings`` the limits this process enforces (the step CLI's entry calls it once)."""
    global _current
    _current = settings


def current() -> StepSettings:
    """The limits this process enforces."""
    return _current
