"""The artifact store over file:// and a real S3 HTTP endpoint (moto server), and the registry."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
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


def test_one_s3_client_serves_the_process_until_its_environment_changes(bucket, monkeypatch):
    """Built once (5-10 ms a client, more than a small read), not per call; built again for other credentials and in a
    forked child (``bench/store_reads.py`` measures what it saves)."""
    client = artifacts._s3_client()
    artifacts.write_bytes(f"s3://{bucket}/in/a", b"a")
    assert artifacts.read_bytes(f"s3://{bucket}/in/a") == b"a" and artifacts.list_names(f"s3://{bucket}/in") == ["a"]
    assert artifacts._s3_client() is client, "every call built a client of its own"
    assert client.meta.config.max_pool_connections == artifacts.S3_CONNECTIONS
    pid = os.fork()
    if pid == 0:  # the child: the parent's client (and its connection pool) is not reused
        ok = False
        try:
            ok = artifacts._s3_client() is not client and artifacts.read_bytes(f"s3://{bucket}/in/a") == b"a"
        finally:
            os._exit(0 if ok else 1)  # never back into pytest
    assert os.waitpid(pid, 0)[1] == 0, "a forked child used its parent's client"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rotated")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "token")  # the older name botocore still reads
    rotated = artifacts._s3_client()
    credentials = rotated._request_signer._credentials
    assert rotated is not client and (credentials.access_key, credentials.token) == ("rotated", "token")


def test_checksum_mismatch_is_refused():
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        artifacts.verify_sha256("file:///x", b"data", "0" * 64)


def test_unsupported_scheme_and_read_only_http():
    with pytest.raises(artifacts.ArtifactError, match="unsupported URI scheme 'ftp'"):
        artifacts.read_bytes("ftp://host/x")
    with pytest.raises(artifacts.ArtifactError, match="read-only"):
        artifacts.write_bytes("https://example.invalid/x", b"")


def test_http_download():
    with http_store({"/d.bin": (200, {}, b"hello"), "/": (404, {}, b"")}) as (base, _):
        assert artifacts.read_bytes(f"{base}/d.bin") == b"hello"
        with pytest.raises(artifacts.ArtifactError, match="HTTP 404"):
            artifacts.read_bytes(f"{base}/missing")


@pytest.mark.parametrize(("status", "unavailable"), [(404, False), (403, False), (500, True), (503, True), (429, True)])
def test_a_server_error_is_unavailable_and_a_client_error_is_not(status, unavailable):
    """5xx/429: the store's trouble (exit 1, retried); 4xx: the URI is wrong (exit 2, not retried)."""
    with http_store({"/": (status, {}, b"")}) as (base, _):
        with pytest.raises(artifacts.ArtifactError, match=f"HTTP {status}") as raised:
            artifacts.read_bytes(f"{base}/x.npz")
    assert isinstance(raised.value, artifacts.ArtifactUnavailable) is unavailable


def test_an_unreachable_host_is_unavailable():
    from tests.helpers.servers import free_port

    with pytest.raises(artifacts.ArtifactUnavailable, match="cannot fetch"):
        artifacts.read_bytes(f"http://127.0.0.1:{free_port()}/x.npz")


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


def test_registry_register_and_promote(trained, tmp_path, bucket):
    for reg in (f"file://{tmp_path}/registry", f"s3://{bucket}/registry"):
        assert registry.production(reg) is None
        card = registry.write_card(reg, registry.register(reg, trained["train"], {"metrics": {"test_accuracy": 0.9}}))
        assert card["version"] == registry.register(reg, trained["train"], {})["version"], "same model, same version"
        pointer = registry.promote(reg, card["version"])
        assert pointer["previous"] is None and registry.production(reg)["version"] == card["version"]
        with pytest.raises(artifacts.ArtifactError):
            registry.promote(reg, "unknown")


def test_a_weights_file_of_other_bytes_under_a_version_is_refused_not_adopted(trained, tmp_path):
    """The weights file is named by its hash: one already there with other bytes is named, never recorded in a card."""
    reg = f"file://{tmp_path}/registry"
    version = registry.model_version(trained["train"])
    foreign = tmp_path / "registry" / "versions" / version / "model.pt"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"not these weights")
    with pytest.raises(artifacts.ArtifactError, match="holds other bytes") as info:
        registry.register(reg, trained["train"], {})
    assert str(foreign) in str(info.value)
    foreign.unlink()
    assert registry.register(reg, trained["train"], {})["version"] == version


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


