"""Kubeflow Pipelines bridge for Airflow, provider-shaped: hook, run operator, trigger, extra link.

Talks to the KFP API server over REST (``/apis/v2beta1``) through ``kfp-server-api``: the kfp
SDK cannot live in the Airflow environment (it pins kubernetes<31; the cncf provider needs >=36).
"""
