"""The step pod: KubernetesPodOperator with the step CLIs' exit-status contract.

A step exits 2 when its input is bad; a retry cannot fix that, so the task fails at once
without retrying, as :class:`retraining.launcher.LocalStepOperator` does on the local backend.
Imported only on the ``kubernetes`` backend (the provider import costs seconds).
"""

from __future__ import annotations

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from retraining.launcher import EXIT_BAD_INPUT


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
            if base_container_exit_code(remote_pod, self.base_container_name) == EXIT_BAD_INPUT:
                raise AirflowFailException(f"step rejected its input (exit {EXIT_BAD_INPUT}), not retried: {err}") from err
            raise
