"""The registry as people read it: one row per version with its status and why (Models view + CLI)."""

from __future__ import annotations

import json
import subprocess

import pytest

from retrain_steps import artifacts, layout, registry
from retraining import catalog, models_cli
from tests.conftest import ROOT


def candidate(index: int, version: str, test: float, val: float) -> dict:
    return {"index": index, "version": version, "learning_rate": 0.001 * (index + 1), "val_accuracy": val,
            "val_loss": 0.1, "test_accuracy": test, "model": f"file:///nowhere/{version}", "evaluation": ""}


def write_run(reg: str, run_id: str, candidates: list[dict], best: int, deploy: bool, reason: str, at: str) -> None:
    registry.record_run(reg, run_id, {"dag_id": "retrain", "recorded_at": at, "candidates": candidates, "best": best,
                                      "production": None, "gate": {"deploy": deploy, "reason": reason}})


def packaged(reg: str, version: str, run_id: str, at: str) -> None:
    registry.write_card(reg, {"version": version, "run_id": run_id, "created_at": at, "metrics": {"test_accuracy": 0.9},
                              "dataset": {"version": "d" * 12, "source": "file:///data/digits.npz"},
                              "bento": {"uri": "file:///b", "sha256": "0" * 64}, "code_commit": "abc1234",
                              "params": {"learning_rate": 0.001}})


def test_every_version_once_with_its_status_and_why(tmp_path):
    reg = f"file://{tmp_path}/registry"
    write_run(reg, "r1", [candidate(0, "a" * 12, 0.90, 0.91), candidate(1, "b" * 12, 0.80, 0.85)], 0, True,
              "no model in production", "2026-01-01T00:00:01+00:00")
    packaged(reg, "a" * 12, "r1", "2026-01-01T00:00:02+00:00")
    registry.promote(reg, "a" * 12, expected=None, actor="airflow:retrain", run_id="r1", reason="no model in production")
    write_run(reg, "r2", [candidate(0, "c" * 12, 0.95, 0.96)], 0, True, "beats production", "2026-01-02T00:00:01+00:00")
    packaged(reg, "c" * 12, "r2", "2026-01-02T00:00:02+00:00")
    registry.promote(reg, "c" * 12, expected="a" * 12, actor="airflow:retrain", run_id="r2", reason="beats production")
    write_run(reg, "r3", [candidate(0, "d" * 12, 0.50, 0.55)], 0, False, "test accuracy 0.5000 is below the minimum",
              "2026-01-03T00:00:01+00:00")

    models = catalog.model_catalog(reg)
    status = {row["version"]: (row["status"], row["why"]) for row in models["versions"]}
    assert status["c" * 12][0] == "production" and "beats production" in status["c" * 12][1]
    assert status["a" * 12][0] == "previous"
    assert status["b" * 12] == ("candidate", "not the best candidate of its run: lower validation accuracy "
                                             "(0.8500 < 0.9100 of candidate #0)")
    assert status["d" * 12] == ("rejected", "gate: test accuracy 0.5000 is below the minimum")
    assert [row["version"] for row in models["versions"]][0] == "d" * 12, "newest first"
    assert [e["seq"] for e in models["promotions"]] == [2, 1]

    lineage = catalog.lineage(catalog.version(reg, "c" * 12))
    assert lineage["dataset"]["version"] == "d" * 12 and lineage["code_commit"] == "abc1234" and lineage["run_id"] == "r2"
    assert catalog.training_history(catalog.version(reg, "b" * 12)) == [], "a run's files may be gone"


@pytest.fixture
def two_versions(tmp_path, monkeypatch) -> str:
    """A registry (the CLI's, by the environment) with versions aaaa… (run r1) and cccc… (run r2); nothing promoted."""
    store = f"file://{tmp_path}"
    reg = f"{store}/registry"
    monkeypatch.setenv("RETRAIN_ARTIFACT_STORE", store)
    monkeypatch.setenv("RETRAIN_REGISTRY", reg)
    packaged(reg, "a" * 12, "r1", "2026-01-01T00:00:02+00:00")
    packaged(reg, "c" * 12, "r2", "2026-01-02T00:00:02+00:00")
    return reg


