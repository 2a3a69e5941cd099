"""Every shell command in README.md runs in a test exactly as written, so the README cannot drift from the code.

What a command is: tests/helpers/readme.py (a logical line of a ```bash/```sh/```shell/```console block,
continuations joined, comments dropped; a loop spanning lines is one command; a synopsis goes in ```text).
Each command must be

(a) run here as written: ``scripts/models ...`` against a registry whose versions are the ones the lines
    name; the blocks for "another shell" (those starting ``source scripts/airflow-env.sh``: ``airflow dags``,
    the example datasets) in one bash session, in a scratch copy of the project with an Airflow home of its
    own, as a reader pastes them; every ``airflow connections add`` line in that Airflow; or
(b) claimed by another test that runs it as written (RUN_ELSEWHERE: the README's curl lines, against the
    served bento); or
(c) listed in COVERED_BY with the test that runs it (``make run``) or exercises it, and why it cannot run here as
    written (it takes minutes, or needs a cluster, a registry to push to or a Kubernetes API).

A new README command that is none of these fails ``test_every_readme_command_is_run_by_a_test``; an entry
whose command left the README, or whose test does not exist, fails it too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import ROOT
from tests.helpers.readme import commands

BIN = Path(sys.executable).parent

# (b) prefixes of commands another test runs as written, extracting them from the README itself.
RUN_ELSEWHERE = {
    "curl -X POST http://127.0.0.1:3000/predict ":
        "tests/serving/test_service_http.py::test_the_readme_curl_lines_as_written",
}

CONTAINERS = "tests/containers/test_step_pods.py::test_the_pods_run_the_whole_loop_and_register_a_version"
CLUSTER = "tests/cluster/test_retrain_on_kubernetes.py::test_retrain_on_pods_then_predict"
# (c) command -> (test that exercises it, why it does not run here as written).
COVERED_BY = {
    "make run": ("tests/serving/test_run_local.py::test_run_local_serves_production_without_training_and_stops_cleanly",
                 "runs `make run` as written in a scratch copy (an Airflow start: ~1 min, so not here)"),
    "make test": ("tests/test_readme.py", "this suite is what `make test` runs"),
    "REG=ghcr.io/your-org/retrain TAG=$(git rev-parse --short HEAD)": (
        "tests/containers/conftest.py", "sets the names `make images` tags; the containers suite builds with its own"),
    "RETRAIN_IMAGE_REGISTRY=$REG RETRAIN_IMAGE_TAG=$TAG make images": (
        "tests/containers/conftest.py", "the containers suite runs `make images` (minutes)"),
    "for i in steps train serving airflow; do docker push $REG/$i:$TAG; done": (
        CONTAINERS, "needs a registry to push to; the suite plays the images it built"),
    "helm test serving --namespace serving": (
        "tests/charts/test_serving_chart.py::test_helm_test_pod_posts_the_example",
        "needs a cluster; the test renders the helm test pod"),
    "kubectl apply -f charts/control-plane/rbac.yaml": (
        "tests/charts/test_control_plane.py::test_rbac_validates_against_the_kubernetes_schema", "needs a cluster"),
    "helm repo add apache-airflow https://airflow.apache.org": (
        "tests/charts/test_control_plane.py::test_airflow_values_configure_the_kubernetes_backend_from_the_image",
        "needs the chart repository (network)"),
    "kubectl -n serving port-forward svc/serving 3000:80 &": (CLUSTER, "needs a cluster"),
}
# Commands too long for one key: matched by their start.
COVERED_BY_PREFIX = {
    "for ns in retrain serving; do\nkubectl create namespace $ns": (CLUSTER, "needs a cluster"),
    "helm upgrade --install serving charts/serving ": (
        "tests/containers/test_serving_chart.py::test_the_chart_serves_the_deployed_bento",
        "needs a cluster; the containers suite plays the chart rendered with deploy's values"),
    "helm upgrade --install airflow apache-airflow/airflow ": (
        "tests/charts/test_control_plane.py::test_airflow_values_configure_the_kubernetes_backend_from_the_image",
        "needs a cluster and the chart repository"),
}


def is_models_cli(command: str) -> bool:
    return command.startswith("scripts/models ")


def is_connection(command: str) -> bool:
    return command.startswith("airflow connections add ")


def session_blocks() -> list[list[str]]:
    """The README's blocks for another shell (first command ``source scripts/airflow-env.sh``), their commands in
    order, without those another test runs."""
    blocks: dict[int, list[str]] = {}
    for command in commands():
        blocks.setdefault(command.block, []).append(command.text)
    return [[text for text in texts if not claimed_elsewhere(text)] for texts in blocks.values()
            if texts[0] == "source scripts/airflow-env.sh"]


def claimed_elsewhere(command: str) -> str | None:
    return next((test for prefix, test in RUN_ELSEWHERE.items() if command.startswith(prefix)), None)


def covered_by(command: str) -> tuple[str, str] | None:
    if command in COVERED_BY:
        return COVERED_BY[command]
    return next((entry for prefix, entry in COVERED_BY_PREFIX.items() if command.startswith(prefix)), None)


def test_every_readme_command_is_run_by_a_test():
    in_sessions = {text for block in session_blocks() for text in block}
    run_here = {c.text for c in commands() if is_models_cli(c.text) or is_connection(c.text)} | in_sessions
    uncovered = [f"README.md:{c.line}: {c.text}" for c in commands()
                 if not (c.text in run_here or claimed_elsewhere(c.text) or covered_by(c.text))]
    assert not uncovered, "README commands no test runs (run them in tests/test_readme.py or map them):\n" + \
        "\n".join(uncovered)
    texts = [c.text for c in commands()]
    stale = [key for key in COVERED_BY if key not in texts]
    stale += [prefix for prefix in [*COVERED_BY_PREFIX, *RUN_ELSEWHERE] if not any(t.startswith(prefix) for t in texts)]
    assert not stale, f"mapped commands no longer in the README: {stale}"
    for test in [*RUN_ELSEWHERE.values(), *(test for test, _ in [*COVERED_BY.values(), *COVERED_BY_PREFIX.values()])]:
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), f"{test}: no such test file"
        assert not name or re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), f"{test}: no such test"


def test_the_extractor_finds_commands_as_a_reader_copies_them():
    text = """
