"""Where experiment tracking goes: ``MLFLOW_*`` variables for the ``track`` step and the champion alias.

``MLFLOW_TRACKING_URI`` (and ``MLFLOW_TRACKING_TOKEN`` or ``_USERNAME``/``_PASSWORD``) in the Airflow
deployment's environment, or else the Airflow connection ``retrain_mlflow`` (type HTTP: host = the MLflow
server, with its scheme and port; login/password, or a ``token`` extra): an environment naming a server
replaces the connection entirely, so a connection's credentials never go to another server. Neither:
tracking is off (:mod:`retrain_steps.tracking` does nothing). Only the ``track`` step gets them; on the
kubernetes backend its pod reads the same variables from the optional Secret ``mlflow-tracking``.
"""

from __future__ import annotations

import os

CONN_ID = "retrain_mlflow"
SECRET = "mlflow-tracking"  #: the pods' optional Secret of MLFLOW_* variables


def tracking_env(conn_id: str = CONN_ID) -> dict[str, str]:
    """``MLFLOW_*`` variables from the connection (``{}`` when it is not defined), under the environment's own."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():  # the environment's server, with its own credentials
        return {}
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return {}
    if not conn.host:
        return {}
    env = {"MLFLOW_TRACKING_URI": server_uri(conn.host, conn.schema, conn.port)}
    if conn.login:
        env["MLFLOW_TRACKING_USERNAME"] = conn.login
    if conn.password:
        env["MLFLOW_TRACKING_PASSWORD"] = conn.password
    if conn.extra_dejson.get("token"):
        env["MLFLOW_TRACKING_TOKEN"] = conn.extra_dejson["token"]
    return env


def server_uri(host: str, scheme: str | None, port: int | None) -> str:
    """The server's URI from a connection's host (a name, or a URI with a path prefix), scheme and port."""
    import urllib.parse

    parts = urllib.parse.urlsplit(host if "://" in host else f"{scheme or 'http'}://{host}")
    netloc = f"{parts.hostname}:{port}" if port and not parts.port else parts.netloc
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def tracking_settings():
    """The tracking settings of this process (its environment and the connection)."""
    from retrain_steps import tracking

    return tracking.TrackingSettings.from_environment({**os.environ, **tracking_env()})
