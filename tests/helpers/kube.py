"""Helm and Kubernetes-schema helpers for tests: the helm binary, rendering, validation."""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.conftest import ROOT

K8S_VERSION = "1.33.0"


def helm_binary() -> str:
    """helm on PATH, else the one `make test` extracted into build/bin."""
    found = os.environ.get("HELM") or shutil.which("helm") or str(ROOT / "build" / "bin" / "helm")
    if not os.path.exists(found):
        raise AssertionError(f"helm not found ({found}); run the tests through `make test`")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run([helm_binary(), *args], cwd=ROOT, capture_output=True, text=True)
    if check and completed.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed


def validate(manifest: dict) -> None:
    """Validate one manifest against the Kubernetes OpenAPI schema (strict: unknown fields fail)."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def render(chart: str, *args: str) -> list[dict]:
    out = helm("template", "serving", chart, "--namespace", "serving", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
