"""Label Studio JSON exports of image-classification projects (a ``Choices`` control).

Each task's image is the first URL in its ``data`` (``s3://`` or ``http(s)://``); its label is
the single choice of its latest annotation that was not cancelled. Tasks without such an
annotation are skipped and counted in the dataset card. Image URLs are checked against the same
allowed locations as the dataset itself. Class names are the distinct choices, sorted.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from retrain_steps import artifacts, settings
from retrain_steps.data import DataError
from retrain_steps.datasets.canonical import Canonical, DatasetBuilder

MAX_IMAGE_BYTES = 64 * 1024 * 1024


def task_image(task: dict, where: str) -> str:
    data = task.get("data")
    if not isinstance(data, dict):
        raise DataError(f"{where} has no 'data' object")
    for value in data.values():
        if isinstance(value, str) and value.startswith(("s3://", "http://", "https://")):
            return value
        if isinstance(value, str) and value.startswith("/data/"):
            raise DataError(f"{where}: image {value} is stored inside Label Studio; connect the project to "
                            "cloud storage (s3://) or serve the images over http(s) and export again")
    raise DataError(f"{where} has no image URL (s3:// or http(s)://) in 'data'")


def task_label(task: dict, where: str) -> str | None:
    """The choice of the latest annotation that was not cancelled; None when the task has none."""
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    for annotation in sorted(annotations, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""),
                             reverse=True):
        for result in annotation.get("result") or []:
            if result.get("type") == "choices":
                choices = result.get("value", {}).get("choices") or []
                if len(choices) != 1:
                    raise DataError(f"{where} has {len(choices)} choices {choices}; "
                                    "image classification takes exactly one per image")
                return str(choices[0])
    return None


def read(data: bytes, source: str, check_location: Callable[[str], artifacts.StoreURI]) -> Canonical:
    """The export's labelled tasks; each image is read from what ``check_location`` returns for its URL."""
    try:
        tasks = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{source} is not a Label Studio JSON export: {err}") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise DataError(f"{source} is not a Label Studio JSON export (expected a list of tasks)")
    if len(tasks) > settings.current().max_images:
        raise DataError(f"{source}: {len(tasks)} tasks, over the limit of {settings.current().max_images} "
                        "(RETRAIN_MAX_IMAGES)")
    builder = DatasetBuilder(source, "label-studio")
    labelled = []
    for position, task in enumerate(tasks):
        where = f"{source}: task {task.get('id', f'#{position}')}"
        label = task_label(task, where)
        if label is None:
            builder.skip("tasks without an annotation")
            continue
        url = task_image(task, where)
        try:
            location = check_location(url)
        except artifacts.ArtifactError as err:
            raise DataError(f"{where}: {err}") from None
        labelled.append((where, url, location, label))

    from concurrent.futures import ThreadPoolExecutor

    def fetch(item):
        where, _, location, _ = item
        try:
            return artifacts.read_bytes(location, max_bytes=MAX_IMAGE_BYTES)
        except artifacts.ArtifactError as err:
            raise DataError(f"{where}: {err}") from None

    with ThreadPoolExecutor(max_workers=8) as pool:
        for (where, url, _, label), image in zip(labelled, pool.map(fetch, labelled)):
            builder.add(f"{where} ({url})", label, image)
    return builder.build()
