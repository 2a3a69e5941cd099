"""retrain_steps.layout is the one owner of the store's layout: no artifact file name or store path
is spelled outside it, its paths are the ones earlier code wrote (old registries stay readable),
and the evaluate step's results carry the card's field names."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import typing
from pathlib import Path

import numpy as np

from retrain_steps import evaluate, layout, registry

ROOT = Path(__file__).resolve().parents[2]
SOURCE_TREES = ("images", "plugins", "serving", "dags", "scripts", "bench")
LAYOUT_MODULE = ROOT / "images" / "steps" / "src" / "retrain_steps" / "layout.py"
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(json|npz|bento|pt|keras|png|svg)")
NOT_IN_THE_STORE = {  # literals that look like artifact names but name something else
    ("plugins/retraining/models_view/app.py", "history.svg"): "a chart the Models view draws (a URL)",
    ("serving/fetch.py", "model.bento"): "a temporary file the fetched bento is written to",
    ("scripts/make-example-datasets.py", "export.json"): "a file of an example dataset it makes",
    ("bench/serve.py", "digit-3.png"): "the file name of an uploaded image",
    ("bench/gpu/drive.py", "digit-3.png"): "the sample image it uploads",
    ("bench/gpu/drive.py", "instances.json"): "the device check's own input, carried beside it",
    ("bench/gpu/drive.py", "results.json"): "the device check's own output",
    ("bench/fashion_mnist.py", "fashion-mnist.npz"): "the bench's converted copy of the benchmark data, in its cache",
    ("bench/gpu/fashion_mnist_parallel.py", "fmnist.json"): "the device check's own output",
}
PROTOCOL_RESULT = re.compile(r"([a-z-]+-)?result\.json")  #: the step protocol's result file: local, not in the store
STORE_FOLDERS = {"versions", "promotions", "runs", "step-outputs", "cache", "datasets", "download", "preprocess", "train",
                 "evaluate"}


def sources(root: Path = ROOT):
    for tree in SOURCE_TREES:
        for path in sorted((root / tree).rglob("*.py")):
            if path.name != LAYOUT_MODULE.name or path.parent.name != LAYOUT_MODULE.parent.name:
                yield path.relative_to(root).as_posix(), ast.parse(path.read_text(), str(path))


def artifact_literals(root: Path = ROOT) -> list[str]:
    """``path:line: 'name'`` of every string that is an artifact file name, outside the layout module."""
    found = []
    for rel, tree in sources(root):
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and ARTIFACT_NAME.fullmatch(node.value)
                    and (rel, node.value) not in NOT_IN_THE_STORE and not PROTOCOL_RESULT.fullmatch(node.value)):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return found


def hand_built_paths(root: Path = ROOT) -> list[str]:
    """``path:line`` of every ``join(..., "versions" | "runs" | ...)``: a store path built by hand."""
    found = []
    for rel, tree in sources(root):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            is_join = (isinstance(func, ast.Name) and func.id == "join") or (
                isinstance(func, ast.Attribute) and func.attr == "join" and isinstance(func.value, ast.Name)
                and func.value.id == "artifacts")
            segments = [a.value for a in node.args if isinstance(a, ast.Constant) and a.value in STORE_FOLDERS]
            if is_join and segments:
                found.append(f"{rel}:{node.lineno}: {segments}")
    return found


def test_no_artifact_file_name_outside_the_layout_module():
    assert artifact_literals() == [], "ask retrain_steps.layout for the name"


def test_no_store_path_built_by_hand():
    assert hand_built_paths() == [], "ask retrain_steps.layout for the folder"


def test_the_guards_see_what_they_look_for(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "x.py").write_text(
        'from retrain_steps.artifacts import join\n"""docstring naming metrics.json"""\n'
        'a = join(store, "runs", run_id)\nb = "metrics.json"\nc = f"{seq:08d}.json"\n')
    assert artifact_literals(tmp_path) == ["plugins/x.py:4: 'metrics.json'"]
    assert hand_built_paths(tmp_path) == ["plugins/x.py:3: ['runs']"]


def test_paths_are_those_the_previous_code_wrote():
    """Registries written before the layout module are read at the same places; step outputs moved from runs/ to
    step-outputs/ (the registry's runs/ holds run records; only a run still going reads its outputs)."""
    reg, store = "s3://b/registry", "file:///data/artifacts"
    assert layout.version_folder(reg, "0123456789ab") == "s3://b/registry/versions/0123456789ab"
    assert layout.card(reg, "0123456789ab") == "s3://b/registry/versions/0123456789ab/card.json"
    assert layout.bento(reg, "0123456789ab") == "s3://b/registry/versions/0123456789ab/digits_classifier.bento"
    assert layout.legacy_promotions_folder(reg) == "s3://b/registry/promotions"
    assert layout.legacy_run_records_folder(reg) == "s3://b/registry/runs"
    assert layout.promotion_entry(reg, "digits", 7) == "s3://b/registry/models/digits/promotions/00000007.json"
    assert layout.run_record(reg, "shapes", "manual__2026-01-01T00:00:00+00:00") == (
        "s3://b/registry/models/shapes/runs/manual__2026-01-01T00-00-00-00-00.json")
    assert layout.legacy_production(reg) == "s3://b/registry/production.json"
    assert layout.train_folder(store, "r:1", 2) == "file:///data/artifacts/step-outputs/r-1/train/2"
    assert layout.evaluate_folder(store, "r", layout.PRODUCTION_EVALUATION) == (
        "file:///data/artifacts/step-outputs/r/evaluate/production")
    assert layout.preprocess_cache(store) == "file:///data/artifacts/cache/preprocess"
    assert layout.dataset_watch_record(store, "s3://b/d.npz") == (
        f"file:///data/artifacts/datasets/.watch/{hashlib.sha256(b's3://b/d.npz').hexdigest()[:16]}.json")


def test_a_registry_written_by_the_previous_code_is_read(tmp_path):
    """Cards, promotion entries, run records and the legacy pointer, written at the old paths by hand."""
    root = tmp_path / "registry"
    card = {"version": "0123456789ab", "framework": "torch", "file": "model.pt", "created_at": "2026-01-02",
            "metrics": {"test_accuracy": 0.97, "macro_f1": 0.96, "val_accuracy": 0.98}, "files": {}}
    for rel, record in {
        "versions/0123456789ab/card.json": card,
        "production.json": {"version": "aaaaaaaaaaaa", "promoted_at": "2026-01-01"},
        "promotions/00000001.json": {"seq": 1, "version": "0123456789ab", "previous": "aaaaaaaaaaaa",
                                     "action": "promote", "actor": "a", "run_id": "r1", "reason": "", "at": "x"},
        "runs/r1.json": {"run_id": "r1", "recorded_at": "2026-01-02", "candidates": [], "gate": {}},
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(record))
    uri = f"file://{root}"
    assert registry.card(uri, "0123456789ab")["metrics"]["test_accuracy"] == 0.97
    assert [e["version"] for e in registry.promotions(uri)] == ["aaaaaaaaaaaa", "0123456789ab"]
    assert registry.production_version(uri) == "0123456789ab"
    assert registry.run_record(uri, "r1")["recorded_at"] == "2026-01-02"
    assert [c["version"] for c in registry.versions(uri)] == ["0123456789ab"]
    # it is one model, digits (its cards name none); what happens next goes under models/digits/, after its history
    assert registry.models(uri) == ["digits"] and registry.model_of(card) == "digits"
    registry.promote(uri, "aaaaaaaaaaaa" if (root / "versions/aaaaaaaaaaaa").exists() else _card(root, "aaaaaaaaaaaa"))
    assert (root / "models/digits/promotions/00000002.json").is_file()
    assert [(e["seq"], e["version"]) for e in registry.promotions(uri)] == [
        (0, "aaaaaaaaaaaa"), (1, "0123456789ab"), (2, "aaaaaaaaaaaa")]
    registry.record_run(uri, "r2", {"recorded_at": "2026-01-03", "candidates": []})
    assert [r["run_id"] for r in registry.runs(uri)] == ["r2", "r1"]
    assert registry.promotions(uri, model="shapes") == [] and registry.runs(uri, model="shapes") == []


def _card(root, version: str) -> str:
    (root / "versions" / version).mkdir(parents=True)
    (root / "versions" / version / "card.json").write_text(json.dumps({"version": version, "created_at": "2026-01-03"}))
    return version


def test_evaluation_has_the_card_names():
    """What evaluate writes is what the card, the gate and the Models view read: no renaming."""
    result = evaluate.report(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert set(result) <= set(typing.get_type_hints(layout.Evaluation))
    assert result["test_accuracy"] == 0.75
    card_metrics = layout.card_metrics(result, {"val_accuracy": 0.9})
    assert set(card_metrics) == set(typing.get_type_hints(layout.CardMetrics))
    assert card_metrics == {"test_accuracy": 0.75, "macro_f1": result["macro_f1"], "val_accuracy": 0.9}
