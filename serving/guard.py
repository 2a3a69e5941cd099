"""ASGI middleware guarding ``POST /predict`` before BentoML parses the request.

BentoML 1.4 has no request-size cap, and a multipart ``file`` field sent as text (not a file)
makes it try to fetch the text as a URL and answer 500. This middleware answers such
requests itself with a JSON 4xx: 413 over the size cap, 415 for a content type other than
multipart or JSON, 400 for a form field other than ``file``/``instances`` or a ``file`` field
that is not a file upload.
"""

from __future__ import annotations

import json
import re

_FIELD_NAME = re.compile(rb'content-disposition:\s*form-data;\s*name="([^"]*)"', re.IGNORECASE)
_TEXT_FILE_FIELD = re.compile(
    rb'content-disposition:\s*form-data;\s*name="file"\s*(?:;(?![^\r\n]*filename)[^\r\n]*)?\r?\n', re.IGNORECASE
)
ALLOWED_TYPES = (b"multipart/form-data", b"application/json")


async def send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class PredictGuard:
    """Reject oversized, mistyped or malformed ``/predict`` requests with a JSON error."""

    def __init__(self, app, max_bytes: int, path: str = "/predict") -> None:
        self.app, self.max_bytes, self.path = app, max_bytes, path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, f"request body of {int(declared)} bytes exceeds the limit of {self.max_bytes}")
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type not in ALLOWED_TYPES:
            await send_json(
                send, 415,
                f"unsupported content type {content_type.decode(errors='replace') or '(none)'}: send multipart/form-data "
                "with a 'file' field or application/json with 'instances'",
            )
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_json(send, 413, f"request body exceeds the limit of {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if content_type == b"multipart/form-data":
            unexpected = sorted({name.decode(errors="replace") for name in _FIELD_NAME.findall(body)} - {"file", "instances"})
            if unexpected:
                await send_json(send, 400, f"unexpected form field(s) {unexpected}: send the image as field 'file'")
                return
            if _TEXT_FILE_FIELD.search(body):
                await send_json(send, 400, "field 'file' must be a file upload, e.g. curl -F file=@digit.png")
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
