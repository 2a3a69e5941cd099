"""Feedback capture (off by default): each served input, its prediction and the model version, stored
for relabelling, asynchronously.

With ``DIGITS_CAPTURE_URI`` set (any artifact-store URI), ``/predict`` hands each answered request
to a bounded queue (``DIGITS_CAPTURE_QUEUE``, 256) and returns; a background thread writes
``<uri>/captured/<YYYY-MM-DD>/<time>-<id>.json`` (model version, prediction, top-k, when) and,
for uploads, the image bytes beside it (``.bin``). A full queue or a failed write drops the
record and counts it (``digits_capture_dropped_total``); the request never waits for the store.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable

log = logging.getLogger("bentoml.service.digits")


class Capture:
    def __init__(self, uri: str, size: int, on_drop: Callable[[str], None], on_write: Callable[[], None]) -> None:
        self.uri, self.on_drop, self.on_write = uri.rstrip("/"), on_drop, on_write
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self._warned = False
        threading.Thread(target=self._drain, name="feedback-capture", daemon=True).start()

    @classmethod
    def from_environment(cls, on_drop, on_write) -> Capture | None:
        uri = os.environ.get("DIGITS_CAPTURE_URI")
        return cls(uri, int(os.environ.get("DIGITS_CAPTURE_QUEUE", "256")), on_drop, on_write) if uri else None

    def submit(self, version: str, data: bytes | None, instances: list | None, answer: dict) -> None:
        """Queue one served request; never blocks (a full queue drops it and counts the drop)."""
        try:
            self.queue.put_nowait((dt.datetime.now(dt.timezone.utc), version, data, instances, answer))
        except queue.Full:
            self.on_drop("queue full")

    def _drain(self) -> None:
        from retrain_steps import artifacts

        while True:
            when, version, data, instances, answer = self.queue.get()
            name = f"{when:%H%M%S%f}-{uuid.uuid4().hex[:8]}"
            folder = artifacts.join(self.uri, "captured", f"{when:%Y-%m-%d}")
            record = {"received_at": when.isoformat(), "model_version": version, "answer": answer,
                      "input": "file" if data is not None else "instances"}
            try:
                if data is not None:
                    artifacts.write_bytes(artifacts.join(folder, f"{name}.bin"), data)
                else:
                    record["instances"] = instances
                artifacts.write_json(artifacts.join(folder, f"{name}.json"), record)
                self.on_write()
            except Exception as err:  # the store is down or read-only: drop, count, warn once
                if not self._warned:
                    log.warning("feedback capture to %s failed (%s); dropping until it works", self.uri, err)
                    self._warned = True
                self.on_drop("write failed")
