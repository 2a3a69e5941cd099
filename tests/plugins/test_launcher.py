"""LocalStepOperator runs the step CLI as a subprocess and maps exit codes to task outcomes."""

from __future__ import annotations

import os
import sys

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from retraining.bad_input import BadInput
from retraining.config import settings
from retraining.launcher import LocalStepOperator
from tests.conftest import ROOT
from tests.helpers.airflow import not_retried


def operator(arguments, cmds=("python", "-m", "retrain_steps")):
    return LocalStepOperator(task_id="t", cmds=list(cmds), arguments=arguments, python_bin=sys.executable, cwd=str(ROOT))


def test_command_replaces_python_with_the_environment_interpreter():
    assert operator(["download", "--x"]).command() == [sys.executable, "-m", "retrain_steps", "download", "--x"]
    assert operator(["a"], cmds=("helm",)).command() == ["helm", "a"]


def test_success_returns_the_step_result(tmp_path):
    out = f"file://{tmp_path}/d.npz"
    result = operator(["export-default", "--output", out]).execute({})
    assert result["output"] == out and len(result["sha256"]) == 64


def test_bad_input_fails_without_retry(tmp_path):
    op = operator(["download", "--source", f"file://{tmp_path}/none", "--output", f"file://{tmp_path}/o"])
    with pytest.raises(BadInput) as info:
        op.execute({})
    first, error = str(info.value).splitlines()
    assert first == "step rejected its input (exit 2), not retried:"
    assert error.startswith("  retrain_steps download: error: artifact not found: ") and error.endswith("/none")


def test_bad_input_is_one_short_message_that_airflow_logs_without_a_traceback():
    """Airflow 3.3 logs an Exception (AirflowFailException too) with its traceback, a SystemExit as one line and
    asks the retry policy: BadInput is a SystemExit with exit code 2 that the step tasks' policy never retries."""
    refused = "retrain_steps download: error: dataset location not allowed: http://127.0.0.1:9/x.zip"
    error = f"{refused}\nallowed: file:///s/\n  hint"
    op = python_step(f"print('working'); print({error!r}, file=sys.stderr); sys.exit(2)")
    with pytest.raises(BadInput) as info:
        op.execute({})
    assert str(info.value).splitlines() == ["step rejected its input (exit 2), not retried:", f"  {refused}",
                                            "  allowed: file:///s/", "    hint"], "the step's whole error, no more"
    assert info.value.code == 2 and not isinstance(info.value, Exception) and not_retried(op, info.value)


def test_a_crash_is_a_retryable_failure():
    op = LocalStepOperator(task_id="t", cmds=["python", "-c", "import sys; print('boom'); sys.exit(3)"],
                           arguments=[], python_bin=sys.executable)
    with pytest.raises(AirflowException, match="exit code 3: boom") as info:
        op.execute({})
    assert not isinstance(info.value, AirflowFailException) and not not_retried(op, info.value)


def test_settings_validate_the_backend():
    assert settings({}).backend == "local"
    assert settings({"RETRAIN_SCHEDULE": "none"}).schedule is None
    with pytest.raises(ValueError, match="RETRAIN_BACKEND must be one of"):
        settings({"RETRAIN_BACKEND": "cloud"})


def test_artifact_store_connection_becomes_boto3_env(monkeypatch):
    from retraining.store_connection import artifact_store_env

    monkeypatch.setenv(
        "AIRFLOW_CONN_ARTIFACT_STORE",
        '{"conn_type": "aws", "login": "user", "password": "pw", "extra": {"endpoint_url": "http://minio:9000"}}',
    )
    assert artifact_store_env() == {
        "AWS_ACCESS_KEY_ID": "user", "AWS_SECRET_ACCESS_KEY": "pw", "AWS_ENDPOINT_URL_S3": "http://minio:9000",
    }
    assert artifact_store_env("not_defined") == {}


