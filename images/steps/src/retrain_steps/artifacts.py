"""Artifact store: read and write objects addressed by URI.

Supported schemes:

* ``file://`` (and bare paths) on the local filesystem;
* ``s3://bucket/key`` through boto3; the endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL`` (MinIO, moto), credentials from the usual AWS environment/Secret;
* ``http://`` and ``https://`` for reading only.

Every write is atomic: the bytes go to a temporary name first and are renamed (file) or
uploaded in one ``PutObject`` (S3, which is atomic per object), so a reader never sees a
half-written artifact. Only the standard library and boto3 are imported, so the Airflow
control plane and the serving image can use this module too.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class ArtifactError(Exception):
    """An artifact is missing, unreadable or fails verification; the message names it."""


def _split(uri: str) -> tuple[str, str, str]:
    """Return ``(scheme, bucket_or_host, path)`` for a URI; bare paths are ``file``."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else uri
        if parsed.scheme == "file" and parsed.netloc:
            path = parsed.netloc + parsed.path
        return "file", "", path
    if parsed.scheme in ("s3", "http", "https"):
        return parsed.scheme, parsed.netloc, parsed.path.lstrip("/")
    raise ArtifactError(f"unsupported URI scheme {parsed.scheme!r} in {uri!r}")


def join(base: str, *parts: str) -> str:
    """Join path parts onto a store URI (``join("s3://b/runs", "r1", "x.json")``)."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def _s3_client():
    import boto3  # imported lazily: only s3:// users pay for it

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def read_bytes(uri: str) -> bytes:
    """Read an object; raise :class:`ArtifactError` naming the URI if it does not exist."""
    scheme, bucket, path = _split(uri)
    if scheme == "file":
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact not found: {uri}") from None
        except IsADirectoryError:
            raise ArtifactError(f"artifact is a directory, expected a file: {uri}") from None
    if scheme == "s3":
        client = _s3_client()
        try:
            return client.get_object(Bucket=bucket, Key=path)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise ArtifactError(f"artifact not found: {uri}") from None
        except client.exceptions.NoSuchBucket:
            raise ArtifactError(f"bucket not found: {uri}") from None
    try:
        with urllib.request.urlopen(uri, timeout=60) as response:  # noqa: S310 (scheme checked)
            return response.read()
    except urllib.error.HTTPError as err:
        raise ArtifactError(f"cannot fetch {uri}: HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise ArtifactError(f"cannot fetch {uri}: {err.reason}") from None


def write_bytes(uri: str, data: bytes) -> str:
    """Write an object atomically and return its sha256 hex digest."""
    scheme, bucket, path = _split(uri)
    digest = hashlib.sha256(data).hexdigest()
    if scheme == "file":
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest
    if scheme == "s3":
        import base64

        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 (integrity, not security)
        _s3_client().put_object(Bucket=bucket, Key=path, Body=data, ContentMD5=md5)
        return digest
    raise ArtifactError(f"cannot write to {uri}: {scheme}:// is read-only")


def exists(uri: str) -> bool:
    """Whether an object exists at ``uri``."""
    scheme, bucket, path = _split(uri)
    if scheme == "file":
        return Path(path).is_file()
    if scheme == "s3":
        client = _s3_client()
        try:
            client.head_object(Bucket=bucket, Key=path)
            return True
        except client.exceptions.ClientError:
            return False
    try:
        read_bytes(uri)
        return True
    except ArtifactError:
        return False


def read_json(uri: str) -> Any:
    """Read and parse a JSON object; a parse error names the URI."""
    try:
        return json.loads(read_bytes(uri))
    except json.JSONDecodeError as err:
        raise ArtifactError(f"invalid JSON in {uri}: {err}") from None


def write_json(uri: str, value: Any) -> str:
    """Write a value as pretty, key-sorted JSON (byte-stable for the same value)."""
    return write_bytes(uri, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def local_path(uri: str) -> Path | None:
    """The filesystem path behind a ``file://`` URI, or None for remote stores."""
    scheme, _, path = _split(uri)
    return Path(path) if scheme == "file" else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(uri: str, data: bytes, expected: str | None) -> str:
    """Return the digest of ``data``; raise if ``expected`` is given and differs."""
    digest = sha256(data)
    if expected and digest != expected.lower():
        raise ArtifactError(f"checksum mismatch for {uri}: expected sha256 {expected}, got {digest}")
    return digest
