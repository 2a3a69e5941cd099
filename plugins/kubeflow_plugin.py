"""Registers the Kubeflow Pipelines extra link ("Kubeflow Run") with Airflow."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from kubeflow_pipelines.links.kubeflow import KubeflowPipelinesRunLink


class KubeflowPipelinesPlugin(AirflowPlugin):
    name = "kubeflow_pipelines"
    operator_extra_links = [KubeflowPipelinesRunLink()]
