"""Deployment configuration of the retraining DAGs (the Airflow side), read from the environment.

| variable | default | meaning |
|---|---|---|
| ``RETRAIN_BACKEND`` | ``local`` | ``local`` (steps as subprocesses) or ``kubernetes`` (steps as pods) |
| ``RETRAIN_SCHEDULE`` | ``0 3 * * *`` | cron expression of the retraining schedule; ``none`` to disable |
| ``RETRAIN_ARTIFACT_STORE`` | ``file://<project>/data/artifacts`` | root URI of the artifact store |
| ``RETRAIN_REGISTRY`` | ``<store>/registry`` | model registry URI |
| ``RETRAIN_MODEL`` | ``digits`` | the model a run trains when its form names none (scheduled and dataset-triggered runs) |
| ``RETRAIN_DATASET_URI`` | ``<store>/datasets/digits/digits.npz`` | default dataset |
| ``RETRAIN_WATCH_SECONDS`` | ``60`` | poll interval of the dataset watcher that triggers ``retrain`` on a content change; ``0``: off |
| ``RETRAIN_DATASET_ALLOWED`` | ``<store>/`` | comma-separated URI prefixes a run's dataset may come from (plus the default dataset and the Variable ``retrain_dataset_allowed``) |
| ``RETRAIN_STEPS_PYTHON`` | this interpreter | Python of the steps environment (local backend) |
| ``RETRAIN_SERVING_PYTHON`` | this interpreter | Python of the serving environment (local backend) |
| ``RETRAIN_ARTIFACT_CONN_ID`` | ``artifact_store`` | Airflow connection holding the store's S3 credentials |
| ``RETRAIN_NOTIFY_CONN_ID`` | ``retrain_notifications`` | Airflow connection of the notification webhook |
| ``RETRAIN_KFP_CONN_ID`` | ``kubeflow_default`` | connection of the KFP endpoint (``RETRAIN_KFP_*``: ``kubeflow=True``) |
| ``RETRAIN_KFP_PIPELINE_NAME`` | (none: submitted inline) | upload the pipeline under this name |
| ``RETRAIN_KFP_POLL_SECONDS`` | ``15`` | how often ``retrain_kubeflow`` polls its KFP run |
| ``RETRAIN_KFP_TIMEOUT_SECONDS`` | ``21600`` | how long ``retrain_kubeflow`` waits for its KFP run |
| ``RETRAIN_K8S_NAMESPACE`` | ``retrain`` | namespace of the step pods (kubernetes backend) |
| ``RETRAIN_IMAGE_REGISTRY`` / ``RETRAIN_IMAGE_TAG`` | ``ghcr.io/example/retrain`` / ``latest`` | the images: ``<registry>/<role>:<tag>`` |
| ``RETRAIN_IMAGE_PULL_POLICY`` | ``IfNotPresent`` | ``Always``, ``IfNotPresent`` or ``Never`` |
| ``RETRAIN_IMAGE_PULL_SECRETS`` | (none) | comma-separated Secret names |
| ``RETRAIN_SERVICE_ACCOUNT`` | ``retrain-steps`` | service account of the step pods |
| ``RETRAIN_ARTIFACT_SECRET`` | ``artifact-store`` | Secret with the store's credentials, mounted into the pods |
| ``RETRAIN_GPU_NODE_SELECTOR`` | ``nvidia.com/gpu.present=true`` | ``label=value`` of the nodes that train pods go to |
| ``RETRAIN_HELM_CHART`` | ``<project>/charts/serving`` | the serving chart ``deploy`` upgrades (kubernetes backend) |
| ``RETRAIN_HELM_RELEASE`` / ``RETRAIN_SERVING_NAMESPACE`` | ``serving`` / ``serving`` | its release and namespace |
| ``HELM`` | ``helm`` | the helm binary |

Credentials are never configured here: S3 keys come from the environment, an Airflow connection
or a Kubernetes Secret (``AWS_ACCESS_KEY_ID``...), as boto3 reads them.

Two ways to read them. :func:`settings` raises :class:`SettingsError` naming every bad variable
and what it accepts; the Models view, the CLI and the scripts use it. DAG files use
:func:`parse_safe`, which cannot raise: a bad value is replaced by its default and recorded in
``Settings.problems``, so the DAGs still load (the UI shows them, tagged ``misconfigured``, with the
problem in their docs) and :meth:`Settings.check`, called by each DAG's first tasks, fails the run
with the same message.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from retrain_steps.accelerators import DEFAULT_GPU_NODE_SELECTOR

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("local", "kubernetes")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


class SettingsError(ValueError):
    """One or more variables have a value the deployment cannot use; the message names each."""


@dataclass(frozen=True)
class PodSettings:
    """How the kubernetes backend's step pods are built (:mod:`retraining.pods`)."""

    namespace: str = "retrain"
    image_registry: str = "ghcr.io/example/retrain"
    image_tag: str = "latest"
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str = "retrain-steps"
    artifact_secret: str = "artifact-store"
    gpu_node_selector: tuple[str, str] = DEFAULT_GPU_NODE_SELECTOR

    def image_repository(self, role: str) -> str:
        """The repository of ``role``'s image (steps, train, serving) in this deployment's registry."""
        return f"{self.image_registry}/{role}"

    def image(self, role: str) -> str:
        """The image of ``role`` for this deployment: registry, role, tag (pods, KFP tasks, the serving release)."""
        return f"{self.image_repository(role)}:{self.image_tag}"


