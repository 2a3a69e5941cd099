"""The kubernetes backend: every pod a run would launch, validated against the Kubernetes schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from retraining.config import settings
from retraining.deploy import helm_upgrade_command
from retraining.pod_manifests import default_params, render_pods
from tests.conftest import PLUGINS, ROOT
from tests.helpers.kube import helm, validate

K8S = settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_ARTIFACT_STORE": "s3://artifacts"})


@pytest.fixture(scope="module", params=[0, 1], ids=lambda g: f"gpus={g}")
def pods(request):
    params = default_params(gpus=request.param, learning_rates=[0.001, 0.01, 0.1])
    return request.param, render_pods(K8S, params, production_version="0123456789ab")


def test_one_pod_per_task(pods):
    _, rendered = pods
    assert sorted(rendered) == ["download", "evaluate-0", "evaluate-1", "evaluate-2", "evaluate-production",
                                "package", "preprocess", "track", "train-0", "train-1", "train-2"]
    track = rendered["track"]["spec"]["containers"][0]
    assert track["args"][:3] == ["track", "--model-name", "digits"] and track["args"].count("--candidate") == 3


def test_more_gpus_than_training_uses_are_refused():
    with pytest.raises(ValueError, match="gpus=4: a candidate trains on one GPU"):
        render_pods(K8S, default_params(gpus=4))


def test_every_pod_validates_against_the_kubernetes_schema(pods):
    for manifest in pods[1].values():
        validate(manifest)


def test_train_pods_request_gpus_on_gpu_nodes(pods):
    gpus, rendered = pods
    for name in ("train-0", "train-2"):
        spec = rendered[name]["spec"]
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert spec["containers"][0]["image"].endswith("/train:latest")
    for name in ("download", "evaluate-0", "package"):
        spec = rendered[name]["spec"]
        assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"] and not spec.get("tolerations")


def test_pods_run_the_step_cli_non_root_with_secret_credentials(pods):
    for name, manifest in pods[1].items():
        spec, container = manifest["spec"], manifest["spec"]["containers"][0]
        assert spec["securityContext"]["runAsNonRoot"] is True
        if name == "track":
            assert container["envFrom"] == [{"secretRef": {"name": "artifact-store"}},
                                            {"secretRef": {"name": "mlflow-tracking", "optional": True}}]
            continue
        assert container["envFrom"] == [{"secretRef": {"name": "artifact-store"}}], "no MLflow secret but in track"
        assert not any("SECRET" in env.get("name", "") for env in container.get("env", []))
        labels = manifest["metadata"]["labels"]
        assert labels["dag_id"] == "retrain" and labels["run_id"]
        assert labels["task_id"] == ("evaluate_production" if name == "evaluate-production" else name.split("-")[0])
        expected = ["python", "-m", "serving.package"] if name == "package" else ["python", "-m", "retrain_steps"]
        assert container["command"] == expected
        assert spec["serviceAccountName"] == "retrain-steps" and spec["restartPolicy"] == "Never"


def test_pods_get_the_same_arguments_as_the_local_backend(pods):
    from retraining import commands

    rendered = pods[1]
    params = default_params(gpus=pods[0], learning_rates=[0.001, 0.01, 0.1])
    candidates = commands.candidates(params=params, run_id="manual__review", artifact_store="s3://artifacts")
    assert rendered["train-1"]["spec"]["containers"][0]["args"] == candidates[1]["train"]


def test_the_dag_uses_pod_operators_on_the_kubernetes_backend():
    code = (
        "import json\n"
        "from airflow.models import DagBag\n"
        "dag = DagBag(dag_folder='dags').dags['retrain']\n"
        "print(json.dumps({t.task_id: type(t).__name__ if not hasattr(t, 'operator_class') "
        "else t.operator_class.__name__ for t in dag.tasks}))\n"
    )
    env = {**os.environ, "RETRAIN_BACKEND": "kubernetes", "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    types = json.loads(out.stdout.strip().splitlines()[-1])
    for step in ("download", "preprocess", "train", "evaluate", "evaluate_production", "package"):
        assert types[step] == "StepPodOperator", types


CARD = {"version": "abc123def456", "bento": {"uri": "s3://a/v1/digits_classifier.bento", "sha256": "f" * 64}}


def upgrade_command(**overrides):
    kwargs = {"chart": "charts/serving", "card": CARD, "image_repository": "reg.example/retrain/serving",
              "image_tag": "v7", "namespace": "serving", **overrides}
    return helm_upgrade_command(**kwargs)


def test_helm_upgrade_keeps_install_values_and_sets_model_and_image():
    assert upgrade_command() == [
        "helm", "upgrade", "--install", "serving", "charts/serving", "--namespace", "serving",
        "--reset-then-reuse-values",
        "--set-string", "image.repository=reg.example/retrain/serving", "--set-string", "image.tag=v7",
        "--set-string", "model.uri=s3://a/v1/digits_classifier.bento", "--set-string", "model.version=abc123def456",
        "--set-string", f"model.sha256={'f' * 64}", "--set-string", "model.name=digits",
        "--rollback-on-failure", "--wait", "--timeout", "10m",
    ]


def test_helm_accepts_the_upgrade_flags_and_values():
    """The flags exist in the real helm v4 binary, and the --set-string values render the chart."""
    command = upgrade_command()
    usage = helm("upgrade", "--help").stdout
    for flag in ("--install", "--reset-then-reuse-values", "--rollback-on-failure", "--wait", "--set-string",
                 "--timeout", "--namespace"):
        assert flag in usage
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set-string"]
    rendered = helm("template", "serving", "charts/serving", *[a for s in sets for a in ("--set-string", s)]).stdout
    assert "MODEL_URI: \"s3://a/v1/digits_classifier.bento\"" in rendered and "abc123def456" in rendered
    assert f"MODEL_SHA256: \"{'f' * 64}\"" in rendered, "the init container must verify the bento's checksum"
    assert "image: \"reg.example/retrain/serving:v7\"" in rendered
    assert 'DIGITS_MODEL: "digits"' in rendered, "the release says which model it serves"


def test_deploy_sets_the_serving_image_the_step_pods_use(monkeypatch):
    from retraining import deploy, pods

    conf = settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_IMAGE_REGISTRY": "reg.example/team",
                     "RETRAIN_IMAGE_TAG": "abc1234"})
    seen = []
    monkeypatch.setattr(deploy, "run_helm", seen.append)
    deploy.roll_out(conf, CARD)
    command = seen[0]
    assert f"image.repository={conf.pods.image_repository('serving')}" in command
    assert "image.tag=abc1234" in command and conf.pods.image("serving") == "reg.example/team/serving:abc1234"
    assert pods.pod_operator_kwargs("package", cmds=["x"], settings=conf)["image"] == conf.pods.image("serving")


def test_pod_settings_come_from_the_settings_object():
    from retraining import pods

    conf = settings({"RETRAIN_BACKEND": "kubernetes", "RETRAIN_K8S_NAMESPACE": "ml",
                     "RETRAIN_IMAGE_PULL_POLICY": "Always", "RETRAIN_IMAGE_PULL_SECRETS": "a, b",
                     "RETRAIN_GPU_NODE_SELECTOR": "pool=gpu",
                     "RETRAIN_ARTIFACT_SECRET": "s3-keys", "RETRAIN_SERVICE_ACCOUNT": "runner"})
    train = pods.pod_operator_kwargs("train", cmds=["x"], settings=conf)
    assert train["namespace"] == "ml" and train["image_pull_policy"] == "Always"
    assert [s.name for s in train["image_pull_secrets"]] == ["a", "b"] and train["node_selector"] == {"pool": "gpu"}
    assert train["env_from"][0].secret_ref.name == "s3-keys" and train["service_account_name"] == "runner"


@pytest.mark.parametrize(("variable", "value", "accepted"), [
    ("RETRAIN_IMAGE_PULL_POLICY", "Sometimes", "one of Always, IfNotPresent, Never"),
    ("RETRAIN_GPU_NODE_SELECTOR", "gpu", "label=value"),
])
def test_a_bad_pod_setting_is_named(variable, value, accepted):
    from retraining.config import SettingsError

    with pytest.raises(SettingsError, match=f"{variable} must be {accepted}.*got '{value}'"):
        settings({variable: value})


def test_pods_run_as_the_image_user_with_a_read_only_root(pods):
    dockerfiles = "".join(p.read_text() for p in (ROOT / "images").glob("*/Dockerfile") if p.parent.name != "airflow")
    for manifest in pods[1].values():
        uid = manifest["spec"]["securityContext"]["runAsUser"]
        assert f"--uid {uid}" in dockerfiles and f"USER {uid}:{uid}" in dockerfiles
        container = manifest["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_package_pod_registers_for_the_runs_model():
    args = render_pods(K8S, default_params(gpus=0, model="shapes"))["package"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model-name") + 1] == "shapes"
    args = render_pods(K8S, {**default_params(gpus=0), "model": None})["package"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model-name") + 1] == K8S.model, "no model in the form: the deployment's"
