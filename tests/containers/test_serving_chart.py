"""The serving chart, rendered with exactly the values `deploy` passes to `helm upgrade`, run with
`podman kube play`: the init container fetches and verifies the bento, the server answers /predict."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import yaml
from retrain_steps import registry
from retraining import deploy
from retraining.config import settings
from tests.conftest import ROOT
from tests.helpers.kube import helm
from tests.helpers.podman import KubePlay
from tests.helpers.servers import free_port

# the first test builds every image (minutes on a cold cache)
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]
SAMPLE = ROOT / "serving" / "samples" / "digit-3.png"


def rendered_release(card: dict) -> list[dict]:
    """`helm template` with the --set-string values of deploy's `helm upgrade` command."""
    command = deploy.helm_upgrade_command(
        chart="charts/serving", card=card, image_repository=settings({}).pods.image_repository("serving"),
        image_tag=settings({}).pods.image_tag, namespace="serving",
    )
    sets = [a for i, a in enumerate(command) if i and command[i - 1] == "--set-string"]
    out = helm("template", "serving", "charts/serving", "--namespace", "serving",
               *[a for s in sets for a in ("--set-string", s)]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def playable(documents: list[dict], host_port: int) -> list[dict]:
    """The Deployment and its ConfigMap; the container port published on ``host_port`` (port-forward)."""
    kept = [d for d in documents if d["kind"] in ("ConfigMap", "Deployment")]
    for doc in kept:
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = 1
            pod = doc["spec"]["template"]["spec"]
            pod["containers"][0]["ports"][0]["hostPort"] = host_port
            # podman 4.3 restarts init containers under the Deployment's `Always` (then fails to remove
            # them); the kubelet runs them once. OnFailure gives the kubelet's behaviour here.
            pod["restartPolicy"] = "OnFailure"
    return kept


def documents_container_name(documents: list[dict]) -> str:
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]["name"]


def wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def post_png(url: str) -> tuple[dict, dict]:
    boundary = "chart-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit-3.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + SAMPLE.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), dict(response.headers)


def test_the_chart_serves_the_deployed_bento(pod_run, pod_s3, tmp_path):
    card = registry.card(pod_s3["registry"], pod_run["version"])
    port = free_port()
    documents = rendered_release(card)
    play = KubePlay(playable(documents, port), tmp_path, "serving")
    play.play()
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", 180)
        state = play.wait(play.pod_names()[0], [documents_container_name(documents)], 1)
        assert ready, state.log_text()
        prediction, headers = post_png(f"http://127.0.0.1:{port}/predict")
        assert prediction["prediction"] == 3, prediction
        assert prediction["model_version"] == pod_run["version"]
    finally:
        play.down()


def test_a_wrong_checksum_stops_the_init_container_and_nothing_serves(pod_run, pod_s3, tmp_path):
    card = registry.card(pod_s3["registry"], pod_run["version"])
    tampered = {**card, "bento": {**card["bento"], "sha256": "0" * 64}}
    port = free_port()
    play = KubePlay(playable(rendered_release(tampered), port), tmp_path, "serving-bad")
    started = play.play(check=False)
    try:
        # podman fails the pod start when an init container fails, as the kubelet would hold the pod in Init
        assert started.returncode != 0 and "init container" in started.stderr and "exited with code 2" in started.stderr
        init = play.wait(play.pod_names()[0], ["fetch-model"], 5).containers["fetch-model"]
        assert "checksum mismatch" in init.logs and "0" * 64 in init.logs, init.logs[-2000:]
        assert not wait_ready(f"http://127.0.0.1:{port}/readyz", 10), "nothing may serve an unverified bento"
    finally:
        play.down()
