"""The Kubeflow pipeline's components run in the step and train images (kfp baked in, no package
index) through kfp.local.DockerRunner, on podman's Docker-compatible API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from retrain_steps import artifacts
from retraining import commands
from tests.conftest import ROOT
from tests.helpers.podman import podman

# the first test builds every image (minutes on a cold cache)
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]
KFP_PYTHON = ROOT / ".venv-kfp" / "bin" / "python"


@pytest.fixture(scope="module")
def docker_api(tmp_path_factory):
    """`podman system service` on a private socket, in its own process group."""
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    process = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"],
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    yield f"unix://{socket}"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_the_pipeline_runs_in_the_step_images(images, pod_s3, docker_api, tmp_path):
    params = {"learning_rates": [0.003], "epochs": 3, "batch_size": 64, "framework": "torch", "seed": 0}
    run_id = "kfp-docker"
    data = commands.data_steps(params=params, run_id=run_id, artifact_store=pod_s3["store"],
                               default_dataset=f"{pod_s3['store']}/datasets/digits/digits.npz")
    candidates = commands.candidates(params=params, run_id=run_id, artifact_store=pod_s3["store"])
    (tmp_path / "args.json").write_text(json.dumps({"download_argv": data["download"],
                                                    "preprocess_argv": data["preprocess"],
                                                    "candidates": candidates, "gpus": 0}))
    (tmp_path / "docker.json").write_text(json.dumps({"environment": pod_s3["pod_env"]}))
    root = tmp_path / "pipeline-root"
    root.mkdir(mode=0o777)
    root.chmod(0o777)  # the components run as the images' user (10001)
    result = subprocess.run([str(KFP_PYTHON), str(ROOT / "tests" / "helpers" / "run_kfp_local.py"),
                             str(tmp_path / "args.json"), str(root), str(tmp_path / "docker.json")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PYTHONPATH": "", "DOCKER_HOST": docker_api})
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "KFP_LOCAL_OK" in output, output[-6000:]
    assert "pip install" not in output, "kfp comes from the image, not from a package index"
    evaluation = artifacts.read_json(f"{candidates[0]['evaluation']}/metrics.json")
    assert evaluation["test_accuracy"] > 0.5
    used = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert images["steps"] in used and images["train"] in used
