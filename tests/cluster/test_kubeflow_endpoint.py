"""Submit the compiled pipeline to a real Kubeflow Pipelines API and watch it end.

Set KFP_ENDPOINT (e.g. http://127.0.0.1:8888 after `kubectl -n kubeflow port-forward svc/ml-pipeline
8888`), optionally KFP_TOKEN, KFP_NAMESPACE and RETRAIN_ARTIFACT_STORE (an s3:// store the cluster
reaches, with the digits set exported to <store>/datasets/digits/digits.npz).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from kubeflow_pipelines.hooks.kubeflow import KubeflowPipelinesHook, KubeflowRunState
from retraining import commands

from tests.conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.kfp]


def test_submit_the_pipeline_to_kfp(monkeypatch):
    extra = {"auth_type": "token" if os.environ.get("KFP_TOKEN") else "none",
             "namespace": os.environ.get("KFP_NAMESPACE")}
    monkeypatch.setenv("AIRFLOW_CONN_KFP_REAL", json.dumps({"conn_type": "kubeflow_pipelines",
                       "host": os.environ["KFP_ENDPOINT"], "password": os.environ.get("KFP_TOKEN"), "extra": extra}))
    hook = KubeflowPipelinesHook("kfp_real")
    store = os.environ.get("RETRAIN_ARTIFACT_STORE", "s3://artifacts")
    params = {"learning_rates": [0.003], "epochs": 3, "batch_size": 64, "framework": "torch", "seed": 0}
    run_id = f"cluster-{int(time.time())}"
    data = commands.data_steps(params=params, run_id=run_id, artifact_store=store,
                               default_dataset=f"{store}/datasets/digits/digits.npz")
    candidates = commands.candidates(params=params, run_id=run_id, artifact_store=store)
    pipeline_id, version_id = hook.upload_pipeline(str(ROOT / "images/steps/pipelines/retrain.yaml"), "retrain-digits")
    run = hook.create_run(run_name="cluster-test", experiment_id=hook.get_or_create_experiment("retrain-tests"),
                          pipeline_id=pipeline_id, pipeline_version_id=version_id,
                          params={"download_argv": data["download"], "preprocess_argv": data["preprocess"],
                                  "candidates": [{"train": c["train"], "evaluate": c["evaluate"]} for c in candidates],
                                  "gpus": int(os.environ.get("CLUSTER_GPUS", "0"))})
    deadline = time.time() + 3600
    state, message = hook.get_run_state(run.run_id)
    while not state.is_terminal() and time.time() < deadline:
        time.sleep(15)
        state, message = hook.get_run_state(run.run_id)
    assert state is KubeflowRunState.SUCCEEDED, f"{state.value}: {message} ({hook.run_url(run.run_id)})"
