"""The Kubeflow pipeline: compiled YAML equals its source, and it runs for real with kfp.local."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from retraining import commands

from tests.conftest import ROOT

KFP_PYTHON = ROOT / ".venv-kfp" / "bin" / "python"
PIPELINE_DIR = ROOT / "images" / "steps"
COMPILED = PIPELINE_DIR / "pipelines" / "retrain.yaml"


@pytest.fixture(scope="module")
def kfp_python() -> str:
    if not KFP_PYTHON.exists():
        pytest.fail(f"{KFP_PYTHON} is missing: run the tests through `make test`")
    return str(KFP_PYTHON)


def test_compiled_yaml_matches_the_source(kfp_python, tmp_path):
    out = tmp_path / "retrain.yaml"
    env = {**os.environ, "PYTHONPATH": "", "RETRAIN_IMAGE_REGISTRY": "ghcr.io/example/retrain",
           "RETRAIN_IMAGE_TAG": "latest"}
    subprocess.run([kfp_python, "-m", "pipelines.retrain", str(out)], cwd=PIPELINE_DIR, env=env, check=True,
                   capture_output=True)
    assert out.read_text() == COMPILED.read_text(), "run `make kfp-compile` and commit images/steps/pipelines/retrain.yaml"


def test_compiled_spec_has_gpu_settings_and_typed_outputs():
    spec, platform_spec = list(yaml.safe_load_all(COMPILED.read_text()))
    executors = spec["deploymentSpec"]["executors"]
    train = next(e for name, e in executors.items() if "train" in name)["container"]
    assert train["image"].endswith("/train:latest")
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    platform = yaml.safe_dump(platform_spec)
    assert "nvidia.com/gpu" in platform and "NoSchedule" in platform
    evaluate = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert evaluate["confusion"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"
    assert evaluate["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"download_argv", "preprocess_argv", "candidates",
                                                                    "gpus"}


def test_pipeline_runs_with_kfp_local(kfp_python, trained, tmp_path):
    store = f"file://{tmp_path}/store"
    params = {"learning_rates": [0.003, 0.01], "epochs": 3, "batch_size": 64, "framework": "torch", "seed": 0}
    data = commands.data_steps(params=params, run_id="kfp-local", artifact_store=store,
                               default_dataset=trained["source"])
    candidates = commands.candidates(params=params, run_id="kfp-local", artifact_store=store)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"download_argv": data["download"], "preprocess_argv": data["preprocess"],
                                "candidates": candidates, "gpus": 0}))
    result = subprocess.run([kfp_python, str(ROOT / "tests" / "helpers" / "run_kfp_local.py"), str(args),
                             str(tmp_path / "pipeline-root")], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, timeout=900)
    assert result.returncode == 0 and "KFP_LOCAL_OK" in result.stdout, (result.stdout + result.stderr)[-5000:]
    for candidate in candidates:
        evaluation = json.loads((tmp_path / candidate["evaluation"].removeprefix(f"file://{tmp_path}/")
                                 / "metrics.json").read_text())
        assert evaluation["test_accuracy"] > 0.5
    outputs = {p.parent.name: p.read_text() for p in (tmp_path / "pipeline-root").rglob("executor_output.json")}
    assert "val_accuracy" in outputs["train"], "train logs Metrics for the KFP UI"
    (logged,) = json.loads(outputs["train"])["artifacts"]["metrics"]["artifacts"]
    assert logged["metadata"]["architecture"] == "cnn" and "pretrained" not in logged["metadata"], "auto at 8x8"
    assert "confusionMatrix" in outputs["evaluate"] and "test_accuracy" in outputs["evaluate"]


def test_components_get_credentials_gpu_nodes_and_need_no_package_index():
    spec, platform_spec = list(yaml.safe_load_all(COMPILED.read_text()))
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "pip install" not in " ".join(executor["container"]["command"]), "kfp is baked into the images"
    executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == len(spec["deploymentSpec"]["executors"])
    for name, config in executors.items():
        keys = {k["secretKey"] for s in config["secretAsEnv"] for k in s["keyToEnv"]}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"} <= keys, name
    train = next(c for name, c in executors.items() if "train" in name)
    assert train["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    dockerfiles = [(ROOT / "images" / d / "Dockerfile").read_text() for d in ("steps", "train-cuda")]
    assert all("requirements/kfp-runtime.txt" in d for d in dockerfiles)
    runtime = (ROOT / "requirements" / "kfp-runtime.txt").read_text()
    assert "kfp==2.17.0" in runtime and "kfp==2.17.0" in (ROOT / "requirements" / "kfp.in").read_text()


def test_the_pipeline_and_the_train_pods_ask_for_gpus_alike():
    """One definition (retrain_steps.accelerators): the compiled train task and a train pod name the same GPU
    resource, toleration and (with the deployment's selector applied at submission) nodes."""
    from retrain_steps import accelerators
    from retraining.config import settings
    from retraining.pod_manifests import default_params, render_pods

    from kubeflow_pipelines.operators.kubeflow import KubeflowPipelinesRunOperator

    k8s = settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_GPU_NODE_SELECTOR": "pool=a100"})
    pod = render_pods(k8s, default_params(gpus=1, learning_rates=[0.01]))["train-0"]["spec"]
    operator = KubeflowPipelinesRunOperator(task_id="k", pipeline_package=str(COMPILED),
                                            node_selector=dict([k8s.pods.gpu_node_selector]))
    spec, platform_spec = operator._documents()
    train_task = next(e for name, e in spec["deploymentSpec"]["executors"].items() if "train" in name)["container"]
    train_platform = next(c for name, c in platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
                          .items() if "train" in name)
    assert train_task["resources"]["accelerator"]["resourceType"] == accelerators.GPU_RESOURCE
    assert accelerators.GPU_RESOURCE in pod["containers"][0]["resources"]["limits"]
    assert train_platform["tolerations"] == pod["tolerations"] == [accelerators.GPU_TOLERATION]
    assert train_platform["nodeSelector"] == {"labels": pod["nodeSelector"]} == {"labels": {"pool": "a100"}}
    untouched = KubeflowPipelinesRunOperator(task_id="k", pipeline_package=str(COMPILED))._documents()[1]
    assert yaml.safe_dump(untouched) == yaml.safe_dump(list(yaml.safe_load_all(COMPILED.read_text()))[1])


def test_the_kubeflow_dag_submits_the_forms_architecture_and_weights(monkeypatch):
    """retrain_kubeflow's own tasks, from the form's params to the KFP REST API: the run's parameters are the compiled
    pipeline's inputs, and every candidate's train arguments carry the architecture, the weights' store URI and their
    sha256 (what the train component runs, as the pods do)."""
    import copy
    import runpy

    from retraining.pod_manifests import default_params

    from tests.helpers.kfp_server import FakeKfp

    monkeypatch.setenv("RETRAIN_ARTIFACT_STORE", "s3://bucket/artifacts")
    dag = runpy.run_path(str(ROOT / "dags" / "retrain_kubeflow.py"))["retrain_kubeflow"]()
    sha256 = "0123456789abcdef" * 4
    params = default_params(architecture="mobilenet_v3_large", pretrained_weights="weights/mnv3l.pth",
                            pretrained_sha256=sha256, augment=True, flip=True, learning_rates=[0.001, 0.01], gpus=0)
    plan, plan_candidates = (dag.get_task(t).python_callable for t in ("plan", "plan_candidates"))
    data, candidates = plan(params=params, run_id="r"), plan_candidates(params=params, run_id="r")
    arguments = dag.get_task("pipeline_arguments").python_callable(data, candidates, params=params)
    with FakeKfp() as kfp:
        monkeypatch.setenv("AIRFLOW_CONN_KFP_RUN_PARAMETERS", json.dumps({"conn_type": "kubeflow_pipelines",
                                                                          "host": kfp.url}))
        submit = copy.copy(dag.get_task("kubeflow_run"))
        submit.pipeline_params, submit.kfp_conn_id, submit.deferrable, submit.poll_interval = (
            arguments, "kfp_run_parameters", False, 0.01)
        submit.run_name = "r"
        submit.execute({"ti": type("TI", (), {"xcom_push": lambda *a, **k: None})(), "run_id": "r",
                        "dag": dag})
        (run,) = kfp.runs.values()
    sent = run.runtime_config.parameters
    spec = next(yaml.safe_load_all(COMPILED.read_text()))
    assert set(sent) == set(spec["root"]["inputDefinitions"]["parameters"])
    assert len(sent["candidates"]) == 2
    for candidate in sent["candidates"]:
        train = candidate["train"]
        assert train[train.index("--architecture") + 1] == "mobilenet_v3_large"
        assert train[train.index("--pretrained") + 1] == "s3://bucket/artifacts/weights/mnv3l.pth"
        assert train[train.index("--pretrained-sha256") + 1] == sha256 and "--flip" in train