def test_local_steps_get_the_connection_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_ARTIFACT_STORE", '{"conn_type": "aws", "login": "k", "password": "s"}')
    op = python_step("protocol.write_result([os.environ['AWS_ACCESS_KEY_ID'], os.environ['AWS_SECRET_ACCESS_KEY']])")
    assert op.execute({}) == ["k", "s"]


def python_step(source: str) -> LocalStepOperator:
    """A step task running ``source`` (with ``os``, ``json`` and the step protocol imported)."""
    prelude = "import os, json, sys; from retrain_steps import protocol; "
    return LocalStepOperator(task_id="t", cmds=["python", "-c", prelude + source], arguments=[],
                             python_bin=sys.executable)


def test_the_result_is_the_result_file_not_a_json_line_of_the_log():
    printed = "print(json.dumps({'step': 't', 'result': 'from the log'})); "
    assert python_step(printed + "protocol.write_result({'from': 'the file'})").execute({}) == {"from": "the file"}
    assert python_step(printed).execute({}) is None, "no result file, no result: the log is not parsed"


def test_each_run_gets_its_own_result_file_named_by_the_protocol_variable():
    op = python_step("protocol.write_result(os.environ[protocol.RESULT_ENV])")
    first, second = op.execute({}), op.execute({})
    assert first.endswith("/result.json") and first != second
    assert not os.path.exists(first), "the launcher's result file goes with its run"


def test_the_result_of_a_real_step_is_its_manifest(tmp_path):
    source, output = f"file://{tmp_path}/d.npz", f"file://{tmp_path}/dl"
    operator(["export-default", "--output", source]).execute({})
    manifest = operator(["download", "--source", source, "--output", output]).execute({})
    assert manifest["step"] == "download" and manifest["dataset"]["samples"] > 0


def test_a_step_without_arguments_skips(tmp_path):
    """The track teardown of a run that ended before select_best planned its arguments: skipped, nothing run."""
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="the task that plans them did not run"):
        operator(None).execute({})


def test_only_the_track_step_gets_the_mlflow_credentials(tmp_path, monkeypatch):
    """The retrain_mlflow connection's variables reach the track step's process, and no other step's."""
    import json

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_RETRAIN_MLFLOW", json.dumps(
        {"conn_type": "http", "host": "mlflow.example", "port": 5000, "login": "ann", "password": "pw"}))
    code = ("import json, os, sys; open(sys.argv[1], 'w').write(json.dumps("
            "{k: v for k, v in os.environ.items() if k.startswith('MLFLOW_')}))")
    seen = {}
    for task_id in ("track", "train"):
        out = tmp_path / f"{task_id}.json"
        op = LocalStepOperator(task_id=task_id, cmds=["python", "-c", code], arguments=[str(out)],
                               python_bin=sys.executable, cwd=str(ROOT))
        try:
            op.execute({})
        except Exception:  # noqa: BLE001 (the snippet writes no step result: what it saw is in its file)
            pass
        seen[task_id] = json.loads(out.read_text())
    assert seen["track"] == {"MLFLOW_TRACKING_URI": "http://mlflow.example:5000", "MLFLOW_TRACKING_USERNAME": "ann",
                             "MLFLOW_TRACKING_PASSWORD": "pw"}
    assert seen["train"] == {}


def test_an_mlflow_server_in_the_environment_replaces_the_connection_whole(monkeypatch):
    """Credentials of the connection never go to another server: the environment's server comes with its own."""
    import json

    from retraining.tracking_connection import server_uri, tracking_env

    monkeypatch.setenv("AIRFLOW_CONN_RETRAIN_MLFLOW", json.dumps(
        {"conn_type": "http", "host": "mlflow.example", "login": "ann", "password": "pw", "extra": {"token": "t"}}))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_env() == {"MLFLOW_TRACKING_URI": "http://mlflow.example", "MLFLOW_TRACKING_USERNAME": "ann",
                              "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_TRACKING_TOKEN": "t"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://other:5000")
    assert tracking_env() == {}
    assert server_uri("https://ml.example/prefix/", None, 8443) == "https://ml.example:8443/prefix"
    assert server_uri("ml.example", "https", None) == "https://ml.example"
