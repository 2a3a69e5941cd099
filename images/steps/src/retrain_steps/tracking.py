"""``track``: a retraining run in MLflow, when ``MLFLOW_TRACKING_URI`` is set (off when it is not).

What it writes, in the experiment named after the model (``--model-name``, e.g. ``digits``):

* the Airflow run is one MLflow run (named after the run id; tags ``airflow.run_id``, ``airflow.dag_id``,
  ``dataset.version``, ``dataset.uri``; the dataset as an input; the production model's test accuracy on
  this run's test split; the gate's decision once the registry has the run's record);
* each candidate is a child run (tag ``mlflow.parentRunId``): its params (framework, learning rate,
  epochs, batch size, seed, patience, augment, warm start), its per-epoch history (each number of an
  epoch: ``loss``, ``val_loss``, ``val_accuracy``, ``samples_per_s``…, with ``step`` = epoch), its test
  metrics, ``curve.png``, ``confusion.png`` and both metrics files as artifacts, and the registry
  version its weights would be (tag ``retrain.version``);
* with ``--registry``: each version of this run that the registry holds (it has a card) becomes a model
  version of the registered model ``<model name>``, registered from ``runs:/<child run>/model`` after the
  version's files (verified by the sha256 its card records) were logged there; and the alias
  ``champion`` is set to the model version of the registry's production version (removed, with a
  warning, when production has no model version in MLflow). :func:`set_champion` does the same for one
  version, for the promotion and rollback paths.

**MLflow's REST API with the standard library, not the mlflow client.** ``mlflow-skinny`` would add
some twenty packages (databricks-sdk, opentelemetry, fastapi, pydantic, protobuf…) to every step image
and to the Airflow environment, whose pins it would have to share; the calls used here (experiments,
runs, batch logging, inputs, the artifact proxy, the model registry and its aliases) are MLflow's stable
``/api/2.0`` API, a few small JSON requests. Without a dependency, the same module sets the alias from
the Airflow side, from a pod, or from a Kubeflow component. Artifacts go where the run's artifact root
says: the server's artifact proxy (``mlflow-artifacts:``, what ``mlflow server`` gives by default), or
straight to ``s3://`` / ``file://`` through :mod:`retrain_steps.artifacts`, as the client would.

**Idempotent.** A retried task finds what it made before instead of making it again: runs by the tags
``retrain.run_key`` (a hash of the DAG and run ids) and ``retrain.candidate``, model versions by the tag
``retrain.version``. Metrics carry timestamps derived from the child run's start time, so logging them
again adds no point (MLflow keeps one row per key, step, timestamp and value); a child whose inputs were
logged completely (tag ``retrain.logged``) is not uploaded again. Nothing is retried inside a call: a
create whose answer was lost is found by the next try.

**Failures.** Tracking is a task of its own that nothing downstream waits for: the run is still gated,
packaged and deployed when MLflow is down, and the ``track`` task fails, visibly, where it happened.
A server that cannot be reached, times out or answers 5xx/429 is exit 1 (retried: a retry may help and
duplicates nothing); a bad ``MLFLOW_*`` setting or a request the server refuses (401/403, a deleted
experiment, a param logged before with another value) is exit 2, with a message naming the value or the
endpoint, and not retried. Logging a warning and carrying on would leave holes in the experiment that
nobody notices; failing the retraining itself would let a bookkeeping service stop deployments.

Settings (``MLflow``'s own names, read once by :meth:`TrackingSettings.from_environment`):
``MLFLOW_TRACKING_URI`` (``http(s)://host[:port][/prefix]``; unset or empty: tracking off),
``MLFLOW_TRACKING_TOKEN`` (bearer token) or ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``
(basic auth), ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (seconds per request, default 120).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from retrain_steps import artifacts, layout, manifest, registry

log = logging.getLogger(__name__)

URI_ENV = "MLFLOW_TRACKING_URI"
TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
CHAMPION = "champion"  #: the alias that follows the registry's production version
MODEL_ARTIFACTS = "model"  #: where a registered version's files are logged in its candidate's run

# Tags: what a retry searches by, and what a person reads
RUN_KEY = "retrain.run_key"  #: hash of the DAG and run ids (hex: no quoting in a search filter)
ROLE = "retrain.role"  #: "run" (the Airflow run) or "candidate"
CANDIDATE = "retrain.candidate"  #: the candidate's index
VERSION = "retrain.version"  #: a candidate's registry version (a run tag and a model-version tag)
LOGGED = "retrain.logged"  #: the manifest keys of the outputs a child run holds in full
PARENT = "mlflow.parentRunId"
AIRFLOW_RUN = "airflow.run_id"
AIRFLOW_DAG = "airflow.dag_id"

_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  #: MLflow's per-request limits of ``runs/log-batch``


class TrackingSettingError(ValueError):
    """An ``MLFLOW_*`` variable holds a value the steps cannot use (exit 2)."""


class TrackingRefused(ValueError):
    """The MLflow server refused a request (4xx); the message names the endpoint and its answer (exit 2)."""

    def __init__(self, message: str, error_code: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code


class TrackingUnavailable(artifacts.ArtifactUnavailable):
    """The MLflow server could not be reached, timed out or answered 5xx/429: a retry may help (exit 1)."""


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs are tracked and how to sign in; ``uri`` empty: tracking is off."""

    uri: str = ""
    token: str = ""
    username: str = ""
    password: str = ""
    timeout: float = 120.0

    @property
    def enabled(self) -> bool:
        return bool(self.uri)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TrackingSettings:
        """The ``MLFLOW_*`` variables, checked; a bad one raises :class:`TrackingSettingError` naming it."""
        environ = os.environ if environ is None else environ
        raw = environ.get(URI_ENV, "").strip()
        if not raw:
            return cls()
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TrackingSettingError(
                f"{URI_ENV}={_without_secrets(raw)!r}: the steps log to an MLflow tracking server over HTTP; "
                "expected http(s)://host[:port][/path] (a file, sqlite or databricks URI is not supported)")
        if parts.username is not None or parts.password is not None:
            raise TrackingSettingError(f"{URI_ENV}={_without_secrets(raw)!r} holds credentials: put them in "
                                       f"{USERNAME_ENV} and {PASSWORD_ENV} (or {TOKEN_ENV})")
        if parts.query or parts.fragment:
            raise TrackingSettingError(f"{URI_ENV}={raw!r}: expected no query or fragment")
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number in range)
        except ValueError:
            raise TrackingSettingError(f"{URI_ENV}={raw!r}: the port is not a number from 1 to 65535") from None
        username, password = environ.get(USERNAME_ENV, ""), environ.get(PASSWORD_ENV, "")
        if bool(username) != bool(password):
            raise TrackingSettingError(f"{USERNAME_ENV} and {PASSWORD_ENV} go together: set both or neither")
        timeout_raw = environ.get(TIMEOUT_ENV, "").strip()
        timeout = cls.timeout
        if timeout_raw:
            try:
                timeout = float(timeout_raw)
            except ValueError:
                timeout = math.nan
            if not 0 < timeout <= 3600:
                raise TrackingSettingError(f"{TIMEOUT_ENV}={timeout_raw!r}: expected seconds, more than 0 and at "
                                           "most 3600")
        return cls(uri=raw.rstrip("/"), token=environ.get(TOKEN_ENV, ""), username=username, password=password,
                   timeout=timeout)


