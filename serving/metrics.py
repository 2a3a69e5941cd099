"""The server's Prometheus metrics, with bounded labels, for ``GET /metrics``.

BentoML's own traffic metrics label every request with its path, so random unknown paths grow
the series without bound; they are turned off (``metrics={"enabled": False}`` on the service)
and these take their place: requests and latency by route (known routes, else ``other``), the
images and requests per forward pass (adaptive batching), the images answered by whether they are in
distribution and confident (``digits_predictions_total``: the answers a client should not trust),
the model version in service, whether it is a fallback, and the feedback capture's writes and drops. Worker
processes write to BentoML's per-server multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``), which
:func:`isolate` makes private to each server so two servers on a machine never mix counts.
"""

from __future__ import annotations

import os
import tempfile

ROUTES = ("/predict", "/readyz", "/livez", "/healthz", "/metrics", "/docs", "/docs.json", "/")


VERDICT = {True: "true", False: "false", None: "unknown"}


def isolate() -> None:
    """In the process that starts the server: give it a metrics folder of its own (BentoML's default,
    ``$BENTOML_HOME/prometheus_multiproc_dir``, is shared by every server of that home and wiped by each)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # a worker: the server process already chose
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.prometheus_multiproc_dir.set(tempfile.mkdtemp(prefix="digits-metrics-"))


def route_of(path: str) -> str:
    return path if path in ROUTES else "other"


class ServiceMetrics:
    """Created in each worker after BentoML set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client reads it at import)."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self.prom = prom
        self.requests = prom.Counter("digits_requests", "HTTP requests by route and status", ["route", "status"])
        self.latency = prom.Histogram("digits_request_duration_seconds", "HTTP request latency by route", ["route"],
                                      buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        sizes = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
        self.batch = prom.Histogram("digits_predict_batch_size", "images per forward pass of the model (adaptive "
                                    "batching)", buckets=sizes)
        self.batch_requests = prom.Histogram("digits_predict_batch_requests", "/predict requests sharing one "
                                             "forward pass", buckets=sizes[:7])
        self.model = prom.Gauge("digits_model_in_service", "1 for the model version each worker serves", ["version"],
                                multiprocess_mode="liveall")
        self.fallback = prom.Gauge("digits_model_fallback", "1 while production cannot be loaded and an earlier "
                                   "version serves instead", multiprocess_mode="livemax")
        self.captured = prom.Counter("digits_capture_written", "served requests stored for relabelling")
        self.capture_dropped = prom.Counter("digits_capture_dropped", "served requests not stored (queue full or "
                                            "the store failed)", ["reason"])
        self.predictions = prom.Counter("digits_predictions", "images answered by /predict, by whether they are like "
                                        "the training images (unknown: the model has no OOD statistics) and whether "
                                        "the top probability reaches DIGITS_CONFIDENCE_FLOOR",
                                        ["in_distribution", "confident"])
        self._version: str | None = None

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = route_of(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def count_answers(self, payload: dict) -> None:
        """Count the images of one ``/predict`` answer (an upload's or JSON instances') by their verdicts."""
        if "confident" not in payload:
            return  # not an answer of serving.service (the endpoint's tests serve stand-ins)
        verdicts, confident = payload["in_distribution"], payload["confident"]
        if not isinstance(confident, list):
            verdicts, confident = [verdicts], [confident]
        for label in zip(map(VERDICT.get, verdicts), map(VERDICT.get, confident), strict=True):
            self.predictions.labels(*label).inc()

    def model_state(self, version: str | None, fallback: bool) -> None:
        if version != self._version:
            if self._version:
                self.model.labels(self._version).set(0)
            if version:
                self.model.labels(version).set(1)
            self._version = version
        self.fallback.set(1 if fallback else 0)

    def exposition(self) -> tuple[int, str, bytes]:
        from prometheus_client import multiprocess

        registry = self.prom.CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:  # a server started without BentoML's workers (tests of the endpoint alone)
            registry = self.prom.REGISTRY
        return 200, self.prom.CONTENT_TYPE_LATEST, self.prom.generate_latest(registry)
