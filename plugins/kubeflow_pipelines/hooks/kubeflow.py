"""KubeflowPipelinesHook: connection, auth and the REST calls the operator and trigger need."""

from __future__ import annotations

import enum
import hashlib
import json
import os
import tempfile
import time
from functools import cached_property
from typing import Any

from airflow.sdk.bases.hook import BaseHook

DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
AUTH_TYPES = ("none", "token", "sa_token_file", "cookie")


class KubeflowRunState(str, enum.Enum):
    """``V2beta1RuntimeState`` values. CANCELED is terminal (kfp's own client forgets it, #14473)."""

    UNSPECIFIED = "RUNTIME_STATE_UNSPECIFIED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"
    PAUSED = "PAUSED"

    @classmethod
    def terminal_states(cls) -> frozenset[KubeflowRunState]:
        return frozenset({cls.SUCCEEDED, cls.SKIPPED, cls.FAILED, cls.CANCELED})

    @classmethod
    def failed_states(cls) -> frozenset[KubeflowRunState]:
        return frozenset({cls.FAILED, cls.CANCELED})

    def is_terminal(self) -> bool:
        return self in self.terminal_states()


class KubeflowPipelinesError(Exception):
    """A KFP API call failed; the message carries the HTTP status and KFP's message."""


class KubeflowPipelinesHook(BaseHook):
    """Interact with a self-hosted Kubeflow Pipelines API server (v2beta1 REST).

    Connection (type ``kubeflow_pipelines``): host = KFP endpoint (``https://kfp.example.com`` or
    ``http://ml-pipeline-ui.kubeflow``), password = bearer token or session cookie, extra:
    ``{"auth_type": "none|token|sa_token_file|cookie", "namespace": "...", "sa_token_path": "..."}``.
    ``sa_token_file`` reads a projected service-account token (``KF_PIPELINES_SA_TOKEN_PATH``)
    and re-reads it when the server answers 401.
    """

    conn_name_attr = "kfp_conn_id"
    default_conn_name = "kubeflow_default"
    conn_type = "kubeflow_pipelines"
    hook_name = "Kubeflow Pipelines"
    retries = 3
    retry_delay = 0.5

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["port", "login"],
            "relabeling": {"host": "KFP endpoint", "password": "Token or session cookie", "schema": "Namespace"},
            "placeholders": {
                "host": "https://kubeflow.example.com/pipeline",
                "extra": json.dumps({"auth_type": "sa_token_file", "namespace": "kubeflow-user"}),
            },
        }

    def __init__(self, kfp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kfp_conn_id = kfp_conn_id

    @cached_property
    def connection(self):
        return self.get_connection(self.kfp_conn_id)

    @cached_property
    def extra(self) -> dict:
        return self.connection.extra_dejson

    @property
    def host(self) -> str:
        host = self.connection.host or ""
        if "://" not in host:
            host = f"http://{host}"
        if self.connection.port:
            host = f"{host}:{self.connection.port}"
        return host.rstrip("/")

    @property
    def namespace(self) -> str | None:
        return self.extra.get("namespace") or None

    @property
    def auth_type(self) -> str:
        auth = self.extra.get("auth_type", "token" if self.connection.password else "none")
        if auth not in AUTH_TYPES:
            raise ValueError(f"auth_type must be one of {AUTH_TYPES}, got {auth!r} in connection {self.kfp_conn_id}")
        return auth

    def run_url(self, run_id: str) -> str:
        """The run's page in the KFP UI."""
        return f"{self.host}/#/runs/details/{run_id}"

    # -- client and auth ------------------------------------------------------------------
    def _read_sa_token(self) -> str:
        path = self.extra.get("sa_token_path") or os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", DEFAULT_SA_TOKEN_PATH)
        with open(path) as handle:
            return handle.read().strip()

    def _authenticate(self, client) -> None:
        auth = self.auth_type
        if auth == "token":
            client.set_default_header("Authorization", f"Bearer {self.connection.password}")
        elif auth == "sa_token_file":
            client.set_default_header("Authorization", f"Bearer {self._read_sa_token()}")
        elif auth == "cookie":
            client.cookie = self.connection.password or self.extra.get("cookie")

    @cached_property
    def api_client(self):
        import kfp_server_api

        configuration = kfp_server_api.Configuration(host=self.host)
        client = kfp_server_api.ApiClient(configuration)
        self._authenticate(client)
        return client

    def _call(self, api: str, method: str, *args, **kwargs):
        """Call ``kfp_server_api.<api>(client).<method>``: retry 5xx, re-authenticate once on 401."""
        import kfp_server_api
        from kfp_server_api.exceptions import ApiException

        reauthenticated = False
        for attempt in range(self.retries + 1):
            try:
                return getattr(getattr(kfp_server_api, api)(self.api_client), method)(*args, **kwargs)
            except ApiException as err:
                if err.status == 401 and self.auth_type == "sa_token_file" and not reauthenticated:
                    self.log.info("KFP answered 401; re-reading the service-account token")
                    self._authenticate(self.api_client)
                    reauthenticated = True
                    continue
                if err.status >= 500 and attempt < self.retries:
                    delay = self.retry_delay * 2**attempt
                    self.log.warning("KFP %s answered %s; retrying in %.1f s", method, err.status, delay)
                    time.sleep(delay)
                    continue
                raise KubeflowPipelinesError(f"KFP {method} failed: HTTP {err.status}: {err.body or err.reason}") from None
            except OSError as err:  # connection refused, DNS, TLS
                if attempt < self.retries:
                    time.sleep(self.retry_delay * 2**attempt)
                    continue
                raise KubeflowPipelinesError(f"KFP {method} failed: cannot reach {self.host}: {err}") from None
        raise KubeflowPipelinesError(f"KFP {method} failed after re-authentication")

    # -- pipelines ------------------------------------------------------------------------
    def upload_pipeline(self, package_path: str, name: str) -> tuple[str, str]:
        """Upload a compiled pipeline as ``name``; idempotent by name + content hash.

        Versions are named ``<name>-<sha256[:12]>``: an existing version of the same content is
        reused, otherwise a new version (and the pipeline, if new) is uploaded. Returns
        ``(pipeline_id, pipeline_version_id)``.
        """
        with open(package_path, "rb") as handle:
            content = handle.read()
        version_name = f"{name}-{hashlib.sha256(content).hexdigest()[:12]}"
        pipeline = self._find_pipeline(name)
        if pipeline is None:
            pipeline = self._call("PipelineUploadServiceApi", "upload_pipeline", package_path, name=name,
                                  namespace=self.namespace)
        versions = self._call("PipelineServiceApi", "pipeline_service_list_pipeline_versions", pipeline.pipeline_id,
                              page_size=100)
        for version in versions.pipeline_versions or []:
            if version.display_name == version_name:
                return pipeline.pipeline_id, version.pipeline_version_id
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{version_name}.yaml")
            with open(path, "wb") as handle:
                handle.write(content)
            version = self._call("PipelineUploadServiceApi", "upload_pipeline_version", path, name=version_name,
                                 pipelineid=pipeline.pipeline_id)
        return pipeline.pipeline_id, version.pipeline_version_id

    def _find_pipeline(self, name: str):
        try:
            return self._call("PipelineServiceApi", "pipeline_service_get_pipeline_by_name", name,
                              namespace=self.namespace)
        except KubeflowPipelinesError as err:
            if "HTTP 404" in str(err):
                return None
            raise

    # -- experiments and runs -------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> str:
        """The id of the experiment called ``name`` in the connection's namespace, created if missing."""
        import kfp_server_api

        predicate = {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]}
        found = self._call("ExperimentServiceApi", "experiment_service_list_experiments",
                           filter=json.dumps(predicate), namespace=self.namespace, page_size=1)
        if found.experiments:
            return found.experiments[0].experiment_id
        body = kfp_server_api.V2beta1Experiment(display_name=name, namespace=self.namespace)
        return self._call("ExperimentServiceApi", "experiment_service_create_experiment", body).experiment_id

    def create_run(
        self,
        *,
        run_name: str,
        experiment_id: str,
        params: dict | None = None,
        pipeline_id: str | None = None,
        pipeline_version_id: str | None = None,
        pipeline_spec: dict | None = None,
        service_account: str | None = None,
    ):
        """Start a run of an uploaded pipeline version, or of an inline compiled ``pipeline_spec``."""
        import kfp_server_api

        if not pipeline_spec and not (pipeline_id and pipeline_version_id):
            raise ValueError("create_run needs a pipeline_spec or a pipeline_id and pipeline_version_id")
        run = kfp_server_api.V2beta1Run(
            display_name=run_name,
            experiment_id=experiment_id,
            pipeline_spec=pipeline_spec,
            pipeline_version_reference=None if pipeline_spec else kfp_server_api.V2beta1PipelineVersionReference(
                pipeline_id=pipeline_id, pipeline_version_id=pipeline_version_id
            ),
            runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=params or {}),
            service_account=service_account,
        )
        return self._call("RunServiceApi", "run_service_create_run", run)

    def get_run(self, run_id: str):
        return self._call("RunServiceApi", "run_service_get_run", run_id)

    def get_run_state(self, run_id: str) -> tuple[KubeflowRunState, str]:
        """The run's state and its error message (empty when none)."""
        run = self.get_run(run_id)
        state = KubeflowRunState(run.state or KubeflowRunState.UNSPECIFIED.value)
        message = (run.error.message if run.error and run.error.message else "") or ""
        return state, message

    def terminate_run(self, run_id: str) -> None:
        self._call("RunServiceApi", "run_service_terminate_run", run_id)

    def list_runs(self, experiment_id: str | None = None, page_size: int = 10) -> list:
        """Most recent runs first."""
        response = self._call("RunServiceApi", "run_service_list_runs", experiment_id=experiment_id,
                              namespace=self.namespace, page_size=page_size, sort_by="created_at desc")
        return response.runs or []
