"""What every retraining DAG shares: start date, retries, run limits, tags and the Params form."""

from __future__ import annotations

import datetime as dt

from retraining.config import Settings
from retraining.params import retrain_params

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
}


def dag_kwargs(settings: Settings, *, doc_md: str, tags: list[str]) -> dict:
    """Keyword arguments of ``@dag`` for a retraining DAG."""
    return {
        "schedule": settings.schedule,
        "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
        "params": retrain_params(),
        "tags": ["retraining", "digits", *tags],
        "doc_md": doc_md,
    }