def _without_secrets(uri: str) -> str:
    """``uri`` with any ``user:password@`` left out (for messages)."""
    return re.sub(r"//[^/@]*@", "//", uri)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is: following it would send the credentials elsewhere."""

    def redirect_request(self, *args, **kwargs) -> None:
        return None


class MlflowServer:
    """MLflow's REST API (``/api/2.0/mlflow/…``) and its artifact proxy, through ``urllib``."""

    def __init__(self, settings: TrackingSettings) -> None:
        if not settings.enabled:
            raise TrackingSettingError(f"{URI_ENV} is not set: tracking is off")
        self.settings, self.uri = settings, settings.uri
        self._opener = urllib.request.build_opener(_NoRedirects)

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        elif self.settings.username:
            pair = f"{self.settings.username}:{self.settings.password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers

    def request(self, method: str, url: str, data: bytes | None = None,
                content_type: str = "application/json") -> dict:
        """One request, its JSON answer (``{}`` when empty); :class:`TrackingRefused`, :class:`TrackingUnavailable`."""
        what = f"MLflow {method} {url.removeprefix(self.uri) or '/'} at {self.uri}"
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers(content_type))
        try:
            with self._opener.open(request, timeout=self.settings.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            detail, code = _error_detail(err)
            if err.code >= 500 or err.code in (408, 429):
                raise TrackingUnavailable(f"{what}: HTTP {err.code} {detail} (the server's trouble; retried)") from None
            if 300 <= err.code < 400:
                detail = f"redirect to {err.headers.get('Location')!r} (not followed: set {URI_ENV} to the final URL)"
            elif err.code in (401, 403):
                detail += f" (the credentials: {USERNAME_ENV} and {PASSWORD_ENV}, or {TOKEN_ENV})"
            raise TrackingRefused(f"{what}: HTTP {err.code} {detail}", code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise TrackingUnavailable(f"{what}: cannot reach the server: {getattr(err, 'reason', err)}") from None
        try:
            return json.loads(body) if body.strip() else {}
        except ValueError:
            raise TrackingRefused(f"{what}: the answer is not JSON (is {self.uri} an MLflow server?)") from None

    def api(self, method: str, endpoint: str, body: dict | None = None) -> dict:
        """``/api/2.0/mlflow/<endpoint>``: ``body`` as the query of a GET, else as JSON (a DELETE's too)."""
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}"
        if method == "GET":
            query = urllib.parse.urlencode(body or {})
            return self.request(method, f"{url}?{query}" if query else url)
        return self.request(method, url, json.dumps(body or {}).encode())

    def upload(self, artifact_root: str, path: str, data: bytes) -> None:
        """Write ``data`` as artifact ``path`` under a run's artifact root (the proxy, S3 or a shared disk)."""
        parts = urllib.parse.urlsplit(artifact_root)
        if parts.scheme == "mlflow-artifacts":  # mlflow-artifacts:/<exp>/<run>/artifacts, via the tracking server
            base = f"{urllib.parse.urlsplit(self.uri).scheme}://{parts.netloc}" if parts.netloc else self.uri
            url = f"{base}/api/2.0/mlflow-artifacts/artifacts/{parts.path.strip('/')}/{path}"
        elif parts.scheme in ("http", "https"):
            url = f"{artifact_root.rstrip('/')}/{path}"
        elif parts.scheme in ("s3", "file", ""):
            artifacts.write_bytes(artifacts.join(artifact_root, path), data)
            return
        else:
            raise TrackingRefused(f"run artifact root {artifact_root}: the steps cannot write to {parts.scheme}:// "
                                  "(let the server proxy artifacts: mlflow server --artifacts-destination …)")
        self.request("PUT", urllib.parse.quote(url, safe=":/"), data, "application/octet-stream")


def _error_detail(err: urllib.error.HTTPError) -> tuple[str, str]:
    """MLflow's ``error_code: message`` of an error answer (its first 300 characters), and the code."""
    try:
        answer = json.loads(err.read(65536))
        if answer.get("error_code"):
            return f"{answer['error_code']}: {str(answer.get('message', ''))[:300]}", str(answer["error_code"])
    except (ValueError, AttributeError, OSError):
        pass
    return str(err.reason)[:300], ""


# Experiments, runs and registered models, found before they are made


def experiment_id(server: MlflowServer, name: str) -> str:
    """The id of experiment ``name``, created when missing; a deleted one is refused naming it."""
    for _ in range(2):
        try:
            found = server.api("GET", "experiments/get-by-name", {"experiment_name": name})["experiment"]
        except TrackingRefused as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        else:
            if found.get("lifecycle_stage") == "deleted":
                raise TrackingRefused(f"experiment {name!r} is deleted in MLflow at {server.uri}: restore it "
                                      f"(mlflow experiments restore --experiment-id {found['experiment_id']}) or "
                                      "remove it for good (mlflow gc)")
            return found["experiment_id"]
        try:
            return server.api("POST", "experiments/create", {"name": name})["experiment_id"]
        except TrackingRefused as err:  # another writer made it between the two calls: read it again
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    raise TrackingRefused(f"experiment {name!r} at {server.uri} can be neither read nor created")


def _tag_filter(tags: Mapping[str, str]) -> str:
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())


