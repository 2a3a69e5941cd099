"""The Airflow image runs the control plane on Kubernetes: it parses the DAGs on the kubernetes
backend (step pods), and carries the pinned helm and the serving chart that `deploy` upgrades."""

from __future__ import annotations

import json

import pytest
from retraining import deploy
from tests.helpers.podman import podman

# the first test builds every image (minutes on a cold cache)
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]
CARD = {"version": "0123456789ab", "bento": {"uri": "s3://artifacts/registry/versions/0123456789ab/x.bento",
                                             "sha256": "a" * 64}}


def run_in_airflow_image(images, *command: str, env: dict | None = None) -> str:
    flags = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    entrypoint, *args = command
    return podman("run", "--rm", *flags, "--entrypoint", entrypoint, images["airflow"], *args).stdout


def test_the_dags_parse_in_the_image_on_the_kubernetes_backend(images):
    code = (
        "import json\nfrom airflow.models import DagBag\nfrom airflow.providers_manager import ProvidersManager\n"
        "b = DagBag('/opt/airflow/dags')\n"
        "print(json.dumps({'errors': b.import_errors, 'dags': sorted(b.dag_ids),"
        " 'download': type(b.dags['retrain'].get_task('download')).__name__,"
        " 'kfp': ProvidersManager().hooks['kubeflow_pipelines'].hook_name}))"
    )
    out = run_in_airflow_image(images, "python", "-c", code,
                               env={"RETRAIN_BACKEND": "kubernetes", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    parsed = json.loads(out.strip().splitlines()[-1])
    assert parsed["errors"] == {} and parsed["dags"] == ["promote_model", "retrain", "retrain_kubeflow"]
    assert parsed["download"] == "StepPodOperator"
    assert parsed["kfp"] == "Kubeflow Pipelines", "the KFP bridge is installed as a provider package"


def test_the_image_runs_deploy_s_helm_command_on_its_own_chart(images):
    assert run_in_airflow_image(images, "helm", "version", "--short").startswith("v4.")
    command = deploy.helm_upgrade_command(chart="/opt/airflow/charts/serving", card=CARD,
                                          image_repository="reg.example/serving", image_tag="t1", namespace="serving")
    sets = [a for i, a in enumerate(command) if i and command[i - 1] == "--set-string"]
    rendered = run_in_airflow_image(images, "helm", "template", "serving", "/opt/airflow/charts/serving",
                                    *[a for s in sets for a in ("--set-string", s)])
    assert 'image: "reg.example/serving:t1"' in rendered and "0123456789ab" in rendered
