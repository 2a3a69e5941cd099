"""Artifact store: read and write objects addressed by URI.

Supported schemes:

* ``file://`` (and bare paths) on the local filesystem;
* ``s3://bucket/key`` through boto3; the endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL`` (MinIO, moto), credentials from the usual AWS environment/Secret;
* ``http://`` and ``https://`` for reading only.

Every function parses its URI once into a :class:`StoreURI`, and accepts one already parsed, so
the allow-list (:func:`check_allowed`) and the read act on the same path: ``.``/``..`` resolved,
``file://`` only with an empty host or ``localhost``, percent-encoded dots and slashes refused.

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
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrain_steps import settings

CONFLICT_RETRIES, CONFLICT_BACKOFF_S = 5, 0.1  #: a create-only S3 write answered 409: retried 5 times, 0.1 s doubling


class ArtifactError(Exception):
    """An artifact is missing, unreadable or fails verification; the message names it."""


class ArtifactUnavailable(ArtifactError):
    """The store could not be reached or answered with a server error: not the input's fault, a retry may help."""


class ArtifactExists(ArtifactError):
    """A create-only write found the object already there (another writer was first)."""


def _too_large(uri: str, size: int, limit: int) -> ArtifactError:
    return ArtifactError(f"{uri} is larger than the limit of {limit} bytes ({size} bytes); "
                         "raise RETRAIN_MAX_READ_BYTES to allow it")


def _read_bounded(stream, uri: str, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(uri, len(data), limit)
    return data


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)


@dataclass(frozen=True)
class StoreURI:
    """A store URI parsed once; the allow-list check and every read or write use this object.

    ``path``: for ``file`` the filesystem path (absolute, except a bare relative path given as
    such), for ``s3`` the key, for ``http(s)`` the URL path without its leading ``/``; ``.`` and
    ``..`` segments resolved, a trailing ``/`` kept (it marks a folder). ``host``: the bucket or
    the HTTP ``host[:port]`` (lower case); empty for ``file``. ``query``: http(s) only.
    """

    scheme: str
    host: str
    path: str
    query: str = ""

    @classmethod
    def parse(cls, uri: str | StoreURI) -> StoreURI:
        """Parse ``uri`` (a bare path is ``file``); raise :class:`ArtifactError` naming it if it is not a store URI."""
        if isinstance(uri, StoreURI):
            return uri
        if not uri:
            raise ArtifactError("empty URI: expected file:///<absolute path>, s3://<bucket>/<key> or http(s)://…")
        if "\0" in uri:
            raise ArtifactError(f"NUL character in URI {uri!r}")
        match = _SCHEME.fullmatch(uri)
        if match is None:
            return cls("file", "", _file_path(uri, uri))
        scheme, rest = match[1].lower(), match[2]
        if scheme == "file":
            if rest.startswith("//"):
                host, slash, path = rest[2:].partition("/")
                if host.lower() not in ("", "localhost"):
                    raise ArtifactError(f"file:// URI with host {host!r}: {uri} (a local file is file:///<absolute "
                                        "path>, three slashes, or file://localhost/<absolute path>)")
                rest = slash + path
            if not rest.startswith("/"):
                raise ArtifactError(f"file URI without an absolute path: {uri} (expected file:///<absolute path>)")
            return cls("file", "", _file_path(rest, uri))
        if scheme == "s3":
            bucket, _, key = rest.removeprefix("//").partition("/") if rest.startswith("//") else ("", "", "")
            if not bucket:
                raise ArtifactError(f"s3 URI without a bucket: {uri} (expected s3://<bucket>/<key>)")
            return cls("s3", bucket, _remote_path(key, uri))
        if scheme in ("http", "https"):
            try:
                parts = urllib.parse.urlsplit(uri)
                parts.port  # noqa: B018 (raises on a port that is not a number in range)
            except ValueError as err:
                raise ArtifactError(f"invalid {scheme} URI {uri}: {err}") from None
            if not parts.hostname:
                raise ArtifactError(f"{scheme} URI without a host: {uri}")
            if "\\" in parts.path:
                raise ArtifactError(f"backslash in the path of {uri}: servers disagree on what it means")
            host = parts.netloc if "@" in parts.netloc else parts.netloc.lower()
            return cls(scheme, host, _remote_path(parts.path.removeprefix("/"), uri), parts.query)
        raise ArtifactError(f"unsupported URI scheme {scheme!r} in {uri!r}")

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> StoreURI:
        """A local file found by listing (taken as it is: no parsing, no normalisation)."""
        return cls("file", "", os.fspath(path))

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}" if self.path.startswith("/") else self.path
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}/{self.path}{query}"

    @property
    def local_path(self) -> Path | None:
        """The filesystem path of a ``file`` URI; None for remote stores."""
        return Path(self.path) if self.scheme == "file" else None

    def is_under(self, folder: StoreURI) -> bool:
        """Whether this URI is ``folder`` or lies inside it (segment-wise: ``/a/bc`` is not under ``/a/b``)."""
        if (self.scheme, self.host) != (folder.scheme, folder.host):
            return False
        root = folder.path.rstrip("/")
        return not root or self.path.rstrip("/") == root or self.path.startswith(root + "/")


