"""Dataset formats in, one canonical dataset out (see :mod:`retrain_steps.datasets.canonical`).

:func:`read` takes a dataset URI:

* a folder (``file://…`` that is a directory, or ``s3://bucket/prefix/`` ending in ``/``): an
  image-folder tree;
* one object (any scheme), recognised by its content: a ``.npz`` (zip of ``.npy``), a ``.zip``
  or ``.tar.gz`` image-folder archive, or a Label Studio JSON export.

:func:`fingerprint` is what changes when a dataset's content changes; the dataset watcher polls it
from the Airflow triggerer, so this module imports only the standard library and the artifact store.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from retrain_steps import artifacts

if TYPE_CHECKING:
    from retrain_steps.datasets.canonical import Canonical

FORMATS = ("npz", "image-folder-zip", "image-folder-tar", "label-studio")


def is_folder(uri: str) -> bool:
    path = artifacts.local_path(uri)
    return path.is_dir() if path is not None else uri.startswith("s3://") and uri.endswith("/")


def sniff(data: bytes, source: str) -> str:
    """The format of a single-object dataset, from its first bytes (and, for a zip, its members)."""
    from retrain_steps.data import DataError

    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise DataError(f"{source} is not a valid zip archive (.npz or .zip): {err}") from None
        return "npz" if names and all(name.endswith(".npy") for name in names) else "image-folder-zip"
    if data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar":
        return "image-folder-tar"
    if data.lstrip()[:1] in (b"[", b"{"):
        return "label-studio"
    raise DataError(f"{source}: unknown dataset format; expected an image folder, a .zip or .tar.gz of one, "
                    "an .npz with 'images' and 'target', or a Label Studio JSON export")


def read_source(uri: str) -> bytes:
    """The bytes of a single-object dataset; a missing S3 key hints at the folder form (``…/``)."""
    if uri.startswith("s3://") and not uri.endswith("/") and not artifacts.exists(uri):
        raise artifacts.ArtifactError(f"artifact not found: {uri} (for a folder of images, end the URI with /)")
    return artifacts.read_bytes(uri)


def read(uri: str, check_location: Callable[[str], object] = lambda uri: uri,
         data: bytes | None = None) -> tuple[Canonical, str | None]:
    """Read any supported dataset; return it canonical and the sha256 of the source object (None for a folder).

    ``data``: the source object's bytes, when the caller has read them already.
    """
    from retrain_steps.datasets import image_folder, label_studio, npz

    if is_folder(uri):
        if uri.startswith("s3://"):
            return image_folder.build(image_folder.s3_entries(uri), uri, "image-folder-s3", parallel=8), None
        root = artifacts.local_path(uri)
        entries = image_folder.folder_entries(root)
        return image_folder.build(entries, uri, "image-folder", classes=image_folder.class_folders(root)), None
    data = read_source(uri) if data is None else data
    digest = artifacts.sha256(data)
    fmt = sniff(data, uri)
    if fmt == "npz":
        return npz.read(data, uri), digest
    if fmt == "label-studio":
        return label_studio.read(data, uri, check_location), digest
    entries = image_folder.zip_entries(data, uri) if fmt == "image-folder-zip" else image_folder.tar_entries(data, uri)
    return image_folder.build(image_folder.strip_common_top(entries), uri, fmt), digest


def fingerprint(uri: str) -> str:
    """What changes when the dataset's content changes, read cheaply.

    One object: its ETag (S3) or sha256. A folder: a hash over every file's path, size and
    modification time (local) or ETag (S3), so adding, removing or replacing an image changes it.
    """
    if is_folder(uri):
        if uri.startswith("s3://"):
            bucket, _, prefix = uri.removeprefix("s3://").partition("/")
            client = artifacts._s3_client()
            rows = [f"{o['Key']}\0{o['ETag']}\0{o['Size']}"
                    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                    for o in page.get("Contents", [])]
        else:
            root = artifacts.local_path(uri)
            rows = [f"{p.relative_to(root)}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}"
                    for p in sorted(root.rglob("*")) if p.is_file()]
        return "listing:" + hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        head = artifacts._s3_client().head_object(Bucket=bucket, Key=key)
        return f"etag:{head['ETag'].strip(chr(34))}:{head['ContentLength']}"
    return f"sha256:{artifacts.sha256(artifacts.read_bytes(uri))}"
