"""Notifications of deploys, gate rejections and failed runs: an Airflow notifier posting to a webhook.

The webhook is the Airflow connection ``retrain_notifications`` (``Settings.notify_conn_id``, from
``RETRAIN_NOTIFY_CONN_ID``):
host = the URL (``https://hooks.slack.com/services/…`` or any endpoint taking JSON), password =
an optional bearer token. Without that connection, notifications are off. The JSON body is
``{"text", "event", "dag_id", "run_id", ...details}``: Slack and Mattermost incoming webhooks show
``text``; other receivers get the fields. A webhook that fails is logged, never fails the task.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from airflow.sdk import BaseNotifier

from retraining.config import Settings

CONN_ID = Settings.notify_conn_id  # the default name; deployments pass Settings.notify_conn_id
log = logging.getLogger(__name__)


def webhook(conn_id: str = CONN_ID) -> tuple[str, dict] | None:
    """The webhook URL and headers from the connection, or None when it does not exist (notifications off)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    host = conn.host or ""
    url = host if "://" in host else f"{conn.schema or 'https'}://{host}{f':{conn.port}' if conn.port else ''}"
    headers = {"Content-Type": "application/json"}
    if conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    return url, headers


def send(event: str, text: str, conn_id: str = CONN_ID, **details) -> bool:
    """Post one notification; return whether it was delivered (False when off or failed)."""
    target = webhook(conn_id)
    if target is None:
        log.debug("notifications off: no connection %r", conn_id)
        return False
    url, headers = target
    body = json.dumps({"text": text, "event": event, **details}, default=str).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10):
            return True
    except OSError as err:  # a notification must not fail the run
        log.warning("notification %s not delivered to connection %r: %s", event, conn_id, err)
        return False


class RetrainNotifier(BaseNotifier):
    """A notifier for DAG and task callbacks (``on_failure_callback=RetrainNotifier("failed", "...")``).

    ``text`` is a Jinja template of the callback's context, rendered at each call in a sandboxed
    environment of its own: not the DAG's (under ``airflow dags test`` the context holds the
    serialized DAG, which has none) and not in place (the same notifier serves every run).
    """

    def __init__(self, event: str, text: str, conn_id: str = CONN_ID) -> None:
        super().__init__()
        self.event, self.text, self.conn_id = event, text, conn_id

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render in place (the base class would ask the context's DAG for its environment)."""

    def notify(self, context) -> None:
        from jinja2.sandbox import SandboxedEnvironment

        dag_run, dag = context.get("dag_run"), context.get("dag")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", "")
        run_id = getattr(dag_run, "run_id", None) or context.get("run_id", "")
        text = SandboxedEnvironment().from_string(self.text).render({**context, "run_id": run_id})
        send(self.event, text, self.conn_id, dag_id=dag_id, run_id=run_id, reason=context.get("reason", ""))
