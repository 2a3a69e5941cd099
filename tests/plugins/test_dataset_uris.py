"""The plan task checks a dataset URI exactly as the download step reads it (issue 19, defect 6)."""

from __future__ import annotations

import json

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


def plan_task(environ: dict | None = None):
    """The ``plan`` callable of a DAG parsed once (a restart would parse it again)."""
    from airflow.sdk import DAG
    from retraining.config import settings
    from retraining.planning import planning_head

    with DAG("t", schedule=None):
        task, _ = planning_head(settings({"RETRAIN_ARTIFACT_STORE": "file:///tmp/sec", **(environ or {})}))
    return lambda uri: task.operator.python_callable(params={**PARAMS, "dataset_uri": uri}, run_id="r")


def refusal(plan, uri: str) -> str:
    """The message ``plan`` fails with: bad input, which Airflow logs without a traceback and does not retry."""
    from retraining.bad_input import BadInput

    with pytest.raises(BadInput) as info:
        plan(uri)
    assert info.value.code == 2 and not isinstance(info.value, Exception), "SystemExit: no traceback in the log"
    return str(info.value)


def test_the_planning_tasks_never_retry_bad_input():
    from airflow.sdk import DAG, RetryAction
    from retraining.bad_input import BadInput
    from retraining.config import settings
    from retraining.planning import planning_head

    with DAG("t", schedule=None):
        tasks = planning_head(settings({}))
    for task in tasks:
        decision = task.operator.retry_policy.evaluate(BadInput("bad"), try_number=1, max_tries=3)
        assert decision.action == RetryAction.FAIL, task.operator.task_id
        assert task.operator.retry_policy.evaluate(OSError(), try_number=1, max_tries=3).action == RetryAction.DEFAULT


def test_a_file_uri_with_a_host_fails_the_plan_task_without_retry():
    assert "file://tmp/sec/data/x.npz" in refusal(plan_task(), "file://tmp/sec/data/x.npz")


SERVED = "http://127.0.0.1:8000/images/circle/0001.png"  # worked example 3: a Label Studio export's images


def test_the_refusal_names_the_uri_and_how_to_allow_it_in_short_lines():
    message = refusal(plan_task(), SERVED)
    assert message.splitlines()[0] == f"dataset location not allowed: {SERVED}"
    assert "airflow variables set retrain_dataset_allowed '[\"http://127.0.0.1:8000/\"]'" in message
    assert "RETRAIN_DATASET_ALLOWED" in message
    assert max(map(len, message.splitlines())) <= 100, "each line fits a log view"


def test_the_command_the_refusal_suggests_allows_the_uri_without_a_restart(monkeypatch):
    """The same parsed DAG (no restart) refuses, then, once the Variable is set as the message says, plans."""
    import json
    import shlex

    plan = plan_task()
    command = next(line for line in refusal(plan, SERVED).splitlines() if "airflow variables set" in line)
    name, value = shlex.split(command)[-2:]
    assert name == "retrain_dataset_allowed" and json.loads(value) == ["http://127.0.0.1:8000/"]
    monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", value)  # what `airflow variables set` does, for Variable.get
    download = plan(SERVED)["download"]
    assert download[2] == SERVED and "http://127.0.0.1:8000/" in download, "the step gets it (--allow) too"
    assert download[download.index("http://127.0.0.1:8000/") - 1] == "--allow"


@pytest.mark.parametrize("value", ["https://a.example/sets/, http://127.0.0.1:8000/",
                                   '["https://a.example/sets/", "http://127.0.0.1:8000/"]'])
def test_the_variable_is_a_json_list_or_a_comma_list_added_to_the_deployment_s(monkeypatch, value):
    plan = plan_task({"RETRAIN_DATASET_ALLOWED": "s3://team-data/"})
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_DATASET_ALLOWED", value)
    for uri in ("https://a.example/sets/x.zip", SERVED, "s3://team-data/x.npz", "file:///tmp/sec/x.npz"):
        assert plan(uri)["download"][2] == uri
    assert "https://a.example/other/x.zip" in refusal(plan, "https://a.example/other/x.zip"), "a prefix, not a host"


@pytest.mark.parametrize(("value", "entry"), [
    ("ftp://files.example/", "'ftp://files.example/'"), ("data/mine/", "'data/mine/'"),
    ('["http://127.0.0.1:8000/", 3]', "3"), ("https://h.example/p/?token=1", "'https://h.example/p/?token=1'"),
    ("file://nas/share/", "'file://nas/share/'"), ('["http://127.0.0.1:8000/"', "not a JSON list"),
    ('{"http://127.0.0.1:8000/": true}', "not a JSON list"),
])
def test_a_bad_variable_entry_fails_plan_naming_the_variable_and_the_entry(monkeypatch, value, entry):
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_DATASET_ALLOWED", value)
    message = refusal(plan_task(), f"{STORE}/datasets/digits.npz")
    first = message.splitlines()[0]
    assert first.startswith("Airflow Variable retrain_dataset_allowed: ") and entry in first and len(first) < 100


@pytest.mark.parametrize(("value", "said"), [
    (json.dumps([f"https://h.example/{i}/" for i in range(51)]), "51 entries; at most 50"),
    (json.dumps(["https://h.example/" + "a" * 3000 + "/"]), "an entry of 3019 characters; at most 2048"),
])
def test_the_variable_has_a_ceiling(monkeypatch, value, said):
    """Every prefix reaches the download step's command line (a pod's args): 50 of at most 2,048 characters."""
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_DATASET_ALLOWED", value)
    first = refusal(plan_task(), f"{STORE}/datasets/digits.npz").splitlines()[0]
    assert first.startswith("Airflow Variable retrain_dataset_allowed: ") and said in first and len(first) < 200
    fifty = json.dumps([f"https://h.example/{i}/" for i in range(50)])
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_DATASET_ALLOWED", fifty)
    assert plan_task()("https://h.example/49/x.zip")["download"][2] == "https://h.example/49/x.zip", "50 are accepted"


def test_the_variable_is_read_by_plan_not_when_the_dag_is_parsed(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_DATASET_ALLOWED", "ftp://broken/")
    plan = plan_task()  # parsing neither reads nor fails on it
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_DATASET_ALLOWED", "http://127.0.0.1:8000/")
    assert plan(SERVED)["download"][2] == SERVED


def test_a_bad_deployment_entry_is_a_settings_problem_naming_it():
    from retraining.config import parse_safe

    problems = parse_safe({"RETRAIN_DATASET_ALLOWED": "s3://ok/, gopher://old.example/"}).problems
    assert any("RETRAIN_DATASET_ALLOWED" in p and "'gopher://old.example/'" in p for p in problems), problems
