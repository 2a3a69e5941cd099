"""The model server over real HTTP: a real ``bentoml serve`` process on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrain_steps import registry
from retrain_steps.digits_profile import pixels_to_png
from retrain_steps.preprocess import load_spec, load_splits
from serving.service import EXAMPLE_INPUT, MAX_REQUEST_BYTES, VERSION_HEADER
from tests.conftest import ROOT, run_cli
from tests.helpers.servers import wait_http
from tests.serving.conftest import package, serve_bento, serve_source
from tests.serving.test_ood import colourful_photo

SAMPLE = ROOT / "serving" / "samples" / "digit-3.png"


def post_file(url, data: bytes, name="digit.png", field="file"):
    return httpx.post(f"{url}/predict", files={field: (name, data, "image/png")}, timeout=30)


def test_the_shipped_sample_is_a_three(server, live_registry):
    response = post_file(server, SAMPLE.read_bytes())
    assert response.status_code == 200
    body = response.json()
    assert body["prediction"] == 3 and len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert (body["class_name"], body["class_index"]) == ("3", 3)
    top = body["top_k"]
    assert len(top) == 5 and top[0] == {"class_name": "3", "class_index": 3, "probability": body["probabilities"][3]}
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert response.headers[VERSION_HEADER] == live_registry["version"] == body["model_version"]


def top_level_keys(sample: str) -> set[str]:
    """The keys of the outermost object in a JSON-like ``sample`` whose values may be elided (``[...]``, ``…``)."""
    keys, depth, quoted, start = set(), 0, False, 0
    for index, char in enumerate(sample):
        if char == '"':
            quoted = not quoted
            if quoted:
                start = index + 1
            elif depth == 1 and sample[index + 1:].lstrip().startswith(":"):
                keys.add(sample[start:index])
        elif not quoted and char in "{[":
            depth += 1
        elif not quoted and char in "}]":
            depth -= 1
    return keys


def test_the_readme_curl_lines_as_written(server, tmp_path):
    """README.md's ``curl ... 127.0.0.1:3000/predict`` lines, run as written (tests/test_readme.py) against this server:
    a curlrc sends :3000 here, ``file=@`` a file that is not in the project is a photo of the reader's; each answers
    200 with the documented answer's fields."""
    from tests.helpers.readme import commands
    from tests.test_readme import RUN_ELSEWHERE

    me = test_the_readme_curl_lines_as_written.__name__
    prefix = next(p for p, test in RUN_ELSEWHERE.items() if test.endswith(me))
    lines = [c for c in commands() if c.text.startswith(prefix)]
    assert lines, "the README shows curl lines"
    (tmp_path / "serving").symlink_to(ROOT / "serving")
    here = server.removeprefix("http://")
    (tmp_path / ".curlrc").write_text(f"connect-to = 127.0.0.1:3000:{here}\nsilent\nshow-error\n")
    for name in {m for c in lines for m in re.findall(r"file=@(\S+)", c.text)}:
        if (tmp_path / name).exists():  # a file of the project (through the link): sent as it is, never overwritten
            continue
        from PIL import Image

        Image.effect_mandelbrot((1024, 768), (-2, -1.2, 1, 1.2), 64).convert("RGB").save(tmp_path / name, "JPEG")
    for line in lines:
        done = subprocess.run(["bash", "-c", f"{line.text} --fail-with-body"], cwd=tmp_path, capture_output=True,
                              text=True, env={"PATH": os.environ["PATH"], "CURL_HOME": str(tmp_path)}, timeout=60)
        assert done.returncode == 0, f"README.md:{line.line}: {line.text}\n{done.stdout}{done.stderr}"
        answer = json.loads(done.stdout)
        if line.answer:  # the documented answer (values elided with ... or …) names every field of the real one
            documented = top_level_keys(line.answer)
            assert documented == set(answer), f"README.md:{line.line}: {line.answer}\nanswered: {answer}"


