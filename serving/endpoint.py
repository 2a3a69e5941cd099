"""``POST /predict`` served as a plain ASGI route inside the BentoML service.

BentoML's API layer (IO descriptors, pydantic models, an upload saved to a temporary file) costs
more than the model on this path, so :class:`PredictEndpoint` (an ASGI middleware of the service,
inside BentoML's metrics, tracing, access-log, timeout and concurrency middlewares) answers
``/predict`` itself: the body is read once up to the size cap, parsed with python-multipart's
parser (what Starlette uses, without its form objects; at most four parts) or as JSON, and
decoding + inference run in a worker thread through the service instance's ``predict_batch``
(:meth:`serving.service.DigitsClassifier.predict_batch`, which its ``@bentoml.api`` method, the
OpenAPI contract and the Python API, runs too), batched with the requests that queued meanwhile
(:class:`serving.batching.AdaptiveBatcher`). Every error is a JSON ``{"error": ...}`` 4xx:
413 over the size cap, 415 for another content type, 400 for a malformed body, a field other
than ``file``/``instances``, a ``file`` field that is not an upload, or bad pixels; 503 before a
model is loaded. Each answer's images are counted by their OOD and confidence verdicts. It also serves the
service's own ``GET`` pages (``pages``: ``/readyz`` with the
version served and any fallback, the OpenAPI document and its ``/docs`` page) and ``/metrics``
(:mod:`serving.metrics`), and counts every request it sees by route.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from serving.batching import AdaptiveBatcher

log = logging.getLogger("bentoml.service.digits")
ALLOWED_TYPES = (b"multipart/form-data", b"application/json")
FIELDS = {"file", "instances"}


class RequestError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


async def read_body(receive, declared: bytes | None, max_bytes: int) -> bytes | None:
    """The whole request body, or None if the client went away; 413 past ``max_bytes``."""
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, f"request body of {int(declared)} bytes exceeds the limit of {max_bytes}")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


MAX_PARTS = 4  # `file` and `instances` are the only fields; a few more get a clear 400, a flood is cut short


def parse_form(content_type: bytes, body: bytes) -> tuple[bytes | None, list | None]:
    """``(file bytes, None)`` or ``(None, instances)`` from a multipart body (python-multipart's parser).

    Like Flask's ``request.files``: a part with a ``filename`` is an upload, the first of a
    name wins. Malformed bodies, more than :data:`MAX_PARTS` parts, a part without a
    ``Content-Disposition`` name, or another field than ``file``/``instances`` get a 400.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise RequestError(400, "malformed multipart body: no boundary in the content type")
    parts: list[tuple[dict[bytes, bytes], list[bytes]]] = []
    field, value, ended = bytearray(), bytearray(), []

    def on_part_begin() -> None:
        if len(parts) == MAX_PARTS:
            raise RequestError(400, f"malformed multipart body: more than {MAX_PARTS} parts")
        parts.append(({}, []))

    def on_header_end() -> None:
        parts[-1][0][bytes(field).lower()] = bytes(value)
        field.clear()
        value.clear()

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin,
        "on_header_field": lambda data, start, end: field.extend(data[start:end]),
        "on_header_value": lambda data, start, end: value.extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_part_data": lambda data, start, end: parts[-1][1].append(data[start:end]),
        "on_end": lambda: ended.append(True),
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as err:
        raise RequestError(400, f"malformed multipart body: {err}") from None
    if not ended:
        raise RequestError(400, "malformed multipart body: it ends before the closing boundary")
    fields: dict[str, tuple[dict[bytes, bytes], bytes]] = {}
    for headers, chunks in parts:
        disposition = parse_options_header(headers.get(b"content-disposition", b""))[1]
        if b"name" not in disposition:
            raise RequestError(400, "malformed multipart body: a part without a Content-Disposition name")
        fields.setdefault(disposition[b"name"].decode("utf-8", "replace"), (disposition, b"".join(chunks)))
    unexpected = sorted(set(fields) - FIELDS)
    if unexpected:
        raise RequestError(400, f"unexpected form field(s) {unexpected}: send the image as field 'file'")
    if "file" in fields:
        disposition, data = fields["file"]
        if b"filename" not in disposition:
            raise RequestError(400, "field 'file' must be a file upload, e.g. curl -F file=@digit.png")
        return data, None
    if "instances" in fields:
        return None, parse_instances(fields["instances"][1], wrapped=False)
    raise RequestError(400, "send exactly one of: a multipart field 'file' (an image), or JSON 'instances'")


def parse_instances(body: bytes, *, wrapped: bool = True) -> list:
    """``instances`` from a JSON body (``{"instances": [...]}``) or a bare JSON list."""
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, f"Invalid JSON: {err}") from None
    except RecursionError:  # the decoder's own depth limit: bad input, not a server error
        raise RequestError(400, "Invalid JSON: nested too deeply") from None
    if wrapped:
        if not isinstance(value, dict) or set(value) - FIELDS or "instances" not in value:
            raise RequestError(400, "send exactly one of: a multipart field 'file' (an image), or JSON 'instances'")
        value = value["instances"]
    if not isinstance(value, list):
        raise RequestError(400, "'instances' must be a list of images (validation error: expected a list)")
    return value


