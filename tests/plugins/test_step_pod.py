"""Pods follow the step CLIs' exit-status contract: exit 2 (bad input) fails without retries."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s
from retraining.step_pod import StepPodOperator, base_container_exit_code


def finished_pod(exit_code: int) -> k8s.V1Pod:
    terminated = k8s.V1ContainerStateTerminated(exit_code=exit_code, reason="Error" if exit_code else "Completed")
    status = k8s.V1PodStatus(
        phase="Failed" if exit_code else "Succeeded",
        container_statuses=[k8s.V1ContainerStatus(
            name="base", image="steps", image_id="", ready=False, restart_count=0,
            state=k8s.V1ContainerState(terminated=terminated),
        )],
    )
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="download-abc", namespace="retrain",
                                               annotations={}, labels={}), status=status)


@pytest.fixture
def operator(monkeypatch):
    op = StepPodOperator(task_id="download", image="steps", cmds=["python", "-m", "retrain_steps"],
                         on_finish_action="keep_pod", log_events_on_failure=False)
    # no API server here: stub only the calls that would reach one; the failure logic is the real cleanup()
    monkeypatch.setattr(op, "patch_already_checked", lambda *a, **k: None)
    monkeypatch.setattr(op, "process_pod_deletion", lambda *a, **k: None)
    monkeypatch.setattr(op, "is_istio_enabled", lambda *a, **k: False)  # the calls that need an API server
    return op


def test_exit_code_is_read_from_the_base_container():
    assert base_container_exit_code(finished_pod(2), "base") == 2
    assert base_container_exit_code(finished_pod(2), "other") is None


def test_bad_input_fails_without_retry(operator):
    pod = finished_pod(2)
    with pytest.raises(AirflowFailException, match="rejected its input"):
        operator.cleanup(pod, pod)


def test_a_crash_stays_retryable(operator):
    pod = finished_pod(1)
    with pytest.raises(AirflowException, match="returned a failure") as info:
        operator.cleanup(pod, pod)
    assert not isinstance(info.value, AirflowFailException)


def test_success_passes(operator):
    pod = finished_pod(0)
    operator.cleanup(pod, pod)
