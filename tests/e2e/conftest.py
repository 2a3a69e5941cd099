"""Fixtures the end-to-end suites share."""

from __future__ import annotations

import pytest

from tests.helpers.servers import serve_directory


@pytest.fixture(scope="module")
def images_root(tmp_path_factory):
    """A folder served over HTTP by ``images_server`` (images a Label Studio export names)."""
    return tmp_path_factory.mktemp("www")


@pytest.fixture(scope="module")
def images_server(images_root):
    with serve_directory(images_root) as base:
        yield base