def _refuse_encoded_dots(segments: list[str], uri: str) -> None:
    """A later decoder (an HTTP server, a person) would read ``%2e%2e`` as ``..`` and ``%2f`` as ``/``: refuse them."""
    for segment in segments:
        if _ENCODED_SEPARATOR.search(segment) or (
                segment not in (".", "..") and urllib.parse.unquote(segment) in (".", "..")):
            raise ArtifactError(f"percent-encoded '.', '/' or '\\' in {uri}: write the path plainly")


def _file_path(path: str, uri: str) -> str:
    """A local path with ``.``/``..`` resolved the way the kernel would without symbolic links."""
    _refuse_encoded_dots(path.split("/"), uri)
    folder = path.endswith("/")
    if path.startswith("/"):
        path = "/" + path.lstrip("/")  # "//x" is "/x" on Linux; normpath would keep both slashes
    path = os.path.normpath(path)
    return path + "/" if folder and not path.endswith("/") else path


def _remote_path(path: str, uri: str) -> str:
    """An S3 key or URL path with ``.``/``..`` segments resolved; ``..`` above the root is refused."""
    segments = path.split("/")
    _refuse_encoded_dots(segments, uri)
    parts: list[str] = []
    for segment in segments:
        if segment == "..":
            if not parts:
                raise ArtifactError(f"{uri!r} climbs above its root")
            parts.pop()
        elif segment != ".":
            parts.append(segment)
    if segments[-1] in (".", "..") and parts:
        parts.append("")  # "a/b/.." is the folder "a/"
    return "/".join(parts)


def safe_name(text: str) -> str:
    """Text usable as one path segment (``manual__2026-01-01T00:00:00+00:00`` → ``manual__2026-01-01T00-00-00-00-00``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def join(base: str, *parts: str) -> str:
    """Join path parts onto a store URI (``join("s3://b/runs", "r1", "x.json")``)."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


#: what an S3 client is built from: the endpoint, region and credentials the environment names
_S3_ENVIRONMENT = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                   "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
S3_CONNECTIONS = 16  #: the client's connection pool: requests of one process to S3 at once (boto3's default: 10)
_s3_cached: tuple[tuple, Any] = ((), None)  #: (the environment it was built for, the client)
_s3_lock = threading.Lock()


def _unlock_in_child() -> None:
    """A forked child gets a lock of its own: the parent's may be held by a thread the child does not have."""
    global _s3_lock
    _s3_lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_in_child)


