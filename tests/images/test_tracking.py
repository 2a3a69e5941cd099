"""Experiment tracking (``python -m retrain_steps track``) against a real ``mlflow server`` (SQLite backend, its
artifact proxy) that this module starts: the run and its candidates as nested runs, the per-epoch history, the
plots as downloadable artifacts, registered versions as model versions, the ``champion`` alias following
promotions and rollbacks, retries that duplicate nothing; off when ``MLFLOW_TRACKING_URI`` is unset, and a
server that cannot be reached fails the step (exit 1, retried) instead of the run. The step runs in the steps
image's environment (``.venv-steps``: no mlflow in it); what it wrote is read back through the REST API here and
once through the official MLflow client (``.venv-mlflow``, the server's environment)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from retrain_steps import artifacts, layout, registry, tracking
from tests.conftest import env_python, run_step_process
from tests.helpers.servers import free_port

MODEL = "digits"
RUN_ID = "manual__2026-11-30T08:00:00+00:00"
DAG_ID = "retrain"
def api(uri: str, method: str, endpoint: str, body: dict | None = None) -> dict:
    """One call of MLflow's REST API, written here (not the module under test's client)."""
    url = f"{uri}/api/2.0/mlflow/{endpoint}"
    data = None
    if method == "GET":
        url += "?" + urllib.parse.urlencode(body or {})
    else:
        data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def download(uri: str, run_id: str, path: str) -> bytes:
    query = urllib.parse.urlencode({"run_id": run_id, "path": path})
    with urllib.request.urlopen(f"{uri}/get-artifact?{query}", timeout=30) as response:
        return response.read()


def search_runs(uri: str, experiment: str, filter_string: str = "") -> list[dict]:
    return api(uri, "POST", "runs/search", {"experiment_ids": [experiment], "filter": filter_string,
                                             "max_results": 100}).get("runs", [])


def tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params(run: dict) -> dict:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    found = api(uri, "GET", "metrics/get-history", {"run_id": run_id, "metric_key": key}).get("metrics", [])
    return sorted((int(m.get("step", 0)), m["value"]) for m in found)


def champion_version(uri: str, name: str = MODEL) -> dict:
    return api(uri, "GET", "registered-models/alias", {"name": name, "alias": tracking.CHAMPION})["model_version"]


def track(*args: str, uri: str | None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m retrain_steps track`` in the steps image's environment, MLFLOW_TRACKING_URI set to ``uri``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environ.update({"PYTHONPATH": "", **({tracking.URI_ENV: uri} if uri else {}), **(env or {})})
    return run_step_process([env_python(".venv-steps"), "-m", "retrain_steps", "track", *args], environ)


def write_candidate(trained: dict, base, index: int, learning_rate: float) -> tuple[str, str]:
    """A second candidate written by the test: the trained one with other weights bytes (another registry
    version) and another learning rate and history, its manifests rewritten to match."""
    train, evaluation = base / "train" / str(index), base / "evaluate" / str(index)
    shutil.copytree(artifacts.local_path(trained["train"]), train)
    shutil.copytree(artifacts.local_path(trained["evaluate"]), evaluation)
    metrics = json.loads((train / layout.METRICS).read_text())
    metrics["learning_rate"] = learning_rate
    metrics["history"] = [{**h, "val_accuracy": h["val_accuracy"] / 2, "loss": h["loss"] * 3}
                          for h in metrics["history"]]
    (train / layout.METRICS).write_text(json.dumps(metrics))
    with open(train / layout.WEIGHTS["torch"], "ab") as weights:
        weights.write(b"another candidate")
    test = json.loads((evaluation / layout.METRICS).read_text())
    (evaluation / layout.METRICS).write_text(json.dumps({**test, "test_accuracy": 0.5}))
    for folder in (train, evaluation):
        written = json.loads((folder / layout.MANIFEST).read_text())
        written["outputs"] = {name: artifacts.sha256((folder / name).read_bytes()) for name in written["outputs"]}
        written["key"] = f"{written['key']}-{index}"
        (folder / layout.MANIFEST).write_text(json.dumps(written))
    return f"file://{train}", f"file://{evaluation}"


@pytest.fixture(scope="module")
def run_outputs(trained, tmp_path_factory) -> dict:
    """A run of two candidates (the session's trained model and one written here) and a registry holding the
    first one's version, in production; ``arguments``: the ``track`` step's."""
    base = tmp_path_factory.mktemp("tracked-run")
    candidates = [(trained["train"], trained["evaluate"]), write_candidate(trained, base, 1, 0.003)]
    reg = f"file://{base}/registry"
    first = registry.write_card(reg, registry.register(reg, trained["train"], {"model": MODEL, "run_id": RUN_ID}))
    registry.promote(reg, first["version"], model=MODEL, expected=None, actor="test", run_id=RUN_ID)
    registry.record_run(reg, RUN_ID, {"dag_id": DAG_ID, "candidates": [], "best": 0,
                                      "gate": {"deploy": True, "reason": "first model"}}, MODEL)
    arguments = ["--model-name", MODEL, "--run-id", RUN_ID, "--dag-id", DAG_ID, "--dataset", trained["download"],
                 "--registry", reg, *(a for c in candidates for a in ("--candidate", *c))]
    return {"candidates": candidates, "registry": reg, "first": first["version"], "arguments": arguments,
            "second": registry.model_version(candidates[1][0])}


@pytest.fixture(scope="module")
def tracked(mlflow_uri, run_outputs) -> dict:
    """The run tracked once; the step's result."""
    completed = track(*run_outputs["arguments"], uri=mlflow_uri)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.result


def test_the_run_is_an_mlflow_run_with_its_candidates_as_child_runs(mlflow_uri, tracked, trained):
    experiment = api(mlflow_uri, "GET", "experiments/get-by-name", {"experiment_name": MODEL})["experiment"]
    assert tracked["experiment_id"] == experiment["experiment_id"]
    parent = api(mlflow_uri, "GET", "runs/get", {"run_id": tracked["run_id"]})["run"]
    dataset = artifacts.read_json(layout.file_in(trained["download"], layout.DATASET_CARD))
    assert parent["info"]["run_name"] == RUN_ID and parent["info"]["status"] == "FINISHED"
    assert tags(parent)[tracking.AIRFLOW_RUN] == RUN_ID and tags(parent)["dataset.version"] == dataset["version"]
    assert (tags(parent)["retrain.gate"], tags(parent)["retrain.best_candidate"]) == ("deploy", "0")
    inputs = parent["inputs"]["dataset_inputs"]
    assert [i["dataset"]["digest"] for i in inputs] == [dataset["version"]]
    assert json.loads(inputs[0]["dataset"]["source"]) == {"uri": dataset["source"]}
    children = search_runs(mlflow_uri, experiment["experiment_id"],
                           f"tags.`mlflow.parentRunId` = '{parent['info']['run_id']}'")
    assert sorted(tags(c)[tracking.CANDIDATE] for c in children) == ["0", "1"]
    assert sorted(c["info"]["run_id"] for c in children) == sorted(tracked["candidates"].values())
    assert tracked["run_url"] == f"{mlflow_uri}/#/experiments/{experiment['experiment_id']}/runs/{tracked['run_id']}"


def test_a_candidate_has_its_params_history_and_plots(mlflow_uri, tracked, run_outputs):
    for index, (train, evaluation) in enumerate(run_outputs["candidates"]):
        child = api(mlflow_uri, "GET", "runs/get", {"run_id": tracked["candidates"][str(index)]})["run"]
        metrics = artifacts.read_json(layout.file_in(train, layout.METRICS))
        assert params(child) == {k: str(v) for k, v in layout.card_params(metrics).items() if v is not None}
        assert float(params(child)["learning_rate"]) == metrics["learning_rate"]
        keys = {key for h in metrics["history"] for key in h} - {"epoch"}
        assert {"loss", "val_loss", "val_accuracy", "samples_per_s"} <= keys
        for key in keys:
            expected = [(h["epoch"], h[key]) for h in metrics["history"]]
            assert history(mlflow_uri, child["info"]["run_id"], key) == expected
        test = artifacts.read_json(layout.file_in(evaluation, layout.METRICS))
        assert history(mlflow_uri, child["info"]["run_id"], "test_accuracy") == [(0, test["test_accuracy"])]
        assert tags(child)[tracking.VERSION] == registry.model_version(train)
        for name, folder, source in [(layout.CURVE_PLOT, train, layout.CURVE_PLOT),
                                     (layout.CONFUSION_PLOT, evaluation, layout.CONFUSION_PLOT),
                                     (layout.TRACKED_TRAIN_METRICS, train, layout.METRICS)]:
            assert download(mlflow_uri, child["info"]["run_id"], name) == artifacts.read_bytes(
                layout.file_in(folder, source))


def test_a_registered_version_is_a_model_version_and_the_champion(mlflow_uri, tracked, run_outputs):
    child = tracked["candidates"]["0"]
    assert tracked["model_versions"] == {run_outputs["first"]: "1"}  # the second candidate was not registered
    assert tracked["registered_model_url"] == f"{mlflow_uri}/#/models/{MODEL}"
    version = champion_version(mlflow_uri)
    assert (version["version"], version["run_id"], version["source"]) == ("1", child, f"runs:/{child}/model")
    assert {t["key"]: t["value"] for t in version["tags"]}[tracking.VERSION] == run_outputs["first"]
    weights = registry.card(run_outputs["registry"], run_outputs["first"])["file"]
    assert artifacts.sha256(download(mlflow_uri, child, f"model/{weights}")).startswith(run_outputs["first"])


def test_a_retry_duplicates_nothing(mlflow_uri, tracked, run_outputs):
    experiment = tracked["experiment_id"]
    before = sorted(r["info"]["run_id"] for r in search_runs(mlflow_uri, experiment))
    child = tracked["candidates"]["0"]
    points = history(mlflow_uri, child, "val_accuracy")
    again = track(*run_outputs["arguments"], uri=mlflow_uri)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {k: again.result[k] for k in ("run_id", "candidates", "model_versions")} == {
        k: tracked[k] for k in ("run_id", "candidates", "model_versions")}
    assert sorted(r["info"]["run_id"] for r in search_runs(mlflow_uri, experiment)) == before
    assert history(mlflow_uri, child, "val_accuracy") == points
    found = api(mlflow_uri, "GET", "model-versions/search", {"filter": f"name = '{MODEL}'"})["model_versions"]
    assert len(found) == 1


def test_the_champion_follows_promotions_and_rollbacks(mlflow_uri, tracked, run_outputs, tmp_path):
    reg = run_outputs["registry"]
    second = registry.write_card(reg, registry.register(reg, run_outputs["candidates"][1][0],
                                                        {"model": MODEL, "run_id": RUN_ID}))["version"]
    retracked = track(*run_outputs["arguments"], uri=mlflow_uri)  # the run's second version, registered later
    assert retracked.result["model_versions"] == {run_outputs["first"]: "1", second: "2"}
    assert champion_version(mlflow_uri)["version"] == "1"  # production did not change
    registry.promote(reg, second, model=MODEL, expected=run_outputs["first"], actor="user:alice")
    promoted = track("--model-name", MODEL, "--registry", reg, uri=mlflow_uri)  # a pod's way
    assert promoted.returncode == 0 and promoted.result["champion"] == "2", promoted.stderr[-3000:]
    assert champion_version(mlflow_uri)["version"] == "2"
    registry.promote(reg, run_outputs["first"], model=MODEL, expected=second, action="rollback")
    settings = tracking.TrackingSettings.from_environment({tracking.URI_ENV: mlflow_uri})
    assert tracking.champion(settings, MODEL, registry.production_version(reg, MODEL)) == "1"  # the Airflow side's
    assert champion_version(mlflow_uri)["version"] == "1"
    # The official client resolves the alias to the registered files.
    card = registry.card(reg, run_outputs["first"])
    code = ("import hashlib, pathlib, sys, mlflow\n"
            f"uri = 'models:/{MODEL}@champion'\n"
            "path = pathlib.Path(mlflow.artifacts.download_artifacts(uri, dst_path=sys.argv[1]))\n"
            "print(sorted(p.name for p in path.iterdir()))\n"
            f"print(hashlib.sha256((path / {card['file']!r}).read_bytes()).hexdigest())\n")
    client = subprocess.run([env_python(".venv-mlflow"), "-c", code, str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": "", tracking.URI_ENV: mlflow_uri}, timeout=300)
    assert client.returncode == 0, client.stderr[-3000:]
    names, digest = client.stdout.strip().splitlines()[-2:]
    assert names == str(sorted({card["file"], layout.MODEL_INFO, layout.OOD_STATS} & set(card["files"])))
    assert digest.startswith(run_outputs["first"])


def test_a_version_mlflow_never_saw_removes_the_champion(mlflow_uri, tracked):
    settings = tracking.TrackingSettings.from_environment({tracking.URI_ENV: mlflow_uri})
    assert tracking.champion(settings, MODEL, "0123456789ab") is None
    with pytest.raises(urllib.error.HTTPError) as missing:
        champion_version(mlflow_uri)
    assert "alias champion not found" in missing.value.read().decode()


def test_a_failed_candidate_is_tracked_as_far_as_it_got(mlflow_uri, trained, tmp_path):
    """A run whose candidate 0 was not evaluated and candidate 1 not trained (``track`` after a failure)."""
    missing = f"file://{tmp_path}/missing"
    completed = track("--model-name", MODEL, "--run-id", "failed-run", "--dataset", trained["download"],
                      "--candidate", trained["train"], f"{missing}/evaluate/0",
                      "--candidate", f"{missing}/train/1", f"{missing}/evaluate/1", uri=mlflow_uri)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert list(completed.result["candidates"]) == ["0"] and "candidate 1 has no train output" in completed.stdout
    child = api(mlflow_uri, "GET", "runs/get", {"run_id": completed.result["candidates"]["0"]})["run"]
    assert child["info"]["status"] == "FAILED" and "test_accuracy" not in {m["key"] for m in child["data"]["metrics"]}
    assert [h[0] for h in history(mlflow_uri, child["info"]["run_id"], "val_accuracy")][:2] == [1, 2]


def test_off_when_the_tracking_uri_is_unset(tmp_path):
    completed = track("--model-name", MODEL, "--run-id", RUN_ID, "--dataset", f"file://{tmp_path}/none",
                      "--candidate", f"file://{tmp_path}/t", f"file://{tmp_path}/e", uri=None)
    assert completed.returncode == 0, completed.stderr
    assert completed.result == {"tracked": False, "reason": f"{tracking.URI_ENV} is not set"}
    assert tracking.champion(tracking.TrackingSettings.from_environment({}), MODEL, "0123456789ab") is None


def test_an_unreachable_server_fails_the_track_step_for_a_retry(run_outputs):
    uri = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    completed = track(*run_outputs["arguments"], uri=uri)
    assert completed.returncode == 1 and completed.result is None
    assert f"at {uri}: cannot reach the server" in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.parametrize("environ, named", [
    ({tracking.URI_ENV: "file:///tmp/mlruns"}, "MLFLOW_TRACKING_URI='file:///tmp/mlruns'"),
    ({tracking.URI_ENV: "http://alice:secret@mlflow:5000"}, "holds credentials"),
    ({tracking.URI_ENV: "http://mlflow:5000", tracking.USERNAME_ENV: "alice"}, "MLFLOW_TRACKING_PASSWORD go together"),
    ({tracking.URI_ENV: "http://mlflow:5000", tracking.TIMEOUT_ENV: "soon"}, "MLFLOW_HTTP_REQUEST_TIMEOUT='soon'"),
])
def test_a_bad_setting_is_bad_input_naming_it(run_outputs, environ, named):
    completed = track(*run_outputs["arguments"], uri=None, env=environ)
    assert completed.returncode == 2 and named in completed.stderr, completed.stderr
    assert "secret" not in completed.stderr


@pytest.fixture()
def answering():
    """An HTTP server in this process answering every request with the (status, headers, body) set in
    ``answers[path]``; ``seen`` holds each request's path and Authorization header."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers: dict[str, tuple[int, dict, bytes]] = {}
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            seen.append((path, self.headers.get("Authorization")))
            status, headers, body = answers.get(path, (404, {}, b"{}"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", answers, seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_credentials_go_to_the_tracking_server_only(answering):
    uri, answers, seen = answering
    endpoint = "/api/2.0/mlflow/experiments/get-by-name"
    server = tracking.MlflowServer(tracking.TrackingSettings.from_environment(
        {tracking.URI_ENV: uri, tracking.USERNAME_ENV: "alice", tracking.PASSWORD_ENV: "s3cret"}))
    answers[endpoint] = (200, {}, b'{"experiment": {"experiment_id": "7"}}')
    assert tracking.experiment_id(server, MODEL) == "7"
    assert seen[-1] == (endpoint, "Basic YWxpY2U6czNjcmV0")  # alice:s3cret
    answers[endpoint] = (302, {"Location": f"{uri}/elsewhere"}, b"")
    with pytest.raises(tracking.TrackingRefused, match="redirect to .*/elsewhere.*not followed"):
        tracking.experiment_id(server, MODEL)
    assert seen[-1][0] == endpoint  # the credentials were not sent after the redirect
    answers[endpoint] = (503, {}, b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}')
    with pytest.raises(tracking.TrackingUnavailable, match="HTTP 503 TEMPORARILY_UNAVAILABLE: busy"):
        tracking.experiment_id(server, MODEL)
    bearer = tracking.MlflowServer(tracking.TrackingSettings.from_environment(
        {tracking.URI_ENV: uri, tracking.TOKEN_ENV: "t0ken"}))
    answers[endpoint] = (403, {}, b'{"error_code": "PERMISSION_DENIED", "message": "no"}')
    with pytest.raises(tracking.TrackingRefused, match="HTTP 403 PERMISSION_DENIED: no") as refused:
        tracking.experiment_id(bearer, MODEL)
    assert seen[-1] == (endpoint, "Bearer t0ken") and "t0ken" not in str(refused.value)
