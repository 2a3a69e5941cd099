"""KubeflowPipelinesRunOperator: submit a KFP run, wait (polling or deferred), return its outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from kubeflow_pipelines.hooks.kubeflow import KubeflowPipelinesHook, KubeflowRunState
from kubeflow_pipelines.links.kubeflow import RUN_URL_KEY, KubeflowPipelinesRunLink
from kubeflow_pipelines.triggers.kubeflow import KubeflowPipelinesRunTrigger


class KubeflowPipelinesRunFailed(Exception):
    """The KFP run ended FAILED or CANCELED, timed out, or could not be watched."""


class KubeflowPipelinesRunOperator(BaseOperator):
    """Run a Kubeflow pipeline and wait for it.

    :param pipeline_package: path of a compiled pipeline YAML (templated); uploaded as
        ``pipeline_name`` (idempotent by content) when that is set, else submitted inline.
    :param pipeline_id: / :param pipeline_version_id: an already uploaded pipeline version.
    :param pipeline_params: pipeline parameters (templated; ``params`` is Airflow's own).
    :param experiment: experiment name (created if missing).
    :param run_name: run display name (templated; default ``<dag_id>-<run_id>``).
    :param enable_caching: override every task's caching (None keeps the compiled setting).
    :param images: ``{name: image}``: every executor image whose repository ends in ``/<name>`` is
        replaced at submission (the compiled tag is a placeholder; the deployment's images win).
    :param node_selector: labels that replace the compiled ``nodeSelector`` of every executor that has one
        (the compiled labels are a placeholder, like the images; the deployment's GPU nodes win).
    :param outputs_uri: artifact-store URI of a JSON the pipeline writes; its content is returned.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param timeout_seconds: fail if the run has not ended by then (and terminate it).
    """

    template_fields: Sequence[str] = ("pipeline_package", "pipeline_params", "run_name", "experiment", "outputs_uri")
    template_fields_renderers = {"pipeline_params": "json"}
    operator_extra_links = (KubeflowPipelinesRunLink(),)
    ui_color = "#cde4fb"

    def __init__(
        self,
        *,
        kfp_conn_id: str = KubeflowPipelinesHook.default_conn_name,
        pipeline_package: str | None = None,
        pipeline_name: str | None = None,
        pipeline_id: str | None = None,
        pipeline_version_id: str | None = None,
        pipeline_params: dict | None = None,
        experiment: str = "Default",
        run_name: str | None = None,
        enable_caching: bool | None = None,
        images: dict[str, str] | None = None,
        node_selector: dict[str, str] | None = None,
        service_account: str | None = None,
        outputs_uri: str | None = None,
        poll_interval: float = 15.0,
        timeout_seconds: float = 6 * 3600,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not pipeline_package and not (pipeline_id and pipeline_version_id):
            raise ValueError("pass pipeline_package, or pipeline_id and pipeline_version_id")
        self.kfp_conn_id, self.pipeline_package, self.pipeline_name = kfp_conn_id, pipeline_package, pipeline_name
        self.pipeline_id, self.pipeline_version_id = pipeline_id, pipeline_version_id
        self.pipeline_params, self.experiment, self.run_name = pipeline_params or {}, experiment, run_name
        self.enable_caching, self.service_account, self.outputs_uri = enable_caching, service_account, outputs_uri
        self.images, self.node_selector = images or {}, node_selector or {}
        self.poll_interval, self.timeout_seconds, self.deferrable = poll_interval, timeout_seconds, deferrable
        self.kfp_run_id: str | None = None

    @cached_property
    def hook(self) -> KubeflowPipelinesHook:
        return KubeflowPipelinesHook(kfp_conn_id=self.kfp_conn_id)

    def _documents(self) -> list[dict]:
        """The compiled pipeline (spec, then platform spec if any) with caching and images applied."""
        import yaml

        with open(self.pipeline_package) as handle:
            documents = [doc for doc in yaml.safe_load_all(handle) if doc]
        spec = documents[0]
        if self.enable_caching is not None:
            for component in _dag_tasks(spec):
                component.setdefault("cachingOptions", {})["enableCache"] = self.enable_caching
        for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
            container = executor.get("container", {})
            repository = container.get("image", "").rsplit(":", 1)[0]
            for name, image in self.images.items():
                if repository.endswith(f"/{name}"):
                    container["image"] = image
        if self.node_selector:
            for platform in documents[1:]:
                executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
                for executor in executors.get("executors", {}).values():
                    if "nodeSelector" in executor:
                        executor["nodeSelector"] = {"labels": dict(self.node_selector)}
        return documents

    def _pipeline_spec(self) -> dict:
        spec, *platform = self._documents()
        if platform:
            return {"pipeline_spec": spec, "platform_spec": platform[0]}
        return spec

    def _upload(self) -> tuple[str, str]:
        """Upload the package as it will run (images applied): one pipeline version per content."""
        import tempfile

        import yaml

        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/{self.pipeline_name}.yaml"
            with open(path, "w") as handle:
                yaml.safe_dump_all(self._documents(), handle, sort_keys=True)
            return self.hook.upload_pipeline(path, self.pipeline_name)

    def execute(self, context) -> dict[str, Any]:
        experiment_id = self.hook.get_or_create_experiment(self.experiment)
        run_name = self.run_name or f"{context['dag'].dag_id}-{context['run_id']}"
        submit: dict[str, Any] = {}
        if self.pipeline_package and self.pipeline_name and self.enable_caching is None:
            submit["pipeline_id"], submit["pipeline_version_id"] = self._upload()
        elif self.pipeline_package:
            submit["pipeline_spec"] = self._pipeline_spec()
        else:
            submit = {"pipeline_id": self.pipeline_id, "pipeline_version_id": self.pipeline_version_id}
        run = self.hook.create_run(run_name=run_name, experiment_id=experiment_id, params=self.pipeline_params,
                                   service_account=self.service_account, **submit)
        self.kfp_run_id = run.run_id
        url = self.hook.run_url(run.run_id)
        # before waiting, under the link's own key: the UI shows the link while the run is polled
        context["ti"].xcom_push(key=RUN_URL_KEY, value=url)
        self.log.info("Started KFP run %s: %s", run.run_id, url)
        end_time = time.time() + self.timeout_seconds
        if self.deferrable:
            self.defer(
                trigger=KubeflowPipelinesRunTrigger(run_id=run.run_id, kfp_conn_id=self.kfp_conn_id,
                                                    end_time=end_time, poll_interval=self.poll_interval),
                method_name="execute_complete",
            )
        while True:
            state, message = self.hook.get_run_state(run.run_id)
            self.log.info("KFP run %s is %s", run.run_id, state.value)
            if state.is_terminal():
                status = {KubeflowRunState.FAILED: "failed", KubeflowRunState.CANCELED: "canceled"}.get(state, "success")
                return self.execute_complete(context, {"status": status, "run_id": run.run_id, "state": state.value,
                                                       "message": message})
            if time.time() >= end_time:
                return self.execute_complete(context, {"status": "timeout", "run_id": run.run_id,
                                                       "state": state.value, "message": "timed out"})
            time.sleep(self.poll_interval)

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the final event into the task's return value, or a clear failure."""
        run_id, status = event.get("run_id"), event.get("status")
        self.kfp_run_id = run_id
        if status == "timeout":
            self.log.warning("Terminating KFP run %s after the timeout", run_id)
            try:
                self.hook.terminate_run(run_id)
            except Exception:  # the timeout is what the task reports; a failed terminate is logged
                self.log.exception("Could not terminate KFP run %s", run_id)
        if status != "success":
            raise KubeflowPipelinesRunFailed(
                f"KFP run {run_id} {status}: {event.get('message') or event.get('state')} ({self.hook.run_url(run_id)})"
            )
        result = {"run_id": run_id, "state": event.get("state"), "run_url": self.hook.run_url(run_id)}
        if self.outputs_uri:
            from retrain_steps import artifacts

            result["outputs"] = artifacts.read_json(self.outputs_uri)
        return result

    def on_kill(self) -> None:
        if self.kfp_run_id:
            self.log.info("Terminating KFP run %s", self.kfp_run_id)
            self.hook.terminate_run(self.kfp_run_id)


def _dag_tasks(spec: dict) -> list[dict]:
    """Every task of the pipeline spec, in the root DAG and in sub-DAG components."""
    tasks = list(spec.get("root", {}).get("dag", {}).get("tasks", {}).values())
    for component in spec.get("components", {}).values():
        tasks += list(component.get("dag", {}).get("tasks", {}).values())
    return tasks
