"""The release stage every retraining DAG shares after its steps: select the best candidate →
evaluate production on the same test split → gate → package → register → deploy (roll out, then
promote). :func:`release_tasks` adds these tasks; the functions above it read what they decide on."""

from __future__ import annotations

import logging

from airflow.sdk import task
from retrain_steps.layout import DEFAULT_MODEL

from retraining import announce, bad_input, commands, deploy, model_assets, notify, selection, store_connection
from retraining.config import Settings
from retraining.launcher import mapped_step_task, step_task
from retraining.planning import check_run_fits_model

log = logging.getLogger(__name__)


def candidate_metrics(candidate: dict) -> dict:
    """A candidate's URIs plus its validation (train) and test (evaluate) metrics from the store."""
    from retrain_steps import artifacts, layout, registry

    train: layout.TrainMetrics = artifacts.read_json(layout.file_in(candidate["model"], layout.METRICS))
    test: layout.Evaluation = artifacts.read_json(layout.file_in(candidate["evaluation"], layout.METRICS))
    return {
        **candidate,
        "val_accuracy": train.get("val_accuracy"),
        "val_loss": train.get("val_loss"),
        "test_accuracy": test.get("test_accuracy"),
        "version": registry.model_version(candidate["model"]),
    }


def candidate_spec(candidate: dict) -> dict:
    """The input spec a candidate was trained with (its ``model.json``), as ``spec.json`` holds it."""
    from retrain_steps import artifacts, layout, registry

    info = artifacts.read_json(layout.file_in(candidate["model"], layout.MODEL_INFO))
    return info.get("input_spec") or registry.LEGACY_SPEC


def measured_production(baseline: list[dict], current: str | None) -> dict | None:
    """Production's accuracy on this run's test split, from ``evaluate_production``.

    Raises ``ValueError`` when production changed while the run was going (the candidate was
    compared with another model): the run fails and says so, nothing is deployed.
    """
    from retrain_steps import artifacts, layout

    planned = baseline[0]["version"] if baseline else None
    if planned != current:
        raise ValueError(
            f"production changed during this run ({planned} when it started, {current} now); "
            "the candidate was not compared with the model in production: trigger the run again"
        )
    if current is None:
        return None
    metrics: layout.Evaluation = artifacts.read_json(layout.file_in(baseline[0]["evaluation"], layout.METRICS))
    if metrics.get("comparable") is False:  # production predicts other classes than this run's data
        return {"version": current, "test_accuracy": None, "incomparable": metrics.get("reason", "")}
    return {"version": current, "test_accuracy": metrics.get("test_accuracy")}


def run_record(best: dict, production: dict | None, decision: selection.GateDecision, dag_run) -> dict:
    """What the registry keeps of a run: its candidates (URIs, params, metrics), the best one, what it
    was compared with and the gate's decision; the Models view and the CLI read it."""
    import datetime as dt

    return {
        "dag_id": dag_run.dag_id,
        "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "candidates": best["candidates"],
        "best": best["candidate"]["index"],
        "production": production,
        "gate": {"deploy": decision.deploy, "reason": decision.reason},
    }


