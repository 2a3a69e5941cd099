"""``promote_model`` under ``airflow dags test``, where the failure callback gets the serialized DAG: the notification
arrives. Through a real scheduler (the DAG processor runs the callback), with the history's actor and the refusal of
a no-op promotion: tests/e2e/test_airflow_ui.py, on its ``airflow standalone``."""

from __future__ import annotations

import json

import pytest

from tests.helpers.airflow import dags_test, local_airflow_env
from tests.helpers.servers import wait_for_bodies

pytestmark = pytest.mark.e2e


def test_dags_test_delivers_the_failure_notification(tmp_path, notifications):
    url, bodies = notifications
    hook = json.dumps({"conn_type": "http", "host": url, "password": "hook-token"})
    _, output = dags_test(local_airflow_env(tmp_path, AIRFLOW_CONN_RETRAIN_NOTIFICATIONS=hook), {"action": "rollback"},
                          dag_id="promote_model")
    assert "state=failed" in output and "nothing to roll back to" in output, output[-4000:]
    assert "Callback failed" not in output, output[-4000:]
    (body,) = wait_for_bodies(bodies, "run_failed", seconds=10)
    assert body["dag_id"] == "promote_model" and body["run_id"].startswith("manual__")
    assert body["text"] == f"promote_model run {body['run_id']} failed: task_failure"
    assert body["_authorization"] == "Bearer hook-token"
