"""``python -m serving.client``: call ``/predict`` with an image or the service's example input.

    python -m serving.client --url http://127.0.0.1:3000 --image serving/samples/digit-3.png
    python -m serving.client --url http://serving --expect 3     # the chart's `helm test`

Exits 1 if the server answers an error or, with ``--expect``, another digit. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

# The same 8x8 "3" as serving.service.EXAMPLE_INSTANCE (imported there with bentoml; kept
# dependency-free here so the client runs anywhere).
EXAMPLE_INSTANCE = [
    0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15, 11, 1, 0, 0,
    0, 0, 0, 1, 12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0, 0, 7, 13, 13, 9, 0, 0,
]  # fmt: skip


def predict(url: str, image: Path | None = None, timeout: float = 30) -> tuple[dict, str | None]:
    """POST to ``<url>/predict``; return the JSON body and the X-Model-Version header."""
    if image is not None:
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{image.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body, content_type = json.dumps({"instances": [EXAMPLE_INSTANCE]}).encode(), "application/json"
    request = urllib.request.Request(f"{url.rstrip('/')}/predict", data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (user-given URL)
        return json.loads(response.read()), response.headers.get("X-Model-Version")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serving.client", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--image", type=Path, help="PNG/JPEG to classify; default: the example instance")
    parser.add_argument("--expect", type=int, help="fail unless this digit is predicted")
    args = parser.parse_args(argv)
    try:
        body, version = predict(args.url, args.image)
    except urllib.error.HTTPError as err:
        print(f"HTTP {err.code}: {err.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"cannot reach {args.url}: {err}", file=sys.stderr)
        return 1
    digit = body["prediction"] if "prediction" in body else body["predictions"][0]
    print(json.dumps({"digit": digit, "model_version": version}))
    if args.expect is not None and digit != args.expect:
        print(f"expected {args.expect}, got {digit}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
