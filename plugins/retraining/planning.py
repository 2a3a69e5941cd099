"""What every retraining DAG shares before its steps: ``plan`` (the data steps' arguments) and
``plan_candidates`` (one candidate per learning rate, warm-started from production on request).
Bad requests, and a bad deployment setting (``Settings.problems``: the DAG still parsed), fail these
tasks at once, without retries, with a message that says what to change."""

from __future__ import annotations

from airflow.sdk import task

from retraining import commands, store_connection
from retraining.config import Settings


def planning_head(settings: Settings):
    """Add ``plan`` and ``plan_candidates`` to the current DAG (its first tasks); return their XComArgs."""

    @task(multiple_outputs=True)
    def plan(params: dict | None = None, run_id: str | None = None) -> dict:
        """Arguments and output folders of the data steps for this run."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            settings.check()
            return commands.data_steps(
                params=params, run_id=run_id, artifact_store=settings.artifact_store,
                default_dataset=settings.dataset_uri, allowed=settings.dataset_allowed,
            )
        except ValueError as err:  # a bad dataset location is not retried
            raise AirflowFailException(str(err)) from None

    @task
    def plan_candidates(params: dict | None = None, run_id: str | None = None) -> list[dict]:
        """One candidate per learning rate, with its train and evaluate arguments."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            settings.check()
            return commands.candidates(params=params, run_id=run_id, artifact_store=settings.artifact_store,
                                       init_from=warm_start_model(settings, params))
        except ValueError as err:  # e.g. more GPUs than a candidate uses: not retried
            raise AirflowFailException(str(err)) from None

    return plan(), plan_candidates()


def warm_start_model(settings: Settings, params: dict) -> str | None:
    """The production version's folder when the run asks for a warm start; refuse what cannot work."""
    if not params.get("warm_start"):
        return None
    from retrain_steps import layout, registry

    store_connection.apply_to_process(settings.artifact_conn_id)
    version = registry.production_version(settings.registry)
    if version is None:
        raise ValueError("warm start: nothing is in production yet; run once without warm start")
    framework = registry.card(settings.registry, version).get("framework")
    if framework != params["framework"]:
        raise ValueError(f"warm start: production {version} is a {framework} model; choose the framework "
                         f"{framework} or turn warm start off")
    return layout.version_folder(settings.registry, version)
