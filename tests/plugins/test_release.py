"""The release stage: what it reads of the candidates and of production, what the gate decides and records,
and what register and deploy_model hand on. Each task's callable is called directly (no Airflow run)."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from retrain_steps import artifacts, layout, registry
from retraining import commands, model_assets, selection
from retraining.bad_input import BadInput
from retraining.config import settings
from retraining.release import candidate_metrics, measured_production, release_tasks, run_record
from tests.helpers.airflow import not_retried
from tests.helpers.servers import webhook_receiver

PARAMS = {"learning_rates": [0.001, 0.01], "epochs": 3, "batch_size": 32, "framework": "torch", "seed": 0}
GATE_PARAMS = {"min_accuracy": 0.95, "margin": 0.0}
RUN_ID = "manual__1"
DATASET = "file:///srv/digits.npz"


def trained(candidate: dict, *, weights: bytes, val_accuracy: float, test_accuracy: float | None,
            val_loss: float = 0.1) -> str:
    """Write what ``train`` and ``evaluate`` leave for ``candidate``; return its registry version."""
    name = layout.WEIGHTS["torch"]
    artifacts.write_bytes(layout.file_in(candidate["model"], name), weights)
    artifacts.write_json(layout.file_in(candidate["model"], layout.MODEL_INFO), {"framework": "torch", "file": name})
    train_metrics = {"learning_rate": candidate["learning_rate"], "val_accuracy": val_accuracy, "val_loss": val_loss}
    artifacts.write_json(layout.file_in(candidate["model"], layout.METRICS), train_metrics)
    artifacts.write_json(layout.file_in(candidate["evaluation"], layout.METRICS), {"test_accuracy": test_accuracy})
    return registry.version_id(artifacts.sha256(weights))


def evaluated_production(baseline: list[dict], test_accuracy: float | None, **more) -> None:
    """Write what ``evaluate_production`` leaves."""
    artifacts.write_json(layout.file_in(baseline[0]["evaluation"], layout.METRICS),
                         {"test_accuracy": test_accuracy, **more})


def card(conf, version: str, **more) -> dict:
    """Register ``version`` as ``package`` does (a card with a bento)."""
    return registry.write_card(conf.registry, {
        "version": version, "metrics": {"test_accuracy": 0.97}, "run_id": RUN_ID, "dataset": {"version": "d" * 12},
        "framework": "torch", "bento": {"uri": layout.bento(conf.registry, version), "sha256": "a" * 64}, **more})


@pytest.fixture
def conf(tmp_path):
    return settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store"})


@pytest.fixture
def candidates(conf):
    return commands.candidates(params=PARAMS, run_id=RUN_ID, artifact_store=conf.artifact_store)


@pytest.fixture
def tasks(conf):
    """The release stage's tasks by id, in a DAG of their own."""
    from airflow.sdk import DAG

    with DAG("release", schedule=None) as dag:
        release_tasks(candidates=[], data={"dataset": DATASET, "model": "digits"}, settings=conf)
    return {task.task_id: task for task in dag.tasks}


@pytest.fixture
def webhook(monkeypatch):
    """The notifications of the default connection: the JSON bodies posted."""
    with webhook_receiver() as (url, bodies):
        monkeypatch.setenv("AIRFLOW_CONN_RETRAIN_NOTIFICATIONS", json.dumps({"conn_type": "http", "host": url}))
        yield bodies


def dag_run(run_id: str = RUN_ID):
    return SimpleNamespace(dag_id="retrain", run_id=run_id)


class OutletEvents(dict):
    """``outlet_events`` as a task gets it: one event accessor per asset, created on first use."""

    def __missing__(self, asset):
        self[asset] = SimpleNamespace(extra=None)
        return self[asset]


# what the release stage reads


