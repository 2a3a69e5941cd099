"""The plan task checks a dataset URI exactly as the download step reads it (issue 19, defect 6)."""

from __future__ import annotations

import pytest

from retraining import commands

PARAMS = {"learning_rates": [0.001], "epochs": 1, "batch_size": 32, "framework": "torch", "seed": 0,
          "dataset_uri": None, "dataset_sha256": None}
STORE = "file:///srv/store"
ALLOWED = ("file:///srv/store/", "s3://datasets/sets/", "https://data.example.com/sets/")


def plan(uri: str) -> dict:
    return commands.data_steps(params={**PARAMS, "dataset_uri": uri}, run_id="r", artifact_store=STORE,
                               default_dataset=f"{STORE}/datasets/digits.npz", allowed=ALLOWED)


def assert_plan_refuses_naming_it(uri: str) -> None:
    with pytest.raises(ValueError) as info:
        plan(uri)
    assert uri in str(info.value)


@pytest.mark.parametrize("uri", [
    "file://srv/store/x.npz", "file://evil.host/srv/store/x.npz", "file://127.0.0.1/srv/store/x.npz",
    "srv/store/x.npz", "file:srv/store/x.npz",
])
def test_a_file_uri_that_is_not_a_local_absolute_path_is_refused_naming_it(uri):
    assert_plan_refuses_naming_it(uri)


@pytest.mark.parametrize("uri", [
    "file:///srv/store/%2e%2e/%2e%2e/etc/passwd", "s3://datasets/sets/%2e%2e/private/x.npz",
    "https://data.example.com/sets/%2E%2E/private/x.npz", "https://data.example.com/sets/..%2fprivate/x.npz",
])
def test_percent_encoded_dots_are_refused_naming_them(uri):
    assert_plan_refuses_naming_it(uri)


@pytest.mark.parametrize("uri", [
    "file:///etc/passwd", "file:///dev/zero", "file:///srv/store/../../etc/passwd", "s3://other-bucket/x.npz",
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/api/v2/dags",
    "https://data.example.com@169.254.169.254/sets/x.npz",
])
def test_the_abuses_of_the_first_probe_still_fail(uri):
    with pytest.raises(ValueError, match="dataset location not allowed"):
        plan(uri)


def test_file_localhost_is_the_local_path_and_the_step_gets_the_uri_as_given():
    download = plan("file://localhost/srv/store/sets/x.npz")["download"]
    assert download[:3] == ["download", "--source", "file://localhost/srv/store/sets/x.npz"]
    assert download[download.index("--allow") + 1] == "file:///srv/store/"


def test_a_file_uri_with_a_host_fails_the_plan_task_without_retry():
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import AirflowFailException
    from retraining.config import settings
    from retraining.planning import planning_head

    with DAG("t", schedule=None):
        task, _ = planning_head(settings({"RETRAIN_ARTIFACT_STORE": "file:///tmp/sec"}))
    with pytest.raises(AirflowFailException, match="file://tmp/sec/data/x.npz"):
        task.operator.python_callable(params={**PARAMS, "dataset_uri": "file://tmp/sec/data/x.npz"}, run_id="r")
