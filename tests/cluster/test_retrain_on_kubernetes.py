"""The `retrain` DAG on the kubernetes backend against a real cluster, then /predict via port-forward.

Prerequisites (README, "Run on Kubernetes"): the images pushed where the cluster pulls them
(RETRAIN_IMAGE_REGISTRY / RETRAIN_IMAGE_TAG), the `artifact-store` Secret in the step and serving
namespaces, RETRAIN_ARTIFACT_STORE on an S3 endpoint both the cluster and this machine reach
(AWS_* variables here), and helm + kubectl on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, run_cli
from tests.helpers.servers import free_port

pytestmark = pytest.mark.cluster
BIN = Path(sys.executable).parent


def test_retrain_on_pods_then_predict(tmp_path):
    store = os.environ.get("RETRAIN_ARTIFACT_STORE", "")
    assert store.startswith("s3://"), "set RETRAIN_ARTIFACT_STORE to an s3:// store the cluster can reach"
    env = {**os.environ, "RETRAIN_BACKEND": "kubernetes", "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "RETRAIN_DATASET_URI": os.environ.get("RETRAIN_DATASET_URI", f"{store}/datasets/digits/digits.npz")}
    run_cli("retrain_steps", "export-default", "--output", env["RETRAIN_DATASET_URI"], env=env)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    conf = {"epochs": 5, "learning_rates": [0.001, 0.003], "gpus": int(os.environ.get("CLUSTER_GPUS", "0")),
            "min_accuracy": 0.9}
    run = subprocess.run([str(BIN / "airflow"), "dags", "test", "retrain", "-c", json.dumps(conf)], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0 and "state=failed" not in run.stdout + run.stderr, (run.stdout + run.stderr)[-5000:]

    namespace = os.environ.get("RETRAIN_SERVING_NAMESPACE", "serving")
    status = subprocess.run(["helm", "status", "serving", "--namespace", namespace], capture_output=True, text=True)
    assert status.returncode == 0 and "STATUS: deployed" in status.stdout
    port = free_port()
    forward = subprocess.Popen(["kubectl", "--namespace", namespace, "port-forward", "svc/serving", f"{port}:80"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sample = (ROOT / "serving" / "samples" / "digit-3.png").read_bytes()
                response = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("d.png", sample)}, timeout=30)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        assert response.status_code == 200 and response.json()["prediction"] == 3
        # the rollout promoted the version it serves; the next run's gate compares with it
        from retrain_steps import registry

        registry_uri = os.environ.get("RETRAIN_REGISTRY", f"{store}/registry")
        assert response.headers["X-Model-Version"] == registry.production_version(registry_uri)
    finally:
        forward.terminate()

    values = json.loads(subprocess.run(["helm", "get", "values", "serving", "--namespace", namespace, "-o", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert values["image"]["tag"] == os.environ.get("RETRAIN_IMAGE_TAG", "latest"), "deploy sets the deployment's image"
    assert len(values["model"]["sha256"]) == 64, "the init container verifies the bento"