def test_candidate_metrics_are_its_validation_and_test_metrics_and_version(candidates):
    version = trained(candidates[0], weights=b"w0", val_accuracy=0.97, val_loss=0.12, test_accuracy=0.96)
    scored = candidate_metrics(candidates[0])
    assert scored == {**candidates[0], "val_accuracy": 0.97, "val_loss": 0.12, "test_accuracy": 0.96,
                      "version": version}


def test_the_production_baseline_must_still_be_production():
    assert measured_production([], None) is None
    with pytest.raises(ValueError, match="production changed during this run"):
        measured_production([], "newer0000000")
    with pytest.raises(ValueError, match="production changed during this run"):
        measured_production([{"version": "a", "evaluation": "file:///x"}], "b")


def test_production_is_measured_on_this_runs_split(conf):
    baseline = commands.production_baseline(run_id=RUN_ID, artifact_store=conf.artifact_store, registry=conf.registry,
                                            production_version="aaaaaaaaaaaa")
    evaluated_production(baseline, 0.91)
    assert measured_production(baseline, "aaaaaaaaaaaa") == {"version": "aaaaaaaaaaaa", "test_accuracy": 0.91}


def test_production_that_predicts_other_classes_is_incomparable(conf):
    baseline = commands.production_baseline(run_id=RUN_ID, artifact_store=conf.artifact_store, registry=conf.registry,
                                            production_version="aaaaaaaaaaaa")
    evaluated_production(baseline, None, comparable=False, reason="it predicts 10 classes, the data has 3")
    assert measured_production(baseline, "aaaaaaaaaaaa") == {
        "version": "aaaaaaaaaaaa", "test_accuracy": None, "incomparable": "it predicts 10 classes, the data has 3"}


def test_the_run_record_holds_candidates_best_production_and_decision():
    best = {"candidate": {"index": 1}, "candidates": [{"index": 0}, {"index": 1}]}
    production = {"version": "aaaaaaaaaaaa", "test_accuracy": 0.9}
    record = run_record(best, production, selection.GateDecision(True, "beats production"), dag_run())
    recorded_at = dt.datetime.fromisoformat(record.pop("recorded_at"))
    assert recorded_at.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.timezone.utc) - recorded_at) < dt.timedelta(minutes=1)
    assert record == {"dag_id": "retrain", "candidates": best["candidates"], "best": 1, "production": production,
                      "gate": {"deploy": True, "reason": "beats production"}}


# what the release tasks compute


def test_select_best_picks_on_validation_and_plans_the_package(tasks, conf, candidates):
    trained(candidates[0], weights=b"w0", val_accuracy=0.95, test_accuracy=0.99)
    version = trained(candidates[1], weights=b"w1", val_accuracy=0.97, test_accuracy=0.96)
    out = tasks["select_best"].python_callable(candidates, DATASET, dag_run=dag_run())
    assert out["candidate"]["index"] == 1 and out["candidate"]["version"] == version, "validation, not test, decides"
    assert [c["test_accuracy"] for c in out["candidates"]] == [0.99, 0.96]
    assert out["package_arguments"] == commands.package_arguments(candidate=out["candidate"], dataset=DATASET,
                                                                  registry=conf.registry, run_id=RUN_ID,
                                                                  model="digits")
    assert out["package_arguments"][:2] == ["--model", candidates[1]["model"]]
    assert out["track_arguments"] == commands.track_arguments(
        candidates=candidates, dataset=DATASET, model="digits", run_id=RUN_ID, dag_id="retrain",
        artifact_store=conf.artifact_store, registry=conf.registry)
    assert out["track_arguments"].count("--candidate") == 2, "every candidate is tracked, not only the best"


def test_plan_production_is_empty_until_a_version_is_promoted(tasks, conf):
    assert tasks["plan_production"].python_callable(run_id=RUN_ID) == []
    registry.promote(conf.registry, card(conf, "aaaaaaaaaaaa")["version"])
    (baseline,) = tasks["plan_production"].python_callable(run_id=RUN_ID)
    assert baseline["version"] == "aaaaaaaaaaaa" and baseline["model"] == layout.version_folder(conf.registry,
                                                                                               "aaaaaaaaaaaa")
    assert baseline["evaluation"] == layout.evaluate_folder(conf.artifact_store, RUN_ID, layout.PRODUCTION_EVALUATION)


