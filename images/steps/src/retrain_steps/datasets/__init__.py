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
from retrain_steps.artifacts import StoreURI

if TYPE_CHECKING:
    from retrain_steps.datasets.canonical import Canonical

FORMATS = ("npz", "image-folder-zip", "image-folder-tar", "label-studio")


def is_folder(uri: str | StoreURI) -> bool:
    """A local directory, or an S3 prefix written with its trailing ``/``."""
    source = StoreURI.parse(uri)
    if source.scheme == "file":
        return source.local_path.is_dir()
    return source.scheme == "s3" and (source.path == "" or source.path.endswith("/"))


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


def read_source(uri: str | StoreURI) -> bytes:
    """The bytes of a single-object dataset; a missing S3 key hints at the folder form (``…/``)."""
    source = StoreURI.parse(uri)
    if source.scheme == "s3" and not is_folder(source) and not artifacts.exists(source):
        raise artifacts.ArtifactError(f"artifact not found: {uri} (for a folder of images, end the URI with /)")
    return artifacts.read_bytes(source)


def read(uri: str | StoreURI, check_location: Callable[[str], StoreURI] = StoreURI.parse,
         data: bytes | None = None) -> tuple[Canonical, str | None]:
    """Read any supported dataset; return it canonical and the sha256 of the source object (None for a folder).

    ``check_location``: parses (and may refuse) every location read besides ``uri`` itself (the
    images a Label Studio export names); what it returns is what is read. ``data``: the source
    object's bytes, when the caller has read them already.
    """
    from retrain_steps.datasets import image_folder, label_studio, npz

    source = StoreURI.parse(uri)
    uri = str(uri)
    if is_folder(source):
        if source.scheme == "s3":
            return image_folder.build(image_folder.s3_entries(source), uri, "image-folder-s3", parallel=8), None
        root = source.local_path
        entries = image_folder.folder_entries(root)
        return image_folder.build(entries, uri, "image-folder", classes=image_folder.class_folders(root)), None
    data = read_source(source) if data is None else data
    digest = artifacts.sha256(data)
    fmt = sniff(data, uri)
    if fmt == "npz":
        return npz.read(data, uri), digest
    if fmt == "label-studio":
        return label_studio.read(data, uri, check_location), digest
    entries = image_folder.zip_entries(data, uri) if fmt == "image-folder-zip" else image_folder.tar_entries(data, uri)
    return image_folder.build(image_folder.strip_common_top(entries), uri, fmt), digest


def fingerprint(uri: str | StoreURI) -> str:
    """What changes when the dataset's content changes, read cheaply.

    One object: its ETag (S3) or sha256. A folder: a hash over every file's path, size and
    modification time (local) or ETag (S3), so adding, removing or replacing an image changes it.
    """
    source = StoreURI.parse(uri)
    if is_folder(source):
        if source.scheme == "s3":
            client = artifacts._s3_client()
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=source.host, Prefix=source.path)
            rows = [f"{o['Key']}\0{o['ETag']}\0{o['Size']}" for page in pages for o in page.get("Contents", [])]
        else:
            root = source.local_path
            rows = [f"{p.relative_to(root)}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}"
                    for p in sorted(root.rglob("*")) if p.is_file()]
        return "listing:" + hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    if source.scheme == "s3":
        head = artifacts._s3_client().head_object(Bucket=source.host, Key=source.path)
        return f"etag:{head['ETag'].strip(chr(34))}:{head['ContentLength']}"
    return f"sha256:{artifacts.sha256(artifacts.read_bytes(source))}"
