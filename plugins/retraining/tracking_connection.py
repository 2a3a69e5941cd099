"""Where experiment tracking goes: ``MLFLOW_*`` variables for the ``track`` step and the champion alias.

``MLFLOW_TRACKING_URI`` (and ``MLFLOW_TRACKING_TOKEN`` or ``_USERNAME``/``_PASSWORD``) in the Airflow
deployment's environment, or the Airflow connection ``retrain_mlflow`` (type HTTP: host = the MLflow
server, with its scheme and port; login/password, or a ``token`` extra), which the environment
overrides. Neither: tracking is off (:mod:`retrain_steps.tracking` does nothing). On the kubernetes
backend the pods read the same variables from the optional Secret ``mlflow-tracking``.
"""

from __future__ import annotations

import os

CONN_ID = "retrain_mlflow"
SECRET = "mlflow-tracking"  #: the pods' optional Secret of MLFLOW_* variables


def tracking_env(conn_id: str = CONN_ID) -> dict[str, str]:
    """``MLFLOW_*`` variables from the connection (``{}`` when it is not defined), under the environment's own."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return {}
    host = conn.host or ""
    if host and "://" not in host:
        host = f"{conn.schema or 'http'}://{host}"
    env = {"MLFLOW_TRACKING_URI": f"{host}{f':{conn.port}' if conn.port else ''}"} if host else {}
    if conn.login:
        env["MLFLOW_TRACKING_USERNAME"] = conn.login
    if conn.password:
        env["MLFLOW_TRACKING_PASSWORD"] = conn.password
    if conn.extra_dejson.get("token"):
        env["MLFLOW_TRACKING_TOKEN"] = conn.extra_dejson["token"]
    return {name: value for name, value in env.items() if not os.environ.get(name)}


def tracking_settings():
    """The tracking settings of this process (its environment and the connection)."""
    from retrain_steps import tracking

    return tracking.TrackingSettings.from_environment({**os.environ, **tracking_env()})