def test_the_cli_lists_shows_and_refuses_bad_values(two_versions, capsys):
    reg = two_versions
    assert models_cli.main(["promote", "a" * 12, "--reason", "first"]) == 0
    assert models_cli.main(["promote", "c" * 12]) == 0
    capsys.readouterr()
    assert models_cli.main(["list"]) == 0
    models = capsys.readouterr().out.splitlines()
    assert models[0].split()[:2] == ["model", "production"] and models[1].split()[:2] == ["digits", "c" * 12]
    assert models_cli.main(["list", "--model", "digits"]) == 0
    listing = capsys.readouterr().out
    assert f"{'c' * 12}  production" in listing and f"{'a' * 12}  previous" in listing
    assert models_cli.main(["list", "--model", "shapes"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1, "shapes has no versions: the header only"
    assert models_cli.main(["history", "--model", "Bad Name"]) == 2
    assert "not a model name: 'Bad Name'" in capsys.readouterr().err
    assert models_cli.main(["lineage", "c" * 12]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["source"] == "file:///data/digits.npz"
    assert models_cli.main(["promote", "f" * 12]) == 2
    assert f"unknown version '{'f' * 12}'" in capsys.readouterr().err
    assert models_cli.main(["promote", "a" * 12, "--model", "shapes"]) == 2
    assert "not a registered version of model shapes" in capsys.readouterr().err
    assert models_cli.main(["rollback", "--reason", "bad numbers"]) == 0
    entry = registry.latest_promotion(reg)
    assert entry["version"] == "a" * 12 and entry["action"] == "rollback" and entry["actor"].startswith("cli:")


def test_a_promotion_reads_its_own_versions_card_only(two_versions, capsys):
    card = artifacts.local_path(layout.card(two_versions, "c" * 12))
    card.write_text('{"version": "cccc')  # another version's card, truncated
    assert models_cli.main(["promote", "a" * 12, "--reason", "first"]) == 0, capsys.readouterr().err
    assert registry.production_version(two_versions) == "a" * 12
    card.write_text("[]")  # its own card, no card: named, not a traceback
    assert models_cli.main(["promote", "c" * 12]) == 1
    assert f"version card {card} is unreadable" in capsys.readouterr().err


def test_the_cli_names_a_bad_setting_instead_of_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RETRAIN_ARTIFACT_STORE", f"file://{tmp_path}")
    monkeypatch.setenv("RETRAIN_BACKEND", "cloud")
    assert models_cli.main(["list"]) == 2
    assert "RETRAIN_BACKEND must be one of local, kubernetes, got 'cloud'" in capsys.readouterr().err


def test_the_wrapper_script_runs_the_cli(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}", "HOME": str(tmp_path)}
    done = subprocess.run([str(ROOT / "scripts" / "models"), "show", "0" * 12], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown version" in done.stderr, done.stderr


def test_an_unreadable_newest_promotion_leaves_production_unknown_and_is_named(two_versions, tmp_path, capsys):
    reg = two_versions
    registry.promote(reg, "a" * 12, expected=None, reason="first")
    registry.promote(reg, "c" * 12, expected="a" * 12, reason="second")
    broken = tmp_path / "registry" / "models" / "digits" / "promotions" / "00000003.json"
    broken.write_text('{"seq": 3, "version": "aaaa')

    models = catalog.model_catalog(reg)
    assert models["production"] is None and [p["uri"] for p in models["problems"]] == [f"file://{broken}"]
    assert "invalid JSON" in models["problems"][0]["error"] and str(broken) in models["problems"][0]["error"]
    assert [e["reason"] for e in models["promotions"]] == ["second", "first"], "what can be read is still shown"
    assert {row["status"] for row in models["versions"]} == {"promoted"}, "neither is known to be production"

    capsys.readouterr()
    assert models_cli.main(["list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["digits", "-"], "production unknown"
    assert models_cli.main(["list", "--model", "digits"]) == 0
    out, err = capsys.readouterr()
    assert f"{'c' * 12}  promoted" in out and str(broken) in err and "Traceback" not in err
    assert models_cli.main(["history"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["second", "first"] and str(broken) in err
    assert models_cli.main(["rollback", "--reason", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("models rollback: error: promotion entry") and str(broken) in err

    broken.write_text(registry.artifacts.json_bytes({"seq": 3, "version": "a" * 12, "previous": "c" * 12,
                                                     "action": "rollback"}).decode())
    assert catalog.model_catalog(reg)["problems"] == [] and catalog.model_catalog(reg)["production"]["version"] == "a" * 12


def test_the_cli_refuses_over_long_reasons_and_impossible_versions_before_deploying(two_versions, capsys):
    reg = two_versions
    assert models_cli.main(["promote", "a" * 12]) == 0
    too_long = "x" * (registry.MAX_REASON_CHARS + 1)
    for argv in (["promote", "c" * 12, "--reason", too_long], ["rollback", "--reason", too_long]):
        capsys.readouterr()
        assert models_cli.main(argv) == 2
        assert f"reason is {len(too_long)} characters long; at most {registry.MAX_REASON_CHARS}" in capsys.readouterr().err
    for version in ("r" * 300, "../../../etc", "C" * 12):
        for command in ("show", "lineage", "promote"):
            assert models_cli.main([command, version]) == 2
            err = capsys.readouterr().err
            assert "not a version id" in err and len(err) < 200
    assert registry.production_version(reg) == "a" * 12 and len(registry.promotions(reg)) == 1


@pytest.mark.parametrize("names", [["digits", "fashion", "photos"], ["fashion", "photos"]])
def test_the_overview_reads_each_card_once_whatever_the_number_of_models(tmp_path, monkeypatch, names):
    """Also without a model ``digits``: the registry then reads the cards to find a digits model from before named
    models, and takes the overview's."""
    reg = f"file://{tmp_path}/registry"
    for number, name in enumerate(names):
        for index in range(2):
            version, run_id = f"{number}{index}" * 6, f"{name}-{index}"
            registry.record_run(reg, run_id, {"recorded_at": f"2026-01-0{index + 1}", "candidates": [
                candidate(0, version, 0.9, 0.9)], "best": 0, "gate": {"deploy": True, "reason": "ok"}}, model=name)
            registry.write_card(reg, {"version": version, "model": name, "run_id": run_id,
                                      "created_at": f"2026-01-0{index + 1}", "metrics": {"test_accuracy": 0.5 + index}})
    card_reads = []
    read_bytes = registry.artifacts.read_bytes

    def counted(uri, *args, **kwargs):
        if str(uri).endswith("/card.json"):
            card_reads.append(str(uri))
        return read_bytes(uri, *args, **kwargs)

    monkeypatch.setattr(registry.artifacts, "read_bytes", counted)
    rows = {row["name"]: row for row in catalog.overview(reg)}
    assert sorted(card_reads) == sorted(set(card_reads)) and len(card_reads) == 2 * len(names), card_reads
    assert set(rows) == set(names)
    for number, name in enumerate(names):
        assert rows[name]["versions"] == 2 and rows[name]["test_accuracy"] == 1.5, "its newest card's"
        assert rows[name]["last_run"] == f"{name}-1" and rows[name]["problems"] == []
    number = names.index("fashion")
    assert [row["version"] for row in catalog.model_catalog(reg, "fashion")["versions"]] == [f"{number}1" * 6,
                                                                                             f"{number}0" * 6]


def test_the_catalog_reads_each_record_once(two_versions, monkeypatch):
    reg = two_versions
    registry.promote(reg, "a" * 12, expected=None, reason="first")
    registry.promote(reg, "c" * 12, expected="a" * 12, reason="second")
    reads: list[str] = []
    read_bytes = artifacts.read_bytes
    monkeypatch.setattr(artifacts, "read_bytes", lambda uri, *a, **k: reads.append(uri) or read_bytes(uri, *a, **k))

    assert catalog.model_catalog(reg)["production"]["version"] == "c" * 12
    assert reads and len(reads) == len(set(reads)), [uri for uri in reads if reads.count(uri) > 1]
