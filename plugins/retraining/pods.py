"""KubernetesPodOperator settings of each step on the ``kubernetes`` backend.

Configured by ``Settings.pods`` (:mod:`retraining.config`: namespace, images, pull policy and
secrets, service account, GPU node selector), never credentials: those come from the Kubernetes
Secret ``Settings.pods.artifact_secret``, mounted with ``envFrom``.

Pods run as the images' user (uid/gid 10001), non-root, with a read-only root filesystem and a
writable ``/tmp`` (an ``emptyDir``). The step protocol (:mod:`retrain_steps.protocol`): each step writes its
result to ``/airflow/xcom/return.json``, which the operator's XCom sidecar (as hardened) hands to XCom.
"""

from __future__ import annotations

from retrain_steps import protocol
from retrain_steps.accelerators import GPU_RESOURCE, GPU_TOLERATION

from retraining.config import Settings
from retraining.tracking_connection import SECRET as TRACKING_SECRET

IMAGE_OF_STEP = {
    "download": "steps", "preprocess": "steps", "evaluate": "steps", "evaluate_production": "steps",
    "train": "train", "package": "serving", "track": "steps",
}
IMAGE_UID = 10001  # the user every image creates (images/*/Dockerfile)
RESOURCES = {
    "steps": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "train": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
    "serving": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
}
GPUS_FROM_PARAMS = "{{ params.gpus }}"


def pod_operator_kwargs(step: str, *, cmds: list[str], settings: Settings) -> dict:
    """Keyword arguments of the KubernetesPodOperator that runs ``step``."""
    from kubernetes.client import models as k8s

    pods = settings.pods
    role = IMAGE_OF_STEP[step]
    resources = {kind: dict(values) for kind, values in RESOURCES[role].items()}
    kwargs: dict = {}
    if step == "train":
        # The GPU count is the run's "GPUs per train pod" param (limits are templated by the operator).
        resources["limits"][GPU_RESOURCE] = GPUS_FROM_PARAMS
        key, value = pods.gpu_node_selector
        kwargs["node_selector"] = {key: value}
        kwargs["tolerations"] = [k8s.V1Toleration(**GPU_TOLERATION)]
        kwargs["startup_timeout_seconds"] = 1800  # room for a GPU node to scale up
    hardened = k8s.V1SecurityContext(allow_privilege_escalation=False, read_only_root_filesystem=True,
                                     capabilities=k8s.V1Capabilities(drop=["ALL"]))
    return {
        "namespace": pods.namespace,
        "image": pods.image(role),
        "cmds": cmds,
        "image_pull_policy": pods.image_pull_policy,
        "image_pull_secrets": [k8s.V1LocalObjectReference(name=s) for s in pods.image_pull_secrets] or None,
        "service_account_name": pods.service_account,
        "container_resources": k8s.V1ResourceRequirements(**resources),
        "env_from": [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=pods.artifact_secret))] + (
            # the track pod: MLFLOW_* of experiment tracking, when the deployment tracks (retraining.tracking_connection)
            [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=TRACKING_SECRET, optional=True))]
            if step == "track" else []),
        "labels": {"app.kubernetes.io/part-of": "retrain", "app.kubernetes.io/component": step},
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=IMAGE_UID, run_as_group=IMAGE_UID, fs_group=IMAGE_UID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": hardened,
        "xcom_sidecar_container_security_context": hardened,
        "volumes": [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())],
        "volume_mounts": [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
        # the step protocol: the result to the file the XCom sidecar reads (do_xcom_push)
        "env_vars": [k8s.V1EnvVar(name="HOME", value="/tmp"),
                     k8s.V1EnvVar(name=protocol.RESULT_ENV, value=protocol.POD_RESULT_FILE)],
        "on_finish_action": "delete_succeeded_pod",
        "get_logs": True,
        "do_xcom_push": True,
        **kwargs,
    }

