"""charts/serving: lint, render for every ci/ values file, validate against the Kubernetes schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers.kube import helm, render, validate

CHART = "charts/serving"
CI_VALUES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / CHART / "ci").glob("*-values.yaml"))
SCENARIOS = [[], *[["-f", f] for f in CI_VALUES]]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs if "helm.sh/hook" not in doc["metadata"].get("annotations", {})}


def test_ci_scenarios_exist():
    assert {Path(f).name for f in CI_VALUES} >= {"gpu-values.yaml", "ingress-values.yaml", "hpa-values.yaml"}


@pytest.mark.parametrize("args", SCENARIOS, ids=lambda a: a[-1] if a else "default")
def test_lint_strict(args):
    assert "0 chart(s) failed" in helm("lint", "--strict", CHART, *args).stdout


@pytest.mark.parametrize("args", SCENARIOS, ids=lambda a: a[-1] if a else "default")
def test_every_rendered_manifest_validates(args):
    docs = render(CHART, *args)
    assert len(docs) >= 5
    for doc in docs:
        validate(doc)


def test_deployment_defaults():
    docs = by_kind(render(CHART, "--set-string", "model.uri=s3://bucket/v1/digits_classifier.bento",
                          "--set-string", "model.version=abc123def456"))
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    (fetch,) = pod["initContainers"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert server["command"] == ["sh", "-c"] and '"digits_classifier:${MODEL_VERSION}"' in server["args"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in (server, fetch):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/bentoml", "/tmp"}
    assert server["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert "nvidia.com/gpu" not in server["resources"]["limits"] and "tolerations" not in pod
    assert fetch["command"] == ["python", "-m", "serving.fetch"]
    assert {"name": "DIGITS_WORKERS", "value": "2"} in server["env"], "two workers: one dying leaves one answering"
    config = docs["ConfigMap"]["data"]
    assert "DIGITS_REGISTRY_URI" not in config, "the pod serves the bento its init container imported"
    assert {"secretRef": {"name": "artifact-store"}} in fetch["envFrom"]
    config = docs["ConfigMap"]["data"]
    assert config["MODEL_URI"] == "s3://bucket/v1/digits_classifier.bento" and config["MODEL_VERSION"] == "abc123def456"
    assert config["DIGITS_MAX_REQUEST_BYTES"] == "4194304", "an integer, not helm's float form 4.194304e+06"
    assert (config["DIGITS_MAX_BATCH_ROWS"], config["DIGITS_BATCH_WAIT_MS"], config["DIGITS_DEVICE"]) == ("64", "0", "cpu")
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert "Ingress" not in docs and "HorizontalPodAutoscaler" not in docs


def test_server_workers_reach_the_service():
    """BentoML 1.4 ignores ``--api-workers`` for new-style services: the chart passes DIGITS_WORKERS, which the
    service reads (a real server starts that many worker processes: tests/serving)."""
    docs = by_kind(render(CHART, "--set-string", "model.uri=s3://b/v/x.bento", "--set-string", "model.version=v1",
                          "--set", "server.workers=3"))
    (server,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "DIGITS_WORKERS", "value": "3"} in server["env"] and "--api-workers" not in server["args"][0]


def test_a_new_model_rolls_the_pods():
    def checksum(uri):
        deployment = by_kind(render(CHART, "--set-string", f"model.uri={uri}"))["Deployment"]
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum("s3://b/v1/x.bento") != checksum("s3://b/v2/x.bento")


def test_gpu_values():
    docs = by_kind(render(CHART, "-f", f"{CHART}/ci/gpu-values.yaml"))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert docs["ConfigMap"]["data"]["DIGITS_DEVICE"] == "cuda", "a pod holding a GPU serves on it"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_ingress_has_a_body_size_limit():
    ingress = by_kind(render(CHART, "-f", f"{CHART}/ci/ingress-values.yaml"))["Ingress"]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "4m"
    assert ingress["spec"]["tls"][0]["secretName"] == "digits-tls"


def test_hpa_replaces_replicas():
    docs = by_kind(render(CHART, "-f", f"{CHART}/ci/hpa-values.yaml"))
    assert docs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 8
    assert "replicas" not in docs["Deployment"]["spec"]


def test_helm_test_pod_posts_the_example():
    hooks = [d for d in render(CHART) if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    (pod,) = hooks
    command = pod["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "serving.client"] and command[-2:] == ["--expect", "3"]


def test_notes_print_the_curl():
    out = helm("install", "serving", CHART, "--dry-run=client", "--namespace", "serving").stdout
    assert "curl -X POST http://127.0.0.1:3000/predict -F file=@serving/samples/digit-3.png" in out


@pytest.mark.parametrize(
    ("setting", "message"),
    [("model.uri=ftp://x", "model/uri"), ("model.sha256=zz", "model/sha256"), ("service.port=0", "service/port"),
     ("unknownKey=1", "unknownKey")],
)
def test_schema_rejects_bad_values(setting, message):
    result = helm("lint", CHART, "--set", setting, check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
