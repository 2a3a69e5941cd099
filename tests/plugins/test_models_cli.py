"""``scripts/models``: a reproduced version's lineage keeps its first run and lists the later ones; the
history is a table like ``list``; every subcommand's help says what it prints."""

from __future__ import annotations

import json
import re

import pytest

from retrain_steps import registry
from retraining import catalog, config, models_cli

VERSION, OTHER = "a" * 12, "b" * 12


def candidate(index: int, version: str, val: float) -> dict:
    return {"index": index, "version": version, "learning_rate": 0.001 * (index + 1), "val_accuracy": val,
            "val_loss": 0.1, "test_accuracy": 0.9, "model": f"file:///nowhere/{version}", "evaluation": ""}


def run(reg: str, run_id: str, at: str) -> None:
    """A run whose best candidate is VERSION (deterministic: every run trains the same weights) and OTHER second."""
    registry.record_run(reg, run_id, {"dag_id": "retrain", "recorded_at": at, "best": 0, "production": None,
                                      "candidates": [candidate(0, VERSION, 0.98), candidate(1, OTHER, 0.97)],
                                      "gate": {"deploy": True, "reason": "no model in production"}})


def card(run_id: str, at: str, test_accuracy: float) -> dict:
    return {"version": VERSION, "run_id": run_id, "created_at": at, "metrics": {"test_accuracy": test_accuracy},
            "dataset": {"uri": f"file:///store/step-outputs/{run_id}/download", "version": "d" * 12},
            "bento": {"uri": "file:///b", "sha256": "0" * 64}}


@pytest.fixture
def reproduced(tmp_path, monkeypatch) -> str:
    """VERSION registered by run r1, trained again by run r2 (whose package recorded a reproduction)."""
    monkeypatch.delenv("RETRAIN_REGISTRY", raising=False)  # the registry in the store the environment names
    monkeypatch.setenv("RETRAIN_ARTIFACT_STORE", f"file://{tmp_path}")
    reg = config.settings().registry  # the CLI's
    assert reg.startswith(f"file://{tmp_path}/")
    run(reg, "r1", "2026-11-30T00:14:28+00:00")
    registry.write_card(reg, card("r1", "2026-11-30T00:14:30+00:00", 0.97))
    run(reg, "r2", "2026-11-30T00:31:37+00:00")
    registry.reproduced(reg, card("r2", "2026-11-30T00:31:40+00:00", 0.96))
    return reg


def test_a_later_run_of_the_same_weights_does_not_take_over_a_version(reproduced):
    rows = {row["version"]: row for row in catalog.model_catalog(reproduced)["versions"]}
    assert rows[VERSION]["run_id"] == "r1" and rows[OTHER]["run_id"] == "r1", "each keeps the run that first trained it"
    row = catalog.version(reproduced, VERSION)
    assert [r["run_id"] for r in row["reproduced_by"]] == ["r2"]


def test_lineage_keeps_the_first_run_and_lists_the_reproductions(reproduced, capsys):
    assert models_cli.main(["lineage", VERSION]) == 0
    lineage = json.loads(capsys.readouterr().out)
    assert lineage["run_id"] == "r1" and lineage["dataset"]["uri"] == "file:///store/step-outputs/r1/download"
    assert lineage["metrics"]["test_accuracy"] == 0.97
    [later] = lineage["reproduced_by"]
    assert later == {"run_id": "r2", "at": "2026-11-30T00:31:40+00:00", "code_commit": "",
                     "dataset": {"uri": "file:///store/step-outputs/r2/download", "version": "d" * 12},
                     "metrics": {"test_accuracy": 0.96}}


def test_history_is_a_table_newest_first(reproduced, capsys):
    registry.write_card(reproduced, {**card("r3", "2026-12-01", 0.99), "version": OTHER})
    registry.promote(reproduced, VERSION, expected=None, actor="airflow:retrain", run_id="r1", reason="first model")
    registry.promote(reproduced, OTHER, expected=VERSION, actor="cli:alice", reason="better on the new data")
    capsys.readouterr()
    assert models_cli.main(["history"]) == 0
    header, newest, oldest = capsys.readouterr().out.splitlines()
    assert header.split()[:6] == ["#", "version", "replaced", "action", "by", "at"]
    assert newest.split()[:5] == ["2", OTHER, VERSION, "promote", "cli:alice"] and newest.endswith("better on the new data")
    assert oldest.split()[:5] == ["1", VERSION, "-", "promote", "airflow:retrain"] and " r1 " in oldest


def test_every_subcommand_says_what_it_prints(capsys):
    parser = models_cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert not re.search(r"(show|lineage) one version(?!')", text), "the old help: the command's name again"
    for phrase in ("where one version comes from", "runs that reproduced it", "one version's row as JSON",
                   "every promotion and rollback of a model, newest first (a table)",
                   "every model with its production version, classes and dataset", "that model's versions"):
        assert phrase in text
    with pytest.raises(SystemExit):
        parser.parse_args(["lineage", "--help"])
    assert "the runs that reproduced it" in " ".join(capsys.readouterr().out.split()), "its own help says it too"


def test_history_prints_entries_with_missing_fields():
    from retraining.models_cli import format_history

    table = format_history([{"seq": 1, "version": "a" * 12, "at": None, "action": None, "actor": None, "reason": None}])
    assert table.splitlines()[1].split() == ["1", "a" * 12, "-", "-", "-", "-", "-"]


def test_list_warns_of_each_models_unreadable_records(reproduced, tmp_path, capsys):
    """``list`` (every model) names a model's unreadable record on stderr, as the Models view does in its row, and
    still prints the table."""
    registry.promote(reproduced, VERSION, expected=None, actor="airflow:retrain", run_id="r1", reason="first model")
    broken = tmp_path / "registry" / "models" / "digits" / "promotions" / "00000002.json"
    broken.write_text('{"seq": 2, "version": "aaaa')
    capsys.readouterr()
    assert models_cli.main(["list"]) == 0
    printed = capsys.readouterr()
    header, row = printed.out.splitlines()
    assert header.split()[:2] == ["model", "production"] and row.split()[0] == "digits"
    [warning] = printed.err.splitlines()
    assert warning.startswith("models list: warning: left out, cannot be read: model digits: ")
    assert str(broken) in warning