def test_pngs_of_both_polarities_and_sizes_are_classified(server, trained):
    splits = load_splits(trained["preprocess"], load_spec(trained["preprocess"]))
    rng = np.random.default_rng(0)
    picks = rng.choice(len(splits["y_test"]), size=20, replace=False)
    correct = 0
    for n, i in enumerate(picks):
        png = pixels_to_png(splits["x_test"][i, :, :, 0] / 255 * 16, scale=(3, 10, 28, 50)[n % 4], invert=n % 2 == 0)
        response = post_file(server, png)
        assert response.status_code == 200
        correct += response.json()["prediction"] == int(splits["y_test"][i])
    assert correct >= 17, f"only {correct}/20 uploads classified correctly"


def test_json_instances(server):
    response = httpx.post(f"{server}/predict", json=EXAMPLE_INPUT, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [3] and len(body["probabilities"][0]) == 10
    assert body["class_names"] == ["3"] and body["top_k"][0][0]["class_name"] == "3"
    batch = httpx.post(f"{server}/predict", json={"instances": EXAMPLE_INPUT["instances"] * 3}, timeout=30)
    assert batch.json()["predictions"] == [3, 3, 3]
    nested = np.array(EXAMPLE_INPUT["instances"][0]).reshape(1, 8, 8).tolist()  # the model's own shape, nested
    assert httpx.post(f"{server}/predict", json={"instances": nested}, timeout=30).json()["class_names"] == ["3"]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"files": {"other": ("x.png", SAMPLE.read_bytes(), "image/png")}}, 400, "unexpected form field(s) ['other']"),
        ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"file": ("x.png", b"this is not an image", "image/png")}}, 400, "not a readable image"),
        ({"data": {"file": "http://127.0.0.1:1/x.png"}, "files": {"instances": ("d", b"[]", "text/plain")}}, 400,
         "must be a file upload"),
        ({"files": {"file": ("big.png", b"0" * (MAX_REQUEST_BYTES + 1), "image/png")}}, 413, "exceeds the limit"),
        ({"json": {"instances": [[1, 2, 3]]}}, 400, "64 numbers, or nested [8][8]"),
        ({"json": {"instances": [["1"] * 64]}}, 400, "numbers only"),
        ({"json": {"instances": [[True] * 64]}}, 400, "numbers only"),
        ({"json": {"instances": [[1] * 64, [1] * 63]}}, 400, "the model's shape"),
        ({"json": {"instances": []}}, 400, "1 to"),
        ({"json": {"instances": "3"}}, 400, "validation error"),
        ({"json": {}}, 400, "exactly one of"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "Invalid JSON"),
        ({"content": b'{"instances": [[NaN' + b", 0" * 63 + b"]]}", "headers": {"content-type": "application/json"}},
         400, "finite numbers"),
        ({"json": {"instances": [[99] * 64]}}, 400, "[0, 16]"),
        ({"content": b"x=1", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415, "content type"),
        # malformed multipart (each a 500 from BentoML's own parser before the endpoint served /predict)
        ({"content": b"--B\r\n\r\n1\r\n--B--\r\n", "headers": {"content-type": "multipart/form-data"}}, 400,
         "malformed multipart body"),
        ({"content": b"--B\r\n\r\n1\r\n--B--\r\n", "headers": {"content-type": "multipart/form-data; boundary=B"}},
         400, "malformed multipart body"),
        ({"content": b"".join(b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i
                              for i in range(1001)) + b"--B--\r\n",
          "headers": {"content-type": "multipart/form-data; boundary=B"}}, 400, "more than 4 parts"),
        ({"json": {"instances": [EXAMPLE_INPUT["instances"][0]], "extra": 1}}, 400, "exactly one of"),
        ({"json": [1, 2]}, 400, "exactly one of"),
    ],
)
def test_bad_input_gets_a_json_4xx(server, kwargs, status, message):
    response = httpx.post(f"{server}/predict", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert message in json.dumps(response.json())


def png_of_size(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("size", "message"),
    [((20000, 1), "aspect ratio over 100:1"), ((100000, 1), "aspect ratio over 100:1"),
     ((5000, 5000), "over the pixel limit of 16777216")],
)
def test_decompression_bombs_are_refused_from_the_header(server, size, message):
    data = png_of_size(*size)
    assert len(data) < 100_000
    started = time.monotonic()
    response = post_file(server, data)
    assert response.status_code == 400 and message in response.json()["error"]
    assert time.monotonic() - started < 1.0, "refused before decoding"


def test_parallel_maximal_uploads_delay_a_normal_client_by_a_bounded_time(server):
    """Nine uploads at the pixel limit (4096x4096, decoded in full) in flight: a normal upload still
    answers within 2 s (the bound stated in the README), and every request gets an answer."""
    big = png_of_size(4096, 4096)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        hostile = [pool.submit(post_file, server, big) for _ in range(9)]
        time.sleep(0.05)
        started = time.monotonic()
        normal = post_file(server, SAMPLE.read_bytes())
        waited = time.monotonic() - started
        statuses = [f.result().status_code for f in hostile]
    print(f"normal upload answered in {waited:.2f} s with 9 maximal uploads in flight")
    assert normal.status_code == 200 and waited < 2.0, waited
    assert all(status == 400 for status in statuses), statuses  # blank: no visible digit


def test_filename_before_name_is_still_an_upload(server):
    body = (b'--B\r\nContent-Disposition: form-data; filename="d.png"; name="file"\r\nContent-Type: image/png\r\n\r\n'
            + SAMPLE.read_bytes() + b"\r\n--B--\r\n")
    response = httpx.post(f"{server}/predict", content=body, timeout=30,
                          headers={"content-type": "multipart/form-data; boundary=B"})
    assert response.status_code == 200 and response.json()["class_name"] == "3"


def test_client_example(server, live_registry):
    image = run_cli("serving.client", "--url", server, "--image", str(SAMPLE), "--expect", "3")
    assert json.loads(image.stdout) == {"digit": 3, "model_version": live_registry["version"]}
    assert run_cli("serving.client", "--url", server, "--expect", "3").returncode == 0
    wrong = run_cli("serving.client", "--url", server, "--expect", "5", check=False)
    assert wrong.returncode == 1 and "expected 5, got 3" in wrong.stderr


def test_what_serves_is_the_packaged_bento(server, server_log, live_registry):
    """The module's server runs the bento ``serving.package`` built (its own code, from outside the source tree),
    and its registry follower fetched and verified that bento before loading the model."""
    card = live_registry["card"]
    log = server_log.read_text()
    assert f'BentoServer from "digits_classifier:{card["version"]}"' in log
    assert (f"bento digits_classifier:{card['version']} of version {card['version']} "
            f"(sha256 {card['bento']['sha256']} verified)") in log


def test_client_matches_the_service_example():
    from serving import client

    assert client.EXAMPLE_INSTANCE == EXAMPLE_INPUT["instances"][0]


def test_a_served_photo_is_answered_out_of_distribution_and_counted(server):
    """Over HTTP from the packaged bento (its model carries the statistics): the fields, and ``/metrics``' count."""
    def count() -> float:
        metrics = httpx.get(f"{server}/metrics").text
        rows = [row.rsplit(" ", 1) for row in metrics.splitlines() if row.startswith("digits_predictions_total{")]
        return sum(float(value) for labels, value in rows if 'in_distribution="false"' in labels)

    before = count()
    response = httpx.post(f"{server}/predict", files={"file": ("photo.jpg", colourful_photo(1), "image/jpeg")},
                          timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["in_distribution"] is False and body["ood_score"] > 1, body
    assert count() == before + 1


def test_health_and_metrics_endpoints(server):
    assert httpx.get(f"{server}/livez").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 200
    metrics = httpx.get(f"{server}/metrics").text
    assert 'digits_requests_total{route="/predict",status="200"}' in metrics
    assert "digits_request_duration_seconds_bucket" in metrics and "digits_model_fallback 0.0" in metrics
    version = httpx.get(f"{server}/readyz").json()["model_version"]
    assert f'version="{version}"}} 1.0' in metrics
    spec = httpx.get(f"{server}/docs.json").json()
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in content and "application/json" in content
    version = httpx.get(f"{server}/readyz").json()["model_version"]
    assert "digits_classifier" in spec["info"]["title"] and spec["info"]["version"] == version
    assert version in spec["info"]["description"] and "BentoML Team" not in json.dumps(spec["info"])


def test_concurrent_requests_share_forward_passes_and_each_gets_its_own_answer(server, trained):
    """64 uploads of different digits at once: fewer forward passes than requests (adaptive batching,
    ``digits_predict_batch_requests``), and each answer is the one that image gets alone."""
    splits = load_splits(trained["preprocess"], load_spec(trained["preprocess"]))
    uploads = [pixels_to_png(splits["x_test"][i, :, :, 0] / 255 * 16, scale=4) for i in range(64)]
    alone = [post_file(server, png).json() for png in uploads]
    before = httpx.get(f"{server}/metrics").text
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        together = list(pool.map(lambda png: post_file(server, png), uploads))
    after = httpx.get(f"{server}/metrics").text
    assert [r.status_code for r in together] == [200] * 64
    assert [r.json()["prediction"] for r in together] == [a["prediction"] for a in alone]
    for response, single in zip(together, alone, strict=True):
        assert np.allclose(response.json()["probabilities"], single["probabilities"], atol=1e-5)
    def grown(name: str) -> float:
        return metric(after, name) - metric(before, name)

    passes, requests = grown("digits_predict_batch_requests_count"), grown("digits_predict_batch_requests_sum")
    images = grown("digits_predict_batch_size_sum")
    print(f"64 concurrent uploads: {passes:.0f} forward passes")
    assert requests == images == 64 and passes < 64


def test_the_docs_page_works_offline(server):
    """The banner's /docs answers, and every script and stylesheet it loads comes from the server itself."""
    import re

    page = httpx.get(f"{server}/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    assert all(httpx.get(f"{server}{a}").status_code == 200 for a in assets)
    assert httpx.get(f"{server}/").text == page.text


def test_promotion_swaps_the_model_without_dropping_requests(server, trained, live_registry, tmp_path):
    """Package and promote a second version while requests are in flight: all succeed, the header changes."""
    run_cli("retrain_steps", "train", "--input", trained["preprocess"], "--output", f"file://{tmp_path}/m2",
            "--epochs", "1", "--seed", "1")
    run_cli("retrain_steps", "evaluate", "--data", trained["preprocess"], "--model", f"file://{tmp_path}/m2",
            "--output", f"file://{tmp_path}/e2")
    card = package(f"file://{tmp_path}/m2", f"file://{tmp_path}/e2", trained["download"], live_registry["uri"])
    assert card["version"] != live_registry["version"]

    def call(_):
        response = httpx.post(f"{server}/predict", json=EXAMPLE_INPUT, timeout=30)
        return response.status_code, response.headers.get(VERSION_HEADER)

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(call, i) for i in range(40)]
            registry.promote(live_registry["uri"], card["version"])
            results = [f.result() for f in futures]
            deadline = time.monotonic() + 20
            while call(0)[1] != card["version"] and time.monotonic() < deadline:
                time.sleep(0.25)
        assert all(status == 200 for status, _ in results)
        assert call(0) == (200, card["version"])
    finally:
        if registry.production_version(live_registry["uri"]) != live_registry["version"]:
            registry.promote(live_registry["uri"], live_registry["version"])


def test_not_ready_without_a_production_model(tmp_path):
    with serve_source(f"file://{tmp_path}/empty", tmp_path, {"DIGITS_POLL_SECONDS": "0.5"}, ready="/livez") as (url, _):
        assert httpx.get(f"{url}/readyz").status_code == 503
        response = httpx.post(f"{url}/predict", json=EXAMPLE_INPUT, timeout=30)
        assert response.status_code == 503 and "no model" in response.json()["error"]


def test_the_packaged_bento_serves_on_its_own(trained, packaged, tmp_path):
    """What the chart runs: the init container's fetch (a wrong sha256 imports nothing), then the bento served
    from a fresh BentoML home outside the source tree, with no registry to follow (its own model)."""
    card = packaged["card"]
    assert card["metrics"]["test_accuracy"] >= 0.95 and card["dataset"]["sha256"]
    home = tmp_path / "bentoml"
    env = {"BENTOML_HOME": str(home), "PYTHONPATH": ""}
    bad = run_cli("serving.fetch", "--uri", card["bento"]["uri"], "--sha256", "0" * 64, env=env, check=False)
    assert bad.returncode == 2 and "checksum mismatch" in bad.stderr and not home.exists()
    with serve_bento(card, tmp_path, tmp_path / "log", {"DIGITS_WORKERS": "1", "DIGITS_REGISTRY_URI": ""}) as url:
        response = post_file(url, SAMPLE.read_bytes())
        assert response.status_code == 200 and response.json()["prediction"] == 3
        assert response.headers[VERSION_HEADER] == card["version"]
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "model_version": card["version"]}
    again = run_cli("serving.fetch", "--uri", card["bento"]["uri"], "--sha256", card["bento"]["sha256"], env=env)
    assert f"already in the store: digits_classifier:{card['version']}" in again.stdout  # a restarted pod's init
    rerun = run_cli("serving.package", "--model", trained["train"], "--evaluation", trained["evaluate"],
                    "--dataset", trained["download"], "--registry", packaged["uri"])
    assert "already registered" in rerun.stdout


def test_an_unloadable_production_version_falls_back_to_the_previous_one(packaged, tmp_path):
    """After a restart with a corrupted bento in production: serve the previous version, say so, log it once."""
    reg = f"file://{tmp_path}/registry"
    good = registry.write_card(reg, packaged["card"])["version"]
    corrupted = tmp_path / "corrupted.bento"
    corrupted.write_bytes(Path(packaged["card"]["bento"]["uri"].removeprefix("file://")).read_bytes()[:-100])
    bad = "0badbadbad00"
    registry.write_card(reg, {**packaged["card"], "version": bad,
                              "bento": {**packaged["card"]["bento"], "uri": f"file://{corrupted}"}})
    registry.promote(reg, good)
    registry.promote(reg, bad)
    with serve_source(reg, tmp_path, {"DIGITS_POLL_SECONDS": "0.2"}) as (url, _):
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["model_version"] == good and ready["fallback"]["production"] == bad
        assert "checksum mismatch" in ready["fallback"]["reason"]
        response = post_file(url, SAMPLE.read_bytes())
        assert response.status_code == 200 and response.headers[VERSION_HEADER] == good
        time.sleep(2)  # ten polls
    log = (tmp_path / "serve.log").read_text()
    errors = [line for line in log.splitlines() if f"cannot load model version {bad}" in line]
    assert len(errors) == 1, errors
    assert "Traceback" not in log


def test_a_version_without_a_bento_is_never_served_from_its_weights(trained, tmp_path):
    """A version registered with weights but no bento (package never finished) is not loadable: nothing serves."""
    reg = f"file://{tmp_path}/registry"
    version = registry.write_card(reg, registry.register(reg, trained["train"], {}))["version"]
    registry.promote(reg, version)
    with serve_source(reg, tmp_path, ready="/livez") as (url, _):
        deadline = time.monotonic() + 10
        while "cannot load model version" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline, "the server never tried the version"
            time.sleep(0.2)
        assert httpx.get(f"{url}/readyz").status_code == 503
    assert f"version {version} has no bento" in (tmp_path / "serve.log").read_text()


def metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_unknown_paths_add_no_series_and_each_server_counts_its_own(server, server_home, live_registry, tmp_path):
    import random
    import string

    before = httpx.get(f"{server}/metrics").text
    for _ in range(200):
        httpx.get(f"{server}/{''.join(random.choices(string.ascii_lowercase, k=16))}")
    after = httpx.get(f"{server}/metrics").text
    assert len(after.splitlines()) - len(before.splitlines()) <= 20, "one 'other' route, not one series per path"
    assert metric(after, 'digits_requests_total{route="other",status="404"}') >= 200
    served = metric(after, 'digits_requests_total{route="/predict"')
    # A second server on the same machine and BentoML home: its requests never show in the first's /metrics.
    with serve_source(live_registry["uri"], tmp_path, {"BENTOML_HOME": str(server_home)},
                      log_name="second.log") as (second_url, _):
        for _ in range(5):
            assert post_file(second_url, SAMPLE.read_bytes()).status_code == 200
        second = httpx.get(f"{second_url}/metrics").text
        assert metric(second, 'digits_requests_total{route="/predict"') == 5
        assert metric(httpx.get(f"{server}/metrics").text, 'digits_requests_total{route="/predict"') == served


def test_a_killed_worker_leaves_the_other_answering_at_once(live_registry, tmp_path):
    """Two workers by default: after ``kill -9`` of one, requests sent at once are each answered by the other
    within a few seconds (with one worker they hung about 12 s for its replacement), and a new one replaces it."""
    import psutil

    with serve_source(live_registry["uri"], tmp_path, {"DIGITS_WORKERS": ""}) as (url, process):  # "": the default

        def workers():
            alive = []
            for child in psutil.Process(process.pid).children(recursive=True):
                try:
                    if child.status() != psutil.STATUS_ZOMBIE and "worker.service" in " ".join(child.cmdline()):
                        alive.append(child)
                except psutil.Error:  # gone (or a zombie) while we looked
                    pass
            return alive

        first = workers()
        assert len(first) == 2, "two worker processes by default"
        first[0].kill()
        started, slowest = time.monotonic(), 0.0
        for _ in range(20):
            sent = time.monotonic()
            assert post_file(url, SAMPLE.read_bytes()).status_code == 200
            slowest = max(slowest, time.monotonic() - sent)
        deadline = time.monotonic() + 30
        while len(workers()) < 2 or first[0].pid in {w.pid for w in workers()}:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        print(f"after kill -9 of a worker: 20 requests, slowest {slowest:.2f} s; "
              f"replaced in {time.monotonic() - started:.1f} s")
        assert slowest < 3.0, f"a request waited {slowest:.1f} s after a worker died"
        wait_http(f"{url}/readyz", 5)


def test_feedback_capture_stores_served_inputs_and_counts_drops(live_registry, tmp_path):
    """Off by default (the module's server has no captured/ folder anywhere); with DIGITS_CAPTURE_URI each
    answered request lands in the store with its prediction and model version; a store that cannot be
    written drops and counts, and /predict still answers."""
    capture = tmp_path / "store"
    for n, uri in enumerate((f"file://{capture}", "https://127.0.0.1:9/read-only")):
        with serve_source(live_registry["uri"], tmp_path, {"DIGITS_CAPTURE_URI": uri},
                          log_name=f"serve-{n}.log") as (url, _):
            for _ in range(3):
                assert post_file(url, SAMPLE.read_bytes()).status_code == 200
            assert httpx.post(f"{url}/predict", json=EXAMPLE_INPUT, timeout=30).status_code == 200
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = httpx.get(f"{url}/metrics").text
                if metric(text, "digits_capture_written_total") + metric(text, "digits_capture_dropped_total") >= 4:
                    break
                time.sleep(0.2)
        if uri.startswith("file://"):
            import zipfile

            records, uploads = [], {}
            for path in capture.glob("captured/*/*.zip"):
                with zipfile.ZipFile(path) as archive:
                    batch = [json.loads(line) for line in archive.read("records.jsonl").splitlines()]
                    uploads.update({(path, r["file"]): archive.read(r["file"]) for r in batch if "file" in r})
                    records += batch
            assert len(records) == 4 and len(uploads) == 3 and set(uploads.values()) == {SAMPLE.read_bytes()}
            assert {r["model_version"] for r in records} == {live_registry["version"]}
            assert {r["answer"]["class_name"] for r in records if "file" in r} == {"3"}
            assert sum("instances" in r for r in records) == 1
            assert metric(text, "digits_capture_written_total") == 4
        else:
            assert metric(text, 'digits_capture_dropped_total{reason="write failed"}') == 4
