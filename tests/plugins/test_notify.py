"""Notifications: off without the connection; with it, one JSON POST per event; a dead webhook never fails a task."""

from __future__ import annotations

import json
from types import SimpleNamespace

from airflow.sdk import DAG
from retraining import notify
from tests.helpers.servers import free_port, webhook_receiver


def test_off_without_the_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_NOTIFICATIONS", raising=False)
    assert notify.send("deployed", "x") is False


def test_the_failure_notifier_renders_and_posts(monkeypatch):
    with webhook_receiver() as (url, bodies):
        monkeypatch.setenv("AIRFLOW_CONN_RETRAIN_NOTIFICATIONS", json.dumps({"conn_type": "http", "host": url}))
        notifier = notify.RetrainNotifier("run_failed", "{{ dag.dag_id }} run {{ run_id }} failed: {{ reason }}")
        dag_run = SimpleNamespace(dag_id="retrain", run_id="manual__1")
        notifier({"dag": DAG("retrain", schedule=None), "dag_run": dag_run, "run_id": "manual__1",
                  "reason": "task_failure"})
    (body,) = bodies
    assert body["event"] == "run_failed" and body["text"] == "retrain run manual__1 failed: task_failure"
    assert body["run_id"] == "manual__1" and body["_authorization"] is None


def test_the_failure_notifier_renders_against_the_serialized_dag(monkeypatch):
    """``airflow dags test`` gives DAG callbacks the serialized DAG (no ``get_template_env``); each call renders."""
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(DAG("retrain", schedule=None)))
    assert not hasattr(serialized, "get_template_env")
    with webhook_receiver() as (url, bodies):
        monkeypatch.setenv("AIRFLOW_CONN_HOOK", json.dumps({"conn_type": "http", "host": url}))
        notifier = notify.RetrainNotifier("run_failed", "{{ dag.dag_id }} run {{ run_id }} failed: {{ reason }}",
                                          conn_id="hook")
        for run_id in ("manual__1", "manual__2"):  # no dag_run in the context of a run that failed before any task
            notifier({"dag": serialized, "run_id": run_id, "reason": "task_failure"})
    assert [b["text"] for b in bodies] == ["retrain run manual__1 failed: task_failure",
                                           "retrain run manual__2 failed: task_failure"]
    assert [(b["dag_id"], b["run_id"]) for b in bodies] == [("retrain", "manual__1"), ("retrain", "manual__2")]


def test_a_dead_webhook_is_logged_not_raised(monkeypatch, caplog):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    monkeypatch.setenv("AIRFLOW_CONN_RETRAIN_NOTIFICATIONS", json.dumps({"conn_type": "http", "host": dead}))
    assert notify.send("deployed", "x") is False
    assert "not delivered" in caplog.text