def best_of(candidates, **metrics) -> dict:
    version = trained(candidates[0], weights=b"w0", **metrics)
    scored = candidate_metrics(candidates[0])
    assert scored["version"] == version
    return {"candidate": scored, "candidates": [scored]}


def test_the_gate_deploys_a_first_model_that_meets_the_minimum_and_records_why(tasks, conf, candidates, webhook):
    best = best_of(candidates, val_accuracy=0.97, test_accuracy=0.96)
    assert tasks["gate"].python_callable(best, [], params=GATE_PARAMS, dag_run=dag_run()) is True
    record = registry.run_record(conf.registry, RUN_ID)
    reason = "no model in production; test accuracy 0.9600 meets the minimum"
    assert record["gate"] == {"deploy": True, "reason": reason}
    assert record["production"] is None and record["run_id"] == RUN_ID and record["best"] == 0
    assert webhook == [], "a deploy is announced by deploy_model, not by the gate"


def test_the_gate_keeps_a_better_production_and_says_so(tasks, conf, candidates, webhook):
    registry.promote(conf.registry, card(conf, "aaaaaaaaaaaa")["version"])
    baseline = tasks["plan_production"].python_callable(run_id=RUN_ID)
    evaluated_production(baseline, 0.98)
    best = best_of(candidates, val_accuracy=0.97, test_accuracy=0.96)
    params = {"min_accuracy": "0.5", "margin": "0"}  # numbers as the form may send them
    assert tasks["gate"].python_callable(best, baseline, params=params, dag_run=dag_run()) is False
    reason = "test accuracy 0.9600 does not beat production 0.9800 (same test split) by more than 0.0"
    record = registry.run_record(conf.registry, RUN_ID)
    assert record["gate"] == {"deploy": False, "reason": reason}
    assert record["production"] == {"version": "aaaaaaaaaaaa", "test_accuracy": 0.98}
    (body,) = webhook
    assert body["event"] == "gate_rejected"
    assert body["text"] == f"retrain run {RUN_ID} kept production aaaaaaaaaaaa: {reason}"
    assert (body["dag_id"], body["run_id"], body["version"], body["reason"]) == (
        "retrain", RUN_ID, best["candidate"]["version"], reason)


def test_the_gate_refuses_a_candidate_below_the_minimum_with_nothing_in_production(tasks, candidates, webhook):
    best = best_of(candidates, val_accuracy=0.97, test_accuracy=0.90)
    assert tasks["gate"].python_callable(best, [], params=GATE_PARAMS, dag_run=dag_run()) is False
    (body,) = webhook
    assert body["text"] == (f"retrain run {RUN_ID} kept production (none): "
                            "test accuracy 0.9000 is below the minimum 0.9500")


def test_the_gate_fails_without_retry_when_production_moved_during_the_run(tasks, conf, candidates):
    best = best_of(candidates, val_accuracy=0.97, test_accuracy=0.99)
    registry.promote(conf.registry, card(conf, "aaaaaaaaaaaa")["version"])
    with pytest.raises(BadInput, match="production changed during this run .None when it started") as refused:
        tasks["gate"].python_callable(best, [], params=GATE_PARAMS, dag_run=dag_run())
    assert not_retried(tasks["gate"], refused.value)
    with pytest.raises(artifacts.ArtifactError):
        registry.run_record(conf.registry, RUN_ID)  # no decision recorded


def test_register_emits_the_registered_version_with_its_card(tasks, conf):
    registered = card(conf, "bbbbbbbbbbbb")
    events = OutletEvents()
    assert tasks["register"].python_callable({"version": "bbbbbbbbbbbb"}, outlet_events=events) == "bbbbbbbbbbbb"
    (asset,) = tasks["register"].outlets
    assert asset.name == model_assets.REGISTERED
    assert events[asset].extra == model_assets.registered_extra(registered)


