"""The service class in process (BentoML's ``to_asgi()`` app under Starlette's TestClient): one ``/predict``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from retrain_steps.artifacts import local_path
from serving.service import EXAMPLE_INPUT, VERSION_HEADER
from tests.serving.test_service_http import SAMPLE


@pytest.fixture
def model(trained):
    from serving.service import load_folder

    return load_folder(local_path(trained["train"]), "v1")


def test_http_predict_runs_the_method_of_the_service_class(model, monkeypatch):
    """An edit of ``DigitsClassifier.predict_batch`` shows over HTTP, for uploads and JSON alike (the ASGI fast
    path dispatches to the service instance's method), and the ``@bentoml.api`` method runs the same method."""
    from starlette.testclient import TestClient

    from serving import service

    calls = []
    original = service.DigitsClassifier.inner.predict_batch

    def edited(self, requests):
        calls.append(len(requests))
        return [{**r, "edited": True} if isinstance(r, dict) else r for r in original(self, requests)]

    monkeypatch.setattr(service.DigitsClassifier.inner, "predict_batch", edited)
    monkeypatch.setattr(service, "model_source", lambda settings, bento: service.FixedModel(model))
    with TestClient(service.DigitsClassifier.to_asgi()) as client:
        as_json = client.post("/predict", json=EXAMPLE_INPUT)
        upload = client.post("/predict", files={"file": ("d.png", SAMPLE.read_bytes(), "image/png")})
        bad = client.post("/predict", json={"instances": [[1, 2, 3]]})
    assert as_json.status_code == 200 and as_json.json()["edited"] is True and as_json.json()["class_names"] == ["3"]
    assert upload.status_code == 200 and upload.json()["edited"] is True and upload.json()["class_name"] == "3"
    assert as_json.headers[VERSION_HEADER] == "v1"
    assert bad.status_code == 400 and "64 numbers" in bad.json()["error"]
    assert calls == [1, 1, 1]

    instance = service.DigitsClassifier.inner(service.FixedModel(model))
    ctx = SimpleNamespace(response=SimpleNamespace(headers={}, status_code=200))
    direct = instance.predict(instances=EXAMPLE_INPUT["instances"], ctx=ctx)
    assert direct["edited"] is True and direct["class_names"] == ["3"] and ctx.response.headers[VERSION_HEADER] == "v1"
    assert calls == [1, 1, 1, 1]


def test_without_a_registry_or_a_bento_the_server_names_what_to_set():
    from serving.service import ServerSettings, model_source

    with pytest.raises(RuntimeError, match="set DIGITS_REGISTRY_URI .* or serve a bento"):
        model_source(ServerSettings(), None)


def test_the_upload_pixel_limit_is_the_servers_setting(model, monkeypatch):
    """``DIGITS_MAX_UPLOAD_PIXELS`` (read once into the server's settings) is the limit an upload is checked against."""
    import dataclasses

    from serving import service

    monkeypatch.setattr(service, "SETTINGS", dataclasses.replace(service.SETTINGS, max_upload_pixels=100))
    instance = service.DigitsClassifier.inner(service.FixedModel(model))
    (refused,) = instance.predict_batch([service.PredictRequest(model, SAMPLE.read_bytes(), None)])
    assert isinstance(refused, ValueError) and "over the pixel limit of 100" in str(refused)


def test_the_registry_follower_serves_its_models_production_only(tmp_path, monkeypatch):
    """DIGITS_MODEL: a server of shapes follows shapes' promotions and rollbacks, never digits'."""
    from retrain_steps import registry
    from serving.service import RegistryFollower

    reg = f"file://{tmp_path}/registry"
    for version, model in (("aaaaaaaaaaaa", "digits"), ("bbbbbbbbbbbb", "shapes"), ("cccccccccccc", "shapes")):
        registry.write_card(reg, {"version": version, "model": model})
    monkeypatch.setattr(RegistryFollower, "load", lambda self, version: SimpleNamespace(version=version))
    monkeypatch.setattr(RegistryFollower, "_poll", lambda self: None)  # refreshed by hand below
    follower = RegistryFollower(reg, 60, "shapes")
    assert follower.current is None, "nothing of shapes in production yet"
    registry.promote(reg, "aaaaaaaaaaaa", model="digits")
    follower.refresh()
    assert follower.current is None, "digits' production is not shapes'"
    registry.promote(reg, "bbbbbbbbbbbb", model="shapes")
    registry.promote(reg, "cccccccccccc", model="shapes", expected="bbbbbbbbbbbb")
    follower.refresh()
    assert follower.current.version == "cccccccccccc"
    registry.promote(reg, "bbbbbbbbbbbb", model="shapes", action="rollback")
    follower.refresh()
    assert follower.current.version == "bbbbbbbbbbbb"
