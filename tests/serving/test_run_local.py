"""``make run`` as written, in a scratch copy of the project, over a registry with a model in production: it serves that
model at once and trains nothing, sizes Airflow's worker pool to the machine, prints the lines another shell pastes,
and a stop (SIGTERM to its process group, as Ctrl-C or ``kill -- -PGID``) ends everything without make's error."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import httpx
import pytest

from retrain_steps import registry
from serving.service import VERSION_HEADER
from tests.conftest import ROOT
from tests.helpers.servers import free_port
from tests.test_readme import scratch_project


BANNER_END = "Ctrl-C stops everything."


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(log, text: str, process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log.read_text()
        if text in output:
            return output
        if process.poll() is not None:
            raise AssertionError(f"make run exited {process.returncode}:\n{output}")
        time.sleep(1)
    raise AssertionError(f"no {text!r} after {timeout} s:\n{log.read_text()}")


def wait_until_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no process of group ``pgid`` is left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"processes of make run's group {pgid} still run after {timeout} s"
        time.sleep(0.5)


def scheduler_environ(airflow_port: int) -> dict:
    """The environment of the ``airflow scheduler`` that ``airflow standalone`` on ``airflow_port`` started."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]
            if args[-2:-1] and args[-1] == b"scheduler" and args[-2].endswith(b"/airflow"):
                items = open(f"/proc/{pid}/environ").read().split("\0")
                environ = dict(item.split("=", 1) for item in items if "=" in item)
                if environ.get("AIRFLOW_PORT") == str(airflow_port):
                    return environ
        except OSError:  # gone meanwhile
            continue
    raise AssertionError(f"no airflow scheduler of the Airflow on :{airflow_port}")


@pytest.mark.e2e
def test_run_local_serves_production_without_training_and_stops_cleanly(packaged, trained, tmp_path):
    project = scratch_project(tmp_path)
    shutil.copy2(ROOT / "Makefile", project)  # make's own files, mtimes kept: `env` is as up to date as here
    shutil.copytree(ROOT / "requirements", project / "requirements")
    (project / ".tools").symlink_to(ROOT / ".tools")
    if subprocess.run(["make", "-q", "env"], cwd=project, capture_output=True).returncode != 0:
        pytest.skip("the environment is older than its lock files (`make env` first): make run would rebuild it")
    airflow_port, serving_port = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AIRFLOW_PORT": str(airflow_port),
           "SERVING_PORT": str(serving_port), "RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store",
           "RETRAIN_REGISTRY": packaged["uri"], "RETRAIN_DATASET_URI": trained["source"], "RETRAIN_WATCH_SECONDS": "0"}
    runs_before = registry.runs(packaged["uri"])
    log = tmp_path / "make-run.log"
    started = time.monotonic()
    with log.open("w") as out:
        make = subprocess.Popen(["make", "run"], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        output = wait_for(log, BANNER_END, make, timeout=300)
        print(f"make run: banner after {time.monotonic() - started:.0f} s")
        assert "is in production and serves: no run at start" in output and "first retrain run" not in output, output
        answer = httpx.post(f"http://127.0.0.1:{serving_port}/predict", timeout=30,
                            files={"file": ("d.png", (ROOT / "serving/samples/digit-3.png").read_bytes(), "image/png")})
        assert answer.status_code == 200 and answer.headers[VERSION_HEADER] == packaged["version"]

        # Airflow's worker slots follow the CPU count (the LocalExecutor forks that many workers).
        cpus = len(os.sched_getaffinity(0))  # what nproc counts
        assert scheduler_environ(airflow_port)["AIRFLOW__CORE__PARALLELISM"] == str(max(4, cpus + 2))

        # The lines the banner says to paste give another shell the same Airflow, ports and store.
        pasted = re.search(r"paste:\n((?:    .*\n){3})", output).group(1)
        check = pasted + 'echo "$AIRFLOW_HOME|$AIRFLOW_PORT|$SERVING_PORT|$RETRAIN_REGISTRY|$PWD"\n'
        shell = subprocess.run(["bash"], input=check, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                               env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
        expected = f"{project}/airflow-home|{airflow_port}|{serving_port}|{packaged['uri']}|{project}"
        assert shell.stdout.strip().splitlines()[-1] == expected, shell.stdout + shell.stderr
    finally:
        os.killpg(make.pid, signal.SIGTERM)  # what Ctrl-C or `kill -- -PGID` does: make and the script both get it
        stopped = time.monotonic()
        time.sleep(0.5)  # the script is stopping the servers (Airflow takes seconds); GNU make forwards its TERM
        with contextlib.suppress(ProcessLookupError):  # at some point: a second TERM now; the stop still ends cleanly
            os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=60)
    wait_until_group_gone(make.pid, timeout=120)  # make exits at once; the script then stops the servers
    output = log.read_text()
    print(f"make run: stopped in {time.monotonic() - stopped:.0f} s, {time.monotonic() - started:.0f} s in all")
    assert "==> stopped" in output and "Error" not in output, output
    assert not listening(airflow_port) and not listening(serving_port), "a server outlived make run"
    assert registry.runs(packaged["uri"]) == runs_before, "make run trained although a model is in production"


def first_run_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("first_run", ROOT / "scripts" / "first-run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("production", "environ", "why"), [
    (None, {}, "no model in production"),
    ("7bb585af9c27", {}, None),
    ("7bb585af9c27", {"RETRAIN": "", "RETRAIN_CONF": "{}"}, None),
    ("7bb585af9c27", {"RETRAIN": "0"}, None),
    ("7bb585af9c27", {"RETRAIN": "1"}, "RETRAIN=1"),
    ("7bb585af9c27", {"RETRAIN_CONF": '{"epochs": 5}'}, "RETRAIN_CONF is given"),
])
def test_make_run_retrains_at_start_only_without_production_or_when_asked(production, environ, why):
    assert first_run_module().why_retrain(production, environ) == why
