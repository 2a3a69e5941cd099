"""The step protocol (retrain_steps.protocol): exit 0/1/2, which exceptions are bad input, the result written
to the file $RETRAIN_STEP_RESULT names; the same for every step CLI (retrain_steps, serving.package)."""

from __future__ import annotations

import json
import os

import pytest
from retrain_steps import protocol
from retrain_steps.artifacts import ArtifactError, ArtifactUnavailable
from retrain_steps.data import DataError
from retrain_steps.errors import InputError
from retrain_steps.settings import SettingError

from tests.conftest import run_cli


@pytest.fixture
def result_file(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    monkeypatch.setenv(protocol.RESULT_ENV, str(path))
    return path


def test_success_writes_the_result_file_and_exits_0(result_file):
    assert protocol.run_step("s", lambda: {"output": "file:///x", "n": 1}) == protocol.OK
    assert json.loads(result_file.read_text()) == {"output": "file:///x", "n": 1}
    assert protocol.read_result(result_file) == {"output": "file:///x", "n": 1}
    assert [p.name for p in result_file.parent.iterdir()] == ["result.json"], "no partial file left"


@pytest.mark.parametrize("error", [InputError("bad image"), DataError("bad npz"), ArtifactError("not found: s3://b/k"),
                                   SettingError("RETRAIN_MAX_IMAGES='x'"), ValueError("v"), KeyError("accuracy"),
                                   FileNotFoundError("lock file")])
def test_bad_input_exits_2_with_one_line_naming_it_and_no_result(error, result_file, capsys):
    def step():
        raise error

    assert protocol.run_step("s", step) == protocol.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("s: error: ") and str(error.args[0]) in err and "Traceback" not in err
    assert not result_file.exists()


def test_any_other_failure_exits_1_with_its_traceback(result_file, capsys):
    def step():
        raise RuntimeError("disk on fire")

    assert protocol.run_step("s", step) == protocol.FAILED
    assert "Traceback" in capsys.readouterr().err and not result_file.exists()


def test_an_unreachable_store_is_exit_1_so_the_launcher_retries(result_file, capsys):
    def step():
        raise ArtifactUnavailable("cannot fetch http://h/x: HTTP 503")

    assert protocol.run_step("s", step) == protocol.FAILED
    assert "HTTP 503" in capsys.readouterr().err and not result_file.exists()


def test_without_the_variable_no_file_is_written(monkeypatch, tmp_path):
    monkeypatch.delenv(protocol.RESULT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert protocol.run_step("s", lambda: {"a": 1}) == protocol.OK
    assert list(tmp_path.iterdir()) == []
    assert protocol.read_result(tmp_path / "none.json") is None


def test_the_step_cli_writes_its_result_to_the_file_and_prints_no_json_line(tmp_path):
    path = tmp_path / "out" / "return.json"
    path.parent.mkdir()
    done = run_cli("retrain_steps", "export-default", "--output", f"file://{tmp_path}/d.npz",
                   env={protocol.RESULT_ENV: str(path)})
    assert json.loads(path.read_text())["output"] == f"file://{tmp_path}/d.npz"
    assert not [line for line in done.stdout.splitlines() if line.startswith("{")], "the log is for people"


def test_serving_package_follows_the_same_protocol(tmp_path):
    """package's bad input (a missing evaluation) is exit 2 naming it, as for every step."""
    path = tmp_path / "return.json"
    missing = f"file://{tmp_path}/no-evaluation"
    done = run_cli("serving.package", "--model", missing, "--evaluation", missing, "--dataset", missing,
                   "--registry", f"file://{tmp_path}/registry", env={protocol.RESULT_ENV: str(path)}, check=False)
    assert done.returncode == protocol.BAD_INPUT, done.stderr
    assert done.stderr.startswith("serving.package: error: ") and "no-evaluation" in done.stderr
    assert not path.exists()


def test_a_kubeflow_component_calls_a_step_in_process_and_gets_its_result(tmp_path, monkeypatch):
    """What the KFP components do (pipelines/retrain.py): the result, or StepFailed saying bad input on exit 2."""
    from retrain_steps.__main__ import main

    monkeypatch.setenv(protocol.RESULT_ENV, "/caller/own/result.json")
    source = f"file://{tmp_path}/d.npz"
    assert protocol.call_step(main, ["export-default", "--output", source])["output"] == source
    with pytest.raises(protocol.StepFailed, match="step download rejected its input .exit 2") as info:
        protocol.call_step(main, ["download", "--source", f"file://{tmp_path}/none.npz", "--output", "/tmp/o"])
    assert info.value.bad_input and info.value.exit_code == protocol.BAD_INPUT
    assert os.environ[protocol.RESULT_ENV] == "/caller/own/result.json", "the caller's variable is restored"
