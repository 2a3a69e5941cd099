"""The dataset watcher: fires once per content change, never for unchanged data, survives restarts."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from retrain_steps import artifacts, data
from retrain_steps.datasets import fingerprint
from retraining.dataset_watch import CLASSPATH, DatasetChangeTrigger, check_once, record_uri


def write_dataset(uri: str, n: int) -> None:
    artifacts.write_bytes(uri, data.dump_npz(images=np.zeros((n, 8, 8), np.float32), target=np.arange(n) % 2))


def test_first_poll_records_then_only_changes_fire(tmp_path):
    store, uri = f"file://{tmp_path}", f"file://{tmp_path}/datasets/d.npz"
    write_dataset(uri, 4)
    assert check_once(uri, store) is None and artifacts.exists(record_uri(store, uri))
    assert check_once(uri, store) is None, "unchanged data never fires"
    write_dataset(uri, 6)
    event = check_once(uri, store)
    assert event and event["previous"] != event["fingerprint"] == fingerprint(uri)
    assert check_once(uri, store) is None, "one event per change"


def test_the_trigger_serializes_and_fires_once_per_change(tmp_path):
    store, uri = f"file://{tmp_path}", f"file://{tmp_path}/d.npz"
    write_dataset(uri, 4)
    trigger = DatasetChangeTrigger(uri=uri, store=store, poll_interval=0.05)
    assert trigger.serialize() == (CLASSPATH, {"uri": uri, "store": store, "poll_interval": 0.05})

    async def first_event(change_after: float | None, wait: float):
        async def change():
            await asyncio.sleep(change_after)
            write_dataset(uri, 8)

        fresh = DatasetChangeTrigger(uri=uri, store=store, poll_interval=0.05)  # as the triggerer re-creates it
        task = asyncio.create_task(change()) if change_after is not None else None
        try:
            return await asyncio.wait_for(anext(fresh.run()), wait)
        except TimeoutError:
            return None
        finally:
            if task:
                await task

    assert asyncio.run(first_event(None, 0.5)) is None, "the first watch only records"
    assert asyncio.run(first_event(None, 0.5)) is None, "a restarted watcher does not fire for old data"
    event = asyncio.run(first_event(0.2, 5))
    assert event is not None and event.payload["uri"] == uri


def test_s3_datasets_are_fingerprinted_by_etag(s3_endpoint):
    import boto3

    boto3.client("s3").create_bucket(Bucket="watch")
    uri = "s3://watch/datasets/d.npz"
    write_dataset(uri, 4)
    first = fingerprint(uri)
    write_dataset(uri, 6)
    assert first.startswith("etag:") and fingerprint(uri) != first


def test_a_bad_watch_interval_is_named():
    from retraining.config import settings

    with pytest.raises(ValueError, match="RETRAIN_WATCH_SECONDS .* got 'often'"):
        settings({"RETRAIN_WATCH_SECONDS": "often"})
    assert settings({"RETRAIN_WATCH_SECONDS": "0"}).watch_seconds == 0


def test_an_image_folder_fires_once_when_images_are_added(tmp_path):
    from tests.helpers.datasets import image_files, write_folder

    store, folder = f"file://{tmp_path}", tmp_path / "shapes"
    write_folder(folder, image_files(("circle", "square"), 3, 16, "L", seed=0))
    uri = f"file://{folder}"
    assert check_once(uri, store) is None and check_once(uri, store) is None
    write_folder(folder, {"circle/new.png": image_files(("circle",), 1, 16, "L", seed=9)["circle/0000.png"]})
    event = check_once(uri, store)
    assert event and event["fingerprint"].startswith("listing:")
    assert check_once(uri, store) is None, "one event per change"


def test_an_s3_prefix_fires_when_an_object_is_added(s3_endpoint):
    import boto3

    boto3.client("s3").create_bucket(Bucket="watch-prefix")
    uri, store = "s3://watch-prefix/shapes/", "s3://watch-prefix/store"
    artifacts.write_bytes(uri + "a/1.png", b"one")
    artifacts.write_bytes(uri + "b/1.png", b"two")
    assert check_once(uri, store) is None and check_once(uri, store) is None
    artifacts.write_bytes(uri + "b/2.png", b"three")
    assert check_once(uri, store) is not None and check_once(uri, store) is None
