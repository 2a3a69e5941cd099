"""End to end: `airflow dags test retrain_kubeflow` against a local KFP-shaped server whose runs
execute the pipeline for real with kfp.local, through to the deploy tail; meanwhile a real
`airflow api-server` (the UI's source) shows the "Kubeflow Run" link while the run is polled.
Every dataset format that `retrain` runs end to end (tests/e2e/test_own_datasets.py) runs here too,
with other class counts than the digits' ten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrain_steps import artifacts, registry
from tests.conftest import ROOT, run_cli
from tests.helpers.airflow import local_airflow_env
from tests.helpers.checkpoints import write_resnet18_checkpoint
from tests.helpers.datasets import image_files, label_studio_export, write_folder, zip_bytes
from tests.helpers.kfp_server import FakeKfp
from tests.helpers.servers import free_port, serve

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
KFP_PYTHON = ROOT / ".venv-kfp" / "bin" / "python"


def kfp_local_executor(folder: Path):
    """A ``FakeKfp.executor`` that runs each submitted run with kfp.local: arguments, log and pipeline
    root under ``folder`` (``<run_id>.json``, ``<run_id>.log``, ``<run_id>/``)."""

    def execute(run_id: str, parameters: dict) -> subprocess.Popen:
        args = folder / f"{run_id}.json"
        args.write_text(json.dumps(parameters))
        log = open(folder / f"{run_id}.log", "w")
        return subprocess.Popen([str(KFP_PYTHON), str(ROOT / "tests" / "helpers" / "run_kfp_local.py"), str(args),
                                 str(folder / run_id)], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": ""})

    return execute


def test_retrain_kubeflow_reaches_deploy(tmp_path):
    store = f"file://{tmp_path}/artifacts"
    run_cli("retrain_steps", "export-default", "--output", f"{store}/datasets/digits/digits.npz")

    with FakeKfp() as kfp:
        kfp.executor = kfp_local_executor(tmp_path)
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "RETRAIN_ARTIFACT_STORE": store,
            "RETRAIN_REGISTRY": f"{store}/registry",
            "RETRAIN_DATASET_URI": f"{store}/datasets/digits/digits.npz",
            "RETRAIN_KFP_POLL_SECONDS": "2",
            "AIRFLOW_CONN_KUBEFLOW_DEFAULT": json.dumps({"conn_type": "kubeflow_pipelines", "host": kfp.url}),
        }
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        conf = {"epochs": 10, "learning_rates": [0.003], "gpus": 0, "min_accuracy": 0.9}
        port = free_port()
        api_env = {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
        with serve([str(BIN / "airflow"), "api-server", "--port", str(port)], env=api_env, cwd=ROOT,
                   log_path=tmp_path / "api-server.log", ready_url=f"http://127.0.0.1:{port}/api/v2/monitor/health",
                   timeout=180):
            with open(tmp_path / "dags-test.log", "w") as log:
                dags_test = subprocess.Popen(
                    [str(BIN / "airflow"), "dags", "test", "retrain_kubeflow", "-c", json.dumps(conf)],
                    env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
            link_while_running = wait_for_link(f"http://127.0.0.1:{port}/api/v2", dags_test, kfp)
            dags_test.wait(timeout=1200)
        output = (tmp_path / "dags-test.log").read_text()
        logs = "".join(p.read_text()[-3000:] for p in tmp_path.glob("run-*.log"))
        assert dags_test.returncode == 0 and "state=failed" not in output, output[-4000:] + logs

    (submitted,) = kfp.runs.values()
    assert link_while_running == f"{kfp.url}/#/runs/details/{submitted.run_id}", link_while_running
    assert submitted.runtime_config.parameters["gpus"] == 0
    assert submitted.runtime_config.parameters["candidates"][0]["train"][0] == "train"
    assert "gate: deploy" in output
    production = registry.production(f"{store}/registry")
    assert production is not None and production["metrics"]["test_accuracy"] >= 0.9


def wait_for_link(api: str, process: subprocess.Popen, kfp: FakeKfp, timeout: float = 600) -> str | None:
    """The "Kubeflow Run" link the REST API gives for `kubeflow_run` while the task and the KFP run are running."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(1)
        runs = httpx.get(f"{api}/dags/retrain_kubeflow/dagRuns", timeout=10).json().get("dag_runs", [])
        if not runs or not kfp.runs:
            continue
        run_id = runs[0]["dag_run_id"]
        ti = httpx.get(f"{api}/dags/retrain_kubeflow/dagRuns/{run_id}/taskInstances/kubeflow_run", timeout=10)
        if ti.status_code != 200 or ti.json().get("state") != "running":
            continue
        links = httpx.get(f"{api}/dags/retrain_kubeflow/dagRuns/{run_id}/taskInstances/kubeflow_run/links",
                          timeout=10).json().get("extra_links", {})
        (kfp_run,) = kfp.runs.values()
        if links.get("Kubeflow Run") and kfp._run_state(kfp_run.run_id) == "RUNNING":
            return links["Kubeflow Run"]
    return None


OWN_DATASET_RUN = {"epochs": 8, "learning_rates": [0.003], "gpus": 0, "min_accuracy": 0.5}


@pytest.fixture(scope="module")
def kfp_runs(tmp_path_factory) -> Path:
    """Where the kfp.local runs keep their arguments, logs and pipeline roots."""
    return tmp_path_factory.mktemp("kfp-runs")


@pytest.fixture(scope="module")
def kfp_local(kfp_runs):
    """One KFP-shaped server for the module whose runs execute with kfp.local."""
    with FakeKfp() as kfp:
        kfp.executor = kfp_local_executor(kfp_runs)
        yield kfp


