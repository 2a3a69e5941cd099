"""The step pod: KubernetesPodOperator with the step protocol (:mod:`retrain_steps.protocol`).

The step writes its result to :data:`~retrain_steps.protocol.POD_RESULT_FILE` (``$RETRAIN_STEP_RESULT``,
set by :func:`retraining.pods.pod_operator_kwargs`), which the operator's XCom sidecar reads: the task's
XCom is the same document :class:`retraining.launcher.LocalStepOperator` returns. A step exits 2 when
its input is bad; a retry cannot fix that, so the task fails at once without retrying, as on the local
backend. Imported only on the ``kubernetes`` backend (the provider import costs seconds).
"""

from __future__ import annotations

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from retrain_steps import protocol


def base_container_exit_code(remote_pod, container: str) -> int | None:
    """The exit code of ``container`` in a finished pod, or None when it has not terminated."""
    status = getattr(remote_pod, "status", None)
    for state in (getattr(status, "container_statuses", None) or []):
        if state.name == container and state.state and state.state.terminated:
            return state.state.terminated.exit_code
    return None


class StepPodOperator(KubernetesPodOperator):
    """Run one step CLI in its image; exit 2 (bad input) fails the task without retries."""

    def cleanup(self, pod, remote_pod, xcom_result=None, context=None) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowSkipException:
            raise
        except AirflowException as err:
            if base_container_exit_code(remote_pod, self.base_container_name) == protocol.BAD_INPUT:
                message = f"step rejected its input (exit {protocol.BAD_INPUT}), not retried: {err}"
                raise AirflowFailException(message) from err
            raise
