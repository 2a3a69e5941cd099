"""BentoML service for the image classifier: ``POST /predict``, Flask-compatible.

Accepts what the Flask ``/predict`` accepted::

    curl -X POST http://127.0.0.1:3000/predict -F file=@serving/samples/digit-3.png
    curl -X POST http://127.0.0.1:3000/predict -H 'content-type: application/json' \\
         -d '{"instances": [[0, 0, 7, 15, ...64 pixel values on the 0..16 scale...]]}'

An upload may have any size and mode; JSON ``instances`` have the model's own shape (see
:func:`retrain_steps.input_spec.from_instances`). Both go through the model's input spec and
:func:`retrain_steps.input_spec.prepare`, as in training. The answer names the class
(``class_name``, ``class_index``, ``top_k`` by name) and keeps the fields current clients read
(``prediction``, ``probabilities``, ``model_version``); the ``X-Model-Version`` response
header names the model version. Bad input gets a 4xx JSON ``{"error": ...}``.

Every answer also says whether to trust it: ``confident`` (the top probability reaches
``DIGITS_CONFIDENCE_FLOOR``), ``ood_score`` (how unlike the model's training images the image is,
:mod:`retrain_steps.ood`; above 1: out of distribution) and ``in_distribution``. A model packed
without OOD statistics (trained before them) answers ``ood_score`` and ``in_distribution`` null.
JSON ``instances`` get the lists ``confident``, ``ood_scores`` and ``in_distribution``.

The model is always a bento's, the one :mod:`serving.package` built and registered:

* following a registry's model (``DIGITS_REGISTRY_URI``, ``DIGITS_MODEL``: ``make run``, the compose stack, the
  benchmark): the production version's bento is fetched, its sha256 verified and imported
  (:func:`serving.fetch.import_bento`, what the chart's init container runs), and its model
  loaded; the production pointer is polled and a newly promoted version swapped in without a
  restart (requests in flight finish on the model they started with);
* otherwise the bento this server runs from (``bentoml serve digits_classifier:<version>``, the
  Helm chart, after the init container imported it).

``POST /predict`` over HTTP runs :meth:`DigitsClassifier.predict_batch` (:mod:`serving.endpoint`
batches the requests that queue meanwhile into one call); the ``@bentoml.api`` method
:meth:`DigitsClassifier.predict` runs the same method for one request.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException

from retrain_steps import artifacts, layout, registry
from retrain_steps.errors import InputError
from retrain_steps.input_spec import InputSpec, decode_upload, from_instances, prepare
from retrain_steps.models import Predictor, load_predictor, read_model_info
from retrain_steps.ood import Scorer
from serving import fetch, metrics
from serving.endpoint import PredictEndpoint
from serving.settings import ServerSettings

log = logging.getLogger("bentoml.service.digits")

SETTINGS = ServerSettings.from_environment()  # serving.settings: every DIGITS_* variable, checked
MAX_REQUEST_BYTES = SETTINGS.max_request_bytes
MAX_INSTANCES = 1024
TOP_K = 5
VERSION_HEADER = "X-Model-Version"
# An 8x8 "3" from the digits set, pixels on the 0..16 scale: the Swagger default, the tests'
# and the client's example.
EXAMPLE_INSTANCE = [
    0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15, 11, 1, 0, 0,
    0, 0, 0, 1, 12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0, 0, 7, 13, 13, 9, 0, 0,
]  # fmt: skip
EXAMPLE_INPUT = {"instances": [EXAMPLE_INSTANCE]}


class LoadedModel(NamedTuple):
    version: str
    framework: str
    spec: InputSpec
    predict: Predictor
    ood: Scorer | None = None  #: None: the model was packed without OOD statistics


def load_folder(folder: Path, version: str) -> LoadedModel:
    """Load a model folder (``model.json`` with the input spec + weights, and ``ood.json`` when it has one)."""
    framework, spec = read_model_info(folder)
    stats = folder / layout.OOD_STATS
    return LoadedModel(version, framework, spec, load_predictor(folder, framework, spec, SETTINGS.device),
                       Scorer(json.loads(stats.read_text())) if stats.is_file() else None)


def answer(probabilities: np.ndarray, spec: InputSpec, ood_scores: np.ndarray | None = None,
           confidence_floor: float | None = None) -> list[dict]:
    """Per row: class index and name, the top-k classes by name, every class probability (6 decimals), whether
    the top one reaches ``confidence_floor`` (default: the setting), and the OOD score and verdict (None without
    ``ood_scores``)."""
    floor = SETTINGS.confidence_floor if confidence_floor is None else confidence_floor
    k = min(TOP_K, len(spec.class_names))
    orders = np.argsort(-probabilities, axis=1, kind="stable")[:, :k].tolist()
    names = spec.class_names
    scores = [None] * len(probabilities) if ood_scores is None else np.round(ood_scores, 4).tolist()
    rows = []
    for row, order, score in zip(np.round(probabilities.astype(np.float64), 6).tolist(), orders, scores, strict=True):
        rows.append({
            "class_index": order[0],
            "class_name": names[order[0]],
            "top_k": [{"class_name": names[i], "class_index": i, "probability": row[i]} for i in order],
            "probabilities": row,
            "confident": row[order[0]] >= floor,
            "ood_score": score,
            "in_distribution": None if score is None else score <= 1.0,
        })
    return rows


def load_bento(bento: bentoml.Bento) -> LoadedModel:
    """Load the one model ``bento`` packs (``digits-classifier:<version>``, in the BentoML home's model store)."""
    tags = [info.tag for info in bento.info.all_models]
    if len(tags) != 1:
        raise ValueError(f"bento {bento.tag} packs {len(tags)} models, not one")
    model = bentoml.models.get(tags[0])
    return load_folder(Path(model.path), model.info.metadata.get("version", model.tag.version))


class RegistryFollower:
    """Serve the bento of the registry's production version; poll the pointer and hot-swap on change.

    Each version is loaded from its bento (the card's ``bento.uri``, verified against
    ``bento.sha256`` by :func:`serving.fetch.import_bento`), never from the registered weights. If
    the production version cannot be loaded, the newest loadable version of the promotion history
    is served instead and :attr:`fallback` says so (``/readyz``, ``/metrics``); the failure is
    logged once per version, not on every poll.
    """

    def __init__(self, registry_uri: str, interval: float, model: str = layout.DEFAULT_MODEL) -> None:
        self.registry_uri, self.interval, self.model = registry_uri, interval, model
        self.current: LoadedModel | None = None
        self.fallback: dict | None = None
        self._failed: dict[str, str] = {}
        self._stop = threading.Event()
        self.refresh()
        threading.Thread(target=self._poll, name="registry-follower", daemon=True).start()

    def load(self, version: str) -> LoadedModel:
        """Fetch, verify and import the version's bento; load its model."""
        packed = registry.card(self.registry_uri, version).get("bento")
        if not packed:
            raise artifacts.ArtifactError(f"version {version} has no bento in its card (serving.package did not "
                                          "finish for it)")
        bento, _, imported = fetch.import_bento(packed["uri"], packed["sha256"])
        model = load_bento(bento)
        if model.version != version:
            raise ValueError(f"the bento of version {version} ({packed['uri']}) packs version {model.version}")
        log.info("%s bento %s of version %s (sha256 %s verified)", "imported" if imported else "already imported:",
                 bento.tag, version, packed["sha256"])
        return model

    def _try_load(self, version: str) -> LoadedModel | None:
        try:
            return self.load(version)
        except Exception as err:  # a broken version must not stop the server: remember, log once
            reason = f"{type(err).__name__}: {err}"
            if self._failed.get(version) != reason:
                log.error("cannot load model version %s from %s: %s", version, self.registry_uri, reason)
            self._failed[version] = reason
            return None

    def refresh(self) -> None:
        try:
            latest = registry.latest_promotion(self.registry_uri, self.model)
            if latest is None:
                return
            if self.current and self.current.version == latest["version"]:
                self.fallback = None
                return
            history = registry.promotion_history(self.registry_uri, self.model)
        except Exception as err:  # the store is unreachable: keep serving what is loaded
            log.warning("cannot read the production pointer of %s: %s", self.registry_uri, err)
            return
        if not history:
            return
        wanted = history[0]
        for version in history:
            if self.current and self.current.version == version:
                break  # already serving the best loadable one
            loaded = self._try_load(version)
            if loaded is None:
                continue
            previous, self.current = self.current, loaded  # one reference swap: in-flight requests keep theirs
            log.info("serving model version %s (was %s) in worker %s (pid %d)", version,
                     previous.version if previous else None, bentoml.server_context.worker_index, os.getpid())
            break
        if self.current and self.current.version != wanted:
            self.fallback = {"production": wanted, "serving": self.current.version,
                             "reason": self._failed.get(wanted, "not loadable")}
        else:
            self.fallback = None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def close(self) -> None:
        self._stop.set()


class FixedModel:
    """Serve one model: the one the bento this server runs from packs."""

    fallback = None

    def __init__(self, model: LoadedModel) -> None:
        self.current = model

    def close(self) -> None:
        pass


def model_source(settings: ServerSettings, bento: bentoml.Bento | None) -> RegistryFollower | FixedModel:
    """Follow the production bento of the registry's model ``DIGITS_MODEL`` when ``DIGITS_REGISTRY_URI`` is set,
    else serve ``bento``'s model."""
    if settings.registry_uri:
        return RegistryFollower(settings.registry_uri, settings.poll_seconds, settings.model)
    if bento is None:
        raise RuntimeError("no model to serve: set DIGITS_REGISTRY_URI to follow a registry's production version, "
                           "or serve a bento (bentoml serve digits_classifier:<version>)")
    return FixedModel(load_bento(bento))


def current_service() -> DigitsClassifier | None:
    """This worker's service instance (None until BentoML created it)."""
    try:
        return bentoml.get_current_service()
    except BentoMLException:
        return None


def serving_state() -> tuple[str | None, bool]:
    """The version this worker serves and whether it is a fallback (for ``/metrics``)."""
    service = current_service()
    model = service.model if service else None
    return (model.version if model else None), bool(service and service.source.fallback)


def readiness() -> tuple[int, str, bytes]:
    """``/readyz``: 200 with the version served (and the fallback, if any) once a model is loaded, else 503."""
    service = current_service()
    model = service.model if service else None
    if model is None:
        return 503, "application/json", json.dumps({"status": "not ready", "reason": "no model is loaded yet"}).encode()
    body = {"status": "ready", "model_version": model.version}
    if service.source.fallback:
        body["fallback"] = service.source.fallback
    return 200, "application/json", json.dumps(body).encode()


def openapi_document() -> tuple[int, str, bytes]:
    """BentoML's OpenAPI document of this service, titled and versioned by the model it serves."""
    spec = DigitsClassifier.openapi_spec.asdict()
    operation = spec["paths"]["/predict"]["post"]
    operation["requestBody"]["content"]["application/json"] = {
        "schema": {"type": "object", "required": ["instances"], "additionalProperties": False, "properties": {
            "instances": {"type": "array", "minItems": 1, "maxItems": MAX_INSTANCES,
                          "description": "images of the model's shape: H*W*C numbers or nested [H][W][C]",
                          "items": {"type": "array"}}}},
        "example": EXAMPLE_INPUT,
    }
    error = {"content": {"application/json": {"schema": {"type": "object", "required": ["error"],
                                                         "properties": {"error": {"type": "string"}}}}}}
    for status, why in (("400", "bad input"), ("413", "body over the size cap"), ("415", "unsupported content type"),
                        ("503", "no model loaded yet")):
        operation["responses"][status] = {"description": why, **error}
    service = current_service()
    model = service.model if service else None
    classes = ", ".join(model.spec.class_names) if model else "none loaded yet"
    spec["info"] = {
        "title": "Image classifier (digits_classifier)",
        "version": model.version if model else "no model loaded",
        "description": (
            "`POST /predict` classifies an uploaded image (`curl -F file=@image.png`) or JSON `instances` of "
            f"the model's shape and answers the class name, index and top-k. Model version "
            f"{model.version if model else '-'}; classes: {classes}. Errors are JSON `{{\"error\": ...}}`."
        ),
    }
    return 200, "application/json", json.dumps(spec).encode()


def docs_page() -> tuple[int, str, bytes]:
    """Swagger UI from the files BentoML ships (``/static_content``): nothing is fetched from outside."""
    return 200, "text/html; charset=utf-8", DOCS_HTML


DOCS_HTML = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Image classifier API</title>
<link rel="stylesheet" href="/static_content/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


def _images(model: LoadedModel, data: bytes | None, instances: list | None) -> np.ndarray:
    if (data is None) == (instances is None):
        raise InputError("send exactly one of: a multipart field 'file' (an image), or JSON 'instances'")
    if data is not None:
        return decode_upload(data, model.spec, SETTINGS.max_upload_pixels)
    if not 1 <= len(instances) <= MAX_INSTANCES:
        raise InputError(f"'instances' must hold 1 to {MAX_INSTANCES} rows, got {len(instances)}")
    return from_instances(instances, model.spec)


def _payload(model: LoadedModel, rows: list[dict], *, upload: bool) -> dict:
    if upload:
        return {"prediction": rows[0]["class_index"], **rows[0], "model_version": model.version}
    return {
        "predictions": [row["class_index"] for row in rows],
        "class_names": [row["class_name"] for row in rows],
        "top_k": [row["top_k"] for row in rows],
        "probabilities": [row["probabilities"] for row in rows],
        "confident": [row["confident"] for row in rows],
        "ood_scores": [row["ood_score"] for row in rows],
        "in_distribution": [row["in_distribution"] for row in rows],
        "model_version": model.version,
    }


class PredictRequest(NamedTuple):
    """One ``/predict`` request: the model it was given (swaps leave it alone) and an upload or instances."""

    model: LoadedModel
    data: bytes | None
    instances: list | None


metrics.isolate()


# metrics off: serving.metrics replaces BentoML's per-path series
@bentoml.service(name="digits_classifier", workers=SETTINGS.workers, traffic={"timeout": 30},
                 http={"cors": {"enabled": False}}, metrics={"enabled": False})
class DigitsClassifier:
    """Classify images (the model's classes) from an image upload or pixel instances of the model's shape."""

    def __init__(self, source: RegistryFollower | FixedModel | None = None) -> None:
        """``source`` is where the model comes from (default: :func:`model_source` of the settings)."""
        self.source = source or model_source(SETTINGS, DigitsClassifier.bento)
        gc.collect()
        gc.freeze()  # the imports and the model stay for the worker's life: full collections no longer walk them

    @property
    def model(self) -> LoadedModel | None:
        """The model served now (None before one is loaded)."""
        return self.source.current

    def __is_ready__(self) -> bool:
        return self.model is not None

    @bentoml.on_shutdown
    def close(self) -> None:
        self.source.close()

    def predict_batch(self, requests: list[PredictRequest]) -> list[dict | InputError]:
        """The ``/predict`` answers of several requests, in order: what HTTP ``/predict`` runs.

        Each request is decoded on its own (bad input is an :class:`InputError` in its place, for
        that caller alone); the rows of the requests to the same model go through one forward pass.
        """
        results: list = [None] * len(requests)
        prepared: dict[int, list[tuple[int, np.ndarray]]] = {}  # id(model) -> (request index, rows)
        for index, (model, data, instances) in enumerate(requests):
            try:
                rows = prepare(_images(model, data, instances), model.spec)
            except InputError as err:
                results[index] = err
                continue
            prepared.setdefault(id(model), []).append((index, rows))
        for group in prepared.values():
            model = requests[group[0][0]][0]
            batch = np.concatenate([rows for _, rows in group])
            answers = answer(model.predict(batch), model.spec, model.ood(batch) if model.ood else None)
            start = 0
            for index, rows in group:
                upload = requests[index][1] is not None
                results[index] = _payload(model, answers[start:start + len(rows)], upload=upload)
                start += len(rows)
        return results

    @bentoml.api(route="/predict")
    def predict(
        self,
        file: Path = None,  # noqa: RUF013 (BentoML detects file fields by a bare Path annotation)
        instances: list[Any] | None = None,
        ctx: bentoml.Context = None,
    ) -> dict:
        """Predict the class of an uploaded image (field ``file``) or of ``instances`` of the model's shape.

        One request through :meth:`predict_batch`. Over HTTP, :class:`serving.endpoint.PredictEndpoint`
        answers this route by batching the requests that queue into :meth:`predict_batch`; this
        method is the OpenAPI contract and the Python API.
        """
        model = self.model
        if model is None:
            ctx.response.status_code = 503
            return {"error": "no model is loaded yet"}
        ctx.response.headers[VERSION_HEADER] = model.version
        (result,) = self.predict_batch([PredictRequest(model, None if file is None else Path(file).read_bytes(),
                                                       instances)])
        if isinstance(result, InputError):
            ctx.response.status_code = 400
            return {"error": str(result)}
        return result


DigitsClassifier.add_asgi_middleware(PredictEndpoint, max_bytes=MAX_REQUEST_BYTES, service=current_service,
                                     max_batch_rows=SETTINGS.max_batch_rows,
                                     batch_wait_s=SETTINGS.batch_wait_ms / 1000, capture_uri=SETTINGS.capture_uri,
                                     capture_queue=SETTINGS.capture_queue, version_header=VERSION_HEADER,
                                     pages={"/readyz": readiness, "/docs.json": openapi_document, "/docs": docs_page,
                                            "/": docs_page},
                                     serving_state=serving_state)
