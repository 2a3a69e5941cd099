"""A bad deployment setting never breaks DAG import: the DAGs load (tagged ``misconfigured``, the problem in
their docs) and a run fails at its first tasks, without retries, naming the variable and what it accepts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.helpers.airflow import dags_test, local_airflow_env

BAD = {"RETRAIN_BACKEND": "cloud", "RETRAIN_KFP_POLL_SECONDS": "fast", "RETRAIN_KFP_TIMEOUT_SECONDS": "-1"}
BACKEND = "RETRAIN_BACKEND must be one of local, kubernetes, got 'cloud'"
POLL = "RETRAIN_KFP_POLL_SECONDS must be a number of seconds > 0, got 'fast'"
TIMEOUT = "RETRAIN_KFP_TIMEOUT_SECONDS must be a number of seconds > 0, got '-1'"
DAGBAG = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": bag.import_errors,
                  "dags": {i: {"tags": sorted(d.tags), "doc": d.doc_md} for i, d in bag.dags.items()}}))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return local_airflow_env(tmp_path_factory.mktemp("bad-settings"), **BAD)


def test_every_dag_parses_and_shows_the_problem(env):
    out = subprocess.run([sys.executable, "-c", DAGBAG, str(ROOT / "dags")], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert set(report["dags"]) == {"retrain", "retrain_kubeflow", "promote_model"}
    for dag_id, dag in report["dags"].items():
        assert "misconfigured" in dag["tags"], dag_id
        assert BACKEND in dag["doc"], dag_id
    kubeflow = report["dags"]["retrain_kubeflow"]["doc"]
    assert POLL in kubeflow and TIMEOUT in kubeflow
    assert "RETRAIN_KFP" not in report["dags"]["retrain"]["doc"], "retrain does not use the KFP settings"


def test_the_first_tasks_fail_naming_the_variables(env):
    code, output = dags_test(env, {}, dag_id="retrain_kubeflow")
    assert code != 0 and "DagRun Finished" in output and "state=failed" in output, output[-5000:]
    failures = [line for line in output.splitlines() if "bad configuration of the Airflow deployment" in line]
    assert len(failures) == 2, "plan and plan_candidates, the first tasks, fail"
    assert "Traceback" not in output and output.count("Task exited") == 2, "one message each, no traceback"
    for line in failures:
        assert all(message in line for message in (BACKEND, POLL, TIMEOUT)), line
    assert output.count("new_state=failed") == 2 and "up_for_retry" not in output, "not retried"
    assert "task_id=pipeline_arguments" not in output and "task_id=kubeflow_run" not in output, "nothing else ran"
