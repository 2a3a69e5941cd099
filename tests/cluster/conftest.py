"""The `cluster` suite runs only against real infrastructure: KUBECONFIG must point to a cluster
(tests marked ``cluster``) and KFP_ENDPOINT to a Kubeflow Pipelines API (tests marked ``kfp``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    kubeconfig = os.environ.get("KUBECONFIG", "")
    has_cluster = bool(kubeconfig) and Path(kubeconfig).is_file()
    for item in items:
        if "kfp" in item.keywords and not os.environ.get("KFP_ENDPOINT"):
            item.add_marker(pytest.mark.skip(reason="needs KFP_ENDPOINT (a Kubeflow Pipelines API URL)"))
        elif "cluster" in item.keywords and "kfp" not in item.keywords and not has_cluster:
            item.add_marker(pytest.mark.skip(reason="needs KUBECONFIG pointing to a cluster (kind/k3d/minikube)"))
