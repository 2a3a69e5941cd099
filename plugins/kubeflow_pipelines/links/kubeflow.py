"""KubeflowPipelinesRunLink: the "Kubeflow Run" button on the task, to the run's KFP UI page."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

RUN_URL_KEY = "kubeflow_run_url"


class KubeflowPipelinesRunLink(BaseOperatorLink):
    """The run URL the operator pushes to XCom as soon as the run is submitted.

    Airflow 3's API server (the UI's source) reads a link from XCom under the link's
    ``xcom_key``, which the task runner otherwise writes only when the task defers or ends; that
    key is the one the operator pushes, so the button works while the run is being polled.
    """

    name = "Kubeflow Run"

    @property
    def xcom_key(self) -> str:
        return RUN_URL_KEY

    def get_link(self, operator, *, ti_key) -> str:
        return XCom.get_value(ti_key=ti_key, key=RUN_URL_KEY) or ""
