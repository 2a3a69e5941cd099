"""Rolling a registered model version out: promote it (local) or ``helm upgrade`` (kubernetes)."""

from __future__ import annotations

import logging
import subprocess

from retrain_steps import artifacts, registry

log = logging.getLogger(__name__)

RELEASE = "serving"


def model_version(model_uri: str) -> str:
    """The registry version of a trained model folder (the first 12 hex digits of its weights' sha256)."""
    info = artifacts.read_json(artifacts.join(model_uri, "model.json"))
    return artifacts.sha256(artifacts.read_bytes(artifacts.join(model_uri, info["file"])))[:12]


def helm_upgrade_command(
    *, chart: str, bento_uri: str, version: str, namespace: str, release: str = RELEASE, timeout: str = "10m"
) -> list[str]:
    """``helm upgrade --install`` of the serving chart with a new model; rolls back if the rollout fails."""
    return [
        "helm", "upgrade", "--install", release, chart,
        "--namespace", namespace,
        "--set-string", f"model.uri={bento_uri}",
        "--set-string", f"model.version={version}",
        "--rollback-on-failure",
        "--wait",
        "--timeout", timeout,
    ]  # fmt: skip


def deploy_local(registry_uri: str, version: str) -> dict:
    """Promote ``version``: the local model server follows the pointer and swaps models live."""
    pointer = registry.promote(registry_uri, version)
    log.info("promoted %s to production (previous: %s)", version, pointer["previous"])
    return pointer


def deploy_kubernetes(command: list[str]) -> None:
    """Run the helm command; a failed rollout raises and Helm has rolled back to the previous release."""
    log.info("Running: %s", " ".join(command))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    for line in (completed.stdout + completed.stderr).splitlines():
        log.info("%s", line)
    if completed.returncode != 0:
        raise RuntimeError(f"helm upgrade failed (exit {completed.returncode}); the previous release keeps serving")
