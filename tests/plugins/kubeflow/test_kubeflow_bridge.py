"""Hook, operator, trigger and link against a real HTTP server speaking KFP v2beta1 shapes."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest
from airflow.exceptions import TaskDeferred
from airflow.sdk.exceptions import AirflowFailException
from kubeflow_pipelines.hooks.kubeflow import KubeflowPipelinesError, KubeflowPipelinesHook, KubeflowRunState
from kubeflow_pipelines.links.kubeflow import RUN_URL_KEY, KubeflowPipelinesRunLink
from kubeflow_pipelines.operators.kubeflow import KubeflowPipelinesRunFailed, KubeflowPipelinesRunOperator
from kubeflow_pipelines.triggers.kubeflow import KubeflowPipelinesRunTrigger

from tests.conftest import ROOT
from tests.helpers.kfp_server import FakeKfp

CONN_ID = "kfp_test"
PACKAGE = str(ROOT / "images" / "steps" / "pipelines" / "retrain.yaml")
TRIGGER_PATH = "kubeflow_pipelines.triggers.kubeflow.KubeflowPipelinesRunTrigger"


@pytest.fixture
def kfp(monkeypatch):
    with FakeKfp() as server:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
            {"conn_type": "kubeflow_pipelines", "host": server.url, "extra": {"auth_type": "none"}}))
        yield server


@pytest.fixture
def hook(kfp):
    h = KubeflowPipelinesHook(kfp_conn_id=CONN_ID)
    h.retry_delay = 0.01
    return h


class FakeTI:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def context():
    return {"ti": FakeTI(), "dag": SimpleNamespace(dag_id="retrain_kubeflow"), "run_id": "manual__1"}


def operator(**kwargs):
    defaults = {"task_id": "kfp", "kfp_conn_id": CONN_ID, "pipeline_package": PACKAGE, "pipeline_params": {"gpus": 0},
                "poll_interval": 0.01, "experiment": "retrain"}
    return KubeflowPipelinesRunOperator(**{**defaults, **kwargs})


# -- hook --------------------------------------------------------------------------------
def test_state_enum_terminal_set_includes_canceled():
    assert KubeflowRunState.CANCELED.is_terminal() and KubeflowRunState.SKIPPED.is_terminal()
    assert not KubeflowRunState.RUNNING.is_terminal() and not KubeflowRunState.CANCELING.is_terminal()


def test_ui_field_behaviour_relabels_the_form():
    behaviour = KubeflowPipelinesHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["host"] == "KFP endpoint" and "login" in behaviour["hidden_fields"]


def test_upload_is_idempotent_by_name_and_content(hook, kfp, tmp_path):
    first = hook.upload_pipeline(PACKAGE, "retrain-digits")
    assert hook.upload_pipeline(PACKAGE, "retrain-digits") == first
    changed = tmp_path / "changed.yaml"
    changed.write_text(open(PACKAGE).read() + "\n# changed\n")
    pipeline_id, version_id = hook.upload_pipeline(str(changed), "retrain-digits")
    assert pipeline_id == first[0] and version_id != first[1]
    assert len(kfp.pipelines) == 1


def test_experiment_is_created_once(hook, kfp):
    assert hook.get_or_create_experiment("retrain") == hook.get_or_create_experiment("retrain")
    assert len(kfp.experiments) == 1


def test_create_get_list_and_terminate_runs(hook, kfp):
    experiment = hook.get_or_create_experiment("retrain")
    run = hook.create_run(run_name="r", experiment_id=experiment, params={"gpus": 1}, pipeline_spec={"x": 1})
    kfp.states[run.run_id] = ["RUNNING", "SUCCEEDED"]
    assert hook.get_run_state(run.run_id)[0] is KubeflowRunState.RUNNING
    assert hook.get_run_state(run.run_id)[0] is KubeflowRunState.SUCCEEDED
    assert [r.run_id for r in hook.list_runs()] == [run.run_id]
    kfp.states[run.run_id] = ["RUNNING"]
    assert hook.terminate_run(run.run_id) is True
    assert kfp.terminated == [run.run_id] and hook.get_run_state(run.run_id)[0] is KubeflowRunState.CANCELED
    with pytest.raises(ValueError, match="needs a pipeline_spec"):
        hook.create_run(run_name="r", experiment_id=experiment)


def test_5xx_is_retried(hook, kfp):
    kfp.failures = [503, 502]
    assert hook.get_or_create_experiment("retrain")
    kfp.failures = [500] * 10
    with pytest.raises(KubeflowPipelinesError, match="HTTP 500"):
        hook.get_or_create_experiment("other")


def test_bearer_token_auth(kfp, monkeypatch):
    kfp.token = "secret-token"
    monkeypatch.setenv("AIRFLOW_CONN_KFP_TOKEN", json.dumps(
        {"conn_type": "kubeflow_pipelines", "host": kfp.url, "password": "secret-token"}))
    assert KubeflowPipelinesHook("kfp_token").get_or_create_experiment("e")
    monkeypatch.setenv("AIRFLOW_CONN_KFP_BAD", json.dumps(
        {"conn_type": "kubeflow_pipelines", "host": kfp.url, "password": "wrong"}))
    with pytest.raises(KubeflowPipelinesError, match="HTTP 401"):
        KubeflowPipelinesHook("kfp_bad").get_or_create_experiment("e")


def test_sa_token_is_reread_on_401(kfp, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("old-token")
    monkeypatch.setenv("AIRFLOW_CONN_KFP_SA", json.dumps({"conn_type": "kubeflow_pipelines", "host": kfp.url,
                       "extra": {"auth_type": "sa_token_file", "sa_token_path": str(token_file)}}))
    kfp.token = "old-token"
    sa_hook = KubeflowPipelinesHook("kfp_sa")
    sa_hook.get_or_create_experiment("e")
    kfp.token = "rotated-token"
    token_file.write_text("rotated-token")  # the kubelet rotated the projected token
    assert sa_hook.get_or_create_experiment("e2")


def test_bad_auth_type_is_named(kfp, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KFP_X", json.dumps({"conn_type": "kubeflow_pipelines", "host": kfp.url,
                                                           "extra": {"auth_type": "magic"}}))
    with pytest.raises(AirflowFailException, match="'magic'"):
        KubeflowPipelinesHook("kfp_x").auth_type


def test_a_missing_connection_fails_at_once_saying_what_to_create(monkeypatch):
    """AirflowFailException: the task fails without its retries, and the message says what to create."""
    monkeypatch.delenv("AIRFLOW_CONN_KFP_NOWHERE", raising=False)
    operator = KubeflowPipelinesRunOperator(task_id="run", kfp_conn_id="kfp_nowhere", pipeline_id="p",
                                            pipeline_version_id="v", retries=3)
    with pytest.raises(AirflowFailException, match=r"'kfp_nowhere' does not exist: create it in Admin → Connections "
                                                   r"\(type 'Kubeflow Pipelines'.*AIRFLOW_CONN_KFP_NOWHERE"):
        operator.execute({"dag": SimpleNamespace(dag_id="d"), "run_id": "r", "ti": None})


# -- trigger -----------------------------------------------------------------------------
def trigger(run_id, **kwargs):
    return KubeflowPipelinesRunTrigger(run_id=run_id, kfp_conn_id=CONN_ID, end_time=time.time() + 30,
                                       poll_interval=0.01, **kwargs)


def first_event(trig):
    async def collect():
        async for event in trig.run():
            return event.payload

    return asyncio.run(collect())


def test_trigger_serialization():
    trig = KubeflowPipelinesRunTrigger(run_id="r1", kfp_conn_id=CONN_ID, end_time=123.0, poll_interval=5.0)
    assert trig.serialize() == (TRIGGER_PATH, {"run_id": "r1", "kfp_conn_id": CONN_ID, "end_time": 123.0,
                                               "poll_interval": 5.0, "max_errors": 5})


@pytest.mark.parametrize(("final", "status"), [("SUCCEEDED", "success"), ("SKIPPED", "success"),
                                                ("FAILED", "failed"), ("CANCELED", "canceled")])
def test_trigger_one_event_per_terminal_state(hook, kfp, final, status):
    run = hook.create_run(run_name="r", experiment_id=hook.get_or_create_experiment("e"), pipeline_spec={"x": 1})
    kfp.states[run.run_id] = ["PENDING", "RUNNING", final]
    event = first_event(trigger(run.run_id))
    assert event["status"] == status and event["state"] == final and event["run_id"] == run.run_id
    if final == "FAILED":
        assert event["message"] == "step train failed"


def test_trigger_timeout(hook, kfp):
    run = hook.create_run(run_name="r", experiment_id=hook.get_or_create_experiment("e"), pipeline_spec={"x": 1})
    kfp.states[run.run_id] = ["RUNNING"]
    trig = KubeflowPipelinesRunTrigger(run_id=run.run_id, kfp_conn_id=CONN_ID, end_time=time.time(), poll_interval=0.01)
    assert first_event(trig)["status"] == "timeout"


def test_trigger_error_after_repeated_failures(kfp):
    kfp.failures = [404] * 3
    event = first_event(trigger("missing", max_errors=2))
    assert event["status"] == "error" and "HTTP 404" in event["message"]


def test_trigger_turns_exceptions_into_error_events(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KFP_BROKEN", json.dumps({"conn_type": "kubeflow_pipelines", "host": "x",
                                                               "extra": {"auth_type": "magic"}}))
    trig = KubeflowPipelinesRunTrigger(run_id="r", kfp_conn_id="kfp_broken", end_time=time.time() + 5)
    event = first_event(trig)
    assert event["status"] == "error" and "magic" in event["message"]


# -- operator and link -------------------------------------------------------------------
def test_operator_defers_after_pushing_the_run_url(kfp):
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        operator(deferrable=True).execute(ctx)
    trig = deferred.value.trigger
    assert isinstance(trig, KubeflowPipelinesRunTrigger) and deferred.value.method_name == "execute_complete"
    assert ctx["ti"].xcom[RUN_URL_KEY] == f"{kfp.url}/#/runs/details/{trig.run_id}"
    (run,) = kfp.runs.values()
    assert run.display_name == "retrain_kubeflow-manual__1" and run.runtime_config.parameters == {"gpus": 0}


def test_operator_polls_to_success_and_returns_outputs(kfp, tmp_path):
    outputs = tmp_path / "summary.json"
    outputs.write_text('{"best": 1}')
    result = operator(deferrable=False, outputs_uri=f"file://{outputs}").execute(context())
    assert result["state"] == "SUCCEEDED" and result["outputs"] == {"best": 1}


def test_operator_uploads_when_a_pipeline_name_is_given(kfp):
    operator(deferrable=False, pipeline_name="retrain-digits").execute(context())
    (run,) = kfp.runs.values()
    assert run.pipeline_version_reference["pipeline_id"] in kfp.pipelines


@pytest.mark.parametrize(("status", "message"), [("failed", "step train failed"), ("canceled", "CANCELED"),
                                                  ("error", "boom")])
def test_execute_complete_maps_failures(kfp, status, message):
    with pytest.raises(KubeflowPipelinesRunFailed, match=f"run r1 {status}: .*{message}"):
        operator().execute_complete(context(), {"status": status, "run_id": "r1", "state": status.upper(),
                                                "message": message if status != "canceled" else ""})


def test_timeout_terminates_the_run(hook, kfp):
    run = hook.create_run(run_name="r", experiment_id=hook.get_or_create_experiment("e"), pipeline_spec={"x": 1})
    kfp.states[run.run_id] = ["RUNNING"]
    with pytest.raises(KubeflowPipelinesRunFailed, match="timeout"):
        operator().execute_complete(context(), {"status": "timeout", "run_id": run.run_id, "state": "RUNNING"})
    assert kfp.terminated == [run.run_id]
    with pytest.raises(KubeflowPipelinesRunFailed, match="timeout"):  # terminate failing does not hide the timeout
        operator().execute_complete(context(), {"status": "timeout", "run_id": "unknown", "state": "RUNNING"})


def test_execute_complete_success(kfp):
    assert operator().execute_complete(context(), {"status": "success", "run_id": "r2", "state": "SUCCEEDED"})[
        "run_url"].endswith("/#/runs/details/r2")


def test_on_kill_terminates_the_remote_run(kfp):
    op = operator(deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(context())
    op.on_kill()
    assert kfp.terminated == [op.kfp_run_id]


def test_caching_switch_rewrites_every_task(kfp):
    spec = operator(enable_caching=False)._pipeline_spec()["pipeline_spec"]
    from kubeflow_pipelines.operators.kubeflow import _dag_tasks

    tasks = _dag_tasks(spec)
    assert tasks and all(t["cachingOptions"]["enableCache"] is False for t in tasks)


def test_operator_needs_a_pipeline():
    with pytest.raises(ValueError, match="pipeline_package"):
        KubeflowPipelinesRunOperator(task_id="x")


def test_link_reads_the_run_url(monkeypatch):
    from kubeflow_pipelines.links import kubeflow as links

    monkeypatch.setattr(links.XCom, "get_value", lambda *, ti_key, key: f"url-for-{key}")
    assert KubeflowPipelinesRunLink().get_link(operator(), ti_key="k") == f"url-for-{RUN_URL_KEY}"
    assert KubeflowPipelinesRunLink.name == "Kubeflow Run"


def test_plugin_registers_the_link():
    from kubeflow_plugin import KubeflowPipelinesPlugin

    assert any(isinstance(link, KubeflowPipelinesRunLink) for link in KubeflowPipelinesPlugin.operator_extra_links)


# -- what a first real cluster run would hit -----------------------------------------------
def test_upload_finds_its_version_by_name_past_the_first_page(hook, kfp):
    import kfp_server_api

    pipeline_id, version_id = hook.upload_pipeline(PACKAGE, "retrain-digits")
    kfp.versions[pipeline_id] = [kfp_server_api.V2beta1PipelineVersion(
        pipeline_id=pipeline_id, pipeline_version_id=f"old{i}", display_name=f"retrain-digits-{i:012x}")
        for i in range(150)] + kfp.versions[pipeline_id]
    assert hook.upload_pipeline(PACKAGE, "retrain-digits") == (pipeline_id, version_id)
    assert len(kfp.versions[pipeline_id]) == 152, "no re-upload of an existing version"


def test_a_lost_answer_to_create_run_does_not_start_a_second_run(hook, kfp):
    experiment = hook.get_or_create_experiment("retrain")
    kfp.lose_answers = {"POST /apis/v2beta1/runs"}
    run = hook.create_run(run_name="retrain-manual__7", experiment_id=experiment, pipeline_spec={"x": 1})
    assert [r.run_id for r in kfp.runs.values()] == [run.run_id]


def test_create_run_is_retried_when_the_server_did_not_create_it(hook, kfp):
    experiment = hook.get_or_create_experiment("retrain")
    kfp.failures = [503]
    hook.create_run(run_name="retrain-manual__8", experiment_id=experiment, pipeline_spec={"x": 1})
    assert len(kfp.runs) == 1


def test_non_idempotent_calls_are_not_blindly_retried(hook, kfp):
    calls = []
    original = hook._call

    def spy(api, method, *args, idempotent=True, **kwargs):
        calls.append((method, idempotent))
        return original(api, method, *args, idempotent=idempotent, **kwargs)

    hook._call = spy
    hook.upload_pipeline(PACKAGE, "retrain-digits")
    experiment = hook.get_or_create_experiment("retrain")
    hook.create_run(run_name="r", experiment_id=experiment, pipeline_spec={"x": 1})
    posts = {"upload_pipeline", "upload_pipeline_version", "experiment_service_create_experiment",
             "run_service_create_run"}
    assert all(not idempotent for method, idempotent in calls if method in posts)


def test_every_call_has_a_timeout(kfp, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KFP_SLOW", json.dumps(
        {"conn_type": "kubeflow_pipelines", "host": kfp.url, "extra": {"auth_type": "none", "timeout": 0.3}}))
    slow = KubeflowPipelinesHook("kfp_slow")
    slow.retry_delay = 0.01
    kfp.delay = 3
    started = time.monotonic()
    with pytest.raises(KubeflowPipelinesError, match="cannot reach"):
        slow.get_run_state("run-x")
    assert time.monotonic() - started < 2.9, "a hung server must not block past the timeout"


def test_terminating_an_ended_run_is_not_an_error(hook, kfp):
    experiment = hook.get_or_create_experiment("retrain")
    run = hook.create_run(run_name="r", experiment_id=experiment, pipeline_spec={"x": 1})
    kfp.states[run.run_id] = ["SUCCEEDED"]
    assert hook.terminate_run(run.run_id) is False and kfp.terminated == []
    op = operator()
    op.kfp_run_id = run.run_id
    op.on_kill()  # after the end: no error


def test_the_run_link_uses_the_ui_host(kfp, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KFP_UI", json.dumps({"conn_type": "kubeflow_pipelines",
                       "host": "http://ml-pipeline.kubeflow:8888",
                       "extra": {"ui_host": "https://kubeflow.example.com/pipeline/"}}))
    assert KubeflowPipelinesHook("kfp_ui").run_url("r1") == "https://kubeflow.example.com/pipeline/#/runs/details/r1"


def test_images_follow_the_deployment_not_the_compiled_tag(kfp):
    images = {"steps": "reg.example/team/steps:abc1234", "train": "reg.example/team/train:abc1234"}
    spec = operator(images=images)._pipeline_spec()["pipeline_spec"]
    used = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert used == set(images.values())
    operator(deferrable=False, pipeline_name="retrain-digits", images=images).execute(context())
    (version,) = [v for versions in kfp.versions.values() for v in versions if v.display_name != "retrain-digits"] \
        or [None]
    assert version is not None, "the package is uploaded as it will run: a version per image tag"


def test_the_link_is_stored_under_the_key_the_api_server_reads():
    assert KubeflowPipelinesRunLink().xcom_key == RUN_URL_KEY