@dataclass(frozen=True)
class ServingRelease:
    """Where ``deploy`` rolls the serving chart out (kubernetes backend)."""

    chart: str = str(PROJECT_ROOT / "charts" / "serving")
    release: str = "serving"
    namespace: str = "serving"
    helm: str = "helm"


@dataclass(frozen=True)
class KubeflowSettings:
    """How ``retrain_kubeflow`` submits and waits for its Kubeflow Pipelines run."""

    conn_id: str = "kubeflow_default"
    pipeline_name: str | None = None
    poll_seconds: float = 15.0
    timeout_seconds: float = 6 * 3600.0


@dataclass(frozen=True)
class Settings:
    backend: str
    schedule: str | None
    artifact_store: str
    registry: str
    dataset_uri: str
    model: str
    dataset_allowed: tuple[str, ...]
    watch_seconds: float
    steps_python: str
    serving_python: str
    project_root: Path
    artifact_conn_id: str = "artifact_store"
    notify_conn_id: str = "retrain_notifications"
    pods: PodSettings = field(default_factory=PodSettings)
    serving: ServingRelease = field(default_factory=ServingRelease)
    kfp: KubeflowSettings = field(default_factory=KubeflowSettings)
    problems: tuple[str, ...] = ()  # bad values replaced by their defaults (parse_safe only)

    def model_of(self, params: Mapping | None) -> str:
        """The model a run trains: its form's *Model*, else ``RETRAIN_MODEL`` (scheduled and dataset-triggered runs)."""
        return (params or {}).get("model") or self.model

    def check(self) -> Settings:
        """Raise :class:`SettingsError` naming every bad variable; return self when there is none."""
        if self.problems:
            raise SettingsError(_message(self.problems))
        return self


