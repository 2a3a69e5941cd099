"""Deployment configuration of the retraining DAGs, read from the environment.

| variable | default | meaning |
|---|---|---|
| ``RETRAIN_BACKEND`` | ``local`` | ``local`` (steps as subprocesses) or ``kubernetes`` (steps as pods) |
| ``RETRAIN_SCHEDULE`` | ``0 3 * * *`` | cron expression of the retraining schedule; ``none`` to disable |
| ``RETRAIN_ARTIFACT_STORE`` | ``file://<project>/data/artifacts`` | root URI of the artifact store |
| ``RETRAIN_REGISTRY`` | ``<store>/registry`` | model registry URI |
| ``RETRAIN_DATASET_URI`` | ``<store>/datasets/digits/digits.npz`` | default dataset |
| ``RETRAIN_WATCH_SECONDS`` | ``60`` | poll interval of the dataset watcher that triggers ``retrain`` on a content change; ``0``: off |
| ``RETRAIN_DATASET_ALLOWED`` | ``<store>/`` | comma-separated URI prefixes a run's dataset may come from (plus the default dataset) |
| ``RETRAIN_STEPS_PYTHON`` | this interpreter | Python of the steps environment (local backend) |
| ``RETRAIN_SERVING_PYTHON`` | this interpreter | Python of the serving environment (local backend) |

Credentials are never configured here: S3 keys come from the environment or a Kubernetes
Secret (``AWS_ACCESS_KEY_ID``...), as boto3 reads them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("local", "kubernetes")


@dataclass(frozen=True)
class Settings:
    backend: str
    schedule: str | None
    artifact_store: str
    registry: str
    dataset_uri: str
    dataset_allowed: tuple[str, ...]
    watch_seconds: float
    steps_python: str
    serving_python: str
    project_root: Path


def settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings; raise ``ValueError`` naming a bad value."""
    env = os.environ if environ is None else environ
    backend = env.get("RETRAIN_BACKEND", "local")
    if backend not in BACKENDS:
        raise ValueError(f"RETRAIN_BACKEND must be one of {BACKENDS}, got {backend!r}")
    schedule = env.get("RETRAIN_SCHEDULE", "0 3 * * *")
    store = env.get("RETRAIN_ARTIFACT_STORE") or f"file://{PROJECT_ROOT / 'data' / 'artifacts'}"
    store = store.rstrip("/")
    dataset_uri = env.get("RETRAIN_DATASET_URI") or f"{store}/datasets/digits/digits.npz"
    try:
        watch_seconds = float(env.get("RETRAIN_WATCH_SECONDS") or 60)
    except ValueError:
        raise ValueError(f"RETRAIN_WATCH_SECONDS must be a number of seconds, got {env['RETRAIN_WATCH_SECONDS']!r}") from None
    return Settings(
        backend=backend,
        schedule=None if schedule.lower() in ("", "none", "null") else schedule,
        artifact_store=store,
        registry=env.get("RETRAIN_REGISTRY") or f"{store}/registry",
        dataset_uri=dataset_uri,
        watch_seconds=max(watch_seconds, 0.0),
        dataset_allowed=(f"{store}/", *[p.strip() for p in env.get("RETRAIN_DATASET_ALLOWED", "").split(",") if p.strip()]),
        steps_python=env.get("RETRAIN_STEPS_PYTHON") or sys.executable,
        serving_python=env.get("RETRAIN_SERVING_PYTHON") or sys.executable,
        project_root=PROJECT_ROOT,
    )
