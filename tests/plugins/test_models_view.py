"""The Models view's pages without a browser (FastAPI TestClient, Airflow's auth stubbed): what a user
wrote is shown escaped, unknown versions are 404s with JSON for API clients, and stale changes are refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from retrain_steps import registry


class User:
    def get_name(self) -> str:
        return "alice"


class AuthManager:
    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed

    def is_authorized_dag(self, **_) -> bool:
        return self.allowed


@pytest.fixture
def view(tmp_path, monkeypatch):
    import airflow.api_fastapi.app as airflow_app
    from airflow.api_fastapi.core_api.security import get_user

    from retraining.models_view import app as models_view

    store = f"file://{tmp_path}"
    monkeypatch.setenv("RETRAIN_ARTIFACT_STORE", store)
    monkeypatch.setenv("RETRAIN_REGISTRY", f"{store}/registry")

    def client(allowed: bool = True) -> TestClient:
        monkeypatch.setattr(airflow_app, "get_auth_manager", lambda: AuthManager(allowed))
        app = models_view.create_app()
        app.dependency_overrides[get_user] = User
        return TestClient(app)

    return client, f"{store}/registry"


def packaged(reg: str, version: str, **card) -> str:
    registry.write_card(reg, {"version": version, "metrics": {"test_accuracy": 0.9}, "created_at": "2026-01-01",
                              "bento": {"uri": "file:///b", "sha256": "0" * 64}, **card})
    return version


def test_what_users_wrote_is_escaped(view):
    client, reg = view
    packaged(reg, "a" * 12, dataset={"source": "<script>alert(1)</script>", "version": "d" * 12})
    registry.promote(reg, "a" * 12, expected=None, actor="<b>mallory</b>", reason="<img src=x onerror=alert(1)>")
    page = client().get("/", headers={"accept": "text/html"}).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;b&gt;mallory&lt;/b&gt;" in page


def test_unknown_versions_and_plots_are_404s(view):
    client, reg = view
    packaged(reg, "a" * 12)
    assert client().get("/versions/" + "f" * 12).json() == {"error": f"version {'f' * 12} is not in the registry"}
    assert client().get(f"/versions/{'a' * 12}/secret.txt").status_code == 404
    html = client().get("/versions/" + "f" * 12, headers={"accept": "text/html"})
    assert html.status_code == 404 and "not in the registry" in html.text


def test_changes_need_trigger_permission_and_a_fresh_page(view):
    client, reg = view
    old, new = packaged(reg, "a" * 12), packaged(reg, "b" * 12)
    registry.promote(reg, old, expected=None)
    registry.promote(reg, new, expected=old)
    refused = client(allowed=False).post("/rollback", data={"expected": new})
    assert refused.status_code == 403 and "may not trigger runs of retrain" in refused.json()["error"]
    stale = client().post("/rollback", data={"expected": old})
    assert stale.status_code == 409 and f"production is {new}, not {old}" in stale.json()["error"]
    never = client().post("/versions/" + "c" * 12 + "/promote", data={"expected": new})
    assert never.status_code == 404
    assert registry.production_version(reg) == new, "nothing changed"
