"""End to end on the embedded default: ``airflow dags test retrain`` → registry → ``/predict``; and a new model of a
standard architecture from pretrained weights in the store, through to its bento answering ``/predict``."""

from __future__ import annotations

import json

import httpx
import pytest

from retrain_steps import artifacts, layout, registry
from serving.service import VERSION_HEADER
from tests.conftest import ROOT, run_cli
from tests.helpers.airflow import BIN, local_airflow_env
from tests.helpers.airflow import dags_test as run_dags_test
from tests.helpers.checkpoints import write_resnet18_checkpoint
from tests.helpers.servers import free_port, serve
from tests.serving.conftest import serve_bento

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, notifications, mlflow_uri):
    """The embedded default, tracking its runs in a real MLflow server (the Airflow connection ``retrain_mlflow``)."""
    base = tmp_path_factory.mktemp("e2e")
    dataset = f"file://{base}/artifacts/datasets/digits/digits.npz"
    run_cli("retrain_steps", "export-default", "--output", dataset)
    hook = json.dumps({"conn_type": "http", "host": notifications[0], "password": "s3cret"})
    host, port = mlflow_uri.removeprefix("http://").split(":")
    tracking = json.dumps({"conn_type": "http", "host": host, "port": int(port), "schema": "http"})
    return local_airflow_env(base, RETRAIN_DATASET_URI=dataset, AIRFLOW_CONN_RETRAIN_NOTIFICATIONS=hook,
                             AIRFLOW_CONN_RETRAIN_MLFLOW=tracking)


def mlflow_post(uri: str, endpoint: str, body: dict) -> dict:
    """One POST of MLflow's REST API."""
    import urllib.request

    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def mlflow_get(uri: str, endpoint: str, **query) -> dict:
    """One GET of MLflow's REST API."""
    import urllib.parse
    import urllib.request

    url = f"{uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def dags_test(env: dict, conf: dict) -> str:
    code, output = run_dags_test(env, conf)
    assert code == 0, output[-5000:]
    assert "state=failed" not in output and "DagRun Finished" in output, output[-5000:]
    return output


def test_retrain_deploys_then_gates(airflow_env, tmp_path, notifications, mlflow_uri):
    reg = airflow_env["RETRAIN_REGISTRY"]
    first = dags_test(airflow_env, {"epochs": 12, "learning_rates": [0.001, 0.003], "min_accuracy": 0.9})
    assert "gate: deploy" in first
    production = registry.production(reg)
    assert production is not None and production["metrics"]["test_accuracy"] >= 0.9
    assert production["bento"]["uri"].endswith(".bento") and production["params"]["epochs"] == 12
    (deployed,) = [b for b in notifications[1] if b["event"] == "deployed" and b["model"] == "digits"]
    assert deployed["version"] == production["version"] and deployed["_authorization"] == "Bearer s3cret"
    assert f"promote of digits {production['version']} by airflow:retrain (was empty)" in deployed["text"]
    # tracked in MLflow (the track teardown): the run, its two candidates as child runs, the deployed version as a
    # model version of the registered model digits, with the alias champion
    experiment = mlflow_get(mlflow_uri, "experiments/get-by-name", experiment_name="digits")["experiment"]
    champion = mlflow_get(mlflow_uri, "registered-models/alias", name="digits", alias="champion")["model_version"]
    assert {t["key"]: t["value"] for t in champion["tags"]}["retrain.version"] == production["version"]
    child = mlflow_get(mlflow_uri, "runs/get", run_id=champion["run_id"])["run"]
    parent = mlflow_get(mlflow_uri, "runs/get", run_id={t["key"]: t["value"] for t in child["data"]["tags"]}[
        "mlflow.parentRunId"])["run"]
    assert parent["info"]["experiment_id"] == experiment["experiment_id"]
    assert parent["info"]["run_name"] == registry.run_record(reg, production["run_id"])["run_id"]
    history = mlflow_get(mlflow_uri, "metrics/get-history", run_id=champion["run_id"], metric_key="val_accuracy")
    assert len(history["metrics"]) == production["params"]["epochs"], "one point per epoch"

    port = free_port()
    argv = [str(BIN / "bentoml"), "serve", "serving.service:DigitsClassifier", "--host", "127.0.0.1", "--port", str(port)]
    env = {"DIGITS_REGISTRY_URI": reg, "DIGITS_POLL_SECONDS": "0.5", "DIGITS_WORKERS": "1",
           "BENTOML_HOME": str(tmp_path / "bentoml")}
    with serve(argv, ready_url=f"http://127.0.0.1:{port}/readyz", env=env, cwd=ROOT, log_path=tmp_path / "serve.log"):
        sample = (ROOT / "serving" / "samples" / "digit-3.png").read_bytes()
        response = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("d.png", sample)}, timeout=30)
        assert response.status_code == 200 and response.json()["prediction"] == 3
        assert response.headers[VERSION_HEADER] == production["version"]
        # What serves is the bento package registered, fetched and verified as the chart's init container does.
        assert (f"imported bento digits_classifier:{production['version']} of version {production['version']} "
                f"(sha256 {production['bento']['sha256']} verified)") in (tmp_path / "serve.log").read_text()

        # Warm start through the DAG (every candidate fine-tunes production; early stopping on) with a margin no
        # candidate can beat: production stays, the run still ends green.
        second = dags_test(airflow_env, {"epochs": 1, "learning_rates": [0.0005], "warm_start": True, "patience": 1,
                                         "min_accuracy": 0.0, "margin": 1.0})
        assert f"warm start from {reg}/versions/{production['version']}" in second
        assert "gate: keep production" in second
        (rejected,) = [b for b in notifications[1] if b["event"] == "gate_rejected" and b["model"] == "digits"]
        assert f"kept production {production['version']}: test accuracy" in rejected["text"]
        assert "(same test split)" in second, "production was evaluated on this run's split"
        assert "unchanged: reusing the preprocessing" in second, "same dataset version: no second preprocessing"
        assert registry.production(reg)["version"] == production["version"]
        champion = mlflow_get(mlflow_uri, "registered-models/alias", name="digits", alias="champion")["model_version"]
        assert {t["key"]: t["value"] for t in champion["tags"]}["retrain.version"] == production["version"]
        # the second run (the gate kept production: package, register and deploy_model skipped) is tracked too
        found = mlflow_post(mlflow_uri, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                                         "max_results": 100})["runs"]
        parents = [r for r in found if "mlflow.parentRunId" not in {t["key"] for t in r["data"].get("tags", [])}]
        assert len(parents) == 2 and len(found) == 2 + 3, "two runs; their 2 + 1 candidates as child runs"
        again = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("d.png", sample)}, timeout=30)
        assert again.headers[VERSION_HEADER] == production["version"]