def release_tasks(*, candidates, data, settings: Settings):
    """Add the release stage to the current DAG; ``candidates`` and ``data`` (``plan``'s output) may be XComArgs.

    ``evaluate_production`` runs the production model on this run's test split (mapped over
    zero or one version), so the gate compares two accuracies measured on the same data.
    """

    @task(multiple_outputs=True, retry_policy=bad_input.RETRY_POLICY)
    def select_best(candidates: list[dict], dataset: str, model: str = DEFAULT_MODEL, dag_run=None) -> dict:
        store_connection.apply_to_process(settings.artifact_conn_id)
        scored = [candidate_metrics(c) for c in candidates]
        try:  # retrain_kubeflow prepares its data in the KFP run: the first task that can compare
            check_run_fits_model(settings, model, candidate_spec(scored[0]))
        except ValueError as err:
            bad_input.fail(str(err))
        for c in scored:
            log.info("candidate %s: lr=%s val_accuracy=%s test_accuracy=%s", c["index"], c["learning_rate"],
                     c["val_accuracy"], c["test_accuracy"])
        best = selection.select_best(scored)
        log.info("best candidate: %s", best)
        run_id, dag_id = (dag_run.run_id, dag_run.dag_id) if dag_run else ("", "")
        arguments = commands.package_arguments(
            candidate=best, dataset=dataset, registry=settings.registry, run_id=run_id, model=model
        )
        track = commands.track_arguments(candidates=candidates, dataset=dataset, model=model, run_id=run_id,
                                         dag_id=dag_id, artifact_store=settings.artifact_store,
                                         registry=settings.registry)
        return {"candidate": best, "candidates": scored, "package_arguments": arguments, "track_arguments": track}

    @task
    def plan_production(model: str = DEFAULT_MODEL, run_id: str | None = None) -> list[dict]:
        """The model's version in production now, to evaluate on this run's test split (none: ``[]``)."""
        from retrain_steps import registry

        store_connection.apply_to_process(settings.artifact_conn_id)
        return commands.production_baseline(
            run_id=run_id, artifact_store=settings.artifact_store, registry=settings.registry,
            production_version=registry.production_version(settings.registry, model),
        )

    @task.short_circuit(trigger_rule="none_failed", retry_policy=bad_input.RETRY_POLICY)
    def gate(best: dict, baseline: list[dict], model: str = DEFAULT_MODEL, params: dict | None = None,
             dag_run=None) -> bool:
        from retrain_steps import registry

        store_connection.apply_to_process(settings.artifact_conn_id)
        try:
            production = measured_production(baseline, registry.production_version(settings.registry, model))
        except ValueError as err:  # production moved under this run: a retry would compare the wrong model
            bad_input.fail(str(err))
        decision = selection.gate(
            best["candidate"], production, min_accuracy=float(params["min_accuracy"]), margin=float(params["margin"]),
        )
        log.info("gate: %s: %s", "deploy" if decision.deploy else "keep production", decision.reason)
        registry.record_run(settings.registry, dag_run.run_id, run_record(best, production, decision, dag_run), model)
        if not decision.deploy:
            text = (f"{dag_run.dag_id} run {dag_run.run_id} kept production "
                    f"{(production or {}).get('version') or '(none)'}: {decision.reason}")
            notify.send("gate_rejected", text, settings.notify_conn_id, dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                        version=best["candidate"]["version"], reason=decision.reason, model=model)
        return decision.deploy

    registered_asset, production_asset = model_assets.model_assets(settings)

    @task(outlets=[registered_asset])
    def register(candidate: dict, outlet_events=None) -> str:
        """The version ``package`` registered (its card must be there), as a ``model-versions`` asset event."""
        from retrain_steps import registry

        store_connection.apply_to_process(settings.artifact_conn_id)
        card = registry.card(settings.registry, candidate["version"])
        outlet_events[registered_asset].extra = model_assets.registered_extra(card)
        return card["version"]

    @task(outlets=[production_asset], retry_policy=bad_input.RETRY_POLICY)
    def deploy_model(candidate: dict, baseline: list[dict], model: str = DEFAULT_MODEL, dag_run=None,
                     outlet_events=None) -> dict:
        from retrain_steps import registry

        store_connection.apply_to_process(settings.artifact_conn_id)
        record = registry.run_record(settings.registry, dag_run.run_id, model)
        try:
            result = deploy.deploy(
                settings, candidate["version"], model=model, expected=baseline[0]["version"] if baseline else None,
                actor=f"airflow:{dag_run.dag_id}", run_id=dag_run.run_id, reason=record["gate"]["reason"],
            )
        except (registry.StalePromotion, registry.NoOpPromotion, registry.OtherModel) as err:  # a retry: the same answer
            registry.record_run(settings.registry, dag_run.run_id, {**record, "deploy": {"refused": str(err)}}, model)
            bad_input.fail(f"not deployed: {err}")
        registry.record_run(settings.registry, dag_run.run_id, {**record, "deploy": result}, model)
        announce.production_changed(settings, result, outlet_events[production_asset], dag_run)
        return result

    best = select_best(candidates, data["dataset"], data["model"])
    baseline = plan_production(data["model"])
    evaluate_production = mapped_step_task(
        "evaluate_production", arguments=baseline.map(commands.evaluate_arguments),
        cmds=commands.STEPS_CMDS, settings=settings, python_bin=settings.steps_python,
    )
    package = step_task(
        "package", arguments=best["package_arguments"], cmds=commands.PACKAGE_CMDS, settings=settings,
        python_bin=settings.serving_python,
    )
    go = gate(best, baseline, data["model"])
    best >> baseline >> evaluate_production >> go  # after select_best, hence after preprocess wrote the splits
    deployed = deploy_model(best["candidate"], baseline, data["model"])
    go >> package >> register(best["candidate"]) >> deployed
    # Experiment tracking (off unless MLFLOW_TRACKING_URI or the retrain_mlflow connection is set): a teardown, so it
    # runs however the release ended (the gate's short-circuit skips no teardown; without select_best's arguments it
    # skips) and its failure, shown on its own task, never fails the run: the model is gated and deployed whether
    # MLflow is up or not.
    track = step_task("track", arguments=best["track_arguments"], cmds=commands.STEPS_CMDS, settings=settings,
                      python_bin=settings.steps_python)
    deployed >> track.as_teardown()
    return best
