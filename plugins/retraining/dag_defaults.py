"""What every retraining DAG shares: schedule, retries, run limits, tags and the Params form.

No ``start_date`` and ``run_immediately=timedelta(0)``: unpausing a DAG (the UI's Trigger does)
starts no run for a cron tick that passed; the first scheduled run is the next tick. (Airflow 3.3
reads ``run_immediately=False`` like ``None``: a tick less than a tenth of the interval ago, 2.4 h
for a daily cron, would run at once.)

A DAG built from settings with problems (:func:`retraining.config.parse_safe`) still loads: it is
tagged ``misconfigured`` and its docs start with the problems, which its first task fails with.
"""

from __future__ import annotations

import datetime as dt

from retraining.config import Settings
from retraining.notify import RetrainNotifier
from retraining.params import retrain_params
from retraining.run_outcome import FAILED, SUCCESS, RecordOutcome

MISCONFIGURED = "misconfigured"
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
}


def schedule(settings: Settings, *, watch_dataset: bool):
    """The cron schedule, or (``watch_dataset``) the cron tick *or* a change of the dataset's content."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    cron = None if settings.schedule is None else CronTriggerTimetable(settings.schedule, timezone="UTC",
                                                                      run_immediately=dt.timedelta(0))
    if not watch_dataset or not settings.watch_seconds:
        return cron
    from retraining.dataset_watch import dataset_asset

    asset = dataset_asset(uri=settings.dataset_uri, store=settings.artifact_store, poll_interval=settings.watch_seconds)
    return [asset] if cron is None else AssetOrTimeSchedule(timetable=cron, assets=[asset])


def described(settings: Settings, *, doc_md: str, tags: list[str]) -> dict:
    """``doc_md``, ``tags`` and the failure notification of a DAG; its settings' problems shown first."""
    if settings.problems:
        warning = "\n".join(f"> - `{problem}`" for problem in settings.problems)
        doc_md = (f"> **Misconfigured: every run fails at its first task** until these variables of the Airflow "
                  f"deployment are fixed:\n>\n{warning}\n\n{doc_md.strip()}")
        tags = [*tags, MISCONFIGURED]
    notifier = RetrainNotifier("run_failed", "{{ dag.dag_id }} run {{ run_id }} failed: {{ reason }}",
                               conn_id=settings.notify_conn_id)
    return {"doc_md": doc_md, "tags": tags, "on_failure_callback": notifier}


def dag_kwargs(settings: Settings, *, doc_md: str, tags: list[str], watch_dataset: bool = False) -> dict:
    """Keyword arguments of ``@dag`` for a retraining DAG (how each run ends is recorded in the registry)."""
    description = described(settings, doc_md=doc_md, tags=["retraining", "digits", *tags])
    return {
        "schedule": schedule(settings, watch_dataset=watch_dataset),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
        "params": retrain_params(settings.model),
        **description,
        "on_failure_callback": [description["on_failure_callback"], RecordOutcome(FAILED, settings)],
        "on_success_callback": RecordOutcome(SUCCESS, settings),
    }