# One parse of a store URI, shared by the allow-list check and the read (issue 19, defect 6).

def as_host_uri(path) -> str:
    """``/a/b`` written as ``file://a/b``: the first folder lands in the host part."""
    return "file:/" + str(path)


def test_the_checked_path_is_the_read_path(tmp_path, monkeypatch):
    """Every spelling of a file the allow-list accepts reads that very file, whatever the working directory."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "data.bin").write_bytes(b"the checked file")
    decoy = tmp_path / "cwd" / str(allowed).lstrip("/") / "data.bin"  # what a relative reading would open
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(b"a file outside the allow-list")
    monkeypatch.chdir(tmp_path / "cwd")
    prefixes = [f"file://{allowed}/"]
    spellings = [f"file://{allowed}/data.bin", f"file://localhost{allowed}/data.bin",
                 f"file://{allowed}/./x/../data.bin", f"file://{allowed}//data.bin", as_host_uri(allowed / "data.bin"),
                 str(allowed / "data.bin"), str(allowed / "data.bin").lstrip("/")]
    accepted = []
    for uri in spellings:
        try:
            artifacts.check_allowed(uri, prefixes)
        except artifacts.ArtifactError:
            continue
        assert artifacts.read_bytes(uri) == b"the checked file", f"{uri} was checked as one file and read as another"
        accepted.append(uri)
    assert f"file://localhost{allowed}/data.bin" in accepted and f"file://{allowed}/data.bin" in accepted


def test_a_symbolic_link_out_of_the_allowed_folder_is_refused(tmp_path):
    """A link inside an allowed folder may not lead the read out of every allowed folder; one staying inside may."""
    allowed, outside = tmp_path / "allowed", tmp_path / "secrets"
    (allowed / "sets").mkdir(parents=True)
    outside.mkdir()
    (outside / "key.npz").write_bytes(b"secret")
    (allowed / "sets" / "real.npz").write_bytes(b"data")
    (allowed / "to-secrets").symlink_to(outside)
    (allowed / "key.npz").symlink_to(outside / "key.npz")
    (allowed / "inside.npz").symlink_to(allowed / "sets" / "real.npz")
    prefixes = [f"file://{allowed}/"]
    for uri in (f"file://{allowed}/to-secrets/key.npz", f"file://{allowed}/key.npz", f"file://{allowed}/to-secrets/"):
        with pytest.raises(artifacts.ArtifactError, match="symbolic link") as info:
            artifacts.check_allowed(uri, prefixes)
        assert uri in str(info.value) and str(outside) not in str(info.value), "says nothing of what lies there"
    assert artifacts.read_bytes(artifacts.check_allowed(f"file://{allowed}/inside.npz", prefixes)) == b"data"
    assert artifacts.check_allowed(f"file://{allowed}/to-secrets/key.npz", [*prefixes, f"file://{outside}/"])


@pytest.mark.parametrize("host", ["tmp", "evil.host", "127.0.0.1", "localhost:8080", "user@localhost"])
def test_a_file_uri_with_a_host_is_refused_naming_it(tmp_path, monkeypatch, host):
    monkeypatch.chdir(tmp_path)  # a relative write (the old reading of such a URI) would land here
    uri = f"file://{host}{tmp_path}/x.bin"
    for use in (artifacts.read_bytes, lambda u: artifacts.write_bytes(u, b"x"), artifacts.local_path,
                lambda u: artifacts.check_allowed(u, [f"file://{tmp_path}/", f"file:///{host}/"])):
        with pytest.raises(artifacts.ArtifactError, match="URI with host") as info:
            use(uri)
        assert uri in str(info.value)
    assert not list(tmp_path.iterdir()), "nothing written"


def test_file_localhost_is_the_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifacts.write_bytes(f"file://localhost{tmp_path}/a.bin", b"local")
    assert (tmp_path / "a.bin").read_bytes() == b"local"
    assert artifacts.read_bytes(f"file://{tmp_path}/a.bin") == b"local"
    assert artifacts.local_path(f"file://LOCALHOST{tmp_path}/a.bin") == tmp_path / "a.bin"


ALLOWED = ["file:///srv/store/", "s3://datasets/sets/", "https://data.example.com/sets/"]


def assert_refused_naming_it(uri: str) -> None:
    with pytest.raises(artifacts.ArtifactError) as info:
        artifacts.check_allowed(uri, ALLOWED)
    assert uri in str(info.value)


@pytest.mark.parametrize("uri", [
    "file:///srv/store/%2e%2e/%2e%2e/etc/passwd", "file:///srv/store/%2E%2E/x.npz", "file:///srv/store/.%2e/x.npz",
    "file:///srv/store/..%2fetc/passwd", "s3://datasets/sets/%2e%2e/private/x.npz",
    "https://data.example.com/sets/%2e%2e/private/x.npz", "https://data.example.com/sets/%2E./private/x.npz",
    "https://data.example.com/sets/..%2Fprivate/x.npz", "https://data.example.com/sets/..%5cprivate/x.npz",
    "https://data.example.com/sets/..\\private/x.npz",
])
def test_percent_encoded_dots_and_slashes_are_refused(uri):
    """A server (or a later decoder) would read ``%2e%2e`` as ``..``: refused rather than checked literally."""
    assert_refused_naming_it(uri)


@pytest.mark.parametrize("uri", [
    "file:///etc/passwd", "file:///dev/zero", "file:///srv/store/../../etc/passwd", "file:///srv/store-evil/x.npz",
    "/srv/store/../etc/passwd", "srv/store/x.npz", "file:srv/store/x.npz", "file://srv/store/x.npz",
    "s3://other-bucket/x.npz", "s3://datasets/sets-evil/x.npz", "s3://datasets/sets/../private/x.npz",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/",
    "http://127.0.0.1:8080/api/v2/dags", "http://localhost:8080/api/v2/dags",
    "https://data.example.com@169.254.169.254/sets/x.npz", "https://data.example.com.evil.com/sets/x.npz",
    "https://data.example.com:8443/sets/x.npz", "http://data.example.com/sets/x.npz",
    "https://data.example.com/sets/../private/x.npz", "https://data.example.com/other/x.npz",
    "ftp://data.example.com/sets/x",
])
def test_hostile_dataset_uris_are_refused_naming_them(uri):
    assert_refused_naming_it(uri)


@pytest.mark.parametrize(("uri", "expected"), [
    ("file:///srv/store/sets/a/../x.npz", "file:///srv/store/sets/x.npz"),
    ("file://localhost/srv/store/x.npz", "file:///srv/store/x.npz"),
    ("/srv/store/x.npz", "file:///srv/store/x.npz"),
    ("s3://datasets/sets/a/../x.npz", "s3://datasets/sets/x.npz"),
    ("s3://datasets/sets/", "s3://datasets/sets/"),
    ("HTTPS://DATA.example.com/sets/x.npz?sig=1", "https://data.example.com/sets/x.npz?sig=1"),
])
def test_allowed_uris_come_back_as_the_one_parsed_uri(uri, expected):
    prefixes = ["file:///srv/store/", "s3://datasets/sets/", "https://data.example.com/sets/"]
    checked = artifacts.check_allowed(uri, prefixes)
    assert isinstance(checked, artifacts.StoreURI) and str(checked) == expected
    assert artifacts.StoreURI.parse(checked) is checked, "a parsed URI is not parsed again"


@contextlib.contextmanager
def http_store(routes: dict[str, tuple[int, dict, bytes]]):
    """An HTTP server on 127.0.0.1 answering ``path prefix -> (status, headers, body)``; yields ``(base URL, paths asked)``."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            status, headers, body = next(v for k, v in routes.items() if self.path.startswith(k))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()


def test_reads_of_a_normalized_http_uri_ask_for_the_checked_path():
    """``/sets/a/../x`` is checked as ``/sets/x``; the request asks for ``/sets/x`` too, not the raw path."""
    with http_store({"/": (200, {}, b"ok")}) as (base, seen):
        checked = artifacts.check_allowed(f"{base}/sets/a/../x.npz?sig=1", [f"{base}/sets/"])
        assert artifacts.read_bytes(checked) == b"ok" and seen == ["/sets/x.npz?sig=1"]


def test_an_allowed_http_location_cannot_redirect_the_read_elsewhere():
    """A redirect from an allowed host to one nobody checked (a metadata address, the Airflow API) is not followed."""
    routes = {"/sets/": (302, {"Location": "/private/secret.npz"}, b""), "/private/": (200, {}, b"secret")}
    with http_store(routes) as (base, seen):
        checked = artifacts.check_allowed(f"{base}/sets/x.npz", [f"{base}/sets/"])
        with pytest.raises(artifacts.ArtifactError, match="HTTP 302 redirect to '/private/secret.npz'.*not followed"):
            artifacts.read_bytes(checked)
        assert seen == ["/sets/x.npz"], "the redirect target was never requested"
