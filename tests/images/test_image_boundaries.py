"""Each step CLI and the model server run in an environment built from their image's lock file
alone (``.venv-steps``, ``.venv-steps-tf``, ``.venv-serving``, made by ``make test``), so an
import outside the lock (a step that imported airflow, say) fails here as it would in its pod.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT, run_step_process


def image_python(env_name: str) -> str:
    python = ROOT / f".venv-{env_name}" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run the tests through `make test`, which builds the image environments")
    return str(python)


def run_in(env_name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    completed = run_step_process([image_python(env_name), *args], {**os.environ, "PYTHONPATH": "", **(env or {})})
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    return completed


@pytest.mark.parametrize("env_name", ["steps", "steps-tf", "train", "serving"])
def test_image_env_has_no_airflow(env_name):
    probe = subprocess.run([image_python(env_name), "-c", "import airflow"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'airflow'" in probe.stderr


def test_steps_run_in_the_steps_image_env(tmp_path):
    out = f"file://{tmp_path}"
    run_in("steps", "-m", "retrain_steps", "export-default", "--output", f"{out}/d.npz")
    run_in("steps", "-m", "retrain_steps", "download", "--source", f"{out}/d.npz", "--output", f"{out}/dl")
    run_in("steps", "-m", "retrain_steps", "preprocess", "--input", f"{out}/dl", "--output", f"{out}/pp")
    run_in("steps", "-m", "retrain_steps", "train", "--input", f"{out}/pp", "--output", f"{out}/tr", "--epochs", "2")
    result = run_in("steps", "-m", "retrain_steps", "evaluate", "--data", f"{out}/pp", "--model", f"{out}/tr",
                    "--output", f"{out}/ev")
    assert result.result["step"] == "evaluate"


def test_keras_training_runs_in_the_tf_image_env(trained, tmp_path):
    run_in("steps-tf", "-m", "retrain_steps", "train", "--input", trained["preprocess"],
           "--output", f"file://{tmp_path}/k", "--epochs", "1", "--framework", "tensorflow")
    assert (tmp_path / "k" / "model.keras").exists()
    # The serving image has no TensorFlow: it loads the Keras model on Keras' torch backend.
    code = (
        "import pathlib, numpy as np\n"
        "from retrain_steps.models import load_predictor\n"
        "from retrain_steps.input_spec import DIGITS, from_instances, prepare\n"
        "from serving.service import EXAMPLE_INSTANCE\n"
        f"p = load_predictor(pathlib.Path({str(tmp_path / 'k')!r}), 'tensorflow')\n"
        "print(p(prepare(from_instances([EXAMPLE_INSTANCE], DIGITS), DIGITS)).shape)\n"
    )
    assert run_in("serving", "-c", code).stdout.strip().splitlines()[-1] == "(1, 10)"


def test_keras_trains_on_the_torch_backend_in_the_train_image_env(trained, tmp_path):
    """The CUDA train image has no TensorFlow: Keras trains on torch (the GPU there), and serving loads it."""
    probe = subprocess.run([image_python("train"), "-c", "import tensorflow"], capture_output=True, text=True)
    assert probe.returncode != 0, "the train image must not carry TensorFlow"
    result = run_in("train", "-m", "retrain_steps", "train", "--input", trained["preprocess"],
                    "--output", f"file://{tmp_path}/k", "--epochs", "2", "--framework", "tensorflow")
    assert "on the torch backend (cpu)" in result.stdout + result.stderr
    metrics = json.loads((tmp_path / "k" / "metrics.json").read_text())
    assert metrics["framework"] == "tensorflow" and metrics["val_accuracy"] > 0.5


def test_package_and_service_run_in_the_serving_image_env(trained, tmp_path):
    """package builds the bento in the serving env; the service loads torch and Keras models there."""
    reg = f"file://{tmp_path}/registry"
    result = run_in("serving", "-m", "serving.package", "--model", trained["train"], "--evaluation",
                    trained["evaluate"], "--dataset", trained["download"], "--registry", reg)
    version = result.result["version"]
    code = (
        "import numpy as np\n"
        "from retrain_steps import registry\n"
        "from retrain_steps.input_spec import from_instances, prepare\n"
        "from serving.service import DigitsClassifier, EXAMPLE_INSTANCE\n"
        f"registry.promote({reg!r}, {version!r})\n"
        "svc = DigitsClassifier.inner()\n"
        "model = svc.source.current\n"
        "print(int(model.predict(prepare(from_instances([EXAMPLE_INSTANCE], model.spec), model.spec)).argmax()))\n"
    )
    predicted = run_in("serving", "-c", code, env={"DIGITS_REGISTRY_URI": reg})
    assert predicted.stdout.strip().splitlines()[-1] == "3"
