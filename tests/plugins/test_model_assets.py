"""Model versions as Airflow Assets: the two assets of a deployment's registry and the extras of their events."""

from __future__ import annotations

import json

import pytest
from retrain_steps import layout
from retraining import model_assets
from retraining.config import parse_safe, settings

CARD = {"version": "bbbbbbbbbbbb", "metrics": {"test_accuracy": 0.97, "macro_f1": 0.96, "val_accuracy": 0.98},
        "run_id": "manual__1", "dataset": {"version": "d" * 12, "uri": "file:///srv/digits.npz"},
        "framework": "torch", "bento": {"uri": "file:///r/versions/bbbbbbbbbbbb/x.bento", "sha256": "a" * 64}}
ENTRY = {"seq": 2, "version": "bbbbbbbbbbbb", "previous": "aaaaaaaaaaaa", "action": "rollback", "actor": "user:ann",
         "run_id": "manual__2", "reason": "bad canary", "at": "2026-11-30T02:00:00+00:00"}


@pytest.mark.parametrize("environ", [
    {"RETRAIN_ARTIFACT_STORE": "file:///srv/store"},
    {"RETRAIN_ARTIFACT_STORE": "s3://bucket/store/"},
    {"RETRAIN_ARTIFACT_STORE": "s3://bucket/store", "RETRAIN_REGISTRY": "s3://models/registry"},
], ids=["file", "s3", "own-registry"])
def test_the_assets_are_the_registrys_versions_and_promotions(environ):
    conf = settings(environ)
    registered, production = model_assets.model_assets(conf)
    assert (registered.name, registered.uri, registered.group) == (
        model_assets.REGISTERED, layout.versions_folder(conf.registry), "model")
    assert (production.name, production.uri, production.group) == (
        model_assets.PRODUCTION, layout.models_folder(conf.registry), "model")
    assert registered.uri.startswith(environ.get("RETRAIN_REGISTRY", environ["RETRAIN_ARTIFACT_STORE"].rstrip("/")))


def test_every_dag_names_the_same_assets():
    """promote_model (``parse_safe``) and the Models view (``settings``) emit the events retrain's assets hold."""
    environ = {"RETRAIN_ARTIFACT_STORE": "s3://bucket/store"}
    assert model_assets.model_assets(parse_safe(environ)) == model_assets.model_assets(settings(environ))
    assert model_assets.model_assets(settings({**environ, "RETRAIN_REGISTRY": "s3://other/registry"}))[1] != \
        model_assets.model_assets(settings(environ))[1]


def test_the_registered_extra_is_the_cards_summary():
    assert model_assets.registered_extra(CARD) == {"model": "digits",
        "version": "bbbbbbbbbbbb", "metrics": CARD["metrics"], "run_id": "manual__1", "dataset_version": "d" * 12,
        "framework": "torch"}


@pytest.mark.parametrize("card", [{"version": "bbbbbbbbbbbb"}, {"version": "bbbbbbbbbbbb", "dataset": None}])
def test_the_registered_extra_of_a_card_written_by_older_code(card):
    assert model_assets.registered_extra(card) == {"model": "digits", "version": "bbbbbbbbbbbb", "metrics": {}, "run_id": "",
                                                   "dataset_version": "", "framework": ""}


def test_the_production_extra_is_the_entry_and_the_metrics():
    assert model_assets.production_extra(ENTRY, CARD) == {"model": "digits",
        "version": "bbbbbbbbbbbb", "previous": "aaaaaaaaaaaa", "action": "rollback", "actor": "user:ann",
        "reason": "bad canary", "run_id": "manual__2", "metrics": CARD["metrics"]}


def test_the_production_extra_without_a_card():
    extra = model_assets.production_extra({"version": "bbbbbbbbbbbb"}, None)
    assert extra == {"model": "digits", "version": "bbbbbbbbbbbb", "previous": None, "action": None, "actor": "", "reason": "",
                     "run_id": "", "metrics": {}}


def test_the_extras_are_json_as_airflow_stores_them():
    for extra in (model_assets.registered_extra(CARD), model_assets.production_extra(ENTRY, CARD)):
        assert json.loads(json.dumps(extra)) == extra
