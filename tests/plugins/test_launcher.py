"""LocalStepOperator runs the step CLI as a subprocess and maps exit codes to task outcomes."""

from __future__ import annotations

import sys

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from retraining.config import settings
from retraining.launcher import LocalStepOperator
from tests.conftest import ROOT


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
    with pytest.raises(AirflowFailException, match="artifact not found"):
        operator(["download", "--source", f"file://{tmp_path}/none", "--output", f"file://{tmp_path}/o"]).execute({})


def test_a_crash_is_a_retryable_failure():
    op = LocalStepOperator(task_id="t", cmds=["python", "-c", "import sys; print('boom'); sys.exit(3)"],
                           arguments=[], python_bin=sys.executable)
    with pytest.raises(AirflowException, match="exit code 3: boom") as info:
        op.execute({})
    assert not isinstance(info.value, AirflowFailException)


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
    op = LocalStepOperator(task_id="t", cmds=["python", "-c", "import os, json; print(json.dumps({'result': "
                           "[os.environ['AWS_ACCESS_KEY_ID'], os.environ['AWS_SECRET_ACCESS_KEY']]}))"],
                           arguments=[], python_bin=sys.executable)
    assert op.execute({}) == ["k", "s"]