def settings(environ: Mapping[str, str] | None = None, *, kubeflow: bool = False) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` naming each bad variable.

    ``kubeflow``: also validate the ``RETRAIN_KFP_*`` variables (else their defaults are used).
    """
    return parse_safe(environ, kubeflow=kubeflow).check()


def parse_safe(environ: Mapping[str, str] | None = None, *, kubeflow: bool = False) -> Settings:
    """The settings for DAG parsing: never raises; a bad value becomes its default and a ``problems`` entry."""
    env = _Reader(os.environ if environ is None else environ)
    kfp = _Reader(os.environ if environ is None else environ) if kubeflow else _Reader({})
    store = (env.text("RETRAIN_ARTIFACT_STORE") or f"file://{PROJECT_ROOT / 'data' / 'artifacts'}").rstrip("/")
    return Settings(
        backend=env.choice("RETRAIN_BACKEND", BACKENDS, "local"),
        schedule=env.cron("RETRAIN_SCHEDULE", "0 3 * * *"),
        artifact_store=store,
        registry=env.text("RETRAIN_REGISTRY") or f"{store}/registry",
        model=env.model_name("RETRAIN_MODEL"),
        dataset_uri=env.text("RETRAIN_DATASET_URI") or f"{store}/datasets/digits/digits.npz",
        dataset_allowed=(f"{store}/", *env.prefixes("RETRAIN_DATASET_ALLOWED")),
        watch_seconds=env.seconds("RETRAIN_WATCH_SECONDS", 60.0, zero_is="off"),
        steps_python=env.text("RETRAIN_STEPS_PYTHON") or sys.executable,
        serving_python=env.text("RETRAIN_SERVING_PYTHON") or sys.executable,
        project_root=PROJECT_ROOT,
        artifact_conn_id=env.text("RETRAIN_ARTIFACT_CONN_ID") or Settings.artifact_conn_id,
        notify_conn_id=env.text("RETRAIN_NOTIFY_CONN_ID") or Settings.notify_conn_id,
        pods=PodSettings(
            namespace=env.text("RETRAIN_K8S_NAMESPACE") or PodSettings.namespace,
            image_registry=(env.text("RETRAIN_IMAGE_REGISTRY") or PodSettings.image_registry).rstrip("/"),
            image_tag=env.text("RETRAIN_IMAGE_TAG") or PodSettings.image_tag,
            image_pull_policy=env.choice("RETRAIN_IMAGE_PULL_POLICY", PULL_POLICIES, PodSettings.image_pull_policy),
            image_pull_secrets=env.names("RETRAIN_IMAGE_PULL_SECRETS"),
            service_account=env.text("RETRAIN_SERVICE_ACCOUNT") or PodSettings.service_account,
            artifact_secret=env.text("RETRAIN_ARTIFACT_SECRET") or PodSettings.artifact_secret,
            gpu_node_selector=env.label("RETRAIN_GPU_NODE_SELECTOR", PodSettings.gpu_node_selector),
        ),
        serving=ServingRelease(
            chart=env.text("RETRAIN_HELM_CHART") or ServingRelease.chart,
            release=env.text("RETRAIN_HELM_RELEASE") or ServingRelease.release,
            namespace=env.text("RETRAIN_SERVING_NAMESPACE") or ServingRelease.namespace,
            helm=env.text("HELM") or ServingRelease.helm,
        ),
        kfp=KubeflowSettings(
            conn_id=kfp.text("RETRAIN_KFP_CONN_ID") or KubeflowSettings.conn_id,
            pipeline_name=kfp.text("RETRAIN_KFP_PIPELINE_NAME") or None,
            poll_seconds=kfp.seconds("RETRAIN_KFP_POLL_SECONDS", KubeflowSettings.poll_seconds, zero_is=None),
            timeout_seconds=kfp.seconds("RETRAIN_KFP_TIMEOUT_SECONDS", KubeflowSettings.timeout_seconds, zero_is=None),
        ),
        problems=(*env.problems, *kfp.problems),
    )


PREFIX_FORMS = "file:///<absolute folder>/, s3://<bucket>/<prefix>/ or http(s)://<host>/<path>/"
# Each prefix reaches the download step's command line (``--allow``, in a pod's args): a ceiling keeps it bounded.
MAX_PREFIXES, MAX_PREFIX_CHARS = 50, 2048


def uri_prefixes(text: str, source: str) -> tuple[str, ...]:
    """The URI prefixes in ``text`` (a JSON list of strings, or a comma-separated list), each one checked as
    the allow-list parses it (:class:`retrain_steps.artifacts.StoreURI`): a store URI, a local path absolute,
    no query; at most :data:`MAX_PREFIXES` of at most :data:`MAX_PREFIX_CHARS` characters. Raise
    :class:`SettingsError` naming ``source`` (the variable) and the first bad entry."""
    import json

    from retrain_steps.artifacts import ArtifactError, StoreURI

    def bad(what: str) -> SettingsError:
        return SettingsError(f"{source}: {what}\neach entry is a URI prefix: {PREFIX_FORMS}")

    text = text.strip()
    entries = [part.strip() for part in text.split(",") if part.strip()]
    if text[:1] in ("[", "{", '"'):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as err:
            raise bad(f"not a JSON list\n  {err}") from None
    if not isinstance(entries, list):
        raise bad(f"not a JSON list\n  got {text[:200]}")
    if len(entries) > MAX_PREFIXES:
        raise bad(f"{len(entries)} entries; at most {MAX_PREFIXES} (a prefix covers every dataset below it)")
    for entry in entries:
        if isinstance(entry, str) and len(entry) > MAX_PREFIX_CHARS:
            raise bad(f"an entry of {len(entry)} characters; at most {MAX_PREFIX_CHARS}: {entry[:60]!r}...")
        try:
            target = StoreURI.parse(entry.strip() if isinstance(entry, str) else "")
            if target.scheme == "file" and not target.path.startswith("/"):
                raise ArtifactError("a relative path")
            if target.query:
                raise ArtifactError("a prefix has no query")
        except ArtifactError as err:
            raise bad(f"bad entry {entry!r}\n  {err}") from None
    return tuple(entry.strip() for entry in entries)


def _message(problems: tuple[str, ...]) -> str:
    return "bad configuration of the Airflow deployment: " + "; ".join(problems)


class _Reader:
    """Reads variables, replacing a bad value by its default and recording what was wrong."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ, self.problems = environ, []

    def text(self, name: str) -> str:
        return (self.environ.get(name) or "").strip()

    def prefixes(self, name: str) -> tuple[str, ...]:
        try:
            return uri_prefixes(self.text(name), name)
        except SettingsError as err:
            self.problems.append("; ".join(line.strip() for line in str(err).splitlines()))  # one line, as the others
            return ()

    def model_name(self, name: str) -> str:
        from retrain_steps.layout import DEFAULT_MODEL, MODEL_NAME, MODEL_NAME_RULE

        value = self.text(name) or DEFAULT_MODEL
        if not MODEL_NAME.fullmatch(value):
            self._bad(name, self.environ[name], f"a model name: {MODEL_NAME_RULE}")
            return DEFAULT_MODEL
        return value

    def names(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.text(name).split(",") if part.strip())

    def _bad(self, name: str, value: str, accepted: str):
        self.problems.append(f"{name} must be {accepted}, got {value!r}")

    def choice(self, name: str, accepted: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in accepted:
            self._bad(name, self.environ[name], f"one of {', '.join(accepted)}")
            return default
        return value

    def seconds(self, name: str, default: float, *, zero_is: str | None) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and zero_is is None):
            self._bad(name, self.environ[name], "a number of seconds " + (f">= 0 (0: {zero_is})" if zero_is else "> 0"))
            return default
        return value

    def cron(self, name: str, default: str) -> str | None:
        value = self.environ.get(name, default).strip()
        if value.lower() in ("", "none", "null"):
            return None
        from croniter import croniter

        expression = {"@quarterly": "0 0 1 */3 *"}.get(value, value)  # Airflow's one preset croniter lacks
        if not croniter.is_valid(expression):
            self._bad(name, self.environ[name], "a cron expression (e.g. '0 3 * * *'), a preset such as @daily, "
                      "or 'none'")
            return None  # no scheduled runs until it is fixed; a triggered run fails at its first task
        return value

    def label(self, name: str, default: tuple[str, str]) -> tuple[str, str]:
        raw = self.text(name)
        if not raw:
            return default
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            self._bad(name, self.environ[name], "label=value (e.g. nvidia.com/gpu.present=true)")
            return default
        return key.strip(), value.strip()


def shell_exports(environ: Mapping[str, str] | None = None) -> str:
    """``export`` lines of the store locations as the DAGs resolve them, for scripts/airflow-env.sh
    (so the defaults are written here only)."""
    import shlex

    resolved = parse_safe(environ)
    values = {"RETRAIN_ARTIFACT_STORE": resolved.artifact_store, "RETRAIN_REGISTRY": resolved.registry,
              "RETRAIN_DATASET_URI": resolved.dataset_uri}
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


if __name__ == "__main__":
    print(shell_exports())
