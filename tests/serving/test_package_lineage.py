"""``serving.package`` registers a version once: a later run that trained the same weights (a deterministic
retrain) leaves the first run's card as it was and is recorded as a reproduction, on disk and on S3.

The bento build is replaced by a file of known bytes (building a real bento is the serving tests' job)."""

from __future__ import annotations

import uuid

import boto3
import pytest

from retrain_steps import artifacts, layout, registry
from serving import package

WEIGHTS = b"the same weights, trained twice"


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/store"
    client = boto3.client("s3", endpoint_url=request.getfixturevalue("s3_endpoint"))
    bucket = f"lineage-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/store"


def step_outputs(store: str, run_id: str, test_accuracy: float) -> list[str]:
    """Write what download, train and evaluate of run ``run_id`` leave; return package's arguments for it."""
    model, evaluation = layout.train_folder(store, run_id, 0), layout.evaluate_folder(store, run_id, 0)
    dataset = layout.download_folder(store, run_id)
    name = layout.WEIGHTS["torch"]
    artifacts.write_bytes(layout.file_in(model, name), WEIGHTS)
    artifacts.write_json(layout.file_in(model, layout.MODEL_INFO), {"framework": "torch", "file": name})
    artifacts.write_json(layout.file_in(model, layout.METRICS), {"framework": "torch", "learning_rate": 0.001,
                                                                 "val_accuracy": 0.98, "val_loss": 0.1})
    artifacts.write_json(layout.file_in(evaluation, layout.METRICS), {"test_accuracy": test_accuracy, "macro_f1": 0.9})
    artifacts.write_json(layout.file_in(dataset, layout.DATASET_CARD), {"sha256": "e" * 64, "version": "e" * 12})
    return ["--model", model, "--evaluation", evaluation, "--dataset", dataset, "--registry",
            artifacts.join(store, "registry"), "--run-id", run_id]


def packaged(monkeypatch, arguments: list[str], built: list[str], before_write=lambda: None) -> dict:
    """``serving.package``'s run with a stand-in bento (``built`` gets each run that built one)."""
    args = package.build_parser().parse_args(arguments)

    def build_bento(model_dir, card, requirements, work):
        built.append(card["run_id"])
        before_write()
        (work / layout.BENTO).write_bytes(f"bento of {card['version']} by {card['run_id']}".encode())
        return work / layout.BENTO

    monkeypatch.setattr(package, "build_bento", build_bento)
    return package.run(args)


def test_a_later_run_of_the_same_weights_keeps_the_first_card_and_is_recorded(store, monkeypatch):
    built: list[str] = []
    first = packaged(monkeypatch, step_outputs(store, "scheduled__1", 0.97), built)
    reg = artifacts.join(store, "registry")
    card_bytes = artifacts.read_bytes(layout.card(reg, first["version"]))
    again = packaged(monkeypatch, step_outputs(store, "manual__2", 0.95), built)
    assert again == first and built == ["scheduled__1"], "not rebuilt: the first run's card is the answer"
    assert artifacts.read_bytes(layout.card(reg, first["version"])) == card_bytes, "the card, byte for byte"
    assert registry.card(reg, first["version"])["dataset"]["uri"] == layout.download_folder(store, "scheduled__1")
    [record] = registry.reproductions(reg, first["version"])
    assert record["run_id"] == "manual__2" and record["metrics"]["test_accuracy"] == 0.95
    assert record["dataset"]["uri"] == layout.download_folder(store, "manual__2")
    assert record["source"]["model"] == layout.train_folder(store, "manual__2", 0)


def test_a_run_that_loses_the_race_to_register_records_a_reproduction(tmp_path, monkeypatch):
    """Both runs built a bento; the other one's card was written first: it stays, with its bento."""
    store = f"file://{tmp_path}/store"
    reg = artifacts.join(store, "registry")
    built: list[str] = []
    other = step_outputs(store, "other__1", 0.97)

    def the_other_run_registers_first():
        if built == ["mine__2"]:
            packaged(monkeypatch, other, built)

    mine = packaged(monkeypatch, step_outputs(store, "mine__2", 0.96), built, the_other_run_registers_first)
    assert mine["run_id"] == "other__1" and built == ["mine__2", "other__1"]
    bento = artifacts.read_bytes(layout.bento(reg, mine["version"]))
    assert bento.endswith(b"by other__1") and artifacts.sha256(bento) == mine["bento"]["sha256"], "its bento is kept"
    assert [r["run_id"] for r in registry.reproductions(reg, mine["version"])] == ["mine__2"]


def test_a_registered_version_whose_bento_is_gone_is_named(tmp_path, monkeypatch):
    store = f"file://{tmp_path}/store"
    first = packaged(monkeypatch, step_outputs(store, "r1", 0.97), [])
    artifacts.local_path(first["bento"]["uri"]).unlink()
    with pytest.raises(artifacts.ArtifactError, match=f"version {first['version']} is registered, but its bento .* is "
                                                      "missing"):
        packaged(monkeypatch, step_outputs(store, "r2", 0.97), [])
    assert [r["run_id"] for r in registry.reproductions(artifacts.join(store, "registry"), first["version"])] == ["r2"]


def test_the_card_names_the_model_the_run_trained_for(store, monkeypatch):
    card = packaged(monkeypatch, [*step_outputs(store, "manual__1", 0.97), "--model-name", "shapes"], [])
    assert card["model"] == "shapes" == registry.card(artifacts.join(store, "registry"), card["version"])["model"]
    with pytest.raises(SystemExit) as refused:
        package.build_parser().parse_args([*step_outputs(store, "manual__2", 0.9), "--model-name", "Shapes/2"])
    assert refused.value.code == 2


def test_the_same_weights_for_another_model_are_refused(store, monkeypatch):
    """A version id is the weights' hash: a model trained to the same weights as another's cannot take its version."""
    first = packaged(monkeypatch, [*step_outputs(store, "manual__1", 0.97), "--model-name", "digits"], [])
    with pytest.raises(ValueError, match=f"version {first['version']} .these weights. is registered for model "
                                         "'digits' already, not 'digits-v2'"):
        packaged(monkeypatch, [*step_outputs(store, "manual__2", 0.97), "--model-name", "digits-v2"], [])
    assert registry.reproductions(artifacts.join(store, "registry"), first["version"]) == [], "nothing recorded"
