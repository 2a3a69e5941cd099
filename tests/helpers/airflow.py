"""A scratch Airflow on the local backend for end-to-end tests, and ``airflow dags test retrain`` in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def local_airflow_env(base: Path, **settings: str) -> dict:
    """Environment of an Airflow home and artifact store under ``base`` (local backend), database migrated.

    ``settings`` add or override ``RETRAIN_*`` variables; the registry lies in the store.
    """
    store = f"file://{base}/artifacts"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(base / "airflow"),
        "RETRAIN_BACKEND": "local",
        "RETRAIN_ARTIFACT_STORE": store,
        "RETRAIN_REGISTRY": f"{store}/registry",
        **settings,
    }
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    return env


def dags_test(env: dict, conf: dict, dag_id: str = "retrain") -> tuple[int, str]:
    """Run ``airflow dags test <dag_id> -c conf``; return its exit status and output (and print its wall time)."""
    started = time.monotonic()
    completed = subprocess.run([str(BIN / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)],
                               env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(f"airflow dags test {dag_id} ({conf.get('dataset_uri') or 'default dataset'}): "
          f"{time.monotonic() - started:.0f} s")
    return completed.returncode, completed.stdout + completed.stderr


def not_retried(task, err: BaseException) -> bool:
    """Whether ``task``'s retry policy fails it at once on ``err`` (bad input), however many tries are left."""
    from airflow.sdk import RetryAction

    return task.retry_policy.evaluate(err, try_number=1, max_tries=3).action == RetryAction.FAIL
