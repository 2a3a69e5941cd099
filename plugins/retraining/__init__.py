"""Retraining glue for the ``retrain`` DAGs: configuration, step commands, step launcher,
model selection and deployment. Importing it costs nothing heavy (no torch, kfp, bentoml,
and no Kubernetes client until a Kubernetes step is actually built).
"""
