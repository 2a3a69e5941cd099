"""Shared fixtures: the project on sys.path, a small real pipeline run, an S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
for path in (ROOT, PLUGINS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
# Airflow reads its configuration on first import: point it at this project before any test imports it.
# Under `pytest -n N` (make test) each worker has its own Airflow database and BentoML store.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "build" / "airflow-test"))
os.environ.setdefault("BENTOML_HOME", str(ROOT / "build" / "bentoml-test"))
if WORKER:
    for name in ("AIRFLOW_HOME", "BENTOML_HOME"):
        os.environ[name] = f"{os.environ[name]}-{WORKER}"
# `airflow standalone`'s scheduler and triggerer serve task logs on fixed ports (8793, 8794): two at once (two
# workers, or a `make run` on the machine) would collide. Every process of the tests gets ports of its own.
from tests.helpers.servers import free_port  # noqa: E402 (after sys.path holds the project)

for name in ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"):
    os.environ[name] = str(free_port())
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PLUGINS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), str(ROOT), os.environ.get("PYTHONPATH")]))


# The suites that run whole stacks (minutes per module): scheduled first, so short tests fill the end.
STACK_SUITES = ("containers", "e2e")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Stack suites first (under ``pytest -n N`` the scheduler hands out modules in this order)."""
    def suite(item) -> str:
        parts = Path(str(item.fspath)).parts
        return parts[-2] if len(parts) > 1 else ""

    items.sort(key=lambda item: suite(item) not in STACK_SUITES)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (make test): a module's tests run in one worker, in order, sharing its fixtures; the
    containers suite runs in one worker (one image build, one podman). (xdist's own ``loadgroup`` marks do not
    reach its scheduler under pytest 9.)"""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/containers" if module.startswith("tests/containers/") else module

    return ModuleScheduling(config, log)


def run_step_process(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run ``argv`` from the project root with a result file of its own (the step protocol, unless ``env`` names
    one); ``.result`` is what the step wrote there (None if nothing)."""
    from retrain_steps import protocol

    with tempfile.TemporaryDirectory() as folder:
        environ = {protocol.RESULT_ENV: f"{folder}/result.json", **env}
        completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=environ)
        completed.result = protocol.read_result(environ[protocol.RESULT_ENV])
    return completed


def run_cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a project CLI (``python -m ...``) in the project's environment from the project root; ``.result``: see
    :func:`run_step_process`."""
    completed = run_step_process([sys.executable, "-m", *args], {**os.environ, **(env or {})})
    if check and completed.returncode != 0:
        raise AssertionError(f"{args} exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
    return completed


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """One real run of the data and model steps on the embedded digits set (torch, 15 epochs), read-only for the
    tests. Under ``pytest -n N`` the workers share it: the first builds it, the others wait for it (a file lock)."""
    import fcntl
    import shutil

    shared = tmp_path_factory.getbasetemp().parent if WORKER else tmp_path_factory.getbasetemp()
    base = shared / "trained-store"
    store = f"file://{base}"
    uris = {
        "source": f"{store}/datasets/digits.npz",
        "download": f"{store}/run/download",
        "preprocess": f"{store}/run/preprocess",
        "train": f"{store}/run/train/0",
        "evaluate": f"{store}/run/evaluate/0",
        "registry": f"{store}/registry",
        "base": base,
        "store": store,
    }
    with open(shared / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "trained.complete").exists():
            shutil.rmtree(base, ignore_errors=True)  # what a worker that failed half-way left
            run_cli("retrain_steps", "export-default", "--output", uris["source"])
            run_cli("retrain_steps", "download", "--source", uris["source"], "--output", uris["download"])
            run_cli("retrain_steps", "preprocess", "--input", uris["download"], "--output", uris["preprocess"])
            run_cli("retrain_steps", "train", "--input", uris["preprocess"], "--output", uris["train"], "--epochs", "15")
            run_cli("retrain_steps", "evaluate", "--data", uris["preprocess"], "--model", uris["train"],
                    "--output", uris["evaluate"])
            (shared / "trained.complete").touch()
    return uris


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint (moto's server) on 127.0.0.1, with credentials in the environment."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    from tests.helpers.environ import patched_environ

    with patched_environ(env):
        yield endpoint
    server.stop()


def env_python(name: str) -> str:
    """The interpreter of environment ``name`` (``.venv-steps``...); a failure naming ``make test`` when missing."""
    python = ROOT / name / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run the tests through `make test`, which builds the image environments")
    return str(python)


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """A real MLflow tracking server: SQLite backend store, artifacts served through its proxy (``mlflow-artifacts:``);
    one per module, in its own process group, stopped by it."""
    from tests.helpers.servers import serve

    mlflow = Path(env_python(".venv-mlflow")).parent / "mlflow"
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    argv = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
            "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]
    uri = f"http://127.0.0.1:{port}"
    env = {"PYTHONPATH": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runners: 2 processes, not 7
    with serve(argv, ready_url=f"{uri}/health", env=env, cwd=folder, log_path=folder / "server.log", timeout=240):
        yield uri
