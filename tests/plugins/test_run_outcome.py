"""How a retraining run ended is recorded by the DAG's callbacks, failed runs too (the Models view lists them)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from retrain_steps import artifacts, registry
from retraining import run_outcome
from retraining.config import settings
from retraining.dag_defaults import dag_kwargs


@pytest.fixture
def conf(tmp_path):
    return settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store"})


def context(run_id: str, ti=None, reason: str = "task_failure") -> dict:
    """What Airflow hands a DAG callback: the run, the DAG, the task instance that failed last, why."""
    return {"dag_run": SimpleNamespace(run_id=run_id, dag_id="retrain"), "dag": SimpleNamespace(dag_id="retrain"),
            "ti": ti, "run_id": run_id, "reason": reason}


def test_a_run_that_failed_before_the_gate_gets_a_record(conf):
    callbacks = dag_kwargs(conf, doc_md="", tags=[])["on_failure_callback"]
    for callback in callbacks:  # the notification (off: no connection) and the record
        callback(context("manual__1", SimpleNamespace(task_id="train", map_index=1)))
    record = registry.run_record(conf.registry, "manual__1")
    assert record == {**record, "run_id": "manual__1", "dag_id": "retrain", "state": "failed", "failed_task": "train[1]",
                      "end_reason": "task_failure", "candidates": []}
    assert "gate" not in record and record["finished_at"] == record["recorded_at"]
    assert [r["run_id"] for r in registry.runs(conf.registry)] == ["manual__1"]


def test_the_end_of_a_run_that_reached_the_gate_is_added_to_its_record(conf):
    gate = {"dag_id": "retrain", "recorded_at": "2026-01-01T00:00:00+00:00", "best": 0, "candidates": [{"index": 0}],
            "gate": {"deploy": True, "reason": "beats production"}}
    registry.record_run(conf.registry, "manual__2", gate)
    failed = run_outcome.RecordOutcome(run_outcome.FAILED, conf)
    failed(context("manual__2", SimpleNamespace(task_id="deploy_model", map_index=-1)))
    record = registry.run_record(conf.registry, "manual__2")
    assert record == {**gate, "model": "digits", "run_id": "manual__2", "state": "failed", "failed_task": "deploy_model",
                      "end_reason": "task_failure", "finished_at": record["finished_at"]}
    registry.record_run(conf.registry, "manual__3", gate)
    dag_kwargs(conf, doc_md="", tags=[])["on_success_callback"](context("manual__3", reason="success"))
    record = registry.run_record(conf.registry, "manual__3")
    assert record["state"] == "success" and "failed_task" not in record and record["gate"] == gate["gate"]


def test_a_registry_that_cannot_be_written_is_logged_not_raised(conf, tmp_path, caplog):
    (tmp_path / "store").write_text("a file where the registry's folder would be")
    with caplog.at_level(logging.WARNING, logger=run_outcome.__name__):
        run_outcome.RecordOutcome(run_outcome.FAILED, conf)(context("manual__4"))
    assert "run manual__4 of retrain ended failed, not recorded in the registry" in caplog.text
    unreadable = tmp_path / "other"
    other = settings({"RETRAIN_ARTIFACT_STORE": f"file://{unreadable}"})
    (unreadable / "registry" / "runs").mkdir(parents=True)
    (unreadable / "registry" / "runs" / "manual__5.json").write_text("{")
    run_outcome.RecordOutcome(run_outcome.FAILED, other)(context("manual__5"))
    assert (unreadable / "registry" / "runs" / "manual__5.json").read_text() == "{", "an unreadable record is kept"
    with pytest.raises(artifacts.ArtifactError):
        registry.run_record(other.registry, "manual__5")


def test_a_cleared_failure_that_then_succeeds_keeps_no_failed_task(conf):
    failed = run_outcome.RecordOutcome(run_outcome.FAILED, conf)
    failed(context("manual__4", SimpleNamespace(task_id="deploy_model", map_index=-1)))
    run_outcome.RecordOutcome(run_outcome.SUCCESS, conf)(context("manual__4", reason="success"))
    record = registry.run_record(conf.registry, "manual__4")
    assert record["state"] == "success" and "failed_task" not in record and "end_reason" not in record


def test_another_dags_record_of_the_same_run_id_is_left_alone(conf, caplog):
    """``retrain`` and ``retrain_kubeflow`` share the schedule: both have a ``scheduled__<tick>`` run."""
    theirs = {"dag_id": "retrain_kubeflow", "recorded_at": "2026-01-01T00:00:00+00:00", "candidates": [{"index": 0}]}
    registry.record_run(conf.registry, "scheduled__t", theirs)
    with caplog.at_level(logging.WARNING):
        run_outcome.RecordOutcome(run_outcome.FAILED, conf)(context("scheduled__t", SimpleNamespace(task_id="train")))
    assert registry.run_record(conf.registry, "scheduled__t") == {**theirs, "run_id": "scheduled__t", "model": "digits"}
    assert "run record of retrain_kubeflow has this run id" in caplog.text
