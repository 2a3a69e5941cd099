"""The `cluster` suite runs only against a real cluster: KUBECONFIG must point to one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if kubeconfig and Path(kubeconfig).is_file():
        return
    skip = pytest.mark.skip(reason="needs KUBECONFIG pointing to a cluster (kind/k3d/minikube)")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)
