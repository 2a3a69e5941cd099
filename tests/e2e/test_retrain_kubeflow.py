"""End to end: `airflow dags test retrain_kubeflow` against a local KFP-shaped server whose runs
execute the pipeline for real with kfp.local, through to the deploy tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrain_steps import registry
from tests.conftest import ROOT, run_cli
from tests.helpers.kfp_server import FakeKfp

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
        run = subprocess.run([str(BIN / "airflow"), "dags", "test", "retrain_kubeflow", "-c", json.dumps(conf)],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
        output = run.stdout + run.stderr
        logs = "".join(p.read_text()[-3000:] for p in tmp_path.glob("run-*.log"))
        assert run.returncode == 0 and "state=failed" not in output, output[-4000:] + logs

    (submitted,) = kfp.runs.values()
    assert submitted.runtime_config.parameters["gpus"] == 0
    assert submitted.runtime_config.parameters["candidates"][0]["train"][0] == "train"
    assert "gate: deploy" in output
    production = registry.production(f"{store}/registry")
    assert production is not None and production["metrics"]["test_accuracy"] >= 0.9