@pytest.fixture(scope="module")
def own_env(tmp_path_factory, kfp_local, s3_endpoint, images_server):
    """One Airflow home and registry for the own-dataset runs (each has other classes than the one before)."""
    return local_airflow_env(
        tmp_path_factory.mktemp("kubeflow-own"), RETRAIN_KFP_POLL_SECONDS="2",
        RETRAIN_DATASET_ALLOWED=f"s3://kubeflow-own/,{images_server}/",
        AIRFLOW_CONN_KUBEFLOW_DEFAULT=json.dumps({"conn_type": "kubeflow_pipelines", "host": kfp_local.url}))


def image_folder_zip(env: dict, images_root: Path, images_server: str) -> tuple[str, tuple[str, ...]]:
    """Three classes, 28x28 grayscale, a zip in the artifact store."""
    classes = ("circle", "square", "triangle")
    path = Path(env["RETRAIN_ARTIFACT_STORE"].removeprefix("file://")) / "datasets" / "shapes-28.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(image_files(classes, 100, 28, "L", seed=11), top="shapes/"))
    return f"file://{path}", classes


def image_folder_s3(env: dict, images_root: Path, images_server: str) -> tuple[str, tuple[str, ...]]:
    """Four classes, 24x24 RGB, one file per image under an S3 prefix."""
    import boto3

    classes = ("circle", "cross", "square", "triangle")
    boto3.client("s3").create_bucket(Bucket="kubeflow-own")
    for name, data in image_files(classes, 100, 24, "RGB", seed=12).items():
        artifacts.write_bytes(f"s3://kubeflow-own/products/{name}", data)
    return "s3://kubeflow-own/products/", classes


def label_studio(env: dict, images_root: Path, images_server: str) -> tuple[str, tuple[str, ...]]:
    """Three classes, 20x20 grayscale, a Label Studio export whose images are served over HTTP."""
    classes = ("circle", "cross", "triangle")
    files = image_files(classes, 100, 20, "L", seed=13)
    write_folder(images_root, files)
    export = f"{env['RETRAIN_ARTIFACT_STORE']}/datasets/label-studio.json"
    artifacts.write_bytes(export, label_studio_export(files, images_server, unannotated=3))
    return export, classes


@pytest.mark.parametrize(("fmt", "make_dataset", "pretrained"), [("image-folder-zip", image_folder_zip, True),
                                                                 ("image-folder-s3", image_folder_s3, False),
                                                                 ("label-studio", label_studio, False)])
def test_retrain_kubeflow_on_own_datasets(own_env, kfp_local, kfp_runs, images_root, images_server, fmt,
                                          make_dataset, pretrained):
    """A dataset of 3 or 4 named classes runs through the pipeline (the confusion matrix is logged with
    its class names) to a deployed version of those classes, as a new model named after its format; the first one as
    a ResNet-18 from pretrained weights in the store (the form's Architecture and Pretrained weights)."""
    dataset_uri, classes = make_dataset(own_env, images_root, images_server)
    training = {}
    if pretrained:
        weights, sha256 = write_resnet18_checkpoint(own_env["RETRAIN_ARTIFACT_STORE"])
        training = {"architecture": "resnet18", "pretrained_weights": weights, "pretrained_sha256": sha256}
    submitted_before = set(kfp_local.runs)
    started = time.monotonic()
    completed = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "retrain_kubeflow", "-c",
         json.dumps({**OWN_DATASET_RUN, **training, "dataset_uri": dataset_uri, "model": fmt, "new_model": True})],
        env=own_env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(f"airflow dags test retrain_kubeflow ({fmt}): {time.monotonic() - started:.0f} s")
    output = completed.stdout + completed.stderr
    runs = sorted(set(kfp_local.runs) - submitted_before)
    kfp_logs = "".join((kfp_runs / f"{run_id}.log").read_text()[-3000:] for run_id in runs)
    assert completed.returncode == 0 and "state=failed" not in output, output[-4000:] + kfp_logs
    assert "gate: deploy" in output, output[-4000:]
    (run_id,) = runs  # one KFP run: kubeflow_run was not retried

    (evaluate_output,) = (kfp_runs / run_id).rglob("evaluate/executor_output.json")
    executed = json.loads(evaluate_output.read_text())
    (confusion,) = [a["metadata"]["confusionMatrix"] for a in executed["artifacts"]["confusion"]["artifacts"]]
    evaluation = artifacts.read_json(artifacts.join(executed["parameterValues"]["Output"], "metrics.json"))
    assert [spec["displayName"] for spec in confusion["annotationSpecs"]] == list(classes)
    assert [row["row"] for row in confusion["rows"]] == evaluation["confusion_matrix"]

    production = registry.production(own_env["RETRAIN_REGISTRY"], fmt)  # each dataset its own model
    assert production["model"] == fmt and production["dataset"]["format"] == fmt and production["dataset"]["class_names"] == list(classes)
    assert production["input_spec"]["class_names"] == list(classes)
    assert production["metrics"]["test_accuracy"] >= OWN_DATASET_RUN["min_accuracy"]
    (train_output,) = (kfp_runs / run_id).rglob("train/executor_output.json")
    (logged,) = json.loads(train_output.read_text())["artifacts"]["metrics"]["artifacts"]
    trained = artifacts.read_json(artifacts.join(logged["metadata"]["model_uri"], "model.json"))
    assert logged["metadata"]["architecture"] == trained["architecture"] == ("resnet18" if pretrained else "cnn")
    if pretrained:
        store = own_env["RETRAIN_ARTIFACT_STORE"]
        assert logged["metadata"]["pretrained"] == f"{store}/{training['pretrained_weights']}"
        assert trained["stem"] == logged["metadata"]["stem"] == "imagenet", "fine-tuned: the checkpoint's stem"
