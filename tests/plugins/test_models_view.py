"""The Models view's pages without a browser (FastAPI TestClient, Airflow's auth stubbed): what a user
wrote is shown escaped, unknown versions are 404s with JSON for API clients, and stale changes are refused."""

from __future__ import annotations

from types import SimpleNamespace

import airflow.api.common.trigger_dag as trigger_dag_module
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

    def client(allowed: bool = True, raise_server_exceptions: bool = True) -> TestClient:
        monkeypatch.setattr(airflow_app, "get_auth_manager", lambda: AuthManager(allowed))
        app = models_view.create_app()
        app.dependency_overrides[get_user] = User
        return TestClient(app, raise_server_exceptions=raise_server_exceptions)

    triggered: list[dict] = []
    monkeypatch.setattr(trigger_dag_module, "trigger_dag", lambda dag_id, **kw: triggered.append(kw["conf"])
                        or SimpleNamespace(run_id=f"manual__{len(triggered)}"))
    client.triggered = triggered
    return client, f"{store}/registry"


def packaged(reg: str, version: str, **card) -> str:
    registry.write_card(reg, {"version": version, "metrics": {"test_accuracy": 0.9}, "created_at": "2026-01-01",
                              "bento": {"uri": "file:///b", "sha256": "0" * 64}, **card})
    return version


def test_what_users_wrote_is_escaped(view):
    client, reg = view
    packaged(reg, "a" * 12, dataset={"source": "<script>alert(1)</script>", "version": "d" * 12})
    registry.promote(reg, "a" * 12, expected=None, actor="<b>mallory</b>", reason="<img src=x onerror=alert(1)>")
    page = client().get("/digits/", headers={"accept": "text/html"}).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;b&gt;mallory&lt;/b&gt;" in page