def _s3_client():
    """The S3 client of this process for the environment as it is now: built once (a boto3 client takes 5-10 ms to
    build, more than a small read from a nearby store), again when the endpoint or credentials change (a store
    connection applied later, a test's endpoint) and in a forked child (a connection pool is not shared across a
    fork). boto3's clients are thread-safe."""
    global _s3_cached
    key = (os.getpid(), *(os.environ.get(name) for name in _S3_ENVIRONMENT))
    built_for, client = _s3_cached
    if built_for != key:
        import boto3  # imported lazily: only s3:// users pay for it
        from botocore.config import Config

        with _s3_lock:
            built_for, client = _s3_cached
            if built_for != key:
                env = os.environ.get
                keys = {}  # the environment's keys as they are now (both, as botocore takes them); else boto3's chain
                if env("AWS_ACCESS_KEY_ID") and env("AWS_SECRET_ACCESS_KEY"):
                    keys = {"aws_access_key_id": env("AWS_ACCESS_KEY_ID"),
                            "aws_secret_access_key": env("AWS_SECRET_ACCESS_KEY"),
                            "aws_session_token": env("AWS_SESSION_TOKEN") or env("AWS_SECURITY_TOKEN") or None}
                client = boto3.client("s3", endpoint_url=env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or None,
                                      config=Config(max_pool_connections=S3_CONNECTIONS), **keys)
                _s3_cached = (key, client)
    return client


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the HTTP error it is: following it would read a URI nobody checked."""

    def redirect_request(self, *args, **kwargs) -> None:
        return None


_HTTP = urllib.request.build_opener(_NoRedirects)


def read_bytes(uri: str | StoreURI, max_bytes: int | None = None) -> bytes:
    """Read an object of at most ``max_bytes`` (default ``RETRAIN_MAX_READ_BYTES``).

    Raise :class:`ArtifactError` naming the URI if it does not exist, is not a regular file, or
    is larger than the limit (checked before reading where the store says the size).
    """
    limit = max_bytes or settings.current().max_read_bytes
    target = StoreURI.parse(uri)
    if target.scheme == "file":
        try:
            with open(target.path, "rb") as handle:
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
    if target.scheme == "s3":
        client = _s3_client()
        try:
            response = client.get_object(Bucket=target.host, Key=target.path)
        except client.exceptions.NoSuchKey:
            raise ArtifactError(f"artifact not found: {uri}") from None
        except client.exceptions.NoSuchBucket:
            raise ArtifactError(f"bucket not found: {uri}") from None
        if response.get("ContentLength", 0) > limit:
            response["Body"].close()
            raise _too_large(uri, response["ContentLength"], limit)
        return _read_bounded(response["Body"], uri, limit)
    try:
        with _HTTP.open(str(target), timeout=60) as response:
            length = int(response.headers.get("Content-Length") or 0)
            if length > limit:
                raise _too_large(uri, length, limit)
            return _read_bounded(response, uri, limit)
    except urllib.error.HTTPError as err:
        if 300 <= err.code < 400:
            raise ArtifactError(f"cannot fetch {uri}: HTTP {err.code} redirect to {err.headers.get('Location')!r} "
                                "(redirects are not followed: the URI checked is the URI read; give the final URL)"
                                ) from None
        if err.code >= 500 or err.code in (408, 429):
            raise ArtifactUnavailable(f"cannot fetch {uri}: HTTP {err.code} (the server's trouble; retried)") from None
        raise ArtifactError(f"cannot fetch {uri}: HTTP {err.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise ArtifactUnavailable(f"cannot fetch {uri}: {getattr(err, 'reason', err)}") from None


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


def write_bytes(uri: str | StoreURI, data: bytes) -> str:
    """Write an object atomically and return its sha256 hex digest."""
    target = StoreURI.parse(uri)
    scheme, bucket, path = target.scheme, target.host, target.path
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


def create_bytes(uri: str | StoreURI, data: bytes) -> str:
    """Write an object only if none exists at ``uri`` (atomic create); return its sha256.

    Raises :class:`ArtifactExists` when another writer created it first: ``file`` links a
    complete temporary file to the name (``link(2)`` fails if the name exists), ``s3`` sends
    ``PutObject`` with ``If-None-Match: *`` (S3 and MinIO conditional writes). S3's 409
    ``ConditionalRequestConflict`` (another conditional write of the key is in flight; it may yet fail, so
    nothing exists to read back) is retried with backoff, as AWS advises; 412 ``PreconditionFailed`` is the
    object being there.
    """
    target = StoreURI.parse(uri)
    scheme, bucket, path = target.scheme, target.host, target.path
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
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                client.put_object(Bucket=bucket, Key=path, Body=data, IfNoneMatch="*")
                return digest
            except client.exceptions.ClientError as err:
                code = err.response.get("Error", {}).get("Code")
                if code == "PreconditionFailed":
                    raise ArtifactExists(f"{uri} exists already") from None
                if code != "ConditionalRequestConflict":
                    raise
            if attempt < CONFLICT_RETRIES:
                time.sleep(CONFLICT_BACKOFF_S * 2 ** attempt)
        raise ArtifactUnavailable(f"cannot create {uri}: S3 answered 409 ConditionalRequestConflict {CONFLICT_RETRIES + 1} "
                            "times (other writers of the same key kept it busy)")
    raise ArtifactError(f"cannot write to {uri}: {scheme}:// is read-only")


def list_names(uri: str | StoreURI, *, folders: bool = False) -> list[str]:
    """Names of the objects (or, with ``folders``, the sub-folders) directly under a folder URI, sorted."""
    target = StoreURI.parse(uri)
    scheme, bucket, path = target.scheme, target.host, target.path
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


def exists(uri: str | StoreURI) -> bool:
    """Whether an object exists at ``uri``."""
    target = StoreURI.parse(uri)
    if target.scheme == "file":
        return Path(target.path).is_file()
    if target.scheme == "s3":
        client = _s3_client()
        try:
            client.head_object(Bucket=target.host, Key=target.path)
            return True
        except client.exceptions.ClientError:
            return False
    try:
        read_bytes(target)
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


def local_path(uri: str | StoreURI) -> Path | None:
    """The filesystem path behind a ``file://`` URI, or None for remote stores."""
    return StoreURI.parse(uri).local_path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(uri: str, data: bytes, expected: str | None) -> str:
    """Return the digest of ``data``; raise if ``expected`` is given and differs."""
    digest = sha256(data)
    if expected and digest != expected.lower():
        raise ArtifactError(f"checksum mismatch for {uri}: expected sha256 {expected}, got {digest}")
    return digest


