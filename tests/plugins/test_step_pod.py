"""Pods follow the step CLIs' exit-status contract: exit 2 (bad input) fails without retries."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s
from retraining.bad_input import BadInput
from retraining.step_pod import StepPodOperator, base_container_exit_code
from tests.helpers.airflow import not_retried


def finished_pod(exit_code: int, message: str | None = None) -> k8s.V1Pod:
    """A finished pod; ``message``: its container's termination message (the last log lines, on failure)."""
    terminated = k8s.V1ContainerStateTerminated(exit_code=exit_code, reason="Error" if exit_code else "Completed",
                                                message=message)
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


def test_bad_input_fails_without_retry_naming_the_step_error_without_the_pod_dump(operator):
    """The step's error (from the termination message: the log's last lines) and nothing else: not the pod's
    status, which KubernetesPodOperator's failure message carries; a SystemExit, which Airflow logs untraced."""
    pod = finished_pod(2, "12:00:01 INFO reading\nretrain_steps download: error: dataset location not allowed: "
                          "http://127.0.0.1:9/x.zip\nallowed: s3://store/\n")
    with pytest.raises(BadInput) as info:
        operator.cleanup(pod, pod)
    assert str(info.value).splitlines() == [
        "step rejected its input (exit 2), not retried:",
        "  retrain_steps download: error: dataset location not allowed: http://127.0.0.1:9/x.zip",
        "  allowed: s3://store/"]
    assert info.value.code == 2 and not isinstance(info.value, Exception) and not_retried(operator, info.value)


def test_the_container_keeps_its_last_log_lines_as_termination_message(operator):
    assert operator.termination_message_policy == "FallbackToLogsOnError"
    assert StepPodOperator(task_id="t", image="i", termination_message_policy="File").termination_message_policy == "File"


def test_a_crash_stays_retryable(operator):
    pod = finished_pod(1)
    with pytest.raises(AirflowException, match="returned a failure") as info:
        operator.cleanup(pod, pod)
    assert not isinstance(info.value, AirflowFailException) and not not_retried(operator, info.value)


def test_success_passes(operator):
    pod = finished_pod(0)
    operator.cleanup(pod, pod)


def test_the_pod_writes_its_result_where_the_xcom_sidecar_reads_it():
    from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
    from retrain_steps import protocol
    from retraining.config import settings
    from retraining.pods import pod_operator_kwargs

    assert protocol.POD_RESULT_FILE == f"{PodDefaults.XCOM_MOUNT_PATH}/return.json"
    kwargs = pod_operator_kwargs("download", cmds=["python", "-m", "retrain_steps"],
                                 settings=settings({"RETRAIN_BACKEND": "kubernetes"}))
    assert kwargs["do_xcom_push"] is True
    assert (protocol.RESULT_ENV, protocol.POD_RESULT_FILE) in [(e.name, e.value) for e in kwargs["env_vars"]]


def test_both_backends_hand_downstream_the_same_result(tmp_path, monkeypatch, operator):
    """The real step writes its result file; the pod's XCom (read through the sidecar) is what the local run returns."""
    from retrain_steps import protocol
    from retraining.launcher import LocalStepOperator
    from tests.conftest import ROOT, run_cli

    source = f"file://{tmp_path}/d.npz"
    run_cli("retrain_steps", "export-default", "--output", source)
    argv = ["download", "--source", source, "--output", f"file://{tmp_path}/dl"]
    local = LocalStepOperator(task_id="download", cmds=["python", "-m", "retrain_steps"], arguments=argv,
                              python_bin=sys.executable, cwd=str(ROOT)).execute({})
    xcom = tmp_path / "xcom" / "return.json"  # the pod's /airflow/xcom, on the host
    xcom.parent.mkdir()
    run_cli("retrain_steps", *argv, env={protocol.RESULT_ENV: str(xcom)})
    sidecar = SimpleNamespace(extract_xcom=lambda pod, **_: xcom.read_text())  # the sidecar's `cat return.json`
    monkeypatch.setitem(operator.__dict__, "pod_manager", sidecar)
    assert operator.extract_xcom(finished_pod(0)) == local and local["step"] == "download"


def test_the_pod_operator_does_not_import_the_local_launcher():
    """No cycle: both take the exit codes from the step protocol."""
    code = "import sys, retraining.step_pod; print('retraining.launcher' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
