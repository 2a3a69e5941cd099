"""DagBag integrity for every DAG file, its params form, and the DAG files' parse-time imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PLUGINS, ROOT

DAGS = ROOT / "dags"
HEAVY = ("torch", "tensorflow", "keras", "kfp", "bentoml", "sklearn", "matplotlib")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"retrain", "retrain_kubeflow", "promote_model"} <= set(dagbag.dag_ids)


def test_promote_model_is_manual_active_and_never_retries(dagbag):
    """The Models view's promote/rollback requests: run at once (not paused), no schedule, no retry of a refusal."""
    dag = dagbag.dags["promote_model"]
    assert dag.schedule is None and dag.is_paused_upon_creation is False and dag.max_active_runs == 1
    assert [t.task_id for t in dag.tasks] == ["deploy_version"] and dag.tasks[0].retries == 0
    assert [a.name for a in dag.tasks[0].outlets] == ["model-in-production"]
    assert dag.doc_md.strip().startswith("###") and dag.params.validate()["action"] == "promote"


@pytest.mark.parametrize("dag_id", ["retrain", "retrain_kubeflow"])
def test_dag_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "retraining" in dag.tags
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.doc_md and dag.doc_md.strip().startswith("###")
    for task in dag.tasks:
        assert task.retries >= 2, f"{task.task_id} has no retries"
        assert task.retry_exponential_backoff


def test_retrain_schedule_and_shape(dagbag):
    dag = dagbag.dags["retrain"]
    # the cron tick, or a change of the configured dataset's content (its asset's watcher)
    assert dag.schedule.timetable.expression == "0 3 * * *"
    (asset,) = dag.schedule.asset_condition.objects
    assert asset.name == "retrain-dataset" and asset.uri.endswith("/datasets/digits/digits.npz")
    (watcher,) = asset.watchers
    assert watcher.trigger.serialize()[0] == "retraining.dataset_watch.DatasetChangeTrigger"
    assert dagbag.dags["retrain_kubeflow"].schedule.expression == "0 3 * * *", "only retrain follows the data"

    assert set(dag.task_ids) == {
        "plan", "plan_candidates", "download", "preprocess", "check_model", "train", "evaluate", "select_best",
        "plan_production", "evaluate_production", "gate", "package", "register", "deploy_model", "track",
    }
    assert dag.get_task("download").downstream_task_ids == {"preprocess"}
    # the prepared data must fit the run's model before anything trains
    assert dag.get_task("preprocess").downstream_task_ids == {"check_model"}
    assert dag.get_task("check_model").downstream_task_ids == {"train"}
    # production is evaluated on this run's split (after preprocess) before the gate compares
    assert "evaluate_production" in dag.get_task("gate").upstream_task_ids
    assert dag.get_task("gate").trigger_rule == "none_failed", "nothing in production skips evaluate_production"
    assert "preprocess" in dag.get_task("evaluate_production").get_flat_relative_ids(upstream=True)
    assert dag.get_task("gate").downstream_task_ids == {"package"}
    assert dag.get_task("package").downstream_task_ids == {"register"}
    assert dag.get_task("register").downstream_task_ids == {"deploy_model"}
    # experiment tracking: a teardown after deploy_model (runs however the release ended, never fails the run)
    for tracked in (dag, dagbag.dags["retrain_kubeflow"]):
        track = tracked.get_task("track")
        assert track.is_teardown and not track.on_failure_fail_dagrun, "MLflow down never fails the run"
        assert track.upstream_task_ids == {"deploy_model", "select_best"}, "after the deploy; its arguments' task"
    # model versions as assets: registered ones and changes of production (Airflow's Assets view)
    assert [a.name for a in dag.get_task("register").outlets] == ["model-versions"]
    assert [a.name for a in dag.get_task("deploy_model").outlets] == ["model-in-production"]


@pytest.mark.parametrize("dag_id", ["retrain", "retrain_kubeflow"])
@pytest.mark.parametrize("now", ["2026-11-30T03:00:30", "2026-11-30T03:01:00", "2026-11-30T05:00:00",
                                 "2026-11-30T12:00:00", "2026-11-30T02:59:00"])
def test_unpausing_starts_no_run_for_a_tick_that_passed(dagbag, dag_id, now, monkeypatch):
    """What the scheduler plans for a DAG that never ran (the UI's Trigger unpauses it): the next tick, not the
    last, also minutes after a tick (Airflow runs a tick up to a tenth of the interval late unless told not to)."""
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables import trigger
    from airflow.timetables.base import TimeRestriction

    frozen = pendulum.parse(now, tz="UTC")
    monkeypatch.setattr(trigger, "utcnow", lambda: frozen)
    dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id]))
    planned = dag.timetable.next_dagrun_info(last_automated_data_interval=None,
                                             restriction=TimeRestriction(earliest=None, latest=None, catchup=False))
    assert planned.run_after > frozen


def test_retrain_triggers_with_the_params_form(dagbag):
    """The form itself is tested in tests/plugins/test_params.py; here: the DAG uses it."""
    from retraining.params import retrain_params

    params = dagbag.dags["retrain"].params
    assert {name: params.get_param(name).schema for name in params} == {
        name: param.schema for name, param in retrain_params().items()}


def test_schedule_is_overridable(tmp_path):
    code = "from retraining.config import settings; print(settings().schedule)"
    env = {**os.environ, "RETRAIN_SCHEDULE": "*/30 * * * *", "PYTHONPATH": str(PLUGINS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "*/30 * * * *"


@pytest.mark.parametrize("backend", ["local", "kubernetes"])
def test_dag_files_import_no_heavy_library(backend):
    """Parsing a DAG file must not import torch, TensorFlow, kfp, BentoML or scikit-learn."""
    code = (
        "import runpy, sys, json, pathlib\n"
        f"for f in sorted(pathlib.Path({str(DAGS)!r}).glob('*.py')): runpy.run_path(str(f))\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    env = {**os.environ, "RETRAIN_BACKEND": backend, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_retrain_kubeflow_shape(dagbag):
    dag = dagbag.dags["retrain_kubeflow"]
    assert set(dag.task_ids) == {"plan", "plan_candidates", "pipeline_arguments", "kubeflow_run", "select_best",
                                 "plan_production", "evaluate_production", "gate", "package", "register", "deploy_model",
                                 "track"}
    assert dag.get_task("kubeflow_run").downstream_task_ids == {"select_best"}
    assert dag.params.validate() == dagbag.dags["retrain"].params.validate(), "the same form as retrain"
    assert dag.get_task("kubeflow_run").pipeline_package.endswith("images/steps/pipelines/retrain.yaml")