# The Airflow Variable that allows more dataset locations at once (read by each run's plan task), beside
# the deployment's RETRAIN_DATASET_ALLOWED: named here because the refusal below tells how to use it.
ALLOW_VARIABLE = "retrain_dataset_allowed"


def check_allowed(uri: str | StoreURI, prefixes: list[str] | tuple[str, ...]) -> StoreURI:
    """Return ``uri`` parsed if it lies under one of ``prefixes`` (folder prefixes), else raise.

    Read what this returns: it is the path that was checked. The message names the URI, the
    allowed locations and how to allow it (a few short lines); nothing about what exists there.
    """
    target = StoreURI.parse(uri)
    if target.scheme == "file" and not target.path.startswith("/"):
        raise ArtifactError(f"dataset location not allowed: {uri} is a relative path (give file:///<absolute path>)")
    if any(target.is_under(StoreURI.parse(prefix)) for prefix in prefixes):
        if target.scheme == "file":
            _check_links_stay_under(target, prefixes, uri)
        return target
    import shlex

    folder = _folder_of(target)
    raise ArtifactError(
        f"dataset location not allowed: {uri}\n"
        f"allowed: {', '.join(prefixes) or 'none'}\n"
        f"to allow {folder} (no restart; keep the entries the Variable already holds):\n"
        f"  airflow variables set {ALLOW_VARIABLE} {shlex.quote(json.dumps([folder]))}\n"
        "or add it to RETRAIN_DATASET_ALLOWED (comma-separated) in the deployment's environment")


def _check_links_stay_under(target: StoreURI, prefixes, uri) -> None:
    """Refuse a local path that a symbolic link on the way leads out of every allowed folder (both resolved)."""
    real = os.path.realpath(target.path)
    for prefix in map(StoreURI.parse, prefixes):
        if prefix.scheme == "file" and StoreURI("file", "", real).is_under(
                StoreURI("file", "", os.path.realpath(prefix.path))):
            return
    raise ArtifactError(f"dataset location not allowed: {uri} leads through a symbolic link out of the allowed "
                        "locations")


def _folder_of(target: StoreURI) -> str:
    """The prefix to suggest allowing: the server or bucket of a remote URI, the folder of a local one."""
    if target.scheme != "file":
        return f"{target.scheme}://{target.host}/"
    return f"file://{target.path if target.path.endswith('/') else target.path.rsplit('/', 1)[0] + '/'}"
