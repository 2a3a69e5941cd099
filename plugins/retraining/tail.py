"""What every retraining DAG shares around its steps: the planning head (``plan``,
``plan_candidates``) and the tail (select the best candidate → gate → package → deploy)."""

from __future__ import annotations

import logging

from airflow.sdk import task

from retraining import commands, deploy, selection, store_connection
from retraining.config import Settings
from retraining.launcher import step_task

log = logging.getLogger(__name__)


def planning_head(settings: Settings):
    """Add ``plan`` and ``plan_candidates`` to the current DAG; return their XComArgs."""

    @task(multiple_outputs=True)
    def plan(params: dict | None = None, run_id: str | None = None) -> dict:
        """Arguments and output folders of the data steps for this run."""
        return commands.data_steps(
            params=params, run_id=run_id, artifact_store=settings.artifact_store, default_dataset=settings.dataset_uri
        )

    @task
    def plan_candidates(params: dict | None = None, run_id: str | None = None) -> list[dict]:
        """One candidate per learning rate, with its train and evaluate arguments."""
        return commands.candidates(params=params, run_id=run_id, artifact_store=settings.artifact_store)

    return plan(), plan_candidates()


def candidate_metrics(candidate: dict) -> dict:
    """A candidate's URIs plus its validation (train) and test (evaluate) metrics from the store."""
    from retrain_steps import artifacts

    train = artifacts.read_json(artifacts.join(candidate["model"], "metrics.json"))
    test = artifacts.read_json(artifacts.join(candidate["evaluation"], "metrics.json"))
    return {
        **candidate,
        "val_accuracy": train.get("val_accuracy"),
        "val_loss": train.get("val_loss"),
        "test_accuracy": test.get("accuracy"),
        "version": deploy.model_version(candidate["model"]),
    }


def selection_tail(*, candidates, dataset, settings: Settings):
    """Add the shared tail to the current DAG; ``candidates`` and ``dataset`` may be XComArgs."""

    @task(multiple_outputs=True)
    def select_best(candidates: list[dict], dataset: str, run_id: str | None = None) -> dict:
        store_connection.apply_to_process()
        scored = [candidate_metrics(c) for c in candidates]
        for c in scored:
            log.info("candidate %s: lr=%s val_accuracy=%s test_accuracy=%s", c["index"], c["learning_rate"],
                     c["val_accuracy"], c["test_accuracy"])
        best = selection.select_best(scored)
        log.info("best candidate: %s", best)
        arguments = commands.package_arguments(
            candidate=best, dataset=dataset, registry=settings.registry, run_id=run_id or ""
        )
        return {"candidate": best, "package_arguments": arguments}

    @task.short_circuit
    def gate(candidate: dict, params: dict | None = None) -> bool:
        from retrain_steps import registry

        store_connection.apply_to_process()
        decision = selection.gate(
            candidate, registry.production(settings.registry),
            min_accuracy=float(params["min_accuracy"]), margin=float(params["margin"]),
        )
        log.info("gate: %s: %s", "deploy" if decision.deploy else "keep production", decision.reason)
        return decision.deploy

    @task
    def deploy_model(candidate: dict) -> dict:
        from retrain_steps import registry

        store_connection.apply_to_process()
        version = candidate["version"]
        card = registry.card(settings.registry, version)
        if settings.backend == "kubernetes":
            from retraining.pods import deployment_settings

            target = deployment_settings()
            deploy.deploy_kubernetes(
                deploy.helm_upgrade_command(
                    chart=target["chart"], bento_uri=card["bento"]["uri"], version=version,
                    namespace=target["namespace"],
                )
            )
            return {"version": version, "backend": "kubernetes"}
        return {"backend": "local", **deploy.deploy_local(settings.registry, version)}

    best = select_best(candidates, dataset)
    package = step_task(
        "package", arguments=best["package_arguments"], cmds=commands.PACKAGE_CMDS, settings=settings,
        python_bin=settings.serving_python,
    )
    go = gate(best["candidate"])
    go >> package >> deploy_model(best["candidate"])
    return best
