"""Artifact store: read and write objects addressed by URI.

Supported schemes:

* ``file://`` (and bare paths) on the local filesystem;
* ``s3://bucket/key`` through boto3; the endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL`` (MinIO, moto), credentials from the usual AWS environment/Secret;
* ``http://`` and ``https://`` for reading only.

Every write is atomic: the bytes go to a temporary name first and are renamed (file) or
uploaded in one ``PutObject`` (S3, which is atomic per object), so a reader never sees a
half-written artifact. Every read is bounded (``RETRAIN_MAX_READ_BYTES``, default 2 GiB, or the
caller's ``max_bytes``): the size is checked before the bytes are read, and only regular files
are read (``file:///dev/zero`` is refused). Only the standard library and boto3 are imported, so the Airflow
control plane and the serving image can use this module too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class ArtifactError(Exception):
    """An artifact is missing, unreadable or fails verification; the message names it."""


class ArtifactExists(ArtifactError):
    """A create-only write found the object already there (another writer was first)."""


MAX_READ_BYTES = int(os.environ.get("RETRAIN_MAX_READ_BYTES", str(2 * 1024**3)))


def _too_large(uri: str, size: int, limit: int) -> ArtifactError:
    return ArtifactError(f"{uri} is larger than the limit of {limit} bytes ({size} bytes); "
                         "raise RETRAIN_MAX_READ_BYTES to allow it")


def _read_bounded(stream, uri: str, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(uri, len(data), limit)
    return data


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


def safe_name(text: str) -> str:
    """Text usable as one path segment (``manual__2026-01-01T00:00:00+00:00`` → ``manual__2026-01-01T00-00-00-00-00``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


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


def read_bytes(uri: str, max_bytes: int | None = None) -> bytes:
    """Read an object of at most ``max_bytes`` (default ``RETRAIN_MAX_READ_BYTES``).

    Raise :class:`ArtifactError` naming the URI if it does not exist, is not a regular file, or
    is larger than the limit (checked before reading where the store says the size).
    """
    limit = max_bytes or MAX_READ_BYTES
    scheme, bucket, path = _split(uri)
    if scheme == "file":
        try:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise ArtifactError(f"not a regular file: {uri}")
                if info.st_size > limit:
                    raise _too_large(uri, info.st_size, limit)
                return _read_bounded(handle, uri, limit)
        except FileNotFoundError:
            raise ArtifactError(f"artifact not found: {uri}") from None
        except IsADirectoryError:
            raise ArtifactError(f"artifact is a directory, expected a file: {uri}") from None
        except PermissionError:
            raise ArtifactError(f"artifact not readable: {uri}") from None
    if scheme == "s3":
        client = _s3_client()
        try:
            response = client.get_object(Bucket=bucket, Key=path)
        except client.exceptions.NoSuchKey:
            raise ArtifactError(f"artifact not found: {uri}") from None
        except client.exceptions.NoSuchBucket:
            raise ArtifactError(f"bucket not found: {uri}") from None
        if response.get("ContentLength", 0) > limit:
            response["Body"].close()
            raise _too_large(uri, response["ContentLength"], limit)
        return _read_bounded(response["Body"], uri, limit)
    try:
        with urllib.request.urlopen(uri, timeout=60) as response:  # noqa: S310 (scheme checked)
            length = int(response.headers.get("Content-Length") or 0)
            if length > limit:
                raise _too_large(uri, length, limit)
            return _read_bounded(response, uri, limit)
    except urllib.error.HTTPError as err:
        raise ArtifactError(f"cannot fetch {uri}: HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise ArtifactError(f"cannot fetch {uri}: {err.reason}") from None


def _temp_copy(target: Path, data: bytes) -> Path:
    """``data`` written and fsynced to a hidden temporary file beside ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_bytes(uri: str, data: bytes) -> str:
    """Write an object atomically and return its sha256 hex digest."""
    scheme, bucket, path = _split(uri)
    digest = hashlib.sha256(data).hexdigest()
    if scheme == "file":
        tmp = _temp_copy(Path(path), data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest
    if scheme == "s3":
        import base64

        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 (integrity, not security)
        _s3_client().put_object(Bucket=bucket, Key=path, Body=data, ContentMD5=md5)
        return digest
    raise ArtifactError(f"cannot write to {uri}: {scheme}:// is read-only")


def create_bytes(uri: str, data: bytes) -> str:
    """Write an object only if none exists at ``uri`` (atomic create); return its sha256.

    Raises :class:`ArtifactExists` when another writer created it first: ``file`` links a
    complete temporary file to the name (``link(2)`` fails if the name exists), ``s3`` sends
    ``PutObject`` with ``If-None-Match: *`` (S3 and MinIO conditional writes).
    """
    scheme, bucket, path = _split(uri)
    digest = hashlib.sha256(data).hexdigest()
    if scheme == "file":
        tmp = _temp_copy(Path(path), data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ArtifactExists(f"{uri} exists already") from None
        finally:
            tmp.unlink(missing_ok=True)
        return digest
    if scheme == "s3":
        client = _s3_client()
        try:
            client.put_object(Bucket=bucket, Key=path, Body=data, IfNoneMatch="*")
        except client.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ArtifactExists(f"{uri} exists already") from None
            raise
        return digest
    raise ArtifactError(f"cannot write to {uri}: {scheme}:// is read-only")


def list_names(uri: str, *, folders: bool = False) -> list[str]:
    """Names of the objects (or, with ``folders``, the sub-folders) directly under a folder URI, sorted."""
    scheme, bucket, path = _split(uri)
    if scheme == "file":
        folder = Path(path)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir()
                      if (p.is_dir() if folders else p.is_file()) and not p.name.startswith("."))
    if scheme == "s3":
        prefix = path.rstrip("/") + "/"
        names: list[str] = []
        for page in _s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            if folders:
                names.extend(item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", []))
            else:
                names.extend(item["Key"][len(prefix):] for item in page.get("Contents", []))
        return sorted(names)
    raise ArtifactError(f"cannot list {uri}: {scheme}:// has no listing")


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


def json_bytes(value: Any) -> bytes:
    """A value as pretty, key-sorted JSON (byte-stable for the same value)."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def write_json(uri: str, value: Any) -> str:
    """Write a value as :func:`json_bytes`; return its sha256."""
    return write_bytes(uri, json_bytes(value))


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


def normalized(uri: str) -> str:
    """``uri`` with ``.``/``..`` segments resolved and bare paths as ``file://``; ``..`` escaping the root is refused."""
    scheme, host, path = _split(uri)
    if scheme == "file":
        return "file://" + os.path.normpath("/" + path.lstrip("/"))
    parts = []
    for segment in path.split("/"):
        if segment == "..":
            if not parts:
                raise ArtifactError(f"{uri!r} climbs above its root")
            parts.pop()
        elif segment not in (".",):
            parts.append(segment)
    return f"{scheme}://{host}/" + "/".join(parts)


def check_allowed(uri: str, prefixes: list[str] | tuple[str, ...]) -> str:
    """Return ``uri`` normalized if it lies under one of ``prefixes`` (folder prefixes), else raise.

    The message names the URI and the allowed locations only: nothing about what exists there.
    """
    target = normalized(uri)
    for prefix in prefixes:
        folder = normalized(prefix).rstrip("/") + "/"
        if target == folder.rstrip("/") or target.startswith(folder):
            return target
    raise ArtifactError(f"dataset location not allowed: {uri} (allowed: {', '.join(prefixes) or 'none'}; "
                        "the deployment sets RETRAIN_DATASET_ALLOWED)")
