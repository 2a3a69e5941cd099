"""`make run`'s first retrain run, through the running Airflow (so the UI shows it with its logs).

Unpauses ``retrain`` over the REST API (as the UI's Trigger does). Triggers it only when the registry
has no production model, or when asked (``RETRAIN=1``, or a ``RETRAIN_CONF``), with ``RETRAIN_CONF``;
then prints where to watch it, waits for it to finish and prints the gate's decision. Otherwise the
server already serves production and nothing runs. Exit 0 when no run was needed or the run
succeeded, 1 otherwise. ``python scripts/first-run.py AIRFLOW_URL``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DAG_ID = "retrain"


def call(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"{base}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def why_retrain(production: str | None, environ: dict) -> str | None:
    """Why ``make run`` retrains at start (None: it does not): nothing in production, or the user asked."""
    if environ.get("RETRAIN", "") not in ("", "0"):
        return f"RETRAIN={environ['RETRAIN']}"
    if environ.get("RETRAIN_CONF", "").strip() not in ("", "{}"):
        return "RETRAIN_CONF is given"
    return None if production else "no model in production"


def main(base: str) -> int:
    from retrain_steps import layout, registry

    model = os.environ.get("RETRAIN_MODEL") or layout.DEFAULT_MODEL
    try:
        production = registry.production_version(os.environ["RETRAIN_REGISTRY"], model)
    except Exception as err:  # noqa: BLE001 (a registry this shell cannot read: still unpause, then retrain)
        print(f"==> warning: cannot read the registry {os.environ['RETRAIN_REGISTRY']}: {err}")
        production = None
    reason = why_retrain(production, os.environ)
    home = Path(os.environ["AIRFLOW_HOME"])
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = call(base, "POST", "/auth/token", body={"username": "admin", "password": password})["access_token"]
    for _ in range(60):  # the DAG processor registers the DAG shortly after start
        try:
            call(base, "GET", f"/api/v2/dags/{DAG_ID}", token)
            break
        except urllib.error.HTTPError:
            time.sleep(2)
    call(base, "PATCH", f"/api/v2/dags/{DAG_ID}", token, {"is_paused": False})
    if reason is None:
        print(f"==> {production} is in production and serves: no run at start (`make run RETRAIN=1` retrains)")
        return 0
    print(f"==> first retrain run ({reason}), through Airflow: the UI shows it and its task logs")
    conf = json.loads(os.environ.get("RETRAIN_CONF") or "{}")
    run = call(base, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", token, {"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    print(f"    run {run_id} (conf: {json.dumps(conf)})")
    print(f"    watch it: {base}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}")
    started, state = time.monotonic(), run["state"]
    while state not in ("success", "failed"):
        time.sleep(5)
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        state = call(base, "GET", run_path, token)["state"]
    print(f"    {state} in {time.monotonic() - started:.0f} s")
    from retrain_steps import artifacts

    try:
        record = registry.run_record(os.environ["RETRAIN_REGISTRY"], run_id, model)
        print(f"    gate: {'deploy' if record['gate']['deploy'] else 'keep production'}: {record['gate']['reason']}")
    except artifacts.ArtifactError:
        print("    the run did not reach the gate: open it in the UI for the failed task's log")
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
