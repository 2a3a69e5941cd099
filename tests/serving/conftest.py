"""The model server of the serving tests: the bento ``serving.package`` built from the session's model, served.

The server is ``bentoml serve digits_classifier:<version>`` of that bento, imported by
``serving.fetch`` (as the chart's init container does) into a BentoML home of its own and run
from outside the source tree, so only the bento's own code and model serve; it also follows the
registry's production version (``DIGITS_REGISTRY_URI``), loading each promoted version's bento.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from retrain_steps import registry
from tests.conftest import ROOT, run_cli
from tests.helpers.servers import free_port, serve

BENTOML = str(Path(sys.executable).parent / "bentoml")


def package(model: str, evaluation: str, dataset: str, reg: str) -> dict:
    """Register a trained model and build its bento with ``python -m serving.package``; return its card."""
    done = run_cli("serving.package", "--model", model, "--evaluation", evaluation, "--dataset", dataset,
                   "--registry", reg, "--run-id", "test")
    return registry.card(reg, done.result["version"])  # the result the step protocol's file holds: the card


@pytest.fixture(scope="session")
def packaged(trained, tmp_path_factory) -> dict:
    """A registry holding the session's model, packaged and promoted: ``{"uri", "version", "card"}``."""
    reg = f"file://{tmp_path_factory.mktemp('serving')}/registry"
    card = package(trained["train"], trained["evaluate"], trained["download"], reg)
    registry.promote(reg, card["version"])
    return {"uri": reg, "version": card["version"], "card": card}


@pytest.fixture(scope="module")
def live_registry(packaged) -> dict:
    return packaged


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs") / "serve.log"


@contextmanager
def serve_bento(card: dict, base: Path, log_path: Path, env: dict | None = None):
    """Import ``card``'s bento into ``base/bentoml`` with ``serving.fetch``, serve it from ``base/elsewhere``;
    yield its URL."""
    home, workdir = base / "bentoml", base / "elsewhere"
    workdir.mkdir(parents=True, exist_ok=True)
    environment = {"BENTOML_HOME": str(home), "PYTHONPATH": "", **(env or {})}
    run_cli("serving.fetch", "--uri", card["bento"]["uri"], "--sha256", card["bento"]["sha256"], env=environment)
    port = free_port()
    argv = [BENTOML, "serve", f"digits_classifier:{card['version']}", "--host", "127.0.0.1", "--port", str(port)]
    with serve(argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=environment, cwd=workdir, log_path=log_path):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server_home(tmp_path_factory) -> Path:
    """The BentoML home of the module's server."""
    return tmp_path_factory.mktemp("bento") / "bentoml"


@pytest.fixture(scope="module")
def server(live_registry, server_log, server_home):
    env = {"DIGITS_REGISTRY_URI": live_registry["uri"], "DIGITS_POLL_SECONDS": "0.5", "DIGITS_WORKERS": "1"}
    with serve_bento(live_registry["card"], server_home.parent, server_log, env) as url:
        yield url


@contextmanager
def serve_source(reg: str, base: Path, env: dict | None = None, *, ready: str = "/readyz", log_name: str = "serve.log"):
    """``bentoml serve serving.service:DigitsClassifier`` from the source tree following ``reg`` (what ``make
    run`` starts), with a BentoML home of its own under ``base``; yields ``(url, process)``."""
    port = free_port()
    argv = [BENTOML, "serve", "serving.service:DigitsClassifier", "--host", "127.0.0.1", "--port", str(port)]
    environment = {"BENTOML_HOME": str(base / "bentoml"), "DIGITS_REGISTRY_URI": reg, "DIGITS_WORKERS": "1",
                   **(env or {})}
    url = f"http://127.0.0.1:{port}"
    with serve(argv, ready_url=f"{url}{ready}", env=environment, cwd=ROOT, log_path=base / log_name) as process:
        yield url, process
