"""Retrain when the data changes, for real: `airflow standalone` (scheduler, triggerer, API server)
watches the configured dataset; new images trigger exactly one `retrain` run, unchanged data none."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from retrain_steps import artifacts, data
from retraining.dataset_watch import record_uri
from tests.conftest import ROOT, run_cli
from tests.helpers.servers import free_port, serve

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
POLL = 2


def retrain_runs(api: str) -> list[dict]:
    # 60 s: the one API server of `airflow standalone` answers slowly on 2 cores while the run it started trains
    return httpx.get(f"{api}/dags/retrain/dagRuns", timeout=60).json().get("dag_runs", [])


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_new_images_trigger_exactly_one_run(tmp_path):
    store = f"file://{tmp_path}/artifacts"
    dataset = f"{store}/datasets/digits/digits.npz"
    run_cli("retrain_steps", "export-default", "--output", dataset)
    port = free_port()
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "RETRAIN_BACKEND": "local",
        "RETRAIN_SCHEDULE": "none",
        "RETRAIN_WATCH_SECONDS": str(POLL),
        "RETRAIN_ARTIFACT_STORE": store,
        "RETRAIN_DATASET_URI": dataset,
    }
    api = f"http://127.0.0.1:{port}/api/v2"
    with serve([str(BIN / "airflow"), "standalone"], env=env, cwd=ROOT, log_path=tmp_path / "standalone.log",
               ready_url=f"{api}/monitor/health", timeout=240):
        log = tmp_path / "standalone.log"
        try:
            wait_until(lambda: artifacts.exists(record_uri(store, dataset)), 180, "the watcher's first poll")
            time.sleep(4 * POLL)
            assert retrain_runs(api) == [], "unchanged data triggers no run"

            arrays = data.load_npz(artifacts.read_bytes(dataset), dataset, ("images", "target"))
            new = {k: np.concatenate([arrays[k], arrays[k][:20]]) for k in ("images", "target")}  # 20 new images land
            more = {**arrays, **new}
            artifacts.write_bytes(dataset, data.dump_npz(**more))

            runs = wait_until(lambda: retrain_runs(api), 120, "a run triggered by the new images")
            time.sleep(4 * POLL)
            runs = retrain_runs(api)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- standalone log ---\n{log.read_text()[-5000:]}") from None
    assert len(runs) == 1, runs
    assert runs[0]["run_type"] == "asset_triggered"