def find_run(server: MlflowServer, experiment: str, tags: Mapping[str, str]) -> dict | None:
    """The oldest active run of ``experiment`` with these tags (values without quotes), or None."""
    found = server.api("POST", "runs/search", {
        "experiment_ids": [experiment], "filter": _tag_filter(tags), "run_view_type": "ACTIVE_ONLY",
        "max_results": 1, "order_by": ["attributes.start_time ASC"],
    })
    runs = found.get("runs") or []
    return runs[0] if runs else None


def ensure_run(server: MlflowServer, experiment: str, keys: Mapping[str, str], *, name: str,
               tags: Mapping[str, str] = {}) -> dict:  # noqa: B006 (read only)
    """The run with tags ``keys`` (found), or a new one with ``keys`` and ``tags``."""
    if found := find_run(server, experiment, keys):
        return found
    return server.api("POST", "runs/create", {
        "experiment_id": experiment, "run_name": name, "start_time": _now_ms(),
        "tags": [{"key": k, "value": v} for k, v in {**keys, **tags}.items()],
    })["run"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}


def log_batch(server: MlflowServer, run_id: str, *, metrics: list[dict] = (), params: Mapping = {},
              tags: Mapping = {}) -> None:  # noqa: B006 (read only)
    """``runs/log-batch`` in as many requests as MLflow's limits need."""
    entries = {"metrics": list(metrics),
               "params": [{"key": k, "value": str(v)} for k, v in params.items() if v is not None],
               "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]}
    while any(entries.values()):
        body = {"run_id": run_id}
        for kind, limit in _BATCH.items():
            body[kind], entries[kind] = entries[kind][:limit], entries[kind][limit:]
        server.api("POST", "runs/log-batch", body)


def _metric(key: str, value, step: int, timestamp: int) -> dict | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return {"key": key, "value": float(value), "step": step, "timestamp": timestamp}


def finish(server: MlflowServer, run: dict, status: str = "FINISHED") -> None:
    if run["info"].get("status") != status:
        server.api("POST", "runs/update", {"run_id": run["info"]["run_id"], "status": status, "end_time": _now_ms()})


# One retraining run


def run_key(run_id: str, dag_id: str = "") -> str:
    """The tag value that finds a run's MLflow runs again (two DAGs may use the same run id)."""
    return artifacts.sha256(json.dumps([dag_id, run_id]).encode())[:32]


def _dataset_input(card: layout.DatasetCard, name: str) -> dict:
    """A ``runs/log-inputs`` dataset: the canonical dataset's version as its digest, its source URI."""
    source = card.get("source", "")
    scheme = artifacts.StoreURI.parse(source).scheme if source else "local"
    profile = {k: card[k] for k in ("samples", "class_counts", "image_size", "channels") if k in card}
    return {"dataset": {"name": name, "digest": card["version"], "source_type": {"file": "local"}.get(scheme, scheme),
                        "source": json.dumps({"uri": source}), "profile": json.dumps(profile)},
            "tags": [{"key": "mlflow.data.context", "value": "training"}]}


def track_run(server: MlflowServer, *, model: str, run_id: str, dag_id: str, dataset: str,
              candidates: list[tuple[str, str]], baseline: str | None = None, registry_uri: str | None = None) -> dict:
    """Log one retraining run (its dataset folder, ``(train folder, evaluate folder)`` per candidate, the
    production model's evaluation) and, with ``registry_uri``, its registered versions and the champion."""
    experiment = experiment_id(server, model)
    key = run_key(run_id, dag_id)
    card: layout.DatasetCard = json.loads(manifest.read_verified(dataset, layout.DATASET_CARD))
    tags = {AIRFLOW_RUN: run_id, AIRFLOW_DAG: dag_id, "dataset.version": card["version"],
            "dataset.uri": card.get("source", ""), "dataset.sha256": card["sha256"]}
    parent = ensure_run(server, experiment, {RUN_KEY: key, ROLE: "run"}, name=run_id, tags=tags)
    parent_id = parent["info"]["run_id"]
    inputs = [_dataset_input(card, model)]
    server.api("POST", "runs/log-inputs", {"run_id": parent_id, "datasets": inputs})
    parent_metrics = []
    if baseline and artifacts.exists(layout.file_in(baseline, layout.MANIFEST)):
        production: layout.Evaluation = json.loads(manifest.read_verified(baseline, layout.METRICS))
        parent_metrics.append(_metric("production_test_accuracy", production.get("test_accuracy"), 0,
                                      parent["info"]["start_time"]))
    log_batch(server, parent_id, metrics=list(filter(None, parent_metrics)), tags=tags)
    children, versions = {}, {}
    for index, (train, evaluation) in enumerate(candidates):
        if not artifacts.exists(layout.file_in(train, layout.MANIFEST)):
            log.warning("track: candidate %d has no train output at %s (its train task failed): not tracked",
                        index, train)
            continue
        child = ensure_run(server, experiment, {RUN_KEY: key, ROLE: "candidate", CANDIDATE: str(index)},
                           name=f"{run_id} candidate {index}", tags={PARENT: parent_id, AIRFLOW_RUN: run_id})
        version = registry.model_version(train)
        children[str(index)] = versions[version] = track_candidate(server, child, train, evaluation, inputs, version)
    result = {"experiment_id": experiment, "run_id": parent_id, "run_url": run_url(server.uri, experiment, parent_id),
              "candidates": {i: c["info"]["run_id"] for i, c in children.items()}}
    if registry_uri:
        result.update(track_registry(server, model=model, run_id=run_id, registry_uri=registry_uri,
                                     parent_id=parent_id, children=versions))
    finish(server, parent)
    return result


def track_candidate(server: MlflowServer, child: dict, train: str, evaluation: str, inputs: list[dict],
                    version: str) -> dict:
    """Log a candidate's params, per-epoch history, test metrics and plots (an evaluation missing: the child run
    ends FAILED) and its registry ``version`` into its child run, once in full."""
    child_id, start = child["info"]["run_id"], int(child["info"]["start_time"])
    evaluated = artifacts.exists(layout.file_in(evaluation, layout.MANIFEST))
    evaluate_manifest = artifacts.read_json(layout.file_in(evaluation, layout.MANIFEST)) if evaluated else {}
    logged = json.dumps([artifacts.read_json(layout.file_in(train, layout.MANIFEST)).get("key"),
                         evaluate_manifest.get("key")])
    status = "FINISHED" if evaluated else "FAILED"
    if _tags_of(child).get(LOGGED) == logged:
        finish(server, child, status)
        return child
    metrics: layout.TrainMetrics = json.loads(manifest.read_verified(train, layout.METRICS))
    points = [_metric(name, value, int(epoch["epoch"]), start + int(epoch["epoch"]))  # every number of an epoch
              for epoch in metrics.get("history", []) for name, value in epoch.items() if name != "epoch"]
    points += [_metric("best_val_accuracy", metrics.get("val_accuracy"), 0, start),
               _metric("best_epoch", metrics.get("best_epoch"), 0, start)]
    files = {layout.TRACKED_TRAIN_METRICS: (train, layout.METRICS), layout.CURVE_PLOT: (train, layout.CURVE_PLOT)}
    if evaluated:
        test: layout.Evaluation = json.loads(manifest.read_verified(evaluation, layout.METRICS))
        points += [_metric(name, test.get(name), 0, start) for name in ("test_accuracy", "macro_f1")]
        files[layout.TRACKED_EVALUATION] = (evaluation, layout.METRICS)
        if layout.CONFUSION_PLOT in evaluate_manifest.get("outputs", {}):
            files[layout.CONFUSION_PLOT] = (evaluation, layout.CONFUSION_PLOT)
    server.api("POST", "runs/log-inputs", {"run_id": child_id, "datasets": inputs})
    log_batch(server, child_id, metrics=list(filter(None, points)), params=layout.card_params(metrics),
              tags={VERSION: version})
    for name, (folder, source) in files.items():
        server.upload(child["info"]["artifact_uri"], name, manifest.read_verified(folder, source))
    log_batch(server, child_id, tags={LOGGED: logged})
    finish(server, child, status)
    return child


def track_registry(server: MlflowServer, *, model: str, run_id: str, registry_uri: str, parent_id: str,
                   children: dict[str, dict]) -> dict:
    """The gate's decision on the parent run, this run's registered versions (``children``: the child run of
    each candidate's version) as model versions, the champion."""
    try:
        record = registry.run_record(registry_uri, run_id, model)
    except artifacts.ArtifactError:  # the run never reached its gate
        record = None
    if record and record.get("gate"):
        log_batch(server, parent_id, tags={"retrain.gate": "deploy" if record["gate"].get("deploy") else "keep",
                                           "retrain.gate_reason": str(record["gate"].get("reason", ""))[:4000],
                                           "retrain.best_candidate": str(record.get("best", ""))})
    versions = {}
    for version, child in children.items():
        if artifacts.exists(layout.card(registry_uri, version)):
            card = registry.card(registry_uri, version)
            if registry.model_of(card) == model:
                versions[version] = register_version(server, model, card, registry_uri, child)["version"]
    return {"model_versions": versions, "champion": follow_production(server, model, registry_uri),
            "registered_model_url": registered_model_url(server.uri, model)}


# The model registry


def ensure_registered_model(server: MlflowServer, name: str) -> None:
    try:
        server.api("POST", "registered-models/create", {"name": name})
    except TrackingRefused as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def find_model_version(server: MlflowServer, name: str, version: str) -> dict | None:
    """The model version of registered model ``name`` made from registry version ``version``, or None."""
    found = server.api("GET", "model-versions/search", {
        "filter": f"name = '{name}' and tags.`{VERSION}` = '{registry.check_version(version)}'",
        "max_results": 10, "order_by": "version_number ASC"}).get("model_versions") or []
    return found[0] if found else None


def register_version(server: MlflowServer, name: str, card: dict, registry_uri: str, child: dict) -> dict:
    """Registry version ``card`` as a model version of ``name`` (found when made before): its files, verified by
    the sha256 its card records, logged under ``model/`` of its candidate's run, registered from there."""
    if found := find_model_version(server, name, card["version"]):
        return found
    ensure_registered_model(server, name)
    for file in (card["file"], layout.MODEL_INFO, layout.OOD_STATS):
        if file not in card.get("files", {}):
            continue
        uri = layout.version_file(registry_uri, card["version"], file)
        data = artifacts.read_bytes(uri)
        artifacts.verify_sha256(uri, data, card["files"][file])
        server.upload(child["info"]["artifact_uri"], f"{MODEL_ARTIFACTS}/{file}", data)
    child_id = child["info"]["run_id"]
    tags = {VERSION: card["version"], "framework": card.get("framework", ""),
            "bento.uri": (card.get("bento") or {}).get("uri", "")}
    created = server.api("POST", "model-versions/create", {
        "name": name, "source": f"runs:/{child_id}/{MODEL_ARTIFACTS}", "run_id": child_id,
        "tags": [{"key": k, "value": str(v)} for k, v in tags.items() if v],
        "description": f"registry version {card['version']} (run {card.get('run_id') or '?'})"})["model_version"]
    log.info("track: registry version %s is model version %s of %s", card["version"], created["version"], name)
    return created


def set_champion(server: MlflowServer, name: str, version: str | None) -> str | None:
    """Point alias ``champion`` of ``name`` at the model version of registry version ``version``; return its
    number. None: no version, or one MLflow has no model version of (never tracked): the alias is removed,
    so it never names a model that is not in production."""
    found = find_model_version(server, name, version) if version else None
    if found is None:
        log.warning("track: %s has no model version in MLflow for %s; alias %s removed", name,
                    version or "(nothing in production)", CHAMPION)
        try:
            server.api("DELETE", "registered-models/alias", {"name": name, "alias": CHAMPION})
        except TrackingRefused as err:  # no such model or alias: nothing to remove
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        return None
    server.api("POST", "registered-models/alias", {"name": name, "alias": CHAMPION, "version": found["version"]})
    log.info("track: %s@%s is model version %s (registry version %s)", name, CHAMPION, found["version"], version)
    return found["version"]


def follow_production(server: MlflowServer, name: str, registry_uri: str) -> str | None:
    """:func:`set_champion` to the registry's production version of model ``name``."""
    return set_champion(server, name, registry.production_version(registry_uri, name))


def champion(settings: TrackingSettings, name: str, version: str | None) -> str | None:
    """:func:`set_champion` for callers with settings (a promotion, a rollback); nothing when tracking is off."""
    return set_champion(MlflowServer(settings), name, version) if settings.enabled else None


def run_url(uri: str, experiment: str, run_id: str) -> str:
    """A run's page in the MLflow UI."""
    return f"{uri}/#/experiments/{experiment}/runs/{run_id}"


def registered_model_url(uri: str, name: str) -> str:
    """A registered model's page in the MLflow UI (its versions and aliases)."""
    return f"{uri}/#/models/{urllib.parse.quote(name)}"


# The step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-name", required=True,
                        help="the model: the MLflow experiment and registered model of that name")
    parser.add_argument("--run-id", default=None, help="the Airflow run id (without it: only --registry's champion)")
    parser.add_argument("--dag-id", default="", help="the DAG of the run (two DAGs may use the same run id)")
    parser.add_argument("--dataset", default=None, help="the run's download output folder URI")
    parser.add_argument("--candidate", nargs=2, action="append", default=[], metavar=("TRAIN", "EVALUATION"),
                        help="a candidate's train and evaluate output folder URIs (repeatable; index = order)")
    parser.add_argument("--baseline", default=None,
                        help="the evaluate output folder of the production model on this run's test split")
    parser.add_argument("--registry", default=None,
                        help="registry URI: register this run's versions, point alias champion at production")


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> dict:
    settings = TrackingSettings.from_environment(environ)
    if not settings.enabled:
        log.info("track: %s is not set: nothing tracked", URI_ENV)
        return {"tracked": False, "reason": f"{URI_ENV} is not set"}
    registry.check_model_name(args.model_name)
    if args.run_id is not None:
        registry.check_run_id(args.run_id)
        if not args.dataset or not args.candidate:
            raise ValueError("--run-id needs --dataset and at least one --candidate")
    elif not args.registry:
        raise ValueError("give --run-id (with --dataset and --candidate) or --registry (the champion only)")
    server = MlflowServer(settings)
    if args.run_id is None:
        return {"tracked": True, "champion": follow_production(server, args.model_name, args.registry)}
    result = track_run(server, model=args.model_name, run_id=args.run_id, dag_id=args.dag_id, dataset=args.dataset,
                       candidates=[tuple(c) for c in args.candidate], baseline=args.baseline,
                       registry_uri=args.registry)
    log.info("track: run %s is MLflow run %s", args.run_id, result["run_url"])
    return {"tracked": True, **result}
