"""How a retraining run ended, in its registry run record: ``state`` (``success`` or ``failed``), the
task that failed and when. The DAG's success and failure callbacks write it (:class:`RecordOutcome`),
so the Models view's runs table lists every finished run, also one that failed before its gate
wrote the record (such a record has no candidates and no ``gate``)."""

from __future__ import annotations

import datetime as dt
import logging

from retraining.config import Settings

log = logging.getLogger(__name__)

SUCCESS, FAILED = "success", "failed"


def ended(record: dict | None, *, dag_id: str, state: str, failed_task: str = "", reason: str = "",
          at: str | None = None) -> dict:
    """``record`` (None: the run never reached the gate) with how the run ended; a run that succeeds after a
    cleared failure keeps no failed task. A record of another DAG's run of the same id (``retrain`` and
    ``retrain_kubeflow`` share the schedule, hence ``scheduled__<tick>``) is refused (``ValueError``)."""
    if record and record.get("dag_id") not in (None, "", dag_id):
        raise ValueError(f"run record of {record['dag_id']} has this run id: not recording {dag_id}'s outcome there")
    at = at or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    kept = {k: v for k, v in (record or {"dag_id": dag_id, "recorded_at": at, "candidates": []}).items()
            if k not in ("failed_task", "end_reason")}
    failure = {"failed_task": failed_task, "end_reason": reason} if state == FAILED else {}
    return {**kept, "state": state, "finished_at": at, **failure}


def record_outcome(registry_uri: str, run_id: str, *, dag_id: str, state: str, failed_task: str = "",
                   reason: str = "", model: str = "digits") -> dict:
    """Add how run ``run_id`` of ``model`` ended to its record (creating the record of a run that never reached
    the gate); an unreadable record is left as it is (:class:`registry.UnreadableEntry`)."""
    from retrain_steps import artifacts, registry

    try:
        record = registry.run_record(registry_uri, run_id, model)
    except registry.UnreadableEntry:
        raise
    except artifacts.ArtifactError:
        record = None
    updated = ended(record, dag_id=dag_id, state=state, failed_task=failed_task, reason=reason)
    registry.record_run(registry_uri, run_id, updated, model)
    return updated


def _task_name(ti) -> str:
    if ti is None:
        return ""
    index = getattr(ti, "map_index", -1)
    return f"{ti.task_id}[{index}]" if isinstance(index, int) and index >= 0 else ti.task_id


class RecordOutcome:
    """A DAG callback (``on_success_callback`` / ``on_failure_callback``) recording how the run ended.

    Runs where Airflow runs DAG callbacks (the DAG processor); a registry it cannot write is logged,
    never raised (the run's state is Airflow's either way).
    """

    def __init__(self, state: str, settings: Settings) -> None:
        self.state, self.settings = state, settings

    def __call__(self, context) -> None:
        from retraining import store_connection

        dag_run, dag = context.get("dag_run"), context.get("dag")
        run_id = getattr(dag_run, "run_id", None) or context.get("run_id", "")
        dag_id = getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", "")
        failed_task = _task_name(context.get("ti")) if self.state == FAILED else ""
        model = self.settings.model_of(context.get("params"))
        try:
            store_connection.apply_to_process(self.settings.artifact_conn_id)
            record_outcome(self.settings.registry, run_id, dag_id=dag_id, state=self.state, failed_task=failed_task,
                           reason=str(context.get("reason") or ""), model=model)
        except Exception as err:  # noqa: BLE001 (a store that is down or refuses, InvalidId, UnreadableEntry)
            log.warning("run %s of %s ended %s, not recorded in the registry %s: %s", run_id, dag_id, self.state,
                        self.settings.registry, err)