def test_a_chosen_architecture_from_pretrained_weights_trains_deploys_and_serves(airflow_env, tmp_path):
    """The form's Architecture and Pretrained weights, end to end on the local backend: a new model trains as a
    ResNet-18 from a checkpoint in the store (its 1000-class head dropped for the ten digits, its RGB stem summed to
    grayscale), is gated, packaged, registered and deployed, and the bento package built answers /predict."""
    reg = airflow_env["RETRAIN_REGISTRY"]
    weights, sha256 = write_resnet18_checkpoint(airflow_env["RETRAIN_ARTIFACT_STORE"], "resnet18-test.pth")
    output = dags_test(airflow_env, {"model": "digits-resnet18", "new_model": True, "architecture": "resnet18",
                                     "pretrained_weights": weights, "pretrained_sha256": sha256, "epochs": 1,
                                     "learning_rates": [0.01], "min_accuracy": 0.0})
    assert "gate: deploy" in output
    production = registry.production(reg, "digits-resnet18")
    assert production is not None and production["model"] == "digits-resnet18"
    trained = artifacts.read_json(layout.file_in(layout.version_folder(reg, production["version"]), layout.MODEL_INFO))
    assert trained["architecture"] == "resnet18"
    (candidate,) = registry.run_record(reg, production["run_id"], "digits-resnet18")["candidates"]
    metrics = artifacts.read_json(layout.file_in(candidate["model"], layout.METRICS))
    assert metrics["architecture"] == "resnet18"
    assert metrics["pretrained"]["uri"] == f"{airflow_env['RETRAIN_ARTIFACT_STORE']}/{weights}"
    assert metrics["pretrained"]["sha256"] == sha256 and metrics["pretrained"]["stem_summed"] is True
    assert metrics["pretrained"]["reinitialised"] == ["fc.bias", "fc.weight"], "only the 1000-class head is new"

    fixed = {"DIGITS_REGISTRY_URI": "", "DIGITS_MODEL": "", "DIGITS_WORKERS": "1"}  # this bento alone, one worker
    with serve_bento(production, tmp_path, tmp_path / "serve.log", fixed) as url:
        sample = (ROOT / "serving" / "samples" / "digit-3.png").read_bytes()
        response = httpx.post(f"{url}/predict", files={"file": ("d.png", sample)}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers[VERSION_HEADER] == production["version"]
        assert str(response.json()["prediction"]) in production["input_spec"]["class_names"]
