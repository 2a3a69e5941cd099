"""Promotions are compare-and-swap with a history: on disk and on a real S3 endpoint (moto server)."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import boto3
import pytest

from retrain_steps import artifacts, registry


@pytest.fixture(params=["file", "s3"])
def reg(request, tmp_path):
    if request.param == "file":
        return f"file://{tmp_path}/registry"
    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"promotions-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/registry"


def card(reg: str, version: str, accuracy: float = 0.9) -> str:
    registry.write_card(reg, {"version": version, "metrics": {"test_accuracy": accuracy},
                              "created_at": "2026-01-01T00:00:00+00:00"})
    return version


def test_create_bytes_refuses_an_existing_object(reg):
    uri = artifacts.join(reg, "x.json")
    artifacts.create_bytes(uri, b"first")
    with pytest.raises(artifacts.ArtifactExists):
        artifacts.create_bytes(uri, b"second")
    assert artifacts.read_bytes(uri) == b"first"
    assert artifacts.list_names(reg) == ["x.json"]


def test_history_records_who_when_why_and_previous(reg):
    a, b = card(reg, "aaaaaaaaaaaa"), card(reg, "bbbbbbbbbbbb")
    registry.promote(reg, a, expected=None, actor="airflow:retrain", run_id="r1", reason="first model")
    entry = registry.promote(reg, b, expected=a, actor="alice", reason="better")
    assert entry == {**entry, "seq": 2, "version": b, "previous": a, "actor": "alice", "action": "promote"}
    assert registry.production_version(reg) == b
    assert registry.promotion_history(reg) == [b, a]
    assert [e["run_id"] for e in registry.promotions(reg)] == ["r1", ""]
    assert {c["version"] for c in registry.versions(reg)} == {a, b}


def test_a_promotion_against_a_stale_production_is_refused(reg):
    a, b, c = card(reg, "aaaaaaaaaaaa"), card(reg, "bbbbbbbbbbbb"), card(reg, "cccccccccccc")
    registry.promote(reg, a, expected=None)
    registry.promote(reg, b, expected=a, actor="run-1")
    with pytest.raises(registry.StalePromotion, match=f"production is {b}, not {a}.*promote of {b} by run-1"):
        registry.promote(reg, c, expected=a)
    assert registry.production_version(reg) == b and len(registry.promotions(reg)) == 2


def test_a_registry_from_before_the_history_reads_as_entry_zero(tmp_path):
    reg = f"file://{tmp_path}/registry"
    a, b = card(reg, "aaaaaaaaaaaa"), card(reg, "bbbbbbbbbbbb")
    artifacts.write_json(artifacts.join(reg, "production.json"), {"version": a, "previous": None, "promoted_at": "x"})
    assert registry.production_version(reg) == a
    registry.promote(reg, b, expected=a)
    assert [e["seq"] for e in registry.promotions(reg)] == [0, 1] and registry.promotion_history(reg) == [b, a]


def _promote_at_once(reg, version, expected, barrier, results):
    read = registry.latest_promotion

    def slow_read(*args):  # every writer reads production before any of them writes
        latest = read(*args)
        time.sleep(0.5)
        return latest

    registry.latest_promotion = slow_read
    barrier.wait()
    try:
        registry.promote(reg, version, expected=expected, actor=version)
        results.put((version, "promoted"))
    except registry.StalePromotion as err:
        results.put((version, str(err)))
    except Exception as err:  # named in the assertion instead of a queue that stays empty
        results.put((version, f"failed: {type(err).__name__}: {err}"))


def test_of_many_writers_promoting_against_the_same_production_exactly_one_wins(reg):
    """8 processes released together, each promoting another version against the same production."""
    base = card(reg, "000000000000")
    registry.promote(reg, base, expected=None)
    writers = [card(reg, f"{i:x}" * 12) for i in range(1, 9)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(writers)), ctx.Queue()
    procs = [ctx.Process(target=_promote_at_once, args=(reg, v, base, barrier, results)) for v in writers]
    for p in procs:
        p.start()
    outcome = dict(results.get(timeout=120) for _ in writers)  # 8 interpreters start slowly on 2 loaded cores
    for p in procs:
        p.join(60)
    winners = [v for v, what in outcome.items() if what == "promoted"]
    assert len(winners) == 1, outcome
    assert registry.production_version(reg) == winners[0]
    assert [e["version"] for e in registry.promotions(reg)] == [base, winners[0]]
    for version, what in outcome.items():
        if version != winners[0]:
            assert "production" in what and winners[0] in what, what


def test_an_unreadable_promotion_entry_is_named_and_the_rest_still_reads(tmp_path):
    """A truncated newest entry (a crash mid-copy, a full disk): every reader names the file; with ``problems``
    the history reads around it."""
    reg = f"file://{tmp_path}/registry"
    a, b = card(reg, "aaaaaaaaaaaa"), card(reg, "bbbbbbbbbbbb")
    registry.promote(reg, a, expected=None)
    registry.promote(reg, b, expected=a)
    broken = tmp_path / "registry" / "models" / "digits" / "promotions" / "00000003.json"
    for content in ('{"seq": 3, "vers', "[]", '{"seq": 3}'):  # truncated; valid JSON but not an entry
        broken.write_text(content)
        for read in (registry.promotions, registry.latest_promotion, registry.production_version,
                     registry.promotion_history):
            with pytest.raises(registry.UnreadableEntry, match=f"promotion entry {broken}.*unreadable") as err:
                read(reg)
            assert isinstance(err.value, artifacts.ArtifactError), "the model server's follower keeps serving"
            assert err.value.uri == f"file://{broken}"
        problems = []
        assert [e["version"] for e in registry.promotions(reg, problems=problems)] == [a, b]
        assert [p.uri for p in problems] == [f"file://{broken}"]
        with pytest.raises(registry.UnreadableEntry):
            registry.promote(reg, a, expected=b)


def test_unreadable_run_records_and_cards_are_skipped_when_asked(tmp_path):
    reg = f"file://{tmp_path}/registry"
    a = card(reg, "aaaaaaaaaaaa")
    registry.record_run(reg, "r1", {"recorded_at": "1"})
    (tmp_path / "registry" / "models" / "digits" / "runs" / "r2.json").write_text('{"run_id": "r2", "cand')
    (tmp_path / "registry" / "versions" / "bbbbbbbbbbbb").mkdir()
    (tmp_path / "registry" / "versions" / "bbbbbbbbbbbb" / "card.json").write_text("")
    problems = []
    assert [r["run_id"] for r in registry.runs(reg, problems=problems)] == ["r1"]
    assert [c["version"] for c in registry.versions(reg, problems=problems)] == [a]
    assert sorted(p.uri.rsplit("/", 1)[-1] for p in problems) == ["card.json", "r2.json"]
    with pytest.raises(artifacts.ArtifactError, match="r2.json"):
        registry.runs(reg)


def test_a_remote_registrys_records_are_read_at_once_in_order(s3_endpoint, monkeypatch):
    """On S3 the records' round trips overlap (up to READ_CONCURRENCY): the answers, their order and the problems
    named are those of reading one by one; a version folder without its card yet (being packaged) is no version."""
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="many-records")
    reg = "s3://many-records/registry"
    versions = [card(reg, f"{k:012x}") for k in range(6)]
    for k in range(8):
        registry.record_run(reg, f"r{k}", {"recorded_at": f"2026-01-0{k + 1}"})
    for k in (9, 10):
        artifacts.write_bytes(f"{reg}/models/digits/runs/r{k}.json", b'{"run_id": "r9", "cand')
    artifacts.write_bytes(f"{reg}/versions/{'f' * 12}/model.json", b"{}")  # no card.json yet
    for previous, version in zip([None, *versions], versions):
        registry.promote(reg, version, expected=previous)
    reading, most = [], []
    read_bytes = artifacts.read_bytes

    def slow_read(uri, *args, **kwargs):
        reading.append(uri)
        most.append(len(reading))
        time.sleep(0.15 if str(uri).endswith("r10.json") else 0.05)  # first listed, last done
        reading.remove(uri)
        return read_bytes(uri, *args, **kwargs)

    monkeypatch.setattr(artifacts, "read_bytes", slow_read)
    problems = []
    assert [r["run_id"] for r in registry.runs(reg, problems)] == [f"r{k}" for k in range(7, -1, -1)]
    assert [p.uri for p in problems] == [f"{reg}/models/digits/runs/r{k}.json" for k in (10, 9)], "listing order"
    assert {c["version"] for c in registry.versions(reg)} == set(versions)
    assert [e["version"] for e in registry.promotions(reg)] == versions
    assert max(most) > 1, "the records were read one after another"


def test_an_over_long_reason_is_refused_before_anything_is_written(tmp_path):
    reg = f"file://{tmp_path}/registry"
    a = card(reg, "aaaaaaaaaaaa")
    registry.promote(reg, a, expected=None, reason="x" * registry.MAX_REASON_CHARS)
    b = card(reg, "bbbbbbbbbbbb")
    with pytest.raises(ValueError, match=f"reason is {registry.MAX_REASON_CHARS + 1} characters long; "
                                         f"at most {registry.MAX_REASON_CHARS}"):
        registry.promote(reg, b, expected=a, reason="x" * (registry.MAX_REASON_CHARS + 1))
    assert registry.production_version(reg) == a and len(registry.promotions(reg)) == 1


@pytest.mark.parametrize("run_id", ["", "r" * 251, "r" * 100_000, 7, None])
def test_a_run_id_that_cannot_name_a_record_is_refused_before_the_store_is_touched(tmp_path, run_id):
    reg = f"file://{tmp_path}/registry"
    with pytest.raises(registry.InvalidId, match="not a run id"):
        registry.run_uri(reg, run_id)
    assert not (tmp_path / "registry").exists()


def test_the_longest_run_id_airflow_allows_still_names_a_record(tmp_path):
    reg = f"file://{tmp_path}/registry"
    registry.record_run(reg, "r" * registry.MAX_RUN_ID_CHARS, {"recorded_at": "1"})
    assert artifacts.read_json(registry.run_uri(reg, "r" * registry.MAX_RUN_ID_CHARS))["recorded_at"] == "1"


@pytest.mark.parametrize("version", ["aaaaaaaaaaaa", "0123456789ab"])
def test_version_ids_are_12_hex_digits(version):
    assert registry.check_version(version) == version


@pytest.mark.parametrize("version", ["", "ABCDEF012345", "a" * 13, "../../etc/pa", "a" * 11 + "/", "a" * 10**6, None])
def test_anything_else_is_not_a_version_id(version):
    with pytest.raises(registry.InvalidId, match="not a version id"):
        registry.check_version(version)


# A version's lineage is written once (issue 17, item 2): a later run that trains the same weights is recorded beside it.

FIRST = {"version": "a" * 12, "run_id": "scheduled__00:14:28", "created_at": "2026-11-30T00:14:28+00:00",
         "dataset": {"uri": "file:///store/step-outputs/scheduled__00:14:28/download", "version": "d" * 12},
         "metrics": {"test_accuracy": 0.97, "macro_f1": 0.97, "val_accuracy": 0.98}}
LATER = {**FIRST, "run_id": "manual__00:31:37", "created_at": "2026-11-30T00:31:37+00:00",
         "dataset": {"uri": "file:///store/step-outputs/manual__00:31:37/download", "version": "d" * 12},
         "metrics": {"test_accuracy": 0.96, "macro_f1": 0.96, "val_accuracy": 0.97}}


def test_a_version_card_is_written_once_and_a_later_run_is_recorded_beside_it(reg):
    from retrain_steps import layout

    registry.write_card(reg, FIRST)
    written = artifacts.read_bytes(layout.card(reg, FIRST["version"]))
    with pytest.raises(registry.VersionRegistered, match=f"{'a' * 12} is registered already.*manual__00:31:37"):
        registry.write_card(reg, LATER)
    assert registry.reproduced(reg, LATER) == FIRST, "the later run gets the first run's card"
    assert registry.reproduced(reg, LATER) == FIRST, "a retry of that run records nothing more"
    assert registry.reproduced(reg, FIRST) == FIRST and registry.reproduced(reg, {**LATER, "run_id": ""}) == FIRST
    assert artifacts.read_bytes(layout.card(reg, FIRST["version"])) == written, "the card, byte for byte"
    [record] = registry.reproductions(reg, FIRST["version"])
    assert record == {"version": "a" * 12, "run_id": LATER["run_id"], "at": LATER["created_at"], "code_commit": "",
                      "dataset": LATER["dataset"], "metrics": LATER["metrics"], "params": {}, "source": {}}
    folder = layout.reproductions_folder(reg, FIRST["version"])
    assert artifacts.list_names(folder) == [layout.run_file_name(LATER["run_id"])], "one file per reproducing run"
    assert [c["run_id"] for c in registry.versions(reg)] == [FIRST["run_id"]]


def test_reproductions_are_oldest_first_and_an_unreadable_one_is_named(tmp_path):
    from retrain_steps import layout

    reg = f"file://{tmp_path}/registry"
    registry.write_card(reg, FIRST)
    for run, at in (("r3", "2026-12-03"), ("r2", "2026-12-02")):
        registry.record_reproduction(reg, {**LATER, "run_id": run, "created_at": at})
    broken = artifacts.local_path(layout.reproduction(reg, FIRST["version"], "r4"))
    broken.write_text("{")
    problems: list = []
    assert [r["run_id"] for r in registry.reproductions(reg, FIRST["version"], problems)] == ["r2", "r3"]
    assert [p.uri for p in problems] == [f"file://{broken}"]
    with pytest.raises(registry.InvalidId):
        registry.reproductions(reg, "../../etc")


def test_each_model_has_its_own_production_history_and_runs(reg):
    """Named models: versions are global, each card names its model; production, history and runs are per model."""
    registry.write_card(reg, {"version": "aaaaaaaaaaaa", "created_at": "1", "model": "digits"})
    registry.write_card(reg, {"version": "bbbbbbbbbbbb", "created_at": "2", "model": "shapes"})
    registry.write_card(reg, {"version": "cccccccccccc", "created_at": "3", "model": "shapes"})
    registry.promote(reg, "aaaaaaaaaaaa", model="digits")
    registry.promote(reg, "bbbbbbbbbbbb", model="shapes")
    registry.promote(reg, "cccccccccccc", model="shapes", expected="bbbbbbbbbbbb")
    registry.record_run(reg, "r1", {"recorded_at": "1"}, "shapes")
    assert registry.models(reg) == ["digits", "shapes"]
    assert registry.production_version(reg, "digits") == "aaaaaaaaaaaa"
    assert registry.production_version(reg, "shapes") == "cccccccccccc"
    assert registry.promotion_history(reg, "shapes") == ["cccccccccccc", "bbbbbbbbbbbb"]
    assert [e["seq"] for e in registry.promotions(reg, model="shapes")] == [1, 2]
    assert [c["version"] for c in registry.versions(reg, model="shapes")] == ["cccccccccccc", "bbbbbbbbbbbb"]
    assert registry.runs(reg) == [] and [r["run_id"] for r in registry.runs(reg, model="shapes")] == ["r1"]
    assert registry.run_record(reg, "r1", "shapes")["model"] == "shapes"
    with pytest.raises(registry.OtherModel, match="version bbbbbbbbbbbb belongs to model 'shapes', not 'digits'"):
        registry.promote(reg, "bbbbbbbbbbbb", model="digits")
    with pytest.raises(registry.InvalidId, match="not a model name: '../x'"):
        registry.promote(reg, "aaaaaaaaaaaa", model="../x")
    assert registry.production_version(reg, "digits") == "aaaaaaaaaaaa", "nothing changed"


def test_a_run_of_other_classes_or_inputs_does_not_fit_a_models_production():
    spec = {"class_names": ["0", "1"], "profile": "image", "height": 28, "width": 28, "channels": 1}
    production = {"version": "aaaaaaaaaaaa", "input_spec": spec}
    assert registry.spec_mismatch(production, spec) is None
    assert registry.spec_mismatch(production, {**spec, "class_names": ["circle", "square"]}) == (
        "predicts classes ['0', '1'], this run's data has ['circle', 'square']")
    assert registry.spec_mismatch(production, {**spec, "height": 32, "width": 32}) == (
        "takes inputs of profile image, height 28, width 28, channels 1, this run prepares inputs of profile image, "
        "height 32, width 32, channels 1")
    digits = {"class_names": [str(d) for d in range(10)], "profile": "digits", "height": 8, "width": 8, "channels": 1}
    assert registry.spec_mismatch({"version": "0123456789ab"}, digits) is None, "cards from before specs: digits"


def stubbed_s3(monkeypatch, *errors: tuple[str, int]):
    """An S3 client that answers ``put_object`` with ``errors`` (code, HTTP status) and then succeeds."""
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    stub = Stubber(client)
    for code, status in errors:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
    stub.add_response("put_object", {"ETag": '"etag"'})
    monkeypatch.setattr(artifacts, "_s3_client", lambda: client)
    monkeypatch.setattr(artifacts.time, "sleep", lambda _: None)
    return stub


def test_a_create_that_conflicts_with_a_write_in_flight_is_retried(monkeypatch):
    """S3 answers 409 ConditionalRequestConflict while another conditional write of the key is in flight (which may
    still fail): the create is tried again, not taken for an existing object."""
    with stubbed_s3(monkeypatch, ("ConditionalRequestConflict", 409), ("ConditionalRequestConflict", 409)) as stub:
        artifacts.create_bytes("s3://bucket/registry/x.json", b"first")
        stub.assert_no_pending_responses()


def test_a_create_refused_by_its_precondition_is_an_existing_object(monkeypatch):
    with stubbed_s3(monkeypatch, ("PreconditionFailed", 412)):
        with pytest.raises(artifacts.ArtifactExists, match="exists already"):
            artifacts.create_bytes("s3://bucket/registry/x.json", b"second")


def test_a_create_that_keeps_conflicting_is_unavailable_not_existing(monkeypatch):
    with stubbed_s3(monkeypatch, *[("ConditionalRequestConflict", 409)] * (artifacts.CONFLICT_RETRIES + 1)):
        with pytest.raises(artifacts.ArtifactUnavailable, match="409 ConditionalRequestConflict 6 times"):
            artifacts.create_bytes("s3://bucket/registry/x.json", b"first")
