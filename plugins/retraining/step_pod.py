"""The step pod: KubernetesPodOperator with the step protocol (:mod:`retrain_steps.protocol`).

The step writes its result to :data:`~retrain_steps.protocol.POD_RESULT_FILE` (``$RETRAIN_STEP_RESULT``,
set by :func:`retraining.pods.pod_operator_kwargs`), which the operator's XCom sidecar reads: the task's
XCom is the same document :class:`retraining.launcher.LocalStepOperator` returns. A step exits 2 when
its input is bad; a retry cannot fix that, so the task fails at once without retrying, as on the local
backend, with the step's error (the container's termination message: its last log lines) as one message
and no traceback (:mod:`retraining.bad_input`). Imported only on the ``kubernetes`` backend (the provider
import costs seconds).
"""

from __future__ import annotations

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from retrain_steps import protocol
from retraining import bad_input


def _terminated(remote_pod, container: str):
    status = getattr(remote_pod, "status", None)
    for state in (getattr(status, "container_statuses", None) or []):
        if state.name == container and state.state and state.state.terminated:
            return state.state.terminated
    return None


def base_container_exit_code(remote_pod, container: str) -> int | None:
    """The exit code of ``container`` in a finished pod, or None when it has not terminated."""
    terminated = _terminated(remote_pod, container)
    return None if terminated is None else terminated.exit_code


class StepPodOperator(KubernetesPodOperator):
    """Run one step CLI in its image; exit 2 (bad input) fails the task without retries, naming the step's error.

    The container's termination message falls back to its last log lines when it fails, so the step's
    ``<step>: error: ...`` reaches the failure message without reading the log again.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**{"retry_policy": bad_input.RETRY_POLICY,
                            "termination_message_policy": "FallbackToLogsOnError", **kwargs})

    def execute(self, context):
        if self.arguments is None:  # a teardown (track) whose arguments' task never ran: nothing to do
            from retraining.launcher import NO_ARGUMENTS

            raise AirflowSkipException(NO_ARGUMENTS)
        return super().execute(context)

    def cleanup(self, pod, remote_pod, xcom_result=None, context=None) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowSkipException:
            raise
        except AirflowException:
            terminated = _terminated(remote_pod, self.base_container_name)
            if terminated is not None and terminated.exit_code == protocol.BAD_INPUT:
                error = bad_input.step_error((terminated.message or "").splitlines())
                bad_input.fail(bad_input.step_rejected(error), self.log)
            raise