```bash
source x.sh   # a comment
echo "a # b" \\
  --flag     # continued
# {"answer": 1,
#  "more": 2}
for i in 1 2; do
  echo $i
done
```
```text
not a command
```
   ```sh
   indented --in-a-list
   ```
```console
$ ls -l
output line
```
"""
    found = commands(text)
    assert [c.text for c in found] == ['source x.sh', 'echo "a # b" --flag', "for i in 1 2; do\necho $i\ndone",
                                       "indented --in-a-list", "ls -l"]
    assert found[1].answer == '{"answer": 1, "more": 2}' and found[0].answer is None


@pytest.fixture
def readme_registry(tmp_path) -> dict:
    """A store whose registry holds the versions the README's ``scripts/models`` lines name, plus one before them:
    the first named was in production and was replaced, so each line (promote, rollback, ...) has something to do."""
    from retrain_steps import registry

    store = f"file://{tmp_path}/artifacts"
    reg = f"{store}/registry"
    named = list(dict.fromkeys(re.findall(r"\b[0-9a-f]{12}\b", " ".join(c.text for c in commands()
                                                                        if is_models_cli(c.text)))))
    versions = [*named, "0" * 12]
    for seq, version in enumerate(versions):
        registry.write_card(reg, {"version": version, "run_id": f"run-{seq}",
                                  "created_at": f"2026-01-0{seq + 1}T00:00:00+00:00",
                                  "metrics": {"test_accuracy": 0.97}, "code_commit": "abc1234",
                                  "dataset": {"version": "d" * 12, "source": "file:///data/digits.npz"},
                                  "bento": {"uri": "file:///nowhere.bento", "sha256": "0" * 64},
                                  "params": {"learning_rate": 0.001}})
    production = None
    for version in versions:
        registry.promote(reg, version, expected=production, actor="airflow:retrain", reason="beats production")
        production = version
    return {"RETRAIN_ARTIFACT_STORE": store, "RETRAIN_REGISTRY": reg}


def test_the_models_cli_lines_run_as_written(readme_registry, tmp_path):
    lines = [c.text for c in commands() if is_models_cli(c.text)]
    assert lines, "the README shows scripts/models"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **readme_registry}
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert done.stdout.strip(), f"{line} printed nothing"


def scratch_project(base: Path) -> Path:
    """A copy of the project a reader's shell can write into (``data/``) without touching this checkout's."""
    project = base / "project"
    project.mkdir()
    shutil.copytree(ROOT / "scripts", project / "scripts")  # scripts resolve their ROOT from their own path
    for name in ("dags", "plugins", "images", "serving", "tests", ".venv"):
        (project / name).symlink_to(ROOT / name)
    return project


@pytest.fixture(scope="module")
def scratch_airflow(tmp_path_factory) -> tuple[Path, dict]:
    """A scratch copy of the project and the environment of an Airflow home in it as ``make run`` leaves it:
    database migrated, DAGs serialized, ``retrain`` unpaused."""
    base = tmp_path_factory.mktemp("readme-airflow")
    project = scratch_project(base)
    env = {"PATH": os.environ["PATH"], "HOME": str(base), "AIRFLOW_HOME": str(base / "airflow")}
    migrate = ("source scripts/airflow-env.sh && airflow db migrate && airflow dags reserialize"
               " && airflow dags unpause retrain")
    prepare = subprocess.run(["bash", "-c", migrate], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert prepare.returncode == 0, prepare.stdout[-3000:] + prepare.stderr[-3000:]
    return project, env


def run_session(lines: list[str], project: Path, env: dict, log: Path) -> str:
    """Run ``lines`` as one pasted bash session (``set -e``) in ``project``; return its output."""
    with log.open("w") as out:  # a file, not a pipe: a line ending in `&` (a web server) outlives the shell
        session = subprocess.Popen(["bash", "-e", "-c", "\n".join(lines)], cwd=project, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        session.wait(timeout=300)
    finally:
        try:
            os.killpg(session.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    output = log.read_text()
    assert session.returncode == 0, f"{lines}\n{output}"
    return output


@pytest.mark.e2e
def test_the_blocks_for_another_shell_run_as_written(scratch_airflow, tmp_path):
    """Each block that starts ``source scripts/airflow-env.sh`` runs as one pasted session in the scratch project
    with ``make run``'s Airflow: triggers queue runs, and nothing answers "No paused DAGs"."""
    blocks = session_blocks()
    assert blocks, "the README has blocks for another shell"
    project, env = scratch_airflow
    for index, block in enumerate(blocks):
        output = run_session(block, project, env, tmp_path / f"session-{index}.log")
        assert "No paused DAGs" not in output and "error" not in output.lower(), output
    listing = subprocess.run(["bash", "-c", "source scripts/airflow-env.sh && airflow dags list-runs retrain -o json"],
                             cwd=project, env=env, capture_output=True, text=True, timeout=120)
    triggers = sum(text.startswith("airflow dags trigger retrain ") for block in blocks for text in block)
    assert listing.stdout.count('"run_id"') == triggers, listing.stdout + listing.stderr


