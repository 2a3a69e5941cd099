"""Image-folder datasets: ``<class name>/<image files>`` (torchvision's ImageFolder layout).

The tree can be a local folder (``file://``), an S3 prefix (``s3://bucket/prefix/``) or an
archive (``.zip``, ``.tar.gz``) on any scheme. Class names are the first-level folder names,
sorted; images may sit in subfolders of their class. Hidden files (``.*``, ``__MACOSX``), files
that are not images by extension and files outside a class folder are skipped and counted. An
archive is read from memory (nothing is extracted to disk); its entry count and unpacked size
are bounded (``RETRAIN_MAX_IMAGES``, ``RETRAIN_MAX_DATASET_BYTES``) before anything is decoded.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from retrain_steps import artifacts, settings
from retrain_steps.data import DataError
from retrain_steps.datasets.canonical import Canonical, DatasetBuilder, is_image_name

Entry = tuple[str, int, Callable[[], bytes]]  # (path inside the tree, size in bytes, read)


def max_entries() -> int:
    """Most files a folder of images may hold: room for two per image (sidecars) and some more."""
    return settings.current().max_images * 2 + 1000


def _bounded(entries: Iterable[Entry], source: str) -> Iterator[Entry]:
    total, most_entries, most_bytes = 0, max_entries(), settings.current().max_dataset_bytes
    for count, (name, size, read) in enumerate(entries, 1):
        total += size
        if count > most_entries:
            raise DataError(f"{source}: more than {most_entries} files (RETRAIN_MAX_IMAGES)")
        if total > most_bytes:
            raise DataError(f"{source}: more than {most_bytes} bytes of files (RETRAIN_MAX_DATASET_BYTES)")
        yield name, size, read


def folder_entries(root: Path) -> list[Entry]:
    """Regular files under a local folder (symbolic links are not followed)."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                entries.append((path.relative_to(root).as_posix(), path.stat().st_size,
                                lambda p=artifacts.StoreURI.from_path(path): artifacts.read_bytes(p)))
    return entries


def s3_entries(folder: artifacts.StoreURI) -> list[Entry]:
    """Objects under an S3 prefix, listed page by page (each read by its key as listed: keys are literal)."""
    bucket, prefix = folder.host, folder.path
    client = artifacts._s3_client()
    entries, most_entries = [], max_entries()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                key = artifacts.StoreURI("s3", bucket, item["Key"])
                entries.append((item["Key"][len(prefix):], item["Size"], lambda u=key: artifacts.read_bytes(u)))
            if len(entries) > most_entries:
                raise DataError(f"{folder}: more than {most_entries} objects (RETRAIN_MAX_IMAGES)")
    return entries


def zip_entries(data: bytes, source: str) -> list[Entry]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise DataError(f"{source} is not a readable .zip archive: {err}") from None

    def read(info: zipfile.ZipInfo) -> bytes:
        try:
            return archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise DataError(f"{source}: cannot unpack {info.filename}: {err}") from None

    return list(_bounded(((info.filename, 0 if info.is_dir() else info.file_size,
                           _no_bytes if info.is_dir() else lambda i=info: read(i)) for info in infos), source))


def tar_entries(data: bytes, source: str) -> list[Entry]:
    """Regular files and folders of a ``.tar.gz`` (links and devices are skipped), read while streaming."""
    entries: list[Entry] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as archive:
            members = _bounded(((m.name + "/" * m.isdir(), m.size, m) for m in archive if m.isfile() or m.isdir()),
                               source)
            for name, size, member in members:
                handle = None if member.isdir() else archive.extractfile(member)
                content = handle.read() if handle else b""
                entries.append((name, size, lambda c=content: c))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{source} is not a readable .tar.gz archive: {err}") from None
    return entries


def _no_bytes() -> bytes:
    return b""


def _hidden(parts: list[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def strip_common_top(entries: list[Entry]) -> list[Entry]:
    """Drop a single top folder that holds the whole tree (``zip -r shapes.zip shapes/``)."""
    visible = [name.split("/") for name, _, _ in entries if not name.endswith("/") and not _hidden(name.split("/"))]
    tops = {parts[0] for parts in visible}
    if len(tops) == 1 and visible and all(len(parts) >= 3 for parts in visible):
        top = tops.pop() + "/"
        return [(name.removeprefix(top), size, read) for name, size, read in entries]
    return entries


def class_folders(root: Path) -> set[str]:
    """The first-level folders of a local tree: classes, even those without any file (an error later)."""
    return {p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not _hidden([p.name])}


def build(entries: list[Entry], source: str, fmt: str, *, parallel: int = 1, classes: set[str] = frozenset()) -> Canonical:
    """Label every image by its class folder and build the canonical dataset."""
    builder = DatasetBuilder(source, fmt)
    classes, wanted = set(classes), []
    for name, size, read in _bounded(entries, source):
        parts = [part for part in name.split("/") if part]
        if not parts:  # the stripped top folder itself
            continue
        if name.endswith("/"):  # a folder entry of an archive: a class, even an empty one
            if len(parts) == 1 and not _hidden(parts):
                classes.add(parts[0])
        elif _hidden(parts):
            builder.skip("hidden files")
        elif len(parts) < 2:
            builder.skip("files outside a class folder")
        else:
            classes.add(parts[0])
            if is_image_name(parts[-1]):
                wanted.append((name, parts[0], read))
            else:
                builder.skip("not an image file (by extension)")
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for (name, label, _), data in zip(wanted, pool.map(lambda item: item[2](), wanted)):
            builder.add(name, label, data)
    return builder.build(sorted(classes))
