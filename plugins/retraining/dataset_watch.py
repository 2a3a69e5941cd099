"""Retrain when the data changes: the configured dataset as an Airflow Asset with a watcher.

:class:`DatasetChangeTrigger` (an event trigger, run by the triggerer, not a worker slot) polls
the dataset's content fingerprint (:func:`retrain_steps.datasets.fingerprint`: sha256 or ETag of
one object; a hash of every file's path, size and mtime/ETag for an image folder) and fires once when it
differs from the last one recorded. The record lives in the artifact store
(``datasets/.watch/<id>.json``), so a restarted triggerer neither misses a change nor fires for
one it already reported; the first poll of a new watch only records. ``retrain`` is scheduled
on its cron tick *or* an event of this asset (``AssetOrTimeSchedule``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CLASSPATH = "retraining.dataset_watch.DatasetChangeTrigger"


def record_uri(store: str, uri: str) -> str:
    from retrain_steps import layout

    return layout.dataset_watch_record(store, uri)


def check_once(uri: str, store: str) -> dict | None:
    """Poll once: the change event (and the new record written) when the content changed, else None."""
    from retrain_steps import artifacts

    from retrain_steps.datasets import fingerprint

    current = fingerprint(uri)
    record = record_uri(store, uri)
    previous = artifacts.read_json(record)["fingerprint"] if artifacts.exists(record) else None
    if previous == current:
        return None
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    artifacts.write_json(record, {"uri": uri, "fingerprint": current, "seen_at": now})
    return None if previous is None else {"uri": uri, "fingerprint": current, "previous": previous, "seen_at": now}


class DatasetChangeTrigger(BaseEventTrigger):
    """Fire once when the dataset at ``uri`` changes content; poll every ``poll_interval`` seconds."""

    def __init__(self, *, uri: str, store: str, poll_interval: float = 60.0) -> None:
        super().__init__()
        self.uri, self.store, self.poll_interval = uri, store, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"uri": self.uri, "store": self.store, "poll_interval": self.poll_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                change = await asyncio.to_thread(check_once, self.uri, self.store)
            except Exception as err:  # an unreadable dataset is logged and polled again, never fatal
                self.log.warning("dataset watch: cannot read %s: %s", self.uri, err)
                change = None
            if change:
                self.log.info("dataset watch: %s changed (%s → %s)", self.uri, change["previous"], change["fingerprint"])
                yield TriggerEvent(change)
                return
            await asyncio.sleep(self.poll_interval)


def dataset_asset(*, uri: str, store: str, poll_interval: float) -> Asset:
    """The configured dataset as an Asset, watched for content changes."""
    trigger = DatasetChangeTrigger(uri=uri, store=store, poll_interval=poll_interval)
    return Asset(name="retrain-dataset", uri=uri, watchers=[AssetWatcher(name="retrain-dataset-content", trigger=trigger)])
