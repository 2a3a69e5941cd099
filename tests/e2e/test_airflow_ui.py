"""The Airflow UI and REST API as users meet them: a real browser (Debian's Chromium, Playwright) and HTTP clients on
one real ``airflow standalone``.

Two real runs of the ``retrain`` DAG fill the registry (the second deploys a better model), the
model server follows the registry; then, as a user: log in, open *Models* from Airflow's
navigation, read which model serves and why, open a version (its plots load) and a run (its
candidates side by side), roll back, and see ``/predict`` answer with the previous version; type
into the trigger form; find the Kubeflow Pipelines connection type. Through the REST API,
``promote_model`` runs on the scheduler: its failure notification (the DAG processor runs the callback), the
history's actor (the user who triggered the run, never the conf) and the refusal of a no-op promotion. Last, the
README's first hour: a second model (the shapes) from the trigger form, run by the scheduler, both models in the
view with their classes, and a rollback of digits that leaves the shapes alone. Then a ResNet-18 fine-tuned from a
pretrained weights file, picked in the form, deployed as a third model and shown as such.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from retrain_steps import registry
from tests.conftest import ROOT
from tests.helpers.airflow import BIN, dags_test, local_airflow_env
from tests.helpers.datasets import image_files, zip_bytes
from tests.helpers.servers import free_port, serve, wait_for_bodies

CHROMIUM = shutil.which("chromium")
PASSWORD = "models-view-test"
VIEWER_PASSWORD = "viewer-test"
SERVING_WORKERS = 2  # the model server's workers: each follows the registry on its own
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make browser)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, notifications):
    """Registry with two deployed versions, ``airflow standalone`` and the model server; yields URLs and env."""
    base = tmp_path_factory.mktemp("models-view")
    port = free_port()
    (base / "passwords.json").write_text(json.dumps({"admin": PASSWORD, "viewer": VIEWER_PASSWORD}))
    hook = json.dumps({"conn_type": "http", "host": notifications[0], "password": "hook-token"})
    env = local_airflow_env(
        base, AIRFLOW__API__PORT=str(port), AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(base / "passwords.json"),
        AIRFLOW_CONN_RETRAIN_NOTIFICATIONS=hook,
    )
    dataset = f"{env['RETRAIN_ARTIFACT_STORE']}/datasets/digits.npz"
    subprocess.run([sys.executable, "-m", "retrain_steps", "export-default", "--output", dataset], env=env, check=True,
                   capture_output=True)
    for conf in ({"learning_rates": [0.003, 0.01], "epochs": 3}, {"learning_rates": [0.003], "epochs": 12}):
        code, output = dags_test(env, {"dataset_uri": dataset, "min_accuracy": 0.5, "margin": 0.0, **conf})
        assert code == 0, output[-3000:]
    history = registry.promotion_history(env["RETRAIN_REGISTRY"])
    assert len(history) == 2, f"the second run should have deployed a better model: {history}"
    serving_port = free_port()
    with serve([str(BIN / "airflow"), "standalone"], env=env, cwd=ROOT, timeout=240, log_path=base / "airflow.log",
               ready_url=f"http://127.0.0.1:{port}/api/v2/monitor/health"), \
         serve([str(BIN / "bentoml"), "serve", "serving.service:DigitsClassifier", "--host", "127.0.0.1",
                "--port", str(serving_port)], cwd=ROOT,
               env={"DIGITS_REGISTRY_URI": env["RETRAIN_REGISTRY"], "DIGITS_WORKERS": str(SERVING_WORKERS)},
               log_path=base / "serving.log", ready_url=f"http://127.0.0.1:{serving_port}/readyz"):
        yield {"airflow": f"http://127.0.0.1:{port}", "serving": f"http://127.0.0.1:{serving_port}",
               "registry": env["RETRAIN_REGISTRY"], "production": history[0], "previous": history[1],
               "log": base / "airflow.log", "serving_log": base / "serving.log", "store": env["RETRAIN_ARTIFACT_STORE"]}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(stack["airflow"] + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{stack['airflow']}/")
    yield page
    context.close()


def served_version(url: str) -> str:
    body = (ROOT / "serving" / "samples" / "digit-3.png").read_bytes()
    boundary = "modelsviewtest"
    data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/predict", data=data,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["X-Model-Version"]


def wait_until_served(stack, version: str, log_from: int, timeout: float = 180) -> float:
    """Wait until every worker of the model server has swapped to ``version`` (each logs its swap with its worker
    index after ``log_from``, a size of the server's log; distinct indices are counted: one worker logging twice, or a
    worker BentoML restarts under the same index, is still one); return the seconds waited.

    Asking ``/predict`` until it answers with ``version`` is not enough: each worker follows the registry on
    its own, so one may still answer with the old version after another answered with the new one.
    """
    started = time.monotonic()
    swapped = re.compile(rb"serving model version " + re.escape(version.encode()) + rb" \(was \S+\) in worker (\d+) ")

    def workers_swapped() -> tuple[set, bytes]:
        with stack["serving_log"].open("rb") as log:
            log.seek(log_from)
            written = log.read()
        return set(swapped.findall(written)), written

    while len((found := workers_swapped())[0]) < SERVING_WORKERS:
        assert time.monotonic() < started + timeout, (f"the server's workers did not all swap to {version}:\n"
                                                      + found[1][-3000:].decode(errors="replace"))
        time.sleep(1)
    assert served_version(stack["serving"]) == version
    return time.monotonic() - started


def loaded_width(image) -> int:
    """The image's natural width once it has loaded (``decode()`` rejects a broken image).

    Retried when the frame's document is replaced under the call (Playwright: "Execution context was
    destroyed"), which a busy machine shows now and then while the page settles.
    """
    from playwright.sync_api import Error

    for attempt in range(3):
        try:
            image.wait_for()
            return image.evaluate("img => img.decode().then(() => img.naturalWidth, () => 0)")
        except Error as err:
            if "context was destroyed" not in str(err) or attempt == 2:
                raise
    return 0


def open_models(page, model: str | None = "digits"):
    """Open the view from Airflow's navigation, as a user would, then ``model``'s page (None: stay on the list of
    models); return the frame it renders in."""
    page.get_by_role("link", name="Models").or_(page.get_by_role("button", name="Models")).first.click()
    frame = page.frame_locator("iframe").first
    frame.locator("#models").wait_for()
    if model:
        frame.locator(f"#models tr[data-model='{model}'] a", has_text=model).click()
        frame.locator("#production").wait_for()
    return frame


def test_the_view_says_which_model_serves_and_why_and_rolls_back(page, stack):
    assert served_version(stack["serving"]) == stack["production"]
    frame = open_models(page)
    production = frame.locator("#production")
    assert stack["production"] in production.inner_text()
    assert "promote by airflow:retrain" in production.inner_text() and "beats production" in production.inner_text()
    rows = frame.locator("#versions tbody tr")
    statuses = {rows.nth(i).get_attribute("data-version"): rows.nth(i).locator(".status").inner_text()
                for i in range(rows.count())}
    assert statuses[stack["production"]] == "production" and statuses[stack["previous"]] == "previous"
    assert "candidate" in statuses.values(), "the first run's other candidate is listed"
    screenshot(page, "models-index")

    # a version: lineage and its plots (the images load)
    frame.locator(f"#versions a[href$='versions/{stack['production']}']").click()
    frame.locator("#lineage").wait_for()
    assert "digits.npz" in frame.locator("#lineage").inner_text()
    assert frame.get_by_role("button", name=f"Roll back to {stack['previous']}").count() == 1, "from the version too"
    for alt in ("training curve", "confusion matrix"):
        image = frame.locator(f"img[alt^='{alt}']")
        image.wait_for()
        assert loaded_width(image) > 0, f"{alt} did not load"
    screenshot(page, "models-version")

    # its run: the candidates side by side in one chart
    frame.locator("#lineage a", has_text="its candidates").click()
    chart = frame.locator("img[alt^='candidates of']")
    chart.wait_for()
    assert loaded_width(chart) > 0, "the candidates chart did not load"
    assert frame.locator("#candidates tbody tr").count() == 1
    screenshot(page, "models-run")

    # roll back from the view: /predict answers with the previous version within seconds
    frame.get_by_role("link", name="Model digits").click()
    frame.get_by_label("rollback reason").fill("browser test rollback")
    log_from = stack["serving_log"].stat().st_size
    frame.get_by_role("button", name=f"Roll back to {stack['previous']}").click()
    frame.get_by_role("status").wait_for()
    assert f"rollback of digits {stack['previous']} requested: run" in frame.get_by_role("status").inner_text()
    waited = wait_until_served(stack, stack["previous"], log_from)  # promote_model deploys, the workers follow
    print(f"rollback requested -> every worker answers with the previous version: {waited:.1f} s")
    latest = registry.latest_promotion(stack["registry"])
    assert latest["actor"] == "user:admin" and latest["reason"] == "browser test rollback"
    assert latest["action"] == "rollback" and latest["run_id"].startswith("manual__"), "the promote_model run"
    events = asset_events(stack, "model-in-production")
    assert [e["extra"]["version"] for e in events][-3:] == [stack["previous"], stack["production"], stack["previous"]]
    assert events[-1]["extra"]["action"] == "rollback" and events[-1]["extra"]["actor"] == "user:admin"
    assert {e["extra"]["version"] for e in asset_events(stack, "model-versions")} == {stack["previous"], stack["production"]}

    # a page showing a stale production refuses to promote over what changed meanwhile
    frame.locator(f"#versions a[href$='versions/{stack['production']}']").click()
    promote = frame.get_by_role("button", name="Promote to production")
    promote.wait_for()
    registry.promote(stack["registry"], stack["production"], actor="someone-else")
    promote.click()
    refusal = frame.locator(".message.error")
    refusal.wait_for()
    screenshot(page, "models-stale-promotion")
    assert "refused: production is" in refusal.inner_text() and "nothing was rolled out" in refusal.inner_text()
    assert registry.latest_promotion(stack["registry"])["actor"] == "someone-else", "the stale request changed nothing"
    registry.promote(stack["registry"], stack["previous"], actor="test cleanup")


def api_token(stack, user: str = "admin", password: str = PASSWORD) -> str:
    request = urllib.request.Request(f"{stack['airflow']}/auth/token", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"username": user, "password": password}).encode())
    return json.loads(urllib.request.urlopen(request, timeout=10).read())["access_token"]


IDEMPOTENT = ("GET", "PUT", "PATCH", "DELETE")


def api_call(stack, method: str, path: str, body: dict | None = None, raw: bool = False, attempts: int = 5):
    """Airflow's REST API as admin: the answer parsed (``raw``: its text). An idempotent method is retried while the
    API answers 5xx (seen once: a 500 to a PATCH marking a just-triggered run failed); a POST is sent once."""
    request = urllib.request.Request(f"{stack['airflow']}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {api_token(stack)}",
                                              "Content-Type": "application/json", "Accept": "application/json"})
    tries = attempts if method in IDEMPOTENT else 1
    for attempt in range(tries):
        try:
            answer = urllib.request.urlopen(request, timeout=30).read()
            break
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == tries - 1:
                raise
            time.sleep(2)
    return answer.decode() if raw else json.loads(answer or b"null")


def api_get(stack, path: str):
    return api_call(stack, "GET", path)


def asset_events(stack, name: str) -> list[dict]:
    """The asset's events in Airflow (its REST API, what the Assets view shows), oldest first."""
    (asset,) = [a for a in api_get(stack, "/api/v2/assets?limit=100")["assets"] if a["name"] == name]
    return api_get(stack, f"/api/v2/assets/events?asset_id={asset['id']}&order_by=timestamp&limit=100")["asset_events"]


