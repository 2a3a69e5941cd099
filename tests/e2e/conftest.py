"""Fixtures the end-to-end suites share."""

from __future__ import annotations

import pytest

from tests.helpers.servers import serve_directory, webhook_receiver


@pytest.fixture(scope="module")
def images_root(tmp_path_factory):
    """A folder served over HTTP by ``images_server`` (images a Label Studio export names)."""
    return tmp_path_factory.mktemp("www")


@pytest.fixture(scope="module")
def images_server(images_root):
    with serve_directory(images_root) as base:
        yield base


@pytest.fixture(scope="module")
def notifications():
    """The receiving end of a ``retrain_notifications`` connection: ``(url, bodies)`` (the JSON bodies posted)."""
    with webhook_receiver() as (url, bodies):
        yield url, bodies
