"""Bring your own images, end to end: each dataset format through ``airflow dags test retrain`` as a new
named model, then a live server following that model answers held-back images of every class with the
class name. One registry across the runs: each dataset is its own model, and a run whose classes differ
from a model's production fails before it trains, naming both, and leaves that production alone.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from retrain_steps import artifacts, registry
from serving.service import VERSION_HEADER
from tests.conftest import ROOT
from tests.helpers.airflow import BIN, dags_test, local_airflow_env
from tests.helpers.datasets import image_files, label_studio_export, write_folder, zip_bytes
from tests.helpers.servers import free_port, serve

pytestmark = pytest.mark.e2e
TRAIN = {"epochs": 20, "learning_rates": [0.003], "min_accuracy": 0.8, "patience": 6}


@pytest.fixture(scope="module")
def env(tmp_path_factory, s3_endpoint, images_server):
    return local_airflow_env(tmp_path_factory.mktemp("own"), RETRAIN_DATASET_ALLOWED=f"s3://own-datasets/,{images_server}/",
                             RETRAIN_WATCH_SECONDS="0")


@pytest.fixture(scope="module")
def server(env, tmp_path_factory):
    """``server(model)``: the URL of a model server following ``model``'s production (one per model, kept)."""
    with ExitStack() as stack:
        started: dict[str, str] = {}

        def following(model: str) -> str:
            if model not in started:
                port = free_port()
                argv = [str(BIN / "bentoml"), "serve", "serving.service:DigitsClassifier", "--host", "127.0.0.1",
                        "--port", str(port)]
                log = tmp_path_factory.mktemp("serve") / f"{model}.log"
                stack.enter_context(serve(argv, ready_url=f"http://127.0.0.1:{port}/livez", cwd=ROOT, log_path=log,
                                          env={"DIGITS_REGISTRY_URI": env["RETRAIN_REGISTRY"], "DIGITS_MODEL": model,
                                               "DIGITS_POLL_SECONDS": "0.5", "DIGITS_WORKERS": "1"}))
                started[model] = f"http://127.0.0.1:{port}"
            return started[model]

        yield following


def deploys_and_serves(env: dict, server, dataset_uri: str, held_back: dict[str, bytes], fmt: str, model: str) -> dict:
    code, output = dags_test(env, {**TRAIN, "dataset_uri": dataset_uri, "model": model, "new_model": True})
    assert code == 0 and "state=failed" not in output, output[-6000:]
    assert "gate: deploy" in output, output[-6000:]
    production = registry.production(env["RETRAIN_REGISTRY"], model)
    assert production["model"] == model
    server = server(model)
    classes = sorted({name.split("/")[0] for name in held_back})
    assert production["dataset"]["format"] == fmt and production["dataset"]["class_names"] == classes
    assert production["input_spec"]["class_names"] == classes and production["metrics"]["test_accuracy"] >= 0.8
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = httpx.post(f"{server}/predict", files={"file": ("x.png", next(iter(held_back.values())))}, timeout=30)
        if probe.headers.get(VERSION_HEADER) == production["version"]:
            break
        time.sleep(0.5)
    answers = {}
    for name, data in held_back.items():
        response = httpx.post(f"{server}/predict", files={"file": (Path(name).name, data, "image/png")}, timeout=30)
        assert response.status_code == 200 and response.headers[VERSION_HEADER] == production["version"], response.text
        answers[name] = response.json()["class_name"]
    correct = {c: sum(answers[n] == c for n in answers if n.startswith(c + "/")) for c in classes}
    print(f"{fmt}: test accuracy {production['metrics']['test_accuracy']:.3f}; held-back correct per class {correct}")
    assert all(n >= 3 for n in correct.values()), correct  # 4 held back per class: a majority of each
    return production


def test_a_28x28_grayscale_image_folder_zip(env, server):
    classes = ("circle", "square", "triangle")
    path = Path(env["RETRAIN_ARTIFACT_STORE"].removeprefix("file://")) / "datasets" / "shapes-28.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(image_files(classes, 150, 28, "L", seed=1), top="shapes/"))
    held_back = image_files(classes, 4, 28, "L", seed=101)
    production = deploys_and_serves(env, server, f"file://{path}", held_back, "image-folder-zip", "shapes")
    assert production["input_spec"]["height"] == 28 and production["input_spec"]["channels"] == 1


def test_a_32x32_rgb_s3_prefix_of_four_named_classes(env, server):
    import boto3

    classes = ("circle", "cross", "square", "triangle")
    boto3.client("s3").create_bucket(Bucket="own-datasets")
    for name, data in image_files(classes, 120, 32, "RGB", seed=2).items():
        artifacts.write_bytes(f"s3://own-datasets/products/{name}", data)
    held_back = image_files(classes, 4, 32, "RGB", seed=102)
    production = deploys_and_serves(env, server, "s3://own-datasets/products/", held_back, "image-folder-s3", "products")
    assert production["input_spec"]["channels"] == 3 and production["input_spec"]["mean"]


def test_a_label_studio_export_with_images_over_http(env, server, images_server, images_root):
    classes = ("circle", "cross", "triangle")
    files = image_files(classes, 120, 24, "L", seed=3)
    write_folder(images_root, files)
    store_export = f"{env['RETRAIN_ARTIFACT_STORE']}/datasets/label-studio.json"
    artifacts.write_bytes(store_export, label_studio_export(files, images_server, unannotated=5))
    held_back = image_files(classes, 4, 24, "L", seed=103)
    shapes = registry.production(env["RETRAIN_REGISTRY"], "shapes")
    # other classes than model shapes' production: refused before anything trains, production left alone
    code, output = dags_test(env, {**TRAIN, "dataset_uri": store_export, "model": "shapes"})
    assert code != 0 or "state=failed" in output
    assert (f"this run cannot retrain model 'shapes': its production {shapes['version']} predicts classes "
            "['circle', 'square', 'triangle'], this run's data has ['circle', 'cross', 'triangle']") in output, output[-6000:]
    assert "starting task_id=train" not in output and "up_for_retry" not in output.lower()
    assert registry.production(env["RETRAIN_REGISTRY"], "shapes") == shapes
    production = deploys_and_serves(env, server, store_export, held_back, "label-studio", "tickets")
    assert production["dataset"]["source"] == store_export
    assert registry.models(env["RETRAIN_REGISTRY"]) == ["products", "shapes", "tickets"]


def test_a_bad_dataset_fails_the_download_task_at_once(env):
    """The DAG's side of bad input: the download task fails at once (exit 2, no retry) and nothing runs after it.
    Every kind of bad dataset exits 2 naming the problem: tests/images/test_datasets.py, one CLI run each."""
    files = image_files(("a", "b"), 3, 12, "L", seed=4)
    files["b/rgb.png"] = image_files(("b",), 1, 12, "RGB", seed=5)["b/0000.png"]
    path = Path(env["RETRAIN_ARTIFACT_STORE"].removeprefix("file://")) / "datasets" / "mixed-modes.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(files))
    code, output = dags_test(env, {**TRAIN, "dataset_uri": f"file://{path}"})
    assert code != 0 or "state=failed" in output
    assert "mixed image modes" in output, output[-6000:]
    assert "up_for_retry" not in output.lower(), "bad input is not retried"
    assert "step download exited 2" in output and "step rejected its input (exit 2), not retried:\n  " in output
    assert "starting task_id=preprocess" not in output, "nothing runs after the failed download"
