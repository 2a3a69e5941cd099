"""End to end: `airflow dags test retrain_kubeflow` against a local KFP-shaped server whose runs
execute the pipeline for real with kfp.local, through to the deploy tail; meanwhile a real
`airflow api-server` (the UI's source) shows the "Kubeflow Run" link while the run is polled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrain_steps import registry
from tests.conftest import ROOT, run_cli
from tests.helpers.kfp_server import FakeKfp
from tests.helpers.servers import free_port, serve

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
KFP_PYTHON = ROOT / ".venv-kfp" / "bin" / "python"


def test_retrain_kubeflow_reaches_deploy(tmp_path):
    store = f"file://{tmp_path}/artifacts"
    run_cli("retrain_steps", "export-default", "--output", f"{store}/datasets/digits/digits.npz")

    def execute(run_id, parameters):
        args = tmp_path / f"{run_id}.json"
        args.write_text(json.dumps(parameters))
        log = open(tmp_path / f"{run_id}.log", "w")
        return subprocess.Popen([str(KFP_PYTHON), str(ROOT / "tests" / "helpers" / "run_kfp_local.py"), str(args),
                                 str(tmp_path / "pipeline-root")], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": ""})

    with FakeKfp() as kfp:
        kfp.executor = execute
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "RETRAIN_ARTIFACT_STORE": store,
            "RETRAIN_REGISTRY": f"{store}/registry",
            "RETRAIN_DATASET_URI": f"{store}/datasets/digits/digits.npz",
            "RETRAIN_KFP_POLL_SECONDS": "2",
            "AIRFLOW_CONN_KUBEFLOW_DEFAULT": json.dumps({"conn_type": "kubeflow_pipelines", "host": kfp.url}),
        }
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        conf = {"epochs": 10, "learning_rates": [0.003], "gpus": 0, "min_accuracy": 0.9}
        port = free_port()
        api_env = {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
        with serve([str(BIN / "airflow"), "api-server", "--port", str(port)], env=api_env, cwd=ROOT,
                   log_path=tmp_path / "api-server.log", ready_url=f"http://127.0.0.1:{port}/api/v2/monitor/health",
                   timeout=180):
            with open(tmp_path / "dags-test.log", "w") as log:
                dags_test = subprocess.Popen(
                    [str(BIN / "airflow"), "dags", "test", "retrain_kubeflow", "-c", json.dumps(conf)],
                    env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
            link_while_running = wait_for_link(f"http://127.0.0.1:{port}/api/v2", dags_test, kfp)
            dags_test.wait(timeout=1200)
        output = (tmp_path / "dags-test.log").read_text()
        logs = "".join(p.read_text()[-3000:] for p in tmp_path.glob("run-*.log"))
        assert dags_test.returncode == 0 and "state=failed" not in output, output[-4000:] + logs

    (submitted,) = kfp.runs.values()
    assert link_while_running == f"{kfp.url}/#/runs/details/{submitted.run_id}", link_while_running
    assert submitted.runtime_config.parameters["gpus"] == 0
    assert submitted.runtime_config.parameters["candidates"][0]["train"][0] == "train"
    assert "gate: deploy" in output
    production = registry.production(f"{store}/registry")
    assert production is not None and production["metrics"]["test_accuracy"] >= 0.9


def wait_for_link(api: str, process: subprocess.Popen, kfp: FakeKfp, timeout: float = 600) -> str | None:
    """The "Kubeflow Run" link the REST API gives for `kubeflow_run` while the task and the KFP run are running."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(1)
        runs = httpx.get(f"{api}/dags/retrain_kubeflow/dagRuns", timeout=10).json().get("dag_runs", [])
        if not runs or not kfp.runs:
            continue
        run_id = runs[0]["dag_run_id"]
        ti = httpx.get(f"{api}/dags/retrain_kubeflow/dagRuns/{run_id}/taskInstances/kubeflow_run", timeout=10)
        if ti.status_code != 200 or ti.json().get("state") != "running":
            continue
        links = httpx.get(f"{api}/dags/retrain_kubeflow/dagRuns/{run_id}/taskInstances/kubeflow_run/links",
                          timeout=10).json().get("extra_links", {})
        (kfp_run,) = kfp.runs.values()
        if links.get("Kubeflow Run") and kfp._run_state(kfp_run.run_id) == "RUNNING":
            return links["Kubeflow Run"]
    return None
