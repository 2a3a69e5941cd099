"""The registry as people read it: one row per version with its status and why (Models view + CLI)."""

from __future__ import annotations

import json
import subprocess

from retrain_steps import registry
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

    models = catalog.models(reg)
    status = {row["version"]: (row["status"], row["why"]) for row in models["versions"]}
    assert status["c" * 12][0] == "production" and "beats production" in status["c" * 12][1]
    assert status["a" * 12][0] == "previous"
    assert status["b" * 12] == ("candidate", "not the best candidate of its run (validation accuracy)")
    assert status["d" * 12] == ("rejected", "gate: test accuracy 0.5000 is below the minimum")
    assert [row["version"] for row in models["versions"]][0] == "d" * 12, "newest first"
    assert [e["seq"] for e in models["promotions"]] == [2, 1]

    lineage = catalog.lineage(catalog.version(reg, "c" * 12))
    assert lineage["dataset"]["version"] == "d" * 12 and lineage["code_commit"] == "abc1234" and lineage["run_id"] == "r2"
    assert catalog.training_history(catalog.version(reg, "b" * 12)) == [], "a run's files may be gone"


def test_the_cli_lists_shows_and_refuses_bad_values(tmp_path, monkeypatch, capsys):
    store = f"file://{tmp_path}"
    reg = f"{store}/registry"
    monkeypatch.setenv("RETRAIN_ARTIFACT_STORE", store)
    monkeypatch.setenv("RETRAIN_REGISTRY", reg)
    packaged(reg, "a" * 12, "r1", "2026-01-01T00:00:02+00:00")
    packaged(reg, "c" * 12, "r2", "2026-01-02T00:00:02+00:00")
    assert models_cli.main(["promote", "a" * 12, "--reason", "first"]) == 0
    assert models_cli.main(["promote", "c" * 12]) == 0
    capsys.readouterr()
    assert models_cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert f"{'c' * 12}  production" in listing and f"{'a' * 12}  previous" in listing
    assert models_cli.main(["lineage", "c" * 12]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["source"] == "file:///data/digits.npz"
    assert models_cli.main(["promote", "f" * 12]) == 2
    assert f"unknown version '{'f' * 12}'" in capsys.readouterr().err
    assert models_cli.main(["rollback", "--reason", "bad numbers"]) == 0
    entry = registry.latest_promotion(reg)
    assert entry["version"] == "a" * 12 and entry["action"] == "rollback" and entry["actor"].startswith("cli:")


def test_the_wrapper_script_runs_the_cli(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "RETRAIN_ARTIFACT_STORE": f"file://{tmp_path}", "HOME": str(tmp_path)}
    done = subprocess.run([str(ROOT / "scripts" / "models"), "show", "0" * 12], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown version" in done.stderr, done.stderr
