"""``promote_model`` runs for real: the failure notification (``airflow dags test``, where the callback gets the
serialized DAG, and a real scheduler, where the DAG processor runs it), the history's actor (the user who
triggered the run, never the conf) and the refusal of a no-op promotion, through ``airflow standalone``'s REST API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from retrain_steps import registry
from tests.conftest import ROOT
from tests.helpers.airflow import BIN, dags_test, local_airflow_env
from tests.helpers.servers import free_port, serve, webhook_receiver

pytestmark = pytest.mark.e2e
PASSWORD = "promote-test"
OLD, CURRENT = "aaaaaaaaaaaa", "bbbbbbbbbbbb"


@pytest.fixture(scope="module")
def notifications():
    with webhook_receiver() as (url, bodies):
        yield url, bodies


def airflow_env(base, url: str, **settings: str) -> dict:
    hook = json.dumps({"conn_type": "http", "host": url, "password": "hook-token"})
    return local_airflow_env(base, AIRFLOW_CONN_RETRAIN_NOTIFICATIONS=hook, **settings)


def wait_for(bodies: list, event: str, seconds: float = 120) -> list:
    deadline = time.monotonic() + seconds
    while not [b for b in bodies if b["event"] == event] and time.monotonic() < deadline:
        time.sleep(0.5)
    return [b for b in bodies if b["event"] == event]


def test_dags_test_delivers_the_failure_notification(tmp_path, notifications):
    url, bodies = notifications
    _, output = dags_test(airflow_env(tmp_path, url), {"action": "rollback"}, dag_id="promote_model")
    assert "state=failed" in output and "nothing to roll back to" in output, output[-4000:]
    assert "Callback failed" not in output, output[-4000:]
    (body,) = wait_for(bodies, "run_failed", 10)
    assert body["dag_id"] == "promote_model" and body["run_id"].startswith("manual__")
    assert body["text"] == f"promote_model run {body['run_id']} failed: task_failure"
    assert body["_authorization"] == "Bearer hook-token"
    bodies.clear()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, notifications):
    """``airflow standalone`` (user admin) over a registry where CURRENT replaced OLD in production."""
    base = tmp_path_factory.mktemp("promote")
    port = free_port()
    (base / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    env = airflow_env(
        base, notifications[0], AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(base / "passwords.json"),
    )
    reg = env["RETRAIN_REGISTRY"]
    for version in (OLD, CURRENT):
        bento = {"uri": f"{reg}/versions/{version}/digits_classifier.bento", "sha256": "a" * 64}
        registry.write_card(reg, {"version": version, "metrics": {"test_accuracy": 0.9}, "bento": bento})
    registry.promote(reg, OLD, actor="setup")
    registry.promote(reg, CURRENT, expected=OLD, actor="setup")
    api_url = f"http://127.0.0.1:{port}/api/v2"
    with serve([str(BIN / "airflow"), "standalone"], env=env, cwd=ROOT, timeout=240, log_path=base / "airflow.log",
               ready_url=f"{api_url}/monitor/health"):
        login = urllib.request.Request(f"http://127.0.0.1:{port}/auth/token",
                                       headers={"Content-Type": "application/json"},
                                       data=json.dumps({"username": "admin", "password": PASSWORD}).encode())
        with urllib.request.urlopen(login, timeout=30) as response:
            token = json.loads(response.read())["access_token"]
        yield {"api": api_url, "token": token, "registry": reg, "log": base / "airflow.log"}


def api(stack, path: str, body: dict | None = None, raw: bool = False):
    request = urllib.request.Request(f"{stack['api']}{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {stack['token']}",
                                              "Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode() if raw else json.loads(response.read())


def run_promote_model(stack, conf: dict) -> tuple[dict, str]:
    """Trigger ``promote_model`` as admin and wait for it to end; return (its task instance, its task log)."""
    deadline = time.monotonic() + 120
    while True:  # the DAG processor has to parse the file first
        try:
            run = api(stack, "/dags/promote_model/dagRuns", {"logical_date": None, "conf": conf})
            break
        except urllib.error.HTTPError as err:
            if err.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(2)
    path = f"/dags/promote_model/dagRuns/{run['dag_run_id']}"
    while api(stack, path)["state"] not in ("success", "failed"):
        assert time.monotonic() < deadline + 120, f"run {run['dag_run_id']} did not end"
        time.sleep(1)
    ti = api(stack, f"{path}/taskInstances/deploy_version")
    log = api(stack, f"{path}/taskInstances/deploy_version/logs/{ti['try_number']}", raw=True)
    return ti, log


def test_a_scheduler_run_delivers_the_failure_notification(stack, notifications):
    bodies = notifications[1]
    ti, log = run_promote_model(stack, {"action": "promote"})
    assert ti["state"] == "failed" and "promote needs a Version" in log
    (body,) = wait_for(bodies, "run_failed")
    assert body["dag_id"] == "promote_model" and body["run_id"] == ti["dag_run_id"]
    assert body["text"] == f"promote_model run {ti['dag_run_id']} failed: task_failure"
    assert "Callback failed" not in stack["log"].read_text()
    bodies.clear()


def test_the_history_names_the_user_who_triggered_never_the_conf(stack, notifications):
    forged = {"action": "promote", "version": OLD, "expected": CURRENT, "reason": "forged", "actor": "ui:ceo-forged"}
    ti, log = run_promote_model(stack, forged)
    assert ti["state"] == "failed" and ti["try_number"] == 1 and "may not name an actor" in log
    assert registry.production_version(stack["registry"]) == CURRENT, "the forged request changed nothing"

    ti, _ = run_promote_model(stack, {k: v for k, v in forged.items() if k != "actor"} | {"reason": "by hand"})
    assert ti["state"] == "success"
    latest = registry.latest_promotion(stack["registry"])
    assert (latest["version"], latest["previous"], latest["actor"]) == (OLD, CURRENT, "user:admin")
    (deployed,) = wait_for(notifications[1], "deployed")
    assert deployed["actor"] == "user:admin" and "promote of aaaaaaaaaaaa by user:admin" in deployed["text"]


def test_promoting_production_onto_itself_fails_without_retry(stack):
    before = registry.promotions(stack["registry"])
    production = before[-1]["version"]
    ti, log = run_promote_model(stack, {"action": "promote", "version": production, "expected": production})
    assert ti["state"] == "failed" and ti["try_number"] == 1
    assert f"{production} is in production already: nothing to promote" in log
    assert registry.promotions(stack["registry"]) == before, "no entry recording production replacing itself"
