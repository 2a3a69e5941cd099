"""How a training task asks Kubernetes for GPUs: one definition for both launchers.

The pod path (``plugins/retraining/pods.py``, a KubernetesPodOperator per train step) and the
Kubeflow pipeline (``images/steps/pipelines/retrain.py``, ``use_gpus``) both read these, and the
deployment's node selector (``RETRAIN_GPU_NODE_SELECTOR``, :mod:`retraining.config`) replaces
the compiled pipeline's at submission as it does on the pods. Standard library only.
"""

from __future__ import annotations

GPU_RESOURCE = "nvidia.com/gpu"  #: the extended resource the NVIDIA device plugin advertises
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}  #: GPU nodes' usual taint
DEFAULT_GPU_NODE_SELECTOR = ("nvidia.com/gpu.present", "true")  #: GPU Feature Discovery's node label
