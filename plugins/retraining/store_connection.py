"""Artifact-store credentials from an Airflow connection (``artifact_store``, type ``aws``; its name is
``Settings.artifact_conn_id``, from ``RETRAIN_ARTIFACT_CONN_ID``).

The connection's login/password become ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` and its
``endpoint_url`` extra ``AWS_ENDPOINT_URL_S3`` for the local step processes and the control
plane's own reads; on the kubernetes backend pods get the same keys from a Kubernetes Secret.
Without such a connection nothing is set and boto3 finds credentials as usual.
"""

from __future__ import annotations

import os

from retraining.config import Settings

CONN_ID = Settings.artifact_conn_id  # the default name; deployments pass Settings.artifact_conn_id


def artifact_store_env(conn_id: str = CONN_ID) -> dict[str, str]:
    """Environment variables for boto3 from the connection, or {} when it is not defined."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return {}
    env = {}
    if conn.login:
        env["AWS_ACCESS_KEY_ID"] = conn.login
    if conn.password:
        env["AWS_SECRET_ACCESS_KEY"] = conn.password
    extra = conn.extra_dejson
    if extra.get("endpoint_url"):
        env["AWS_ENDPOINT_URL_S3"] = extra["endpoint_url"]
    if extra.get("region_name"):
        env["AWS_DEFAULT_REGION"] = extra["region_name"]
    return env


def apply_to_process(conn_id: str = CONN_ID) -> None:
    """Export the connection's variables into this process (for in-task reads of the store)."""
    os.environ.update(artifact_store_env(conn_id))
