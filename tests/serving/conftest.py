"""A real model server (``bentoml serve`` following a registry) for the serving tests of one module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from retrain_steps import registry
from tests.conftest import ROOT
from tests.helpers.servers import free_port, serve


@pytest.fixture(scope="module")
def live_registry(trained, tmp_path_factory):
    reg = f"file://{tmp_path_factory.mktemp('serving')}/registry"
    card = registry.write_card(reg, registry.register(reg, trained["train"], {"metrics": {}}))
    registry.promote(reg, card["version"])
    return {"uri": reg, "version": card["version"]}


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs") / "serve.log"


@pytest.fixture(scope="module")
def server(live_registry, server_log):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"DIGITS_REGISTRY_URI": live_registry["uri"], "DIGITS_POLL_SECONDS": "0.5"}
    argv = [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:DigitsClassifier",
            "--host", "127.0.0.1", "--port", str(port)]
    with serve(argv, ready_url=f"{url}/readyz", env=env, cwd=ROOT, log_path=server_log):
        yield url
