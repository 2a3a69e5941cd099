"""Feedback capture (off by default): each served input, its prediction and the model version, stored
for relabelling, asynchronously.

With ``DIGITS_CAPTURE_URI`` set (any artifact-store URI), ``/predict`` hands each answered request
to a bounded queue (``DIGITS_CAPTURE_QUEUE``, 4096) and returns; a background thread gathers up
to 512 requests or one second of them and writes one archive,
``<uri>/captured/<YYYY-MM-DD>/<time>-<id>.zip``: ``records.jsonl`` (when, model version, the
answer; JSON instances inline) and each upload's bytes (``00000.bin``, named by its record).
A full queue or a failed write drops the records and counts them
(``digits_capture_dropped_total``); the request never waits for the store.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import queue
import threading
import time
import uuid
import zipfile
from collections.abc import Callable

log = logging.getLogger("bentoml.service.digits")
BATCH, FLUSH_SECONDS = 512, 1.0


class Capture:
    def __init__(self, uri: str, size: int, on_drop: Callable[[str], None], on_write: Callable[[int], None]) -> None:
        self.uri, self.on_drop, self.on_write = uri.rstrip("/"), on_drop, on_write
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self._warned = False
        threading.Thread(target=self._drain, name="feedback-capture", daemon=True).start()

    def submit(self, version: str, data: bytes | None, instances: list | None, answer: dict) -> None:
        """Queue one served request; never blocks (a full queue drops it and counts the drop)."""
        try:
            self.queue.put_nowait((dt.datetime.now(dt.timezone.utc), version, data, instances, answer))
        except queue.Full:
            self.on_drop("queue full")

    def _drain(self) -> None:
        while True:
            batch = [self.queue.get()]
            deadline = time.monotonic() + FLUSH_SECONDS
            while len(batch) < BATCH and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list) -> None:
        """One archive per batch (one store write, not two per request): ``records.jsonl`` + the uploads."""
        from retrain_steps import artifacts

        first = batch[0][0]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            lines = []
            for index, (when, version, data, instances, answer) in enumerate(batch):
                record = {"received_at": when.isoformat(), "model_version": version, "answer": answer}
                if data is not None:
                    record["file"] = f"{index:05d}.bin"
                    archive.writestr(record["file"], data)
                else:
                    record["instances"] = instances
                lines.append(json.dumps(record, separators=(",", ":")))
            archive.writestr("records.jsonl", "\n".join(lines) + "\n")
        uri = artifacts.join(self.uri, "captured", f"{first:%Y-%m-%d}", f"{first:%H%M%S%f}-{uuid.uuid4().hex[:8]}.zip")
        try:
            artifacts.write_bytes(uri, buffer.getvalue())
            self.on_write(len(batch))
        except Exception as err:  # the store is down or read-only: drop, count, warn once
            if not self._warned:
                log.warning("feedback capture to %s failed (%s); dropping until it works", self.uri, err)
                self._warned = True
            for _ in batch:
                self.on_drop("write failed")
