"""The Airflow side's settings: one object, validated (every bad variable named with what it accepts), a parse-safe
reading for DAG files, no module reading the environment at import, and scripts/airflow-env.sh repeating no default."""

from __future__ import annotations

import ast
import os
import subprocess

import pytest
from retraining.config import KubeflowSettings, SettingsError, parse_safe, settings
from tests.conftest import PLUGINS, ROOT

BAD = {"RETRAIN_BACKEND": "cloud", "RETRAIN_WATCH_SECONDS": "often", "RETRAIN_SCHEDULE": "every night",
       "RETRAIN_KFP_POLL_SECONDS": "0", "RETRAIN_KFP_TIMEOUT_SECONDS": "nan"}


def test_parse_safe_never_raises_and_keeps_the_defaults_of_bad_values():
    conf = parse_safe(BAD, kubeflow=True)
    assert (conf.backend, conf.watch_seconds, conf.schedule) == ("local", 60.0, None), "no scheduled run meanwhile"
    assert conf.kfp == KubeflowSettings()
    assert [p.split(" ")[0] for p in conf.problems] == ["RETRAIN_BACKEND", "RETRAIN_SCHEDULE", "RETRAIN_WATCH_SECONDS",
                                                        "RETRAIN_KFP_POLL_SECONDS", "RETRAIN_KFP_TIMEOUT_SECONDS"]


def test_settings_name_every_bad_variable_and_what_it_accepts():
    with pytest.raises(SettingsError) as info:
        settings(BAD, kubeflow=True)
    message = str(info.value)
    for expected in ("RETRAIN_BACKEND must be one of local, kubernetes, got 'cloud'",
                     "RETRAIN_WATCH_SECONDS must be a number of seconds >= 0 (0: off), got 'often'",
                     "RETRAIN_SCHEDULE must be a cron expression", "got 'every night'",
                     "RETRAIN_KFP_POLL_SECONDS must be a number of seconds > 0, got '0'",
                     "RETRAIN_KFP_TIMEOUT_SECONDS must be a number of seconds > 0, got 'nan'"):
        assert expected in message


def test_the_kfp_variables_concern_only_the_kubeflow_dag():
    assert settings({"RETRAIN_KFP_POLL_SECONDS": "fast"}).kfp.poll_seconds == 15
    assert settings({"RETRAIN_KFP_POLL_SECONDS": "2.5", "RETRAIN_KFP_PIPELINE_NAME": "retrain"}, kubeflow=True).kfp \
        == KubeflowSettings(pipeline_name="retrain", poll_seconds=2.5)


@pytest.mark.parametrize("schedule", ["0 3 * * *", "@daily", "@quarterly", "*/30 * * * *"])
def test_cron_schedules_airflow_accepts_are_accepted(schedule):
    assert settings({"RETRAIN_SCHEDULE": schedule}).schedule == schedule


def _module_level_environ_reads(path) -> list[int]:
    """Lines outside functions and classes that read ``os.environ`` or ``os.getenv``."""
    tree, lines = ast.parse(path.read_text()), []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                lines.append(node.lineno)
    return lines


def test_no_module_reads_the_environment_at_import():
    reads = {p.name: _module_level_environ_reads(p) for p in sorted((PLUGINS / "retraining").glob("*.py"))}
    assert {name: lines for name, lines in reads.items() if lines} == {}
    in_dags = [p.name for p in (ROOT / "dags").glob("*.py") if "environ" in p.read_text()]
    assert in_dags == [], "DAG files get their settings from retraining.config"


def test_airflow_env_sh_exports_what_the_dags_resolve():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRAIN_", "DIGITS_"))}
    script = 'source scripts/airflow-env.sh && echo "$RETRAIN_REGISTRY|$RETRAIN_DATASET_URI|$DIGITS_REGISTRY_URI"'
    for overrides in ({}, {"RETRAIN_ARTIFACT_STORE": "s3://team bucket/ml/"}):
        out = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**env, **overrides}, capture_output=True,
                             text=True, check=True).stdout.strip()
        expected = settings(overrides)
        assert out == f"{expected.registry}|{expected.dataset_uri}|{expected.registry}"
    text = (ROOT / "scripts" / "airflow-env.sh").read_text()
    assert "data/artifacts" not in text and "digits.npz" not in text, "the defaults are written in config.py only"


def test_a_run_trains_its_forms_model_else_the_deployments():
    chosen = settings({"RETRAIN_MODEL": "shapes"})
    assert chosen.model_of({"model": "digits", "epochs": 3}) == "digits", "the form's Model"
    assert chosen.model_of({"model": ""}) == chosen.model_of({}) == chosen.model_of(None) == "shapes"
