"""Provider metadata: Airflow reads it through the ``apache_airflow_provider`` entry point (plugins/pyproject.toml)."""

from __future__ import annotations

import json

#: the connection form (Admin → Connections → Kubeflow Pipelines): labels, hints, hidden fields
UI_FIELD_BEHAVIOUR = {
    "hidden-fields": ["port", "login"],
    "relabeling": {"host": "KFP endpoint", "password": "Token or session cookie", "schema": "Namespace"},
    "placeholders": {
        "host": "https://kubeflow.example.com/pipeline",
        "extra": json.dumps({"auth_type": "sa_token_file", "namespace": "kubeflow-user",
                             "ui_host": "https://kubeflow.example.com/pipeline"}),
    },
}


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-kubeflow-pipelines",
        "name": "Kubeflow Pipelines",
        "description": "Run Kubeflow Pipelines from Airflow: hook (KFP REST API), deferrable run operator, "
                       "trigger and the run's extra link.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": "Kubeflow Pipelines", "external-doc-url": "https://www.kubeflow.org/docs/components/pipelines/",
                          "tags": ["software"]}],
        "operators": [{"integration-name": "Kubeflow Pipelines",
                       "python-modules": ["kubeflow_pipelines.operators.kubeflow"]}],
        "hooks": [{"integration-name": "Kubeflow Pipelines", "python-modules": ["kubeflow_pipelines.hooks.kubeflow"]}],
        "triggers": [{"integration-name": "Kubeflow Pipelines",
                      "python-modules": ["kubeflow_pipelines.triggers.kubeflow"]}],
        "connection-types": [{"connection-type": "kubeflow_pipelines", "hook-name": "Kubeflow Pipelines",
                              "hook-class-name": "kubeflow_pipelines.hooks.kubeflow.KubeflowPipelinesHook",
                              "ui-field-behaviour": UI_FIELD_BEHAVIOUR}],
    }
