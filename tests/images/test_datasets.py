"""Every dataset format to one canonical dataset and card; every bad dataset named, nothing half-written."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from retrain_steps import artifacts, datasets
from retrain_steps.data import DataError, dump_npz
from tests.conftest import run_cli
from tests.helpers.datasets import (
    image_files, label_studio_export, png, shape_image, tar_gz_bytes, write_folder, zip_bytes,
)
from tests.helpers.servers import serve_directory

CLASSES = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def files():
    return image_files(CLASSES, 4, 20, "L", seed=1)


def read(uri: str, **kwargs):
    canonical, _ = datasets.read(uri, **kwargs)
    return canonical, canonical.card(artifacts.sha256(canonical.payload()))


def test_an_image_folder_becomes_a_canonical_dataset_with_a_card(tmp_path, files):
    root = write_folder(tmp_path / "shapes", files)
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "README.txt").write_text("outside a class folder")
    (root / "circle" / "notes.txt").write_text("not an image")
    write_folder(root, {"square/nested/extra.png": png(shape_image("square", 20, np.random.default_rng(5)))})
    canonical, card = read(f"file://{root}")
    assert canonical.images.dtype == np.uint8 and canonical.images.shape == (13, 20, 20, 1)
    assert card["class_names"] == list(CLASSES) and card["class_counts"] == {"circle": 4, "square": 5, "triangle": 4}
    assert card["sizes_seen"] == {"20x20": 13} and card["modes_seen"] == {"L": 13} and card["format"] == "image-folder"
    assert card["skipped"] == {"hidden files": 1, "files outside a class folder": 1,
                               "not an image file (by extension)": 1}


def test_archives_and_folders_of_the_same_images_are_the_same_dataset_version(tmp_path, files):
    folder = read(f"file://{write_folder(tmp_path / 'f', files)}")[1]
    (tmp_path / "d.zip").write_bytes(zip_bytes(files, top="shapes/"))
    (tmp_path / "d.tar.gz").write_bytes(tar_gz_bytes(files))
    zipped, tarred = read(f"file://{tmp_path}/d.zip")[1], read(f"file://{tmp_path}/d.tar.gz")[1]
    assert folder["version"] == zipped["version"] == tarred["version"]
    assert (zipped["format"], tarred["format"]) == ("image-folder-zip", "image-folder-tar")


def test_an_s3_prefix_is_an_image_folder(s3_endpoint, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="datasets-prefix")
    rgb = image_files(CLASSES, 3, 24, "RGB", seed=2)
    for name, data in rgb.items():
        artifacts.write_bytes(f"s3://datasets-prefix/shapes/{name}", data)
    canonical, card = read("s3://datasets-prefix/shapes/")
    assert canonical.images.shape == (9, 24, 24, 3) and card["format"] == "image-folder-s3"
    assert card["version"] == read(f"file://{write_folder(tmp_path / 'rgb', rgb)}")[1]["version"]
    with pytest.raises(artifacts.ArtifactError, match="end the URI with /"):
        datasets.read("s3://datasets-prefix/shapes")


@pytest.mark.parametrize(
    ("images", "rule", "first_pixel"),
    [
        (np.full((4, 6, 6), 0.5, np.float32), "[0, 1] scaled by 255", 128),
        (np.full((4, 6, 6, 3), 200, np.int32), "[0, 255] as is", 200),
        (np.linspace(-1, 1, 4 * 36).reshape(4, 6, 6), "stretched", 0),
        (np.full((4, 6, 6), 7, np.uint8), "uint8 as is", 7),
    ],
)
def test_npz_of_any_numeric_range(tmp_path, images, rule, first_pixel):
    (tmp_path / "d.npz").write_bytes(dump_npz(images=images, target=np.array(["cat", "dog", "cat", "dog"])))
    canonical, card = read(f"file://{tmp_path}/d.npz")
    assert rule in card["pixel_range"] and int(canonical.images[0, 0, 0, 0]) == first_pixel
    assert card["class_names"] == ["cat", "dog"] and canonical.target.tolist() == [0, 1, 0, 1]
    assert canonical.images.shape[-1] == (3 if images.ndim == 4 else 1)


def test_a_label_studio_export_with_images_over_http(tmp_path, files):
    write_folder(tmp_path / "www", files)
    with serve_directory(tmp_path / "www") as base:
        export = json.loads(label_studio_export(files, base, unannotated=2))
        export[3]["annotations"].insert(0, {"was_cancelled": True, "created_at": "2026-11-02T00:00:00Z",
                                            "result": [{"type": "choices", "value": {"choices": ["triangle"]}}]})
        (tmp_path / "export.json").write_text(json.dumps(export))
        canonical, card = read(f"file://{tmp_path}/export.json")
        assert card["format"] == "label-studio" and card["skipped"] == {"tasks without an annotation": 2}
        assert card["samples"] == 10 and card["class_names"] == list(CLASSES)
        assert canonical.class_names[canonical.target[1]] == sorted(files)[3].split("/")[0], "the cancelled one is ignored"
        # The images a Label Studio export names are dataset locations too: the allow-list applies.
        result = run_cli("retrain_steps", "download", "--source", f"file://{tmp_path}/export.json",
                         "--output", f"file://{tmp_path}/dl", "--allow", f"file://{tmp_path}/", check=False)
        assert result.returncode == 2 and "dataset location not allowed" in result.stderr and base in result.stderr
        allowed = run_cli("retrain_steps", "download", "--source", f"file://{tmp_path}/export.json", "--output",
                          f"file://{tmp_path}/dl", "--allow", f"file://{tmp_path}/", "--allow", f"{base}/")
        assert allowed.result["dataset"]["samples"] == 10


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t[0]["annotations"][0]["result"][0]["value"].update(choices=["circle", "square"]),
         "has 2 choices"),
        (lambda t: t[0]["data"].update(image="/data/upload/1/x.png"), "stored inside Label Studio"),
        (lambda t: t[0]["data"].update(image="http://127.0.0.1:9/missing.png"), "cannot fetch http://127.0.0.1:9"),
    ],
)
def test_bad_label_studio_tasks_are_named(tmp_path, files, edit, message):
    tasks = json.loads(label_studio_export(files, "http://127.0.0.1:9"))
    edit(tasks)
    tasks = tasks[:1]
    (tmp_path / "e.json").write_text(json.dumps(tasks))
    with pytest.raises((DataError, artifacts.ArtifactError), match=message) as info:
        datasets.read(f"file://{tmp_path}/e.json")
    assert "task 1" in str(info.value)


def bad_tree(tmp_path: Path, case: str) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    gray = {f"{c}/{i}.png": png(shape_image(c, 12, rng)) for c in ("a", "b") for i in range(2)}
    root = tmp_path / "tree"
    if case == "unreadable":
        gray["b/broken.png"] = b"\x89PNG\r\n\x1a\n truncated"
        return f"file://{write_folder(root, gray)}", "b/broken.png is not a readable image"
    if case == "empty class":
        write_folder(root, gray)
        (root / "c").mkdir()
        return f"file://{root}", "class 'c' has no images"
    if case == "empty class in a zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("set/", b"")
            for name, data in gray.items():
                archive.writestr(f"set/{name}", data)
            archive.writestr("set/c/", b"")
        (tmp_path / "d.zip").write_bytes(buffer.getvalue())
        return f"file://{tmp_path}/d.zip", "class 'c' has no images"
    if case == "one class":
        return f"file://{write_folder(root, {k: v for k, v in gray.items() if k.startswith('a/')})}", "at least two classes"
    if case == "mixed modes":
        gray["b/colour.png"] = png(shape_image("b", 12, rng, mode="RGB"))
        return f"file://{write_folder(root, gray)}", "mixed image modes"
    if case == "pixel bomb":
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("1", (20000, 20000)).save(buffer, format="PNG")  # ~50 KB on disk, 400 M pixels decoded
        gray["a/huge.png"] = buffer.getvalue()
        return f"file://{write_folder(root, gray)}", "a/huge.png is over the pixel limit"
    if case == "zip bomb":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for i in range(3):
                archive.writestr(f"a/{i}.png", b"\0" * 5_000_000)
        (tmp_path / "bomb.zip").write_bytes(buffer.getvalue())
        return f"file://{tmp_path}/bomb.zip", "bytes of files (RETRAIN_MAX_DATASET_BYTES)"
    if case == "too many":
        return f"file://{write_folder(root, gray)}", "more than 3 images (RETRAIN_MAX_IMAGES)"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["unreadable", "empty class", "empty class in a zip", "one class", "mixed modes", "pixel bomb", "zip bomb",
                                  "too many"])
def test_a_bad_dataset_exits_2_naming_the_problem_and_writes_nothing(tmp_path, case):
    source, message = bad_tree(tmp_path, case)
    env = {"RETRAIN_MAX_DATASET_BYTES": "10000000", "RETRAIN_MAX_IMAGES": "3" if case == "too many" else "1000"}
    result = run_cli("retrain_steps", "download", "--source", source, "--output", f"file://{tmp_path}/dl",
                     env=env, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "dl").exists(), "no half-written dataset version"


def test_mixed_modes_name_a_file_of_each(tmp_path):
    source, _ = bad_tree(tmp_path, "mixed modes")
    with pytest.raises(DataError) as info:
        datasets.read(source)
    assert "b/colour.png is colour" in str(info.value) and "is grayscale" in str(info.value)


def test_a_file_uri_with_a_host_exits_2_naming_it_and_reads_nothing(tmp_path):
    """``file://tmp/x`` once passed a check of ``/tmp/x`` and then read ``tmp/x`` relative to the working folder."""
    import subprocess
    import sys

    npz = dump_npz(images=np.full((4, 6, 6), 7, np.uint8), target=np.array(["cat", "dog", "cat", "dog"]))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "d.npz").write_bytes(npz)
    cwd = tmp_path / "cwd"
    decoy = cwd / str(allowed).lstrip("/") / "d.npz"  # what a relative reading of the URI would open
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(npz)
    source = "file:/" + str(allowed / "d.npz")  # file://<first folder>/...: the first folder is the host part
    for allow in ([], ["--allow", f"file://{allowed}/"]):
        argv = [sys.executable, "-m", "retrain_steps", "download", "--source", source,
                "--output", f"file://{tmp_path}/dl", *allow]
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert source in result.stderr and "URI with host" in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "dl").exists()


def test_percent_encoded_dots_in_label_studio_image_urls_are_refused(tmp_path, files):
    """The image server decodes ``%2e%2e`` to ``..``: a check of the literal text would let it leave its folder."""
    write_folder(tmp_path / "www" / "private", files)
    with serve_directory(tmp_path / "www") as base:
        (tmp_path / "export.json").write_bytes(label_studio_export(files, f"{base}/public/%2e%2e/private"))
        allowed = [f"file://{tmp_path}/", f"{base}/public/"]
        with pytest.raises(DataError, match="public/%2e%2e/private"):
            datasets.read(f"file://{tmp_path}/export.json", lambda uri: artifacts.check_allowed(uri, allowed))