def test_register_fails_when_package_registered_nothing(tasks):
    with pytest.raises(artifacts.ArtifactError):
        tasks["register"].python_callable({"version": "cccccccccccc"}, outlet_events=OutletEvents())


def gated(tasks, candidates, baseline: list[dict]) -> dict:
    best = best_of(candidates, val_accuracy=0.97, test_accuracy=0.99)
    assert tasks["gate"].python_callable(best, baseline, params=GATE_PARAMS, dag_run=dag_run()) is True
    return best["candidate"]


def test_deploy_model_promotes_records_and_announces(tasks, conf, candidates, webhook):
    registry.promote(conf.registry, card(conf, "aaaaaaaaaaaa")["version"])
    baseline = tasks["plan_production"].python_callable(run_id=RUN_ID)
    evaluated_production(baseline, 0.9)
    candidate = gated(tasks, candidates, baseline)
    card(conf, candidate["version"])
    events = OutletEvents()
    result = tasks["deploy_model"].python_callable(candidate, baseline, dag_run=dag_run(), outlet_events=events)
    assert registry.production_version(conf.registry) == candidate["version"]
    assert (result["backend"], result["version"], result["previous"]) == ("local", candidate["version"], "aaaaaaaaaaaa")
    assert result["actor"] == "airflow:retrain" and result["run_id"] == RUN_ID
    assert result["reason"] == registry.run_record(conf.registry, RUN_ID)["gate"]["reason"], "the gate's reason"
    assert registry.run_record(conf.registry, RUN_ID)["deploy"] == result
    (asset,) = tasks["deploy_model"].outlets
    assert asset.name == model_assets.PRODUCTION and events[asset].extra["version"] == candidate["version"]
    assert [b["event"] for b in webhook] == ["deployed"]


def test_deploy_model_refuses_when_production_moved_after_the_gate(tasks, conf, candidates):
    candidate = gated(tasks, candidates, [])
    card(conf, candidate["version"])
    registry.promote(conf.registry, card(conf, "aaaaaaaaaaaa")["version"], actor="user:ann")  # another run won
    with pytest.raises(BadInput, match="not deployed: production is aaaaaaaaaaaa, not empty") as refused:
        tasks["deploy_model"].python_callable(candidate, [], dag_run=dag_run(), outlet_events=OutletEvents())
    assert not_retried(tasks["deploy_model"], refused.value)
    assert registry.production_version(conf.registry) == "aaaaaaaaaaaa"
    assert "production is aaaaaaaaaaaa" in registry.run_record(conf.registry, RUN_ID)["deploy"]["refused"]


def test_select_best_refuses_candidates_of_other_classes_than_the_models_production(tasks, conf, candidates):
    """retrain_kubeflow prepares its data inside the KFP run: select_best is its first task that can compare."""
    from retraining.bad_input import BadInput

    spec = {"class_names": ["0", "1"], "profile": "image", "height": 8, "width": 8, "channels": 1}
    card(conf, "aaaaaaaaaaaa", model="digits", input_spec=spec)
    registry.promote(conf.registry, "aaaaaaaaaaaa", model="digits")
    trained(candidates[0], weights=b"w0", val_accuracy=0.95, test_accuracy=0.99)
    info = layout.file_in(candidates[0]["model"], layout.MODEL_INFO)
    artifacts.write_json(info, {**artifacts.read_json(info), "input_spec": {**spec, "class_names": ["a", "b"]}})
    with pytest.raises(BadInput, match="cannot retrain model 'digits': its production aaaaaaaaaaaa predicts classes"):
        tasks["select_best"].python_callable(candidates[:1], DATASET, "digits", dag_run=dag_run())
    out = tasks["select_best"].python_callable(candidates[:1], DATASET, "letters", dag_run=dag_run())
    assert out["package_arguments"][-2:] == ["--model-name", "letters"], "a new model's first run packages for it"