def test_the_models_are_listed_first_each_with_its_own_versions_and_rollback(view):
    client, reg = view
    digits = ["0", "1"]
    shapes = ["circle", "square", "triangle"]
    spec = {"profile": "image", "height": 28, "width": 28, "channels": 1}
    old = packaged(reg, "a" * 12, model="digits", input_spec={**spec, "class_names": digits},
                   dataset={"source": "digits.npz"})
    new = packaged(reg, "b" * 12, model="digits", input_spec={**spec, "class_names": digits})
    shape = packaged(reg, "c" * 12, model="shapes", input_spec={**spec, "class_names": shapes},
                     dataset={"source": "file:///data/shapes/"})
    registry.promote(reg, old, model="digits")
    registry.promote(reg, new, model="digits", expected=old)
    registry.promote(reg, shape, model="shapes")
    page = client().get("/", headers={"accept": "text/html"}).text
    rows = {name: page.split(f'<tr data-model="{name}">')[1].split("</tr>")[0] for name in ("digits", "shapes")}
    assert f"<code>{new}</code>" in rows["digits"] and "0, 1" in rows["digits"]
    assert f"<code>{shape}</code>" in rows["shapes"] and "circle, square, triangle" in rows["shapes"]
    assert "file:///data/shapes/" in rows["shapes"] and 'href="shapes/"' in rows["shapes"]
    assert [m["name"] for m in client().get("/api/models").json()] == ["digits", "shapes"]
    shapes_page = client().get("/shapes/", headers={"accept": "text/html"}).text
    assert f'data-version="{shape}"' in shapes_page and f'data-version="{old}"' not in shapes_page
    assert "Classes: circle, square, triangle" in shapes_page
    assert client().get(f"/shapes/versions/{old}").status_code == 404, "a version of another model is not shapes'"
    moved = client().get("/shapes", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "shapes/", "the folder without its slash"
    unknown = client().get("/shapse/")
    assert unknown.status_code == 404 and unknown.json()["error"] == "no model 'shapse' in the registry; models: digits, shapes"
    assert client().post("/shapes/rollback", data={"expected": shape}).status_code == 400, "shapes has no previous"
    back = client().post("/digits/rollback", data={"expected": new}, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"].startswith("./?message=rollback%20of%20digits")
    assert client.triggered == [{"model": "digits", "action": "rollback", "version": old, "expected": new,
                                 "reason": f"rollback from {new}"}]


def test_a_model_page_reads_each_card_once(view, monkeypatch):
    """A registry of its users' own models (no digits): finding the model and its catalog share one read of the
    cards."""
    client, reg = view
    for version in ("a" * 12, "b" * 12):
        packaged(reg, version, model="shapes")
    registry.promote(reg, "a" * 12, model="shapes")
    card_reads = []
    read_bytes = registry.artifacts.read_bytes
    monkeypatch.setattr(registry.artifacts, "read_bytes", lambda uri, *args, **kwargs: (
        card_reads.append(str(uri)) if str(uri).endswith("/card.json") else None) or read_bytes(uri, *args, **kwargs))
    for path in ("/shapes/", "/api/models/shapes"):
        card_reads.clear()
        assert client().get(path, headers={"accept": "text/html"}).status_code == 200
        assert len(card_reads) == 2, (path, card_reads)


def test_unknown_versions_and_plots_are_404s(view):
    client, reg = view
    packaged(reg, "a" * 12)
    assert client().get("/digits/versions/" + "f" * 12).json() == {"error": f"version {'f' * 12} is not a version of model digits"}
    assert client().get(f"/digits/versions/{'a' * 12}/secret.txt").status_code == 404
    html = client().get("/digits/versions/" + "f" * 12, headers={"accept": "text/html"})
    assert html.status_code == 404 and "not a version of model digits" in html.text


def test_changes_need_trigger_permission_and_a_fresh_page(view):
    client, reg = view
    old, new = packaged(reg, "a" * 12), packaged(reg, "b" * 12)
    registry.promote(reg, old, expected=None)
    registry.promote(reg, new, expected=old)
    refused = client(allowed=False).post("/digits/rollback", data={"expected": new})
    assert refused.status_code == 403 and "may not trigger runs of retrain" in refused.json()["error"]
    stale = client().post("/digits/rollback", data={"expected": old})
    assert stale.status_code == 409 and f"production is {new}, not {old}" in stale.json()["error"]
    never = client().post("/digits/versions/" + "c" * 12 + "/promote", data={"expected": new})
    assert never.status_code == 404
    assert registry.production_version(reg) == new, "nothing changed"


def test_promoting_production_onto_itself_is_refused_at_once(view):
    client, reg = view
    current = packaged(reg, "a" * 12)
    registry.promote(reg, current, expected=None)
    again = client().post(f"/digits/versions/{current}/promote", data={"expected": current})
    assert again.status_code == 409 and f"{current} is in production already" in again.json()["error"]
    assert client.triggered == [], "no promote_model run was asked for"


def test_an_unreadable_promotion_entry_is_named_and_the_rest_is_shown(view, tmp_path):
    """A truncated newest entry: the page and the API answer with what they can and name the file; changes
    are refused (409) naming it, never a plain 500."""
    client, reg = view
    old, new = packaged(reg, "a" * 12), packaged(reg, "b" * 12)
    registry.promote(reg, old, expected=None, reason="first")
    registry.promote(reg, new, expected=old, reason="second")
    broken = tmp_path / "registry" / "models" / "digits" / "promotions" / "00000003.json"
    broken.write_text('{"seq": 3, "version": "aaaa')
    page = client().get("/digits/", headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    assert str(broken) in page.text and 'role="alert"' in page.text and "Production cannot be read" in page.text
    assert "second" in page.text and f"<code>{old}</code>" in page.text, "the readable history is still shown"
    api = client().get("/api/models/digits")
    assert api.status_code == 200 and api.json()["production"] is None
    assert [p["uri"] for p in api.json()["problems"]] == [f"file://{broken}"]
    assert {r["version"]: r["status"] for r in api.json()["versions"]} == {old: "promoted", new: "promoted"}
    version = client().get(f"/digits/versions/{new}", headers={"accept": "text/html"})
    assert version.status_code == 200 and str(broken) in version.text
    row = client().get("/", headers={"accept": "text/html"}).text.split('<tr data-model="digits">')[1].split("</tr>")[0]
    assert "1 unreadable record: see its page" in row and str(broken) in row, "the models list names it in its row"
    assert [p["uri"] for p in client().get("/api/models").json()[0]["problems"]] == [f"file://{broken}"]
    for path, data in (("/digits/rollback", {"expected": new}), (f"/digits/versions/{old}/promote", {"expected": new})):
        refused = client().post(path, data=data)
        assert refused.status_code == 409 and str(broken) in refused.json()["error"], refused.text
    assert client.triggered == []


def test_reasons_are_bounded_with_a_clear_400(view):
    client, reg = view
    old, new = packaged(reg, "a" * 12), packaged(reg, "b" * 12)
    registry.promote(reg, old, expected=None)
    registry.promote(reg, new, expected=old)
    limit = registry.MAX_REASON_CHARS
    for path in ("/digits/rollback", f"/digits/versions/{old}/promote"):
        for size in (limit + 1, 2**20):
            refused = client().post(path, data={"expected": new, "reason": "x" * size})
            assert refused.status_code == 400, (path, size, refused.status_code)
            assert refused.json()["error"] == (f"reason is {size} characters long; at most {limit} are recorded"
                                               if size < 2**20 else "Field exceeded maximum size of 1024KB.")
    assert client.triggered == []
    accepted = client().post("/digits/rollback", data={"expected": new, "reason": "x" * limit}, follow_redirects=False)
    assert accepted.status_code == 303
    assert client.triggered[-1]["reason"] == "x" * limit


def test_a_reproduced_version_shows_its_first_run_and_the_runs_that_reproduced_it(view):
    client, reg = view
    version = packaged(reg, "a" * 12, run_id="scheduled__first", dataset={"version": "d" * 12, "source": "digits"})
    registry.reproduced(reg, {"version": version, "run_id": "manual__later", "created_at": "2026-01-02T00:00:00+00:00",
                              "dataset": {"uri": "file:///store/step-outputs/manual__later/download"},
                              "metrics": {"test_accuracy": 0.91, "val_accuracy": 0.93}})
    page = client().get(f"/digits/versions/{version}", headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    lineage, reproductions = page.text.split('<table id="reproduced-by">')
    assert "Reproduced by" in lineage and 'runs/scheduled__first"' in lineage and "manual__later" not in lineage
    row = reproductions.split("</table>")[0]
    for shown in ('runs/manual__later"', "2026-01-02T00:00:00+00:00", "/step-outputs/manual__later/download",
                  "0.9100", "0.9300"):
        assert shown in row, shown
    plain = client().get(f"/digits/versions/{packaged(reg, 'b' * 12)}", headers={"accept": "text/html"}).text
    assert "Reproduced by" not in plain, "a version nobody reproduced has no such list"


def test_the_runs_table_lists_failed_runs(view):
    from retraining import run_outcome

    client, reg = view
    run_outcome.record_outcome(reg, "manual__broken", dag_id="retrain", state="failed", failed_task="train[1]",
                               reason="task_failure")
    registry.record_run(reg, "manual__fine", {"dag_id": "retrain", "recorded_at": "2026-01-01", "best": 0,
                                              "candidates": [], "gate": {"deploy": False, "reason": "kept"}})
    run_outcome.record_outcome(reg, "manual__fine", dag_id="retrain", state="success")
    page = client().get("/digits/", headers={"accept": "text/html"}).text
    failed = page.split('<tr data-run="manual__broken">')[1].split("</tr>")[0]
    assert ">failed<" in failed and "train[1]" in failed and "not reached" in failed
    fine = page.split('<tr data-run="manual__fine">')[1].split("</tr>")[0]
    assert ">success<" in fine and "keep production: kept" in fine
    run = client().get("/digits/runs/manual__broken", headers={"accept": "text/html"})
    assert run.status_code == 200 and "ended before the gate" in run.text and "train[1]" in run.text


@pytest.mark.parametrize("length", [250, 251, 255, 256, 4096, 60_000])
def test_a_long_run_id_is_a_404(view, length):
    client, reg = view
    registry.record_run(reg, "r1", {"recorded_at": "1"})  # runs/ exists: a long name fails on its own length
    for path in (f"/digits/runs/{'r' * length}", f"/digits/runs/{'r' * length}/candidates.svg"):
        answer = client().get(path)
        assert answer.status_code == 404, (length, answer.status_code)
        assert len(answer.text) < 500, "the id is not echoed whole"


BAD_IDS = [
    "r" * 251, "r" * 5000, "a" * 13, "A" * 12, "..", "%2e%2e", "%2E%2E", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e",
    "%252e%252e", "..%5c..%5cwindows", "a" * 12 + "%00", "%00", "%0a", "%ff%fe", "%C3%A9" * 200, "é" * 300, "%20",
    "[]", "{}", "%7B%22a%22%3A%5B1%5D%7D", "~root", "*", "-1", "a;b", "a%3Fb%3Dc", "a" * 12 + "%2f..",
]
MEGABYTE = "x" * 2**20


def bad_forms(version: str) -> list[dict]:
    """Form bodies (``data``/``files``/``content``) a client could post instead of the page's."""
    forms = [{"data": {"expected": value, "reason": "r"}} for value in ["r" * 251, "x" * 5000, "../../x", "%2e%2e", "\0"]]
    return forms + [
        {"data": {"expected": version, "reason": MEGABYTE}},
        {"data": {"expected": version, "reason": "x" * 5000}},
        {"data": {"expected": "", "reason": MEGABYTE}},
        {"data": {"reason": MEGABYTE}},
        {"data": {"expected[]": version, "reason[a][b]": "x"}},
        {"data": {"expected": [version, "f" * 12], "reason": ["a", MEGABYTE]}},
        {"files": {"expected": (None, version), "reason": (None, MEGABYTE)}},
        {"files": {"expected": (None, version), "reason": ("reason.txt", MEGABYTE.encode())}},
        {"content": b'{"expected": "' + version.encode() + b'", "reason": {"a": [[[[]]]]}}',
         "headers": {"content-type": "application/json"}},
        {"content": b"[" * 10_000 + b"]" * 10_000, "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {"content": b"--x\r\nContent-Disposition: form-data; name=\"reason\"\r\n\r\nabc",
         "headers": {"content-type": "multipart/form-data; boundary=x"}},
        {"content": b"", "headers": {"content-type": "text/plain"}},
    ]


def test_no_request_to_any_route_is_answered_with_a_5xx(view):
    """Every route of the view (read from the app, so a new route is covered or this fails) with over-long ids,
    path traversal (plain and %-encoded), odd and nested values and a 1 MB reason: 0 answers >= 500."""
    from fastapi.routing import APIRoute

    client, reg = view
    old, new = packaged(reg, "a" * 12), packaged(reg, "b" * 12)
    registry.promote(reg, old, expected=None)
    registry.promote(reg, new, expected=old)
    registry.record_run(reg, "r1", {"dag_id": "retrain", "recorded_at": "1", "best": 0, "production": None,
                                    "candidates": [{"index": 0, "version": old, "learning_rate": 0.001,
                                                    "val_accuracy": 0.9, "val_loss": 0.1, "test_accuracy": 0.9,
                                                    "model": "file:///nowhere", "evaluation": ""}],
                                    "gate": {"deploy": False, "reason": "x"}})
    http = client(raise_server_exceptions=False)  # a server error is a 500 answer here, counted below
    routes = [(route.path, method) for route in http.app.routes if isinstance(route, APIRoute) for method in route.methods]
    values = {"model": [*BAD_IDS, "digits"], "version": [*BAD_IDS, old], "run_id": [*BAD_IDS, "r1"], "plot": [*BAD_IDS, "curve.png", "history.svg"]}
    answers, covered = [], set()
    for template, method in routes:
        params = [name for name in values if "{" + name + "}" in template]
        combos = [{}] if not params else [
            {**{p: values[p][-1] for p in params}, name: value} for name in params for value in values[name]]
        for combo in combos:
            path = template.format(**combo)
            bodies = bad_forms(new) if method == "POST" else [
                {}, {"params": {"message": "x" * 5000}}, {"params": {"message[]": "x", "message": "%00<b>"}}]
            for body in bodies:
                for accept in ("application/json", "text/html"):
                    headers = {"accept": accept, **body.get("headers", {})}
                    answer = http.request(method, path, follow_redirects=False, headers=headers,
                                          **{k: v for k, v in body.items() if k != "headers"})
                    answers.append((method, path[:80], answer.status_code, answer.text[:200]))
                    covered.add((template, method))
    assert covered == set(routes)
    assert len(answers) > 1000
    assert {200, 400, 404, 422} <= {a[2] for a in answers}, "requests reach the handlers (not all refused at the door)"
    assert [a for a in answers if a[2] >= 500] == []
    assert client.triggered == [], "no bad request reached the promote_model DAG"
    assert registry.production_version(reg) == new


def test_a_models_page_links_to_mlflow_when_runs_are_tracked(view, monkeypatch):
    client, reg = view
    packaged(reg, "a" * 12)
    assert 'id="mlflow"' not in client().get("/digits/", headers={"accept": "text/html"}).text, "off: no link"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    page = client().get("/digits/", headers={"accept": "text/html"}).text
    assert '<a href="http://mlflow.example:5000/#/models/digits" target="_blank" rel="noopener" id="mlflow">' in page


def test_a_versions_architecture_and_pretrained_weights_are_shown(view):
    """What a version was trained as: its architecture and the weights file it was fine-tuned from (a version from
    before architectures reads as the small CNN, trained from scratch)."""
    client, reg = view
    weights = {"uri": "s3://artifacts/weights/resnet18-imagenet.pth", "sha256": "5" * 64, "head_epochs": 1}
    tuned = packaged(reg, "a" * 12, params={"architecture": "resnet18", "pretrained": weights, "learning_rate": 0.001})
    old = packaged(reg, "b" * 12, params={"learning_rate": 0.003})
    page = client().get(f"/digits/versions/{tuned}", headers={"accept": "text/html"}).text
    assert '<dd id="architecture">resnet18</dd>' in page
    assert "s3://artifacts/weights/resnet18-imagenet.pth" in page and "5" * 12 in page and "1 head epochs" in page
    page = client().get(f"/digits/versions/{old}", headers={"accept": "text/html"}).text
    assert '<dd id="architecture">cnn</dd>' in page and "trained from scratch" in page
    rows = client().get("/digits/", headers={"accept": "text/html"}).text.split("<tr data-version=")
    assert "resnet18 (pretrained)" in next(row for row in rows if row.startswith(f'"{tuned}"'))
    assert "<td>cnn</td>" in next(row for row in rows if row.startswith(f'"{old}"'))
