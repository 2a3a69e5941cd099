"""The artifact store over file:// and a real S3 HTTP endpoint (moto server), and the registry."""

from __future__ import annotations

import http.server
import json
import threading

import boto3
import pytest

from retrain_steps import artifacts, registry
from tests.conftest import run_cli


@pytest.fixture
def bucket(s3_endpoint):
    name = "artifacts-test"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    yield name
    for item in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


def test_file_roundtrip_is_atomic_and_checksummed(tmp_path):
    uri = f"file://{tmp_path}/a/b/x.json"
    digest = artifacts.write_json(uri, {"b": 1, "a": 2})
    assert artifacts.read_json(uri) == {"a": 2, "b": 1}
    assert digest == artifacts.sha256((tmp_path / "a/b/x.json").read_bytes())
    assert [p.name for p in (tmp_path / "a/b").iterdir()] == ["x.json"]


def test_missing_objects_are_named(tmp_path, bucket):
    with pytest.raises(artifacts.ArtifactError, match="artifact not found: file://"):
        artifacts.read_bytes(f"file://{tmp_path}/none")
    with pytest.raises(artifacts.ArtifactError, match=f"artifact not found: s3://{bucket}/none"):
        artifacts.read_bytes(f"s3://{bucket}/none")
    with pytest.raises(artifacts.ArtifactError, match="bucket not found"):
        artifacts.read_bytes("s3://no-such-bucket/x")


def test_s3_roundtrip(bucket):
    uri = f"s3://{bucket}/runs/r1/x.bin"
    digest = artifacts.write_bytes(uri, b"payload")
    assert artifacts.read_bytes(uri) == b"payload"
    assert artifacts.exists(uri) and not artifacts.exists(f"s3://{bucket}/runs/r1/y.bin")
    assert digest == artifacts.sha256(b"payload")


def test_checksum_mismatch_is_refused():
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        artifacts.verify_sha256("file:///x", b"data", "0" * 64)


def test_unsupported_scheme_and_read_only_http():
    with pytest.raises(artifacts.ArtifactError, match="unsupported URI scheme 'ftp'"):
        artifacts.read_bytes("ftp://host/x")
    with pytest.raises(artifacts.ArtifactError, match="read-only"):
        artifacts.write_bytes("https://example.invalid/x", b"")


def test_http_download(tmp_path):
    (tmp_path / "d.bin").write_bytes(b"hello")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert artifacts.read_bytes(f"{base}/d.bin") == b"hello"
        with pytest.raises(artifacts.ArtifactError, match="HTTP 404"):
            artifacts.read_bytes(f"{base}/missing")
    finally:
        server.shutdown()


def test_steps_run_against_s3(trained, bucket):
    """download → preprocess on s3:// URIs through the real S3 protocol."""
    source = f"s3://{bucket}/datasets/digits.npz"
    artifacts.write_bytes(source, artifacts.read_bytes(trained["source"]))
    run_cli("retrain_steps", "download", "--source", source, "--output", f"s3://{bucket}/run/download")
    run_cli("retrain_steps", "preprocess", "--input", f"s3://{bucket}/run/download", "--output", f"s3://{bucket}/run/pp")
    stats = artifacts.read_json(f"s3://{bucket}/run/pp/stats.json")
    assert stats["sizes"]["train"] + stats["sizes"]["val"] + stats["sizes"]["test"] == 1797
    again = run_cli("retrain_steps", "preprocess", "--input", f"s3://{bucket}/run/download",
                    "--output", f"s3://{bucket}/run/pp")
    assert "up to date" in again.stdout


def test_registry_register_promote_and_verify(trained, tmp_path, bucket):
    for reg in (f"file://{tmp_path}/registry", f"s3://{bucket}/registry"):
        assert registry.production(reg) is None
        card = registry.write_card(reg, registry.register(reg, trained["train"], {"metrics": {"test_accuracy": 0.9}}))
        assert card["version"] == registry.register(reg, trained["train"], {})["version"], "same model, same version"
        pointer = registry.promote(reg, card["version"])
        assert pointer["previous"] is None and registry.production(reg)["version"] == card["version"]
        with pytest.raises(artifacts.ArtifactError):
            registry.promote(reg, "unknown")
        folder = tmp_path / ("f" if reg.startswith("file") else "s")
        folder.mkdir()
        registry.fetch_model(reg, card["version"], folder)
        assert (folder / "model.pt").stat().st_size > 0


def test_a_model_version_is_read_from_the_train_manifest_not_rehashed(trained, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(artifacts.local_path(trained["train"]), folder)
    expected = registry.register(f"file://{tmp_path}/registry", f"file://{folder}", {})["version"]
    assert registry.model_version(f"file://{folder}") == expected
    recorded = json.loads((folder / "manifest.json").read_text())
    recorded["outputs"]["model.pt"] = "ab" * 32  # what the manifest says is what counts (no re-read of the weights)
    (folder / "manifest.json").write_text(json.dumps(recorded))
    assert registry.model_version(f"file://{folder}") == "ab" * 6
    (folder / "manifest.json").unlink()  # a folder without a manifest: the weights are hashed
    assert registry.model_version(f"file://{folder}") == expected


def test_registry_detects_a_tampered_model(trained, tmp_path):
    reg = f"file://{tmp_path}/registry"
    card = registry.write_card(reg, registry.register(reg, trained["train"], {}))
    (tmp_path / "registry" / "versions" / card["version"] / "model.pt").write_bytes(b"tampered")
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        registry.fetch_model(reg, card["version"], tmp_path)
