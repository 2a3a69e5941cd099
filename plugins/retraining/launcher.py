"""The step launcher: one step, two backends.

* ``local``: :class:`LocalStepOperator` runs ``python -m <entry point> <arguments>`` as a
  subprocess in the steps (or serving) environment, streaming its output into the task log;
* ``kubernetes``: a :class:`retraining.step_pod.StepPodOperator` (KubernetesPodOperator) runs the
  same command in the step's image (see :mod:`retraining.pods`).

Both follow the step protocol (:mod:`retrain_steps.protocol`): the step writes its result to the file
``$RETRAIN_STEP_RESULT`` names and that document is the task's XCom (here read after the process
exits; in a pod by KubernetesPodOperator's XCom sidecar); exit 2 (bad input) fails without retry on both,
with the step's error as one message and no traceback (:mod:`retraining.bad_input`).

DAG files call :func:`step_task` / :func:`mapped_step_task` and never see the difference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from airflow.sdk import BaseOperator
from retrain_steps import protocol

from retraining import bad_input
from retraining.config import Settings


class LocalStepOperator(BaseOperator):
    """Run a step CLI as a local subprocess with the arguments its pod would get.

    :param cmds: the image's entry point; a leading ``python`` is replaced by ``python_bin``.
    :param arguments: the step's arguments (templated).
    :param python_bin: interpreter of the environment the step belongs to.
    :param cwd: working directory (the project root, where ``serving`` is importable).
    :param env_vars: extra environment variables (templated).
    :param artifact_conn_id: the Airflow connection whose credentials the step gets (``Settings.artifact_conn_id``).

    Exit 2 (bad input) raises :class:`retraining.bad_input.BadInput`, which ``retry_policy`` (default
    :data:`retraining.bad_input.RETRY_POLICY`) does not retry; any other failure may be retried.

    Returns the result the step wrote to its result file (``$RETRAIN_STEP_RESULT``) to XCom.
    """

    template_fields: Sequence[str] = ("arguments", "env_vars")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        cmds: list[str],
        arguments: list[str],
        python_bin: str,
        cwd: str | None = None,
        env_vars: dict[str, str] | None = None,
        artifact_conn_id: str = Settings.artifact_conn_id,
        **kwargs,
    ) -> None:
        super().__init__(**{"retry_policy": bad_input.RETRY_POLICY, **kwargs})
        self.cmds, self.arguments, self.python_bin = cmds, arguments, python_bin
        self.cwd, self.env_vars, self.artifact_conn_id = cwd, env_vars or {}, artifact_conn_id
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmds = [self.python_bin, *self.cmds[1:]] if self.cmds[:1] == ["python"] else list(self.cmds)
        return [*cmds, *map(str, self.arguments)]

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowException, AirflowSkipException

        if self.arguments is None:  # a teardown (track) whose arguments' task never ran: nothing to do
            raise AirflowSkipException(NO_ARGUMENTS)
        argv = self.command()
        self.log.info("Running: %s", " ".join(argv))
        started = time.monotonic()
        from retraining.store_connection import artifact_store_env
        from retraining.tracking_connection import tracking_env

        with tempfile.TemporaryDirectory(prefix="retrain-step-") as folder:
            result_file = Path(folder) / "result.json"
            tracking = tracking_env() if self.task_id == TRACK_STEP else {}  # MLflow credentials for track only
            env = {**os.environ, **artifact_store_env(self.artifact_conn_id), **tracking, **self.env_vars,
                   "PYTHONUNBUFFERED": "1", protocol.RESULT_ENV: str(result_file)}
            self._process = subprocess.Popen(  # noqa: S603 (argv built from our own step table)
                argv, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )
            tail = []
            for line in self._process.stdout:
                line = line.rstrip("\n")
                self.log.info("%s", line)
                tail = [*tail[-19:], line]
            code = self._process.wait()
            self.log.info("step %s exited %d after %.2f s", self.task_id, code, time.monotonic() - started)
            if code == protocol.BAD_INPUT:
                bad_input.fail(bad_input.step_rejected(bad_input.step_error(tail)), self.log)
            if code != protocol.OK:
                raise AirflowException(f"step failed with exit code {code}: {tail[-1] if tail else ''}")
            return protocol.read_result(result_file)

    def on_kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)


TRACK_STEP = "track"  #: the step that talks to MLflow (retrain_steps.tracking)
NO_ARGUMENTS = "no arguments: the task that plans them did not run (the run ended before it)"


def _operator(step: str, cmds: list[str], settings: Settings, python_bin: str):
    """The operator class of ``step`` on this backend and its keyword arguments (bad input never retried)."""
    if settings.backend == "kubernetes":
        from retraining.pods import pod_operator_kwargs
        from retraining.step_pod import StepPodOperator

        return StepPodOperator, {**pod_operator_kwargs(step, cmds=cmds, settings=settings),
                                 "retry_policy": bad_input.RETRY_POLICY}
    return LocalStepOperator, {"cmds": cmds, "python_bin": python_bin, "cwd": str(settings.project_root),
                               "artifact_conn_id": settings.artifact_conn_id, "retry_policy": bad_input.RETRY_POLICY}


def step_task(step: str, *, arguments, cmds: list[str], settings: Settings, python_bin: str, **kwargs):
    """One step task (``arguments`` may be an XComArg)."""
    operator, backend_kwargs = _operator(step, cmds, settings, python_bin)
    return operator(task_id=step, arguments=arguments, **backend_kwargs, **kwargs)


def mapped_step_task(step: str, *, arguments, cmds: list[str], settings: Settings, python_bin: str, **kwargs):
    """One step task per element of ``arguments`` (dynamic task mapping)."""
    operator, backend_kwargs = _operator(step, cmds, settings, python_bin)
    return operator.partial(task_id=step, **backend_kwargs, **kwargs).expand(arguments=arguments)
