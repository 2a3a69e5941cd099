"""The model server's settings: read once from the environment, checked, a bad value named.

- ``DIGITS_REGISTRY_URI`` (unset): follow this registry's production version, loading each
  version's bento (``make run``, the compose stack); unset, the server serves the bento it runs from;
- ``DIGITS_MODEL`` (digits): which of the registry's models to follow (its production version);
- ``DIGITS_POLL_SECONDS`` (2): how often the production pointer is read;
- ``DIGITS_WORKERS`` (2): worker processes, one model copy each (about 400 MiB with torch); with
  two, the other answers at once while a worker that died is replaced; 1 where memory is short;
- ``DIGITS_MAX_REQUEST_BYTES`` (4 MiB): request body cap, 413 above;
- ``DIGITS_MAX_UPLOAD_PIXELS`` (4096x4096): most pixels in an uploaded image, checked from its header;
- ``DIGITS_DEVICE`` (auto): ``auto`` (the GPU when torch sees one), ``cpu`` or ``cuda``;
- ``DIGITS_MAX_BATCH_ROWS`` (64), ``DIGITS_BATCH_WAIT_MS`` (0): adaptive batching, most images per
  forward pass and longest wait for more requests;
- ``DIGITS_CAPTURE_URI`` (unset), ``DIGITS_CAPTURE_QUEUE`` (4096): feedback capture's store and queue;
- ``DIGITS_CONFIDENCE_FLOOR`` (0.5): an answer whose top probability is below it says ``confident: false``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from retrain_steps.input_spec import MAX_UPLOAD_PIXELS
from retrain_steps.layout import DEFAULT_MODEL, MODEL_NAME, MODEL_NAME_RULE
from retrain_steps.models import DEVICES


class SettingError(ValueError):
    """An environment variable of the server holds a value it cannot use."""


def _number(environ: Mapping[str, str], name: str, default: str, kind: type, low: float, high: float):
    raw = environ.get(name, "").strip() or default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not {'a whole' if kind is int else 'a'} number") from None
    if not low <= value <= high:
        raise SettingError(f"{name}={raw!r} is out of range: expected {low} to {high}")
    return value


def _model_name(environ: Mapping[str, str]) -> str:
    value = environ.get("DIGITS_MODEL", "").strip() or DEFAULT_MODEL
    if not MODEL_NAME.fullmatch(value):
        raise SettingError(f"DIGITS_MODEL={value!r} is not a model name: {MODEL_NAME_RULE}")
    return value


@dataclass(frozen=True)
class ServerSettings:
    registry_uri: str | None = None
    model: str = DEFAULT_MODEL
    poll_seconds: float = 2.0
    workers: int = 2
    max_request_bytes: int = 4 * 1024 * 1024
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    device: str = "auto"
    max_batch_rows: int = 64
    batch_wait_ms: float = 0.0
    capture_uri: str | None = None
    capture_queue: int = 4096
    confidence_floor: float = 0.5

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ServerSettings:
        device = environ.get("DIGITS_DEVICE", "").strip() or "auto"
        if device not in DEVICES:
            raise SettingError(f"DIGITS_DEVICE={device!r}: expected one of {', '.join(DEVICES)}")
        return cls(
            registry_uri=environ.get("DIGITS_REGISTRY_URI") or None,
            model=_model_name(environ),
            poll_seconds=_number(environ, "DIGITS_POLL_SECONDS", "2", float, 0.05, 3600),
            workers=_number(environ, "DIGITS_WORKERS", "2", int, 1, 64),
            max_request_bytes=_number(environ, "DIGITS_MAX_REQUEST_BYTES", str(4 * 1024 * 1024), int, 1024, 2**31),
            max_upload_pixels=_number(environ, "DIGITS_MAX_UPLOAD_PIXELS", str(MAX_UPLOAD_PIXELS), int, 1, 2**40),
            device=device,
            max_batch_rows=_number(environ, "DIGITS_MAX_BATCH_ROWS", "64", int, 1, 1024),
            batch_wait_ms=_number(environ, "DIGITS_BATCH_WAIT_MS", "0", float, 0, 1000),
            capture_uri=environ.get("DIGITS_CAPTURE_URI") or None,
            capture_queue=_number(environ, "DIGITS_CAPTURE_QUEUE", "4096", int, 1, 1_000_000),
            confidence_floor=_number(environ, "DIGITS_CONFIDENCE_FLOOR", "0.5", float, 0, 1),
        )
