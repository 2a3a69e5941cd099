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
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

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

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeflowPipelinesConfigError(AirflowFailException):
    """The connection is missing or misconfigured: failing at once, a retry cannot fix it."""


class KubeflowPipelinesHook(BaseHook):
    """Interact with a self-hosted Kubeflow Pipelines API server (v2beta1 REST).

    Connection (type ``kubeflow_pipelines``): host = KFP endpoint (``https://kfp.example.com`` or
    ``http://ml-pipeline-ui.kubeflow``), password = bearer token or session cookie, extra:
    ``{"auth_type": "none|token|sa_token_file|cookie", "namespace": "...", "sa_token_path": "...",
    "ui_host": "https://kubeflow.example.com/pipeline", "timeout": 30}``. ``sa_token_file`` reads a
    projected service-account token (``KF_PIPELINES_SA_TOKEN_PATH``) and re-reads it on 401.
    ``ui_host`` is where users open runs (the API host is often an in-cluster address), as the
    official client's ``ui_host``; ``timeout`` bounds every call (seconds, default 30).

    Only idempotent calls are retried on 5xx and connection errors; ``create_run`` is
    deduplicated by its run name instead (a lost answer never starts a second run).
    """

    conn_name_attr = "kfp_conn_id"
    default_conn_name = "kubeflow_default"
    conn_type = "kubeflow_pipelines"
    hook_name = "Kubeflow Pipelines"
    retries = 3
    retry_delay = 0.5
    default_timeout = 30.0

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form as ``get_provider_info`` declares it (Airflow < 3.2 reads this method)."""
        from kubeflow_pipelines.get_provider_info import UI_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    def __init__(self, kfp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kfp_conn_id = kfp_conn_id

    @cached_property
    def connection(self):
        try:
            return self.get_connection(self.kfp_conn_id)
        except AirflowNotFoundException:
            raise KubeflowPipelinesConfigError(
                f"the Airflow connection {self.kfp_conn_id!r} does not exist: create it in Admin → Connections "
                "(type 'Kubeflow Pipelines', host = the KFP endpoint, e.g. https://kubeflow.example.com/pipeline) "
                f"or set AIRFLOW_CONN_{self.kfp_conn_id.upper()}"
            ) from None

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
            raise KubeflowPipelinesConfigError(
                f"auth_type must be one of {AUTH_TYPES}, got {auth!r} in the extra of connection {self.kfp_conn_id!r}")
        return auth

    @property
    def ui_host(self) -> str:
        """Where users open the KFP UI: the ``ui_host`` extra, else the API host."""
        return (self.extra.get("ui_host") or self.host).rstrip("/")

    @property
    def timeout(self) -> float:
        return float(self.extra.get("timeout") or self.default_timeout)

    def run_url(self, run_id: str) -> str:
        """The run's page in the KFP UI."""
        return f"{self.ui_host}/#/runs/details/{run_id}"

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
        configuration.retries = 0  # urllib3 must not retry behind our back (POSTs are not idempotent)
        client = kfp_server_api.ApiClient(configuration)
        self._authenticate(client)
        return client

    def _call(self, api: str, method: str, *args, idempotent: bool = True, **kwargs):
        """Call ``kfp_server_api.<api>(client).<method>`` with a timeout; re-authenticate once on 401.

        5xx answers and connection errors are retried only for ``idempotent`` calls: a POST whose
        answer was lost may have taken effect, so it is never sent twice from here.
        """
        import kfp_server_api
        from kfp_server_api.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError  # timeouts, refused connections

        # (connect, read): kfp_server_api ignores a float timeout, it honours only an int or a pair
        kwargs.setdefault("_request_timeout", (self.timeout, self.timeout))
        reauthenticated = False
        for attempt in range(self.retries + 1):
            retry = idempotent and attempt < self.retries
            try:
                return getattr(getattr(kfp_server_api, api)(self.api_client), method)(*args, **kwargs)
            except ApiException as err:
                if err.status == 401 and self.auth_type == "sa_token_file" and not reauthenticated:
                    self.log.info("KFP answered 401; re-reading the service-account token")
                    self._authenticate(self.api_client)
                    reauthenticated = True
                    continue
                if err.status >= 500 and retry:
                    delay = self.retry_delay * 2**attempt
                    self.log.warning("KFP %s answered %s; retrying in %.1f s", method, err.status, delay)
                    time.sleep(delay)
                    continue
                raise KubeflowPipelinesError(
                    f"KFP {method} failed: HTTP {err.status}: {err.body or err.reason}", status=err.status
                ) from None
            except (OSError, TransportError) as err:  # refused, DNS, TLS, timeout
                if retry:
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
            try:
                pipeline = self._call("PipelineUploadServiceApi", "upload_pipeline", package_path, name=name,
                                      namespace=self.namespace, idempotent=False)
            except KubeflowPipelinesError:
                pipeline = self._find_pipeline(name)
                if pipeline is None:
                    raise
        existing = self._find_version(pipeline.pipeline_id, version_name)
        if existing is not None:
            return pipeline.pipeline_id, existing.pipeline_version_id
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{version_name}.yaml")
            with open(path, "wb") as handle:
                handle.write(content)
            try:
                version = self._call("PipelineUploadServiceApi", "upload_pipeline_version", path, name=version_name,
                                     pipelineid=pipeline.pipeline_id, idempotent=False)
            except KubeflowPipelinesError:
                # the upload may have landed although its answer was lost (or a concurrent run uploaded it)
                version = self._find_version(pipeline.pipeline_id, version_name)
                if version is None:
                    raise
        return pipeline.pipeline_id, version.pipeline_version_id

    def _find_version(self, pipeline_id: str, version_name: str):
        """The version of ``pipeline_id`` named ``version_name`` (a server-side filter: any number of versions)."""
        predicate = {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": version_name}]}
        found = self._call("PipelineServiceApi", "pipeline_service_list_pipeline_versions", pipeline_id,
                           filter=json.dumps(predicate), page_size=1)
        matches = [v for v in found.pipeline_versions or [] if v.display_name == version_name]
        return matches[0] if matches else None

    def _find_pipeline(self, name: str):
        try:
            return self._call("PipelineServiceApi", "pipeline_service_get_pipeline_by_name", name,
                              namespace=self.namespace)
        except KubeflowPipelinesError as err:
            if err.status == 404:
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
        try:
            return self._call("ExperimentServiceApi", "experiment_service_create_experiment", body,
                              idempotent=False).experiment_id
        except KubeflowPipelinesError:
            found = self._call("ExperimentServiceApi", "experiment_service_list_experiments",
                               filter=json.dumps(predicate), namespace=self.namespace, page_size=1)
            if not found.experiments:
                raise
            return found.experiments[0].experiment_id

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
        """Start a run of an uploaded pipeline version, or of an inline compiled ``pipeline_spec``.

        ``run_name`` is the run key: when the answer to the POST is lost (5xx, timeout), the run of
        that name in the experiment, if the server created it, is returned instead of a second run.
        """
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
        for attempt in range(self.retries + 1):
            try:
                return self._call("RunServiceApi", "run_service_create_run", run, idempotent=False)
            except KubeflowPipelinesError as err:
                if err.status is not None and err.status < 500:
                    raise
                existing = self.find_run(run_name, experiment_id)
                if existing is not None:
                    self.log.warning("KFP create_run failed (%s) but run %s exists: using it", err, existing.run_id)
                    return existing
                if attempt == self.retries:
                    raise
                time.sleep(self.retry_delay * 2**attempt)
        raise AssertionError("unreachable")

    def find_run(self, run_name: str, experiment_id: str):
        """The run called ``run_name`` in the experiment, or None."""
        predicate = {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": run_name}]}
        found = self._call("RunServiceApi", "run_service_list_runs", experiment_id=experiment_id,
                           namespace=self.namespace, filter=json.dumps(predicate), page_size=1)
        matches = [r for r in found.runs or [] if r.display_name == run_name]
        return matches[0] if matches else None

    def get_run(self, run_id: str):
        return self._call("RunServiceApi", "run_service_get_run", run_id)

    def get_run_state(self, run_id: str) -> tuple[KubeflowRunState, str]:
        """The run's state and its error message (empty when none)."""
        run = self.get_run(run_id)
        state = KubeflowRunState(run.state or KubeflowRunState.UNSPECIFIED.value)
        message = (run.error.message if run.error and run.error.message else "") or ""
        return state, message

    def terminate_run(self, run_id: str) -> bool:
        """Terminate a run; False (and no error) when it had already ended."""
        state, _ = self.get_run_state(run_id)
        if state.is_terminal():
            self.log.info("KFP run %s already ended (%s); nothing to terminate", run_id, state.value)
            return False
        try:
            self._call("RunServiceApi", "run_service_terminate_run", run_id)
        except KubeflowPipelinesError:
            state, _ = self.get_run_state(run_id)
            if state.is_terminal():  # it ended between the two calls
                return False
            raise
        return True

    def list_runs(self, experiment_id: str | None = None, page_size: int = 10) -> list:
        """Most recent runs first."""
        response = self._call("RunServiceApi", "run_service_list_runs", experiment_id=experiment_id,
                              namespace=self.namespace, page_size=page_size, sort_by="created_at desc")
        return response.runs or []
