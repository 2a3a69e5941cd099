"""The control plane on Kubernetes: RBAC (least privilege) and values for the official Airflow chart."""

from __future__ import annotations

import yaml
from retraining import pods, store_connection
from retraining.config import settings
from tests.conftest import PLUGINS, ROOT
from tests.helpers.kube import render, validate

CONTROL_PLANE = ROOT / "charts" / "control-plane"
RBAC = [d for d in yaml.safe_load_all((CONTROL_PLANE / "rbac.yaml").read_text()) if d]
VALUES = yaml.safe_load((CONTROL_PLANE / "airflow-values.yaml").read_text())
STEP_POD = pods.pod_operator_kwargs("download", cmds=["x"], settings=settings({}))
RESOURCE_OF_KIND = {
    "ConfigMap": ("", "configmaps"), "Service": ("", "services"), "ServiceAccount": ("", "serviceaccounts"),
    "Deployment": ("apps", "deployments"), "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "Ingress": ("networking.k8s.io", "ingresses"), "Pod": ("", "pods"),
}


def role(name: str) -> dict:
    return next(d for d in RBAC if d["kind"] == "Role" and d["metadata"]["name"] == name)


def allowed(rules: list[dict], group: str, resource: str) -> set[str]:
    return {verb for r in rules if group in r["apiGroups"] and resource in r["resources"] for verb in r["verbs"]}


def test_rbac_validates_against_the_kubernetes_schema():
    for manifest in RBAC:
        validate(manifest)


def test_workers_may_launch_step_pods_where_the_backend_puts_them():
    launcher = role("retrain-step-launcher")
    assert launcher["metadata"]["namespace"] == STEP_POD["namespace"]
    assert {"create", "get", "watch", "delete"} <= allowed(launcher["rules"], "", "pods")
    assert allowed(launcher["rules"], "", "pods/log") == {"get"}
    assert not allowed(launcher["rules"], "", "secrets"), "the launcher never reads Secrets"
    steps_sa = next(d for d in RBAC if d["kind"] == "ServiceAccount")
    assert steps_sa["metadata"]["name"] == STEP_POD["service_account_name"]
    assert not any(b["roleRef"]["name"] == "retrain-step-launcher" and
                   any(s["name"] == "retrain-steps" for s in b["subjects"]) for b in RBAC if b["kind"] == "RoleBinding")


def test_workers_may_upgrade_every_kind_the_serving_chart_renders_and_nothing_else():
    deployer = role("retrain-serving-deployer")
    assert deployer["metadata"]["namespace"] == settings({}).serving.namespace
    kinds = set()
    for values in ["", *sorted(str(p) for p in (ROOT / "charts" / "serving" / "ci").glob("*.yaml"))]:
        kinds |= {d["kind"] for d in render("charts/serving", *(["-f", values] if values else []))}
    for kind in kinds:
        group, resource = RESOURCE_OF_KIND[kind]
        assert {"get", "create", "delete"} <= allowed(deployer["rules"], group, resource), kind
    assert {"create", "update", "delete"} <= allowed(deployer["rules"], "", "secrets"), "Helm's release records"
    every = {(g, r) for rule in deployer["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert not any(r in ("clusterroles", "roles", "rolebindings", "*") for _, r in every)


def test_the_bindings_name_the_service_accounts_the_values_create():
    worker = VALUES["workers"]["serviceAccount"]["name"]
    triggerer = VALUES["triggerer"]["serviceAccount"]["name"]
    subjects = {b["roleRef"]["name"]: {s["name"] for s in b["subjects"]} for b in RBAC if b["kind"] == "RoleBinding"}
    assert subjects["retrain-step-launcher"] == {worker, triggerer}
    assert subjects["retrain-serving-deployer"] == {worker}


def test_airflow_values_configure_the_kubernetes_backend_from_the_image():
    assert VALUES["executor"] in ("KubernetesExecutor", "CeleryExecutor")
    assert VALUES["images"]["airflow"]["repository"].endswith("/airflow")
    env = {e["name"]: e["value"] for e in VALUES["env"]}
    assert env["RETRAIN_BACKEND"] == "kubernetes" and env["RETRAIN_HELM_CHART"] == "/opt/airflow/charts/serving"
    sources = "".join(p.read_text() for p in (PLUGINS / "retraining").glob("*.py"))
    for name in env:
        assert f'"{name}"' in sources or f"'{name}'" in sources, f"{name} is read by nothing"
    (conn,) = VALUES["secret"]
    assert conn["envName"] == f"AIRFLOW_CONN_{store_connection.CONN_ID.upper()}", "credentials come from a Secret"
    dockerfile = (ROOT / "images" / "airflow" / "Dockerfile").read_text()
    assert "/opt/airflow/charts/serving" in dockerfile and "/usr/local/bin/helm" in dockerfile
    assert "COPY --chown=airflow:root dags /opt/airflow/dags" in dockerfile
