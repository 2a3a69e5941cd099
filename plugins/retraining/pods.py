"""KubernetesPodOperator settings of each step on the ``kubernetes`` backend.

Configured from the environment of the Airflow deployment (never credentials: those come
from the Kubernetes Secret named by ``RETRAIN_ARTIFACT_SECRET``, mounted with ``envFrom``):

| variable | default |
|---|---|
| ``RETRAIN_K8S_NAMESPACE`` | ``retrain`` |
| ``RETRAIN_IMAGE_REGISTRY`` / ``RETRAIN_IMAGE_TAG`` | ``ghcr.io/example/retrain`` / ``latest`` |
| ``RETRAIN_IMAGE_PULL_POLICY`` | ``IfNotPresent`` |
| ``RETRAIN_IMAGE_PULL_SECRETS`` | (none; comma-separated names) |
| ``RETRAIN_SERVICE_ACCOUNT`` | ``retrain-steps`` |
| ``RETRAIN_ARTIFACT_SECRET`` | ``artifact-store`` |
| ``RETRAIN_GPU_NODE_SELECTOR`` | ``nvidia.com/gpu.present=true`` |
| ``RETRAIN_HELM_CHART`` | ``<project>/charts/serving`` |
| ``RETRAIN_HELM_RELEASE`` / ``RETRAIN_SERVING_NAMESPACE`` | ``serving`` / ``serving`` |

Pods run as the images' user (uid/gid 10001), non-root, with a read-only root filesystem and a
writable ``/tmp`` (an ``emptyDir``).
"""

from __future__ import annotations

import os

from retraining.config import PROJECT_ROOT

IMAGE_OF_STEP = {
    "download": "steps", "preprocess": "steps", "evaluate": "steps", "evaluate_production": "steps",
    "train": "train", "package": "serving",
}
IMAGE_UID = 10001  # the user every image creates (images/*/Dockerfile)
RESOURCES = {
    "steps": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "train": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
    "serving": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
}
GPUS_FROM_PARAMS = "{{ params.gpus }}"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def image_repository(role: str) -> str:
    return f"{_env('RETRAIN_IMAGE_REGISTRY', 'ghcr.io/example/retrain')}/{role}"


def image_tag() -> str:
    return _env("RETRAIN_IMAGE_TAG", "latest")


def image(role: str) -> str:
    """The image of ``role`` (steps, train, serving) for this deployment: registry, role, tag."""
    return f"{image_repository(role)}:{image_tag()}"


def pod_operator_kwargs(step: str, *, cmds: list[str]) -> dict:
    """Keyword arguments of the KubernetesPodOperator that runs ``step``."""
    from kubernetes.client import models as k8s

    role = IMAGE_OF_STEP[step]
    resources = {kind: dict(values) for kind, values in RESOURCES[role].items()}
    kwargs: dict = {}
    if step == "train":
        # The GPU count is the run's "GPUs per train pod" param (limits are templated by the operator).
        resources["limits"]["nvidia.com/gpu"] = GPUS_FROM_PARAMS
        key, _, value = _env("RETRAIN_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true").partition("=")
        kwargs["node_selector"] = {key: value}
        kwargs["tolerations"] = [k8s.V1Toleration(**GPU_TOLERATION)]
        kwargs["startup_timeout_seconds"] = 1800  # room for a GPU node to scale up
    pull_secrets = [s for s in _env("RETRAIN_IMAGE_PULL_SECRETS", "").split(",") if s]
    return {
        "namespace": _env("RETRAIN_K8S_NAMESPACE", "retrain"),
        "image": image(role),
        "cmds": cmds,
        "image_pull_policy": _env("RETRAIN_IMAGE_PULL_POLICY", "IfNotPresent"),
        "image_pull_secrets": [k8s.V1LocalObjectReference(name=s) for s in pull_secrets] or None,
        "service_account_name": _env("RETRAIN_SERVICE_ACCOUNT", "retrain-steps"),
        "container_resources": k8s.V1ResourceRequirements(**resources),
        "env_from": [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=_env("RETRAIN_ARTIFACT_SECRET", "artifact-store")))],
        "labels": {"app.kubernetes.io/part-of": "retrain", "app.kubernetes.io/component": step},
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=IMAGE_UID, run_as_group=IMAGE_UID, fs_group=IMAGE_UID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "volumes": [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())],
        "volume_mounts": [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
        "env_vars": [k8s.V1EnvVar(name="HOME", value="/tmp")],
        "on_finish_action": "delete_succeeded_pod",
        "get_logs": True,
        "do_xcom_push": False,
        **kwargs,
    }


def deployment_settings() -> dict:
    """Where ``deploy`` rolls the serving chart out."""
    return {
        "chart": _env("RETRAIN_HELM_CHART", str(PROJECT_ROOT / "charts" / "serving")),
        "namespace": _env("RETRAIN_SERVING_NAMESPACE", "serving"),
        "release": _env("RETRAIN_HELM_RELEASE", "serving"),
    }
