"""Kubeflow Pipelines definitions of the retraining steps (compiled in the kfp environment)."""
