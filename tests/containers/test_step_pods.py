"""Every step pod of a kubernetes-backend run, as `make manifests` renders it, run in order with
`podman kube play`: our images, as the pod's user, read-only root, credentials only from the Secret."""

from __future__ import annotations

import pytest
from retrain_steps import artifacts, registry
from retraining.pod_manifests import render_pods

from tests.conftest import ROOT
from tests.containers.conftest import PARAMS, RUN_ID, k8s_settings, play_pod

# the first test builds every image (minutes on a cold cache)
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]


def test_the_pods_run_the_whole_loop_and_register_a_version(pod_run, pod_s3):
    assert "package: registered version" in pod_run["results"]["package"].logs
    run_card = registry.card(pod_s3["registry"], pod_run["version"])
    assert run_card["run_id"] == RUN_ID and run_card["bento"]["uri"].endswith(".bento")
    assert artifacts.exists(run_card["bento"]["uri"])


def test_pods_ran_as_the_image_user_with_a_read_only_root(pod_run):
    spec = pod_run["pods"]["train-0"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    # the train pod wrote its outputs to S3 and its matplotlib cache to /tmp (the emptyDir) only
    assert "train: best epoch" in pod_run["results"]["train-0"].logs


def test_production_is_evaluated_on_the_same_split(pod_run, pod_s3):
    """What the gate compares: the production version evaluated on this run's test split."""
    version = pod_run["version"]
    registry.promote(pod_s3["registry"], version)
    pods = render_pods(k8s_settings(pod_s3), PARAMS, run_id=RUN_ID, production_version=version)
    container = play_pod(pods["evaluate-production"], pod_run["folder"])
    assert container.exit_code == 0, container.logs[-3000:]
    root = f"{pod_s3['store']}/step-outputs/{RUN_ID.replace(':', '-')}"
    production = artifacts.read_json(f"{root}/evaluate/production/metrics.json")
    candidate = artifacts.read_json(f"{root}/evaluate/0/metrics.json")
    assert production["test_accuracy"] == candidate["test_accuracy"], "same model, same split: the same accuracy"


def test_bad_input_exits_2_in_the_pod(pod_s3, tmp_path):
    params = {**PARAMS, "dataset_uri": "s3://artifacts/datasets/missing.npz"}
    pods = render_pods(k8s_settings(pod_s3), params, run_id="manual__bad-input")
    container = play_pod(pods["download"], tmp_path)
    assert container.exit_code == 2 and "missing.npz" in container.logs


def test_the_train_image_trains_keras_on_torch_with_the_locked_torch(pod_run, pod_s3, images):
    """The CUDA train image: torch is the lock's version, Keras runs on it (the GPU on a GPU node)."""
    from tests.helpers.podman import podman

    locked = next(line for line in (ROOT / "requirements" / "train.txt").read_text().splitlines()
                  if line.startswith("torch=="))
    probe = podman("run", "--rm", "--entrypoint", "python", images["train"], "-c",
                   "import torch, keras; print(torch.__version__, keras.backend.backend())").stdout.split()
    assert probe[0].split("+")[0] == locked.split("==")[1].split("+")[0] and probe[1] == "torch"
    keras = {**PARAMS, "framework": "tensorflow", "epochs": 2, "learning_rates": [0.003, 0.001]}
    container = play_pod(render_pods(k8s_settings(pod_s3), keras, run_id=RUN_ID)["train-1"], pod_run["folder"])
    assert container.exit_code == 0, container.logs[-3000:]
    assert "on the torch backend" in container.logs