@pytest.mark.e2e
def test_the_connection_lines_run_as_written(scratch_airflow, tmp_path):
    """Each ``airflow connections add`` line, in a shell that sourced ``scripts/airflow-env.sh``, creates its
    connection with its extra (lines naming the same connection are alternatives: each replaces the one before)."""
    project, env = scratch_airflow
    lines = [c.text for c in commands() if is_connection(c.text)]
    assert lines, "the README adds connections"
    database = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    key = re.search(r"^fernet_key = (\S+)$", (Path(env["AIRFLOW_HOME"]) / "airflow.cfg").read_text(), re.M)
    fernet = Fernet(key.group(1)) if key else None
    for index, line in enumerate(lines):
        words = shlex.split(line)
        conn_id, extra = words[3], json.loads(words[words.index("--conn-extra") + 1])
        with sqlite3.connect(database) as db:
            db.execute("DELETE FROM connection WHERE conn_id = ?", (conn_id,))
        run_session(["source scripts/airflow-env.sh", line], project, env, tmp_path / f"connection-{index}.log")
        with sqlite3.connect(database) as db:  # (without its provider, a type is stored as "generic")
            stored = db.execute("SELECT extra, is_extra_encrypted FROM connection WHERE conn_id = ?", (conn_id,))
            extras = [fernet.decrypt(value.encode()) if encrypted else value for value, encrypted in stored]
        assert [json.loads(value) for value in extras] == [extra], line
