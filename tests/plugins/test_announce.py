"""A change of production, told: the ``model-in-production`` event's extra and one ``deployed`` notification."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from retrain_steps import registry
from retraining import announce, model_assets
from retraining.config import settings
from tests.helpers.servers import webhook_receiver

METRICS = {"test_accuracy": 0.97, "macro_f1": 0.96, "val_accuracy": 0.98}
ENTRY = {"seq": 2, "version": "bbbbbbbbbbbb", "previous": "aaaaaaaaaaaa", "action": "promote", "actor": "user:ann",
         "run_id": "manual__1", "reason": "beats production", "at": "2026-11-30T02:00:00+00:00", "backend": "local"}
DAG_RUN = SimpleNamespace(dag_id="promote_model", run_id="manual__1")


@pytest.fixture
def conf(tmp_path):
    conf = settings({"RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}/store", "RETRAIN_NOTIFY_CONN_ID": "deploys"})
    registry.write_card(conf.registry, {"version": "bbbbbbbbbbbb", "metrics": METRICS})
    return conf


@pytest.fixture
def webhook(monkeypatch):
    """The notifications of the connection ``conf`` names: the JSON bodies posted."""
    with webhook_receiver() as (url, bodies):
        monkeypatch.setenv("AIRFLOW_CONN_DEPLOYS", json.dumps({"conn_type": "http", "host": url}))
        yield bodies


def test_the_event_carries_the_entry_and_the_versions_metrics(conf, webhook):
    event = SimpleNamespace(extra=None)
    announce.production_changed(conf, ENTRY, event, DAG_RUN)
    assert event.extra == {"model": "digits", "version": "bbbbbbbbbbbb", "previous": "aaaaaaaaaaaa", "action": "promote",
                           "actor": "user:ann", "reason": "beats production", "run_id": "manual__1", "metrics": METRICS}
    assert event.extra == model_assets.production_extra({**ENTRY, "model": "digits"}, {"metrics": METRICS})


def test_the_notification_says_who_changed_what(conf, webhook):
    announce.production_changed(conf, ENTRY, SimpleNamespace(extra=None), DAG_RUN)
    (body,) = webhook
    assert body["event"] == "deployed"
    assert body["text"] == ("promote_model run manual__1: promote of digits bbbbbbbbbbbb by user:ann (was aaaaaaaaaaaa): "
                            "beats production")
    assert {k: body[k] for k in ("dag_id", "run_id", "version", "previous", "reason", "actor")} == {
        "dag_id": "promote_model", "run_id": "manual__1", "version": "bbbbbbbbbbbb", "previous": "aaaaaaaaaaaa",
        "reason": "beats production", "actor": "user:ann"}


def test_a_first_deploy_without_actor_or_reason(conf, webhook):
    first = {"seq": 1, "version": "bbbbbbbbbbbb", "previous": None, "action": "promote"}
    event = SimpleNamespace(extra=None)
    announce.production_changed(conf, first, event, DAG_RUN)
    (body,) = webhook
    assert body["text"] == "promote_model run manual__1: promote of digits bbbbbbbbbbbb by unknown (was empty): "
    assert body["previous"] is None and body["actor"] == "" and body["reason"] == ""
    assert event.extra["previous"] is None and event.extra["actor"] == "" and event.extra["metrics"] == METRICS


def test_without_the_connection_the_event_is_still_emitted(conf, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DEPLOYS", raising=False)
    event = SimpleNamespace(extra=None)
    announce.production_changed(conf, {**ENTRY, "action": "rollback"}, event, DAG_RUN)
    assert event.extra["action"] == "rollback" and event.extra["version"] == "bbbbbbbbbbbb"

