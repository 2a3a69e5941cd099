"""The `containers` suite: our images, step pods and serving chart run for real with podman.

Skipped only where no container runtime can exist (the reason is printed). `make test`
installs and configures podman on Debian (scripts/container-runtime.sh) and the first test
builds the images (scripts/build-images.sh; podman's layer cache makes rebuilds quick).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import PurePosixPath

import pytest
from retrain_steps import protocol
from retraining.config import settings
from retraining.pod_manifests import default_params, render_pods
from tests.conftest import ROOT
from tests.helpers.environ import patched_environ
from tests.helpers.podman import KubePlay, create_secret, podman, unavailable_reason
from tests.helpers.servers import free_port

SECRET = "artifact-store"
BUCKET = "artifacts"
IMAGES = "steps train serving airflow"


@pytest.fixture(scope="session")
def images():
    """Build every image from its Dockerfile (stand-in bases where none can be pulled)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    subprocess.run(["bash", "scripts/build-images.sh"], cwd=ROOT, env={**os.environ, "IMAGES": IMAGES}, check=True)
    print(f"images built in {time.monotonic() - started:.0f} s")
    return {role: f"ghcr.io/example/retrain/{role}:latest" for role in IMAGES.split()}


@pytest.fixture(scope="session")
def pod_s3(images):
    """moto's S3 server on all interfaces; pods reach it at the podman bridge's gateway address.

    (An IP, not host.containers.internal: moto would read the host name's first label as a bucket.)
    The pods get the endpoint and keys only through the Secret; this process through its env.
    """
    from moto.server import ThreadedMotoServer

    gateway = podman("network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}").stdout.strip()
    port = free_port()
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=port)  # noqa: S104 (the podman bridge must reach it)
    server.start()
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    host_env = {**keys, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}
    pod_env = {**keys, "AWS_ENDPOINT_URL_S3": f"http://{gateway}:{port}"}
    with patched_environ(host_env):
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        subprocess.run([sys.executable, "-m", "retrain_steps", "export-default", "--output",
                        f"s3://{BUCKET}/datasets/digits/digits.npz"], cwd=ROOT, check=True, capture_output=True)
        create_secret(SECRET, pod_env)
        yield {"store": f"s3://{BUCKET}", "registry": f"s3://{BUCKET}/registry", "pod_env": pod_env}
        podman("secret", "rm", SECRET, check=False)
    server.stop()


RUN_ID = "manual__containers"
PARAMS = default_params(gpus=0, epochs=10, learning_rates=[0.003])


def play_pod(manifest: dict, folder, timeout: float = 600):
    """Play one step pod; its ``base`` container, with ``result``: what the step wrote for the XCom sidecar.

    The host plays the sidecar (its image cannot be pulled here): the ``xcom`` volume is a host folder,
    and the result is read from it as the sidecar reads ``/airflow/xcom/return.json``.
    """
    manifest = copy.deepcopy(manifest)
    spec, task = manifest["spec"], manifest["metadata"]["labels"]["task_id"]
    xcom = folder / f"{manifest['metadata']['name']}-xcom"
    xcom.mkdir()
    xcom.chmod(0o777)  # the pod's user (10001) writes there
    spec["containers"] = [c for c in spec["containers"] if c["name"] != "airflow-xcom-sidecar"]
    spec["volumes"] = [{"name": "xcom", "hostPath": {"path": str(xcom), "type": "Directory"}} if v["name"] == "xcom"
                       else v for v in spec["volumes"]]
    play = KubePlay([manifest], folder, task)
    play.play()
    try:
        container = play.wait(manifest["metadata"]["name"], ["base"], timeout).containers["base"]
    finally:
        play.down()
    container.result = protocol.read_result(xcom / PurePosixPath(protocol.POD_RESULT_FILE).name)
    return container


def k8s_settings(pod_s3):
    return settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_ARTIFACT_STORE": pod_s3["store"]})


@pytest.fixture(scope="session")
def pod_run(pod_s3, tmp_path_factory):
    """download → preprocess → train → evaluate → package, each pod after the previous one succeeded."""
    folder = tmp_path_factory.mktemp("pods")
    pods = render_pods(k8s_settings(pod_s3), PARAMS, run_id=RUN_ID)
    results = {}
    for name in ("download", "preprocess", "train-0", "evaluate-0", "package"):
        container = play_pod(pods[name], folder)
        results[name] = container
        assert container.exit_code == 0, f"{name} pod failed:\n{container.logs[-4000:]}"
    version = results["package"].result["version"]  # the card, as the XCom sidecar hands it to the next task
    return {"pods": pods, "results": results, "folder": folder, "version": version}