class PredictEndpoint:
    """Serve ``POST /predict`` with the service's ``predict_batch``; every other request goes on to BentoML.

    ``service()`` returns this worker's service instance (None before BentoML created it): its
    ``model`` (the model served now, or None) is given to each request, and its
    ``predict_batch(requests)`` answers a batch of ``(model, file bytes, instances)`` requests.
    One batch at a time per worker process (the model uses the cores); the event loop keeps
    reading and parsing requests meanwhile, and they form the next batch.
    """

    def __init__(self, app, max_bytes: int, service: Callable[[], Any], version_header: str,
                 pages: dict[str, Callable[[], tuple[int, str, bytes]]] | None = None,
                 serving_state: Callable[[], tuple[str | None, bool]] | None = None, path: str = "/predict",
                 max_batch_rows: int = 64, batch_wait_s: float = 0.0, capture_uri: str | None = None,
                 capture_queue: int = 4096) -> None:
        self.app, self.max_bytes, self.path = app, max_bytes, path
        self.capture_uri, self.capture_queue = capture_uri, capture_queue
        self.service = service
        self.batcher = AdaptiveBatcher(self._predict_batch, max_rows=max_batch_rows, max_wait_s=batch_wait_s,
                                       on_batch=self._observe_batch)
        self.pages = {**(pages or {}), "/metrics": self.metrics_page}
        self.serving_state = serving_state or (lambda: (None, False))
        self.version_header = version_header.lower().encode()
        self._metrics = None
        self._capture = False  # not looked up yet

    @property
    def metrics(self):
        if self._metrics is None:  # in the worker, after BentoML set PROMETHEUS_MULTIPROC_DIR
            from serving.metrics import ServiceMetrics

            self._metrics = ServiceMetrics()
        return self._metrics

    @property
    def capture(self):
        if self._capture is False:  # in the worker: the capture thread belongs to the process serving
            from serving.capture import Capture

            metrics = self.metrics
            self._capture = Capture(self.capture_uri, self.capture_queue,
                                    on_drop=lambda why: metrics.capture_dropped.labels(why).inc(),
                                    on_write=lambda n: metrics.captured.inc(n)) if self.capture_uri else None
        return self._capture

    def _predict_batch(self, requests: list) -> list:
        return self.service().predict_batch(requests)

    def _observe_batch(self, rows: int, requests: int) -> None:
        self.metrics.batch.observe(rows)
        self.metrics.batch_requests.observe(requests)

    def metrics_page(self) -> tuple[int, str, bytes]:
        self.metrics.model_state(*self.serving_state())
        return self.metrics.exposition()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 0

        async def counted_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.route(scope, receive, counted_send)
        finally:
            self.metrics.observe(scope["path"], status, time.perf_counter() - started)

    async def route(self, scope, receive, send) -> None:
        if scope["method"] in ("GET", "HEAD") and scope["path"] in self.pages:
            status, content_type, body = self.pages[scope["path"]]()
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            return
        if scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        model = None
        try:
            if content_type not in ALLOWED_TYPES:
                raise RequestError(415, f"unsupported content type {content_type.decode(errors='replace') or '(none)'}"
                                        ": send multipart/form-data with a 'file' field or application/json with "
                                        "'instances'")
            body = await read_body(receive, headers.get(b"content-length"), self.max_bytes)
            if body is None:
                return
            service = self.service()
            model = service.model if service is not None else None
            if model is None:
                raise RequestError(503, "no model is loaded yet")
            if content_type == b"multipart/form-data":
                data, instances = parse_form(headers.get(b"content-type", b""), body)
            else:
                data, instances = None, parse_instances(body)
            payload = await self.batcher.submit((model, data, instances), 1 if data is not None else len(instances))
            self.metrics.count_answers(payload)
            if self.capture is not None:
                self.capture.submit(model.version, data, instances, payload)
        except RequestError as err:
            await send_json(send, err.status, {"error": str(err)})
            return
        except ValueError as err:  # InputError: the pixels, not the request, are wrong
            version = [(self.version_header, model.version.encode())] if model else []
            await send_json(send, 400, {"error": str(err)}, version)
            return
        except Exception:  # a bug, not bad input: a JSON 500 now (an escaping exception stalls the request)
            log.exception("predict failed")
            await send_json(send, 500, {"error": "internal error while predicting; see the server log"})
            return
        await send_json(send, 200, payload, [(self.version_header, model.version.encode())])
