"""BentoML service for the digits classifier: ``POST /predict``, Flask-compatible.

Accepts what the Flask ``/predict`` accepted::

    curl -X POST http://127.0.0.1:3000/predict -F file=@serving/samples/digit-3.png
    curl -X POST http://127.0.0.1:3000/predict -H 'content-type: application/json' \\
         -d '{"instances": [[0, 0, 7, 15, ...64 pixel values on the 0..16 scale...]]}'

and answers JSON with the predicted class and the class probabilities; the ``X-Model-Version``
response header names the model version. Bad input gets a 4xx JSON ``{"error": ...}``.

The model comes from one of two places:

* the bento's own model (``digits-classifier``), when the service runs from a bento
  (``bentoml serve``, the Helm chart);
* the production pointer of a model registry, when ``DIGITS_REGISTRY_URI`` is set (the local
  backend): the service polls it and swaps in a newly promoted version without a restart;
  requests in flight finish on the model they started with.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import bentoml
import numpy as np

from retrain_steps import registry
from retrain_steps.features import InputError, image_to_pixels, to_model_input
from retrain_steps.models import Predictor, load_predictor
from serving.guard import PredictGuard

log = logging.getLogger("bentoml.service.digits")

MODEL_NAME = "digits-classifier"
REGISTRY_ENV = "DIGITS_REGISTRY_URI"
POLL_SECONDS = float(os.environ.get("DIGITS_POLL_SECONDS", "2"))
MAX_REQUEST_BYTES = int(os.environ.get("DIGITS_MAX_REQUEST_BYTES", str(4 * 1024 * 1024)))
MAX_INSTANCES = 1024
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
    predict: Predictor


def load_folder(folder: Path, version: str) -> LoadedModel:
    """Load a model folder (``model.json`` + weights)."""
    framework = json.loads((folder / "model.json").read_text())["framework"]
    return LoadedModel(version, framework, load_predictor(folder, framework))


class RegistryFollower:
    """Serve the registry's production version; poll the pointer and hot-swap on change."""

    def __init__(self, registry_uri: str, interval: float) -> None:
        self.registry_uri, self.interval = registry_uri, interval
        self.current: LoadedModel | None = None
        self._stop = threading.Event()
        self.refresh()
        threading.Thread(target=self._poll, name="registry-follower", daemon=True).start()

    def refresh(self) -> None:
        try:
            version = registry.production_version(self.registry_uri)
            if version is None or (self.current and self.current.version == version):
                return
            with tempfile.TemporaryDirectory() as tmp:
                registry.fetch_model(self.registry_uri, version, Path(tmp))
                loaded = load_folder(Path(tmp), version)
            previous, self.current = self.current, loaded  # one reference swap: in-flight requests keep theirs
            log.info("serving model version %s (was %s)", version, previous.version if previous else None)
        except Exception:  # keep serving the old model; the next poll retries
            log.exception("could not load the production model from %s", self.registry_uri)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()


class BentoModelSource:
    """Serve the model packed into the bento."""

    def __init__(self, model: bentoml.Model) -> None:
        self.current = load_folder(Path(model.path), model.info.metadata.get("version", model.tag.version))


@bentoml.service(name="digits_classifier", traffic={"timeout": 30}, http={"cors": {"enabled": False}})
class DigitsClassifier:
    """Classify handwritten digits from an image upload or 8x8 pixel instances."""

    # A build dependency of the bento; left out when following a registry, where no model is packed.
    if not os.environ.get(REGISTRY_ENV):
        bento_model = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        registry_uri = os.environ.get(REGISTRY_ENV)
        self.source = RegistryFollower(registry_uri, POLL_SECONDS) if registry_uri else BentoModelSource(self.bento_model)

    def __is_ready__(self) -> bool:
        return self.source.current is not None

    @bentoml.api(route="/predict")
    def predict(
        self,
        file: Path = None,  # noqa: RUF013 (BentoML detects file fields by a bare Path annotation)
        instances: list[list[float]] | None = None,
        ctx: bentoml.Context = None,
    ) -> dict:
        """Predict the digit in an uploaded image (field ``file``) or in 64-pixel ``instances``."""
        model = self.source.current
        if model is None:
            ctx.response.status_code = 503
            return {"error": "no model is loaded yet"}
        ctx.response.headers[VERSION_HEADER] = model.version
        try:
            if (file is None) == (instances is None):
                raise InputError("send exactly one of: a multipart field 'file' (an image), or JSON 'instances'")
            if file is not None:
                pixels = image_to_pixels(Path(file).read_bytes())[None]
            else:
                if not 1 <= len(instances) <= MAX_INSTANCES:
                    raise InputError(f"'instances' must hold 1 to {MAX_INSTANCES} rows, got {len(instances)}")
                if any(len(row) != 64 for row in instances):
                    raise InputError("each instance must have 64 pixel values (an 8x8 image, row by row)")
                pixels = np.asarray(instances, dtype=np.float32)
            probabilities = model.predict(to_model_input(pixels))
        except InputError as err:
            ctx.response.status_code = 400
            return {"error": str(err)}
        labels = probabilities.argmax(axis=1)
        if file is not None:
            return {
                "prediction": int(labels[0]),
                "probabilities": [round(float(p), 6) for p in probabilities[0]],
                "model_version": model.version,
            }
        return {
            "predictions": [int(label) for label in labels],
            "probabilities": [[round(float(p), 6) for p in row] for row in probabilities],
            "model_version": model.version,
        }


DigitsClassifier.add_asgi_middleware(PredictGuard, max_bytes=MAX_REQUEST_BYTES)