def test_changes_need_an_airflow_user_allowed_to_trigger_and_same_origin(stack):
    request = urllib.request.Request(f"{stack['airflow']}/models/digits/rollback", data=b"expected=x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 401 and json.loads(err.value.read()) == {"error": "Not authenticated"}
    token = api_token(stack)
    forged = urllib.request.Request(f"{stack['airflow']}/models/digits/rollback", data=b"expected=x", method="POST",
                                    headers={"Authorization": f"Bearer {token}", "Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(forged, timeout=10)
    assert err.value.code == 403 and "cross-site" in json.loads(err.value.read())["error"]
    listing = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{stack['airflow']}/models/api/models/digits", headers={"Authorization": f"Bearer {token}"}), timeout=10).read())
    assert {r["version"] for r in listing["versions"]} >= {stack["production"], stack["previous"]}
    # a viewer reads the view but may not change production (Airflow's own permission to trigger the DAG)
    viewer = api_token(stack, "viewer", VIEWER_PASSWORD)
    seen = urllib.request.urlopen(urllib.request.Request(f"{stack['airflow']}/models/",
                                                         headers={"Authorization": f"Bearer {viewer}"}), timeout=10)
    assert seen.status == 200
    refused = urllib.request.Request(f"{stack['airflow']}/models/digits/rollback", data=b"expected=x", method="POST",
                                     headers={"Authorization": f"Bearer {viewer}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(refused, timeout=10)
    assert err.value.code == 403 and "may not trigger runs of retrain" in json.loads(err.value.read())["error"]


def screenshot(page, name: str) -> None:
    """A full-page screenshot under build/screenshots/ (what the notes show)."""
    folder = ROOT / "build" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def submit_trigger_form(page, stack) -> dict:
    """Press the open trigger form's *Trigger*; return the one run of ``retrain`` it created (REST API)."""
    before = {r["dag_run_id"] for r in api_get(stack, "/api/v2/dags/retrain/dagRuns?limit=100")["dag_runs"]}
    page.get_by_role("dialog").get_by_role("button", name="Trigger").click()
    deadline, runs = time.monotonic() + 20, []
    while not runs and time.monotonic() < deadline:
        runs = [r for r in api_get(stack, "/api/v2/dags/retrain/dagRuns?limit=100")["dag_runs"]
                if r["dag_run_id"] not in before]
        time.sleep(0.5)
    (run,) = runs
    return run


def open_trigger_form_for_a_new_model(page, stack, model: str, dataset: str) -> None:
    """Open ``retrain``'s trigger form and fill, as a user types, section *Model* (``model``, *New model* ticked) and
    section *Data* (``dataset``); the form stays open for the rest."""
    page.goto(f"{stack['airflow']}/dags/retrain")
    page.get_by_role("button", name="Trigger").first.click()
    page.get_by_role("button", name="Model", exact=True).click()
    field = page.locator("[name=element_model]")
    field.fill("")
    field.press_sequentially(model, delay=30)
    page.get_by_role("dialog").locator("label", has_text="New model").click()
    page.get_by_role("button", name="Data", exact=True).click()
    page.locator("[name=element_dataset_uri]").fill(dataset)


def test_the_trigger_form_takes_typed_input(page, stack):
    """Typed key by key, as a user types: the learning rates (one per line) and epochs reach the run's conf."""
    page.goto(f"{stack['airflow']}/dags/retrain")
    page.get_by_role("button", name="Trigger").first.click()
    page.get_by_role("button", name="Training").click()
    rates = page.locator("[name=element_learning_rates]")  # the UI's labels are not tied to their fields
    rates.fill("")
    rates.press_sequentially("0.002\n0.02", delay=30)
    epochs = page.locator("[name=element_epochs]")
    epochs.fill("")
    epochs.press_sequentially("1", delay=30)
    assert rates.input_value() == "0.002\n0.02" and epochs.input_value() == "1"
    screenshot(page, "trigger-form")
    run = submit_trigger_form(page, stack)
    assert run["conf"]["learning_rates"] == ["0.002", "0.02"] and run["conf"]["epochs"] == 1
    api_call(stack, "PATCH", f"/api/v2/dags/retrain/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}",
             {"state": "failed"})  # the run itself is not what this test is about
    scheduled = [r for r in api_get(stack, "/api/v2/dags/retrain/dagRuns?limit=100")["dag_runs"]
                 if r["run_type"] == "scheduled"]
    assert scheduled == [], "the trigger unpaused the DAG: no run for a cron tick that passed"


def test_the_kubeflow_connection_type_is_offered_with_its_labels(page, stack):
    """The KFP bridge is installed as a provider package: Admin → Connections offers its type and form."""
    (meta,) = [m for m in api_get(stack, "/ui/connections/hook_meta") if m["connection_type"] == "kubeflow_pipelines"]
    assert meta["hook_name"] == "Kubeflow Pipelines"
    assert meta["standard_fields"]["host"]["title"] == "KFP endpoint"
    assert meta["standard_fields"]["login"]["hidden"] is True
    page.goto(f"{stack['airflow']}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.locator("input[role=combobox]").last.press_sequentially("Kubeflow")
    page.get_by_role("option", name="Kubeflow Pipelines").click()
    labels = page.get_by_role("dialog").locator("label")
    labels.filter(has_text="KFP endpoint").wait_for()
    assert {"KFP endpoint", "Token or session cookie", "Namespace"} <= {t.strip() for t in labels.all_inner_texts()}
    screenshot(page, "kubeflow-connection")


# -- promote_model on the scheduler, through the REST API ---------------------------------------------------------

def run_promote_model(stack, conf: dict) -> tuple[dict, str]:
    """Trigger ``promote_model`` as admin and wait for it to end; return (its task instance, its task log)."""
    deadline = time.monotonic() + 240
    while True:  # the DAG processor may not have parsed the file yet
        try:
            run = api_call(stack, "POST", "/api/v2/dags/promote_model/dagRuns", {"logical_date": None, "conf": conf})
            break
        except urllib.error.HTTPError as err:
            if err.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(2)
    path = f"/api/v2/dags/promote_model/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    while api_get(stack, path)["state"] not in ("success", "failed"):
        assert time.monotonic() < deadline, f"run {run['dag_run_id']} did not end"
        time.sleep(1)
    ti = api_get(stack, f"{path}/taskInstances/deploy_version")
    return ti, api_call(stack, "GET", f"{path}/taskInstances/deploy_version/logs/{ti['try_number']}", raw=True)


def test_a_scheduler_run_of_promote_model_delivers_the_failure_notification(stack, notifications):
    bodies = notifications[1]
    bodies.clear()
    ti, log = run_promote_model(stack, {"action": "promote"})
    assert ti["state"] == "failed" and "promote needs a Version" in log
    (body,) = wait_for_bodies(bodies, "run_failed", "promote_model")
    assert body["run_id"] == ti["dag_run_id"] and body["_authorization"] == "Bearer hook-token"
    assert body["text"] == f"promote_model run {ti['dag_run_id']} failed: task_failure"
    assert "Callback failed" not in stack["log"].read_text()


def test_the_history_names_the_user_who_triggered_never_the_conf(stack, notifications):
    current = registry.production_version(stack["registry"])
    other = stack["previous"] if current == stack["production"] else stack["production"]
    notifications[1].clear()
    forged = {"action": "promote", "version": other, "expected": current, "reason": "forged", "actor": "ui:ceo-forged"}
    ti, log = run_promote_model(stack, forged)
    assert ti["state"] == "failed" and ti["try_number"] == 1 and "may not name an actor" in log
    assert registry.production_version(stack["registry"]) == current, "the forged request changed nothing"

    ti, _ = run_promote_model(stack, {k: v for k, v in forged.items() if k != "actor"} | {"reason": "by hand"})
    assert ti["state"] == "success"
    latest = registry.latest_promotion(stack["registry"])
    assert (latest["version"], latest["previous"], latest["actor"]) == (other, current, "user:admin")
    (deployed,) = wait_for_bodies(notifications[1], "deployed", "promote_model")
    assert deployed["actor"] == "user:admin" and f"promote of digits {other} by user:admin" in deployed["text"]


def test_promoting_production_onto_itself_fails_without_retry(stack):
    before = registry.promotions(stack["registry"])
    production = before[-1]["version"]
    ti, log = run_promote_model(stack, {"action": "promote", "version": production, "expected": production})
    assert ti["state"] == "failed" and ti["try_number"] == 1
    assert f"{production} is in production already: nothing to promote" in log
    assert registry.promotions(stack["registry"]) == before, "no entry recording production replacing itself"


# -- the README's first hour: a second model from the trigger form, both in the view, a rollback of one ------------

def test_the_first_hour_a_second_model_beside_the_first(page, stack):
    """As the README's first hour goes (``make run`` serves digits; worked example 1 trains the shapes as a model of
    their own): trigger ``retrain`` from the form naming a new model, the scheduler runs it, the Models view lists
    both models with their classes, digits keeps serving, and rolling digits back leaves shapes as it was."""
    shapes_zip = f"{stack['store']}/datasets/shapes-28.zip"
    from retrain_steps import artifacts

    artifacts.write_bytes(shapes_zip, zip_bytes(image_files(("circle", "square", "triangle"), 150, 28, "L", 1),
                                                top="shapes/"))
    digits_before = registry.production_version(stack["registry"])
    open_trigger_form_for_a_new_model(page, stack, "shapes", shapes_zip)
    page.get_by_role("button", name="Training", exact=True).click()
    page.locator("[name=element_epochs]").fill("20")
    page.locator("[name=element_patience]").fill("6")
    page.get_by_role("button", name="Deployment", exact=True).click()
    page.locator("[name=element_min_accuracy]").fill("0.8")
    screenshot(page, "trigger-form-new-model")
    run = submit_trigger_form(page, stack)
    assert (run["conf"]["model"], run["conf"]["new_model"], run["conf"]["dataset_uri"]) == ("shapes", True, shapes_zip)
    assert (run["conf"]["epochs"], run["conf"]["min_accuracy"]) == (20, 0.8)
    path = f"/api/v2/dags/retrain/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    started = time.monotonic()
    while (state := api_get(stack, path)["state"]) not in ("success", "failed"):
        assert time.monotonic() < started + 600, "the run of the new model did not end"
        time.sleep(3)
    print(f"retrain of the new model shapes on the scheduler: {state} in {time.monotonic() - started:.0f} s")
    assert state == "success", stack["log"].read_text()[-3000:]
    shapes = registry.production(stack["registry"], "shapes")
    assert shapes, f"shapes was not deployed: {registry.run_record(stack['registry'], run['dag_run_id'], 'shapes')}"
    assert shapes["model"] == "shapes" and shapes["input_spec"]["class_names"] == ["circle", "square", "triangle"]
    assert registry.production_version(stack["registry"]) == digits_before, "digits' production is its own"
    assert served_version(stack["serving"]) == digits_before, "the server of digits still serves digits"

    frame = open_models(page, model=None)
    rows = {name: frame.locator(f"#models tr[data-model='{name}']").inner_text() for name in ("digits", "shapes")}
    assert digits_before in rows["digits"] and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in rows["digits"]
    assert shapes["version"] in rows["shapes"] and "circle, square, triangle" in rows["shapes"]
    assert "shapes-28.zip" in rows["shapes"]
    screenshot(page, "models-list-two-models")
    frame.locator("#models tr[data-model='shapes'] a", has_text="shapes").click()
    frame.locator("#production").wait_for()
    assert shapes["version"] in frame.locator("#production").inner_text()
    versions = frame.locator("#versions tbody tr")
    shown = {versions.nth(i).get_attribute("data-version") for i in range(versions.count())}
    assert shapes["version"] in shown and digits_before not in shown, "a model lists its own versions only"
    screenshot(page, "models-shapes")

    # roll digits back from its page: digits' server follows, shapes' production and history do not move
    shapes_history = registry.promotions(stack["registry"], model="shapes")
    frame.get_by_role("link", name="All models").click()
    frame.locator("#models tr[data-model='digits'] a", has_text="digits").click()
    frame.get_by_label("rollback reason").fill("first hour: back to the previous digits")
    previous = registry.latest_promotion(stack["registry"])["previous"]
    log_from = stack["serving_log"].stat().st_size
    frame.get_by_role("button", name=f"Roll back to {previous}").click()
    frame.get_by_role("status").wait_for()
    wait_until_served(stack, previous, log_from)
    assert registry.promotions(stack["registry"], model="shapes") == shapes_history, "shapes untouched"


def test_a_user_picks_an_architecture_and_pretrained_weights_in_the_form(page, stack):
    """A ResNet-18 fine-tuned from a weights file the platform team put in the store (here one this test writes: a
    torchvision state_dict with its 1000-class ImageNet head): picked in the trigger form by a user, run by the
    scheduler (head epoch, then the whole network), gated, packaged and deployed as a new model; the Models view says
    what the version was trained as."""
    from retrain_steps import artifacts
    from tests.helpers.checkpoints import write_resnet18_checkpoint

    weights, sha256 = write_resnet18_checkpoint(stack["store"], "resnet18-imagenet.pth")
    data = f"{stack['store']}/datasets/shapes-resnet.zip"
    artifacts.write_bytes(data, zip_bytes(image_files(("circle", "square", "triangle"), 60, 28, "L", 7), top="shapes/"))

    open_trigger_form_for_a_new_model(page, stack, "shapes-resnet", data)
    page.get_by_role("button", name="Training", exact=True).click()
    page.locator("#element_architecture").click()
    page.get_by_role("option", name="ResNet-18", exact=True).click()
    page.locator("[name=element_pretrained_weights]").fill(weights)
    page.locator("[name=element_pretrained_sha256]").fill(sha256)
    page.locator("[name=element_learning_rates]").fill("0.001")
    page.locator("[name=element_epochs]").fill("4")
    page.locator("#element_architecture").scroll_into_view_if_needed()
    screenshot(page, "trigger-form-architecture")
    page.get_by_role("button", name="Deployment", exact=True).click()
    page.locator("[name=element_min_accuracy]").fill("0.3")
    run = submit_trigger_form(page, stack)
    conf = run["conf"]
    assert (conf["architecture"], conf["pretrained_weights"]) == ("resnet18", "weights/resnet18-imagenet.pth"), conf
    path = f"/api/v2/dags/retrain/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    started = time.monotonic()
    while (state := api_get(stack, path)["state"]) not in ("success", "failed"):
        assert time.monotonic() < started + 600, "the run of the ResNet-18 did not end"
        time.sleep(3)
    print(f"retrain of a pretrained ResNet-18 on the scheduler: {state} in {time.monotonic() - started:.0f} s")
    assert state == "success", stack["log"].read_text()[-3000:]
    production = registry.production(stack["registry"], "shapes-resnet")
    assert production, f"not deployed: {registry.run_record(stack['registry'], run['dag_run_id'], 'shapes-resnet')}"
    assert production["params"]["architecture"] == "resnet18", production["params"]
    assert production["params"]["pretrained"]["uri"] == f"{stack['store']}/weights/resnet18-imagenet.pth"

    frame = open_models(page, model="shapes-resnet")
    frame.locator("#versions a", has_text=production["version"]).click()
    assert frame.locator("#architecture").inner_text() == "resnet18"
    assert "weights/resnet18-imagenet.pth" in frame.locator("#pretrained").inner_text()
    screenshot(page, "model-version-resnet18")
