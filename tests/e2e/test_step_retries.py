"""Exit 2 (bad input) is never retried on the local backend, a crash is: a real ``airflow dags test`` of two
step tasks with two retries each, counting the attempts each made."""

from __future__ import annotations

import textwrap

import pytest

from tests.helpers.airflow import dags_test, local_airflow_env

pytestmark = pytest.mark.e2e

DAG_FILE = '''
import datetime, os, sys
from airflow.sdk import DAG
from retraining.launcher import LocalStepOperator

ATTEMPTS = os.environ["ATTEMPTS_DIR"]


def step(task_id, body):
    """A step task whose process first counts its attempt, then runs ``body``."""
    src = f"open({ATTEMPTS!r} + '/{task_id}', 'a').write('x'); import sys; {body}"
    return LocalStepOperator(task_id=task_id, cmds=["python", "-c", src], arguments=[], python_bin=sys.executable,
                             retries=2, retry_delay=datetime.timedelta(seconds=0))


with DAG("step_retries", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
    missing = "file://" + ATTEMPTS + "/missing.npz"
    step("bad_input", "from retrain_steps.__main__ import main; "
                      f"sys.exit(main(['download', '--source', {missing!r}, '--output', {missing!r} + '.out']))")
    step("crash", "sys.exit(1)")
'''


def test_bad_input_is_not_retried_a_crash_is(tmp_path):
    dags, attempts = tmp_path / "dags", tmp_path / "attempts"
    dags.mkdir(), attempts.mkdir()
    (dags / "step_retries.py").write_text(textwrap.dedent(DAG_FILE))
    env = local_airflow_env(tmp_path, AIRFLOW__CORE__DAGS_FOLDER=str(dags), ATTEMPTS_DIR=str(attempts))
    code, output = dags_test(env, {}, dag_id="step_retries")
    assert code != 0, "the run failed"
    assert "step rejected its input (exit 2), not retried" in output and "missing.npz" in output
    counts = {task: len((attempts / task).read_text()) for task in ("bad_input", "crash")}
    assert counts == {"bad_input": 1, "crash": 3}, output[-3000:]
