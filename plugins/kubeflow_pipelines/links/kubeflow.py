"""KubeflowPipelinesRunLink: the "Kubeflow Run" button on the task, to the run's KFP UI page."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

RUN_URL_KEY = "kubeflow_run_url"


class KubeflowPipelinesRunLink(BaseOperatorLink):
    """Reads the run URL the operator pushed to XCom before waiting (works while deferred or failed)."""

    name = "Kubeflow Run"

    def get_link(self, operator, *, ti_key) -> str:
        return XCom.get_value(ti_key=ti_key, key=RUN_URL_KEY) or ""
