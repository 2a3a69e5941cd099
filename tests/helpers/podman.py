"""Run Kubernetes YAML for real with ``podman kube play`` (no cluster): pods, init containers, Secrets.

What podman does not do is done here as a cluster would, and nothing more: a ``kind: Secret`` is
created as a podman secret (podman 4.3 takes only its own format), and a Deployment's container
port gets a host port so the test can reach it (what ``kubectl port-forward`` does).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    completed = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and completed.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    return completed


def unavailable_reason() -> str | None:
    """Why no container can run here, or None when podman works."""
    if not shutil.which("podman"):
        return "no container runtime: podman is not installed (make test installs it on Debian as root)"
    info = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"podman cannot run containers here: {info.stderr.strip()[-300:]}"
    return None


def create_secret(name: str, values: dict[str, str]) -> None:
    """A Kubernetes Secret's data, as podman's kube play reads it (a JSON map of base64 values)."""
    podman("secret", "rm", name, check=False)
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    subprocess.run(["podman", "secret", "create", name, "-"], input=json.dumps(data), text=True, check=True,
                   capture_output=True)


@dataclass
class Container:
    name: str
    exit_code: int | None
    running: bool
    logs: str


@dataclass
class PlayedPod:
    pod: str
    containers: dict[str, Container]  # by the manifest's container name (init containers included)

    def log_text(self) -> str:
        return "\n".join(f"--- {name} (exit {c.exit_code}) ---\n{c.logs[-3000:]}" for name, c in self.containers.items())


def _container(pod: str, name: str) -> Container:
    full = f"{pod}-{name}"
    state = json.loads(podman("inspect", full, "--format", "{{json .State}}").stdout)
    logs = podman("logs", full, check=False)
    return Container(name, state.get("ExitCode") if not state.get("Running") else None, bool(state.get("Running")),
                     logs.stdout + logs.stderr)


class KubePlay:
    """``podman kube play`` of one YAML file; ``down()`` removes what it created."""

    def __init__(self, documents: list[dict], folder: Path, name: str, network: str = "bridge"):
        self.path = folder / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        self.documents = documents
        self.network = network

    def play(self, check: bool = True) -> subprocess.CompletedProcess:
        """Create and start the pods (podman fails the call when an init container fails)."""
        return podman("kube", "play", "--network", self.network, "--replace", str(self.path), check=check)

    def pod_names(self) -> list[str]:
        names = []
        for doc in self.documents:
            if doc["kind"] == "Pod":
                names.append(doc["metadata"]["name"])
            elif doc["kind"] == "Deployment":
                names.append(f"{doc['metadata']['name']}-pod-0")
        return names

    def wait(self, pod: str, containers: list[str], timeout: float) -> PlayedPod:
        """Wait until every named container has exited (or ``timeout``); report each."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [_container(pod, c) for c in containers]
            if not any(c.running for c in states):
                break
            time.sleep(2)
        return PlayedPod(pod, {c: _container(pod, c) for c in containers})

    def down(self) -> None:
        podman("kube", "down", str(self.path), check=False)
        for pod in self.pod_names():  # a pod whose init container failed is not always removed by `down`
            podman("pod", "rm", "--force", pod, check=False)
