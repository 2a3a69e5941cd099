"""What every retraining DAG shares before its steps: ``plan`` (the data steps' arguments) and
``plan_candidates`` (one candidate per learning rate, warm-started from production on request).
Bad requests, and a bad deployment setting (``Settings.problems``: the DAG still parsed), fail these
tasks at once, without retries, with a message that says what to change and no traceback
(:mod:`retraining.bad_input`).

A run's dataset may come from the store, the deployment's ``RETRAIN_DATASET_ALLOWED`` and the URI
prefixes of the Airflow Variable ``retrain_dataset_allowed`` (:func:`dataset_allowed`), which ``plan``
reads when it runs: setting it needs no restart, and DAG parsing never reads it."""

from __future__ import annotations

from airflow.sdk import task
from retrain_steps.artifacts import ALLOW_VARIABLE

from retraining import bad_input, commands, store_connection
from retraining.config import Settings, uri_prefixes
from retraining.params import AUTO_ARCHITECTURE, CNN


def planning_head(settings: Settings):
    """Add ``plan`` and ``plan_candidates`` to the current DAG (its first tasks); return their XComArgs."""

    @task(multiple_outputs=True, retry_policy=bad_input.RETRY_POLICY)
    def plan(params: dict | None = None, run_id: str | None = None) -> dict:
        """Arguments and output folders of the data steps for this run; refuses what the train step could not train
        (:func:`commands.train_options`) before anything downloads."""
        try:
            settings.check()
            commands.train_options(params, settings.artifact_store)
            model = run_model(settings, params)
            return {**commands.data_steps(
                params=params, run_id=run_id, artifact_store=settings.artifact_store,
                default_dataset=settings.dataset_uri, allowed=dataset_allowed(settings),
            ), "model": model}
        except ValueError as err:  # a bad dataset location, allow-list entry, model or training option: not retried
            bad_input.fail(str(err))

    @task(retry_policy=bad_input.RETRY_POLICY)
    def plan_candidates(params: dict | None = None, run_id: str | None = None) -> list[dict]:
        """One candidate per learning rate, with its train and evaluate arguments."""
        try:
            settings.check()
            commands.train_options(params, settings.artifact_store)  # plan's refusals first, then the warm start's
            return commands.candidates(params=params, run_id=run_id, artifact_store=settings.artifact_store,
                                       init_from=warm_start_model(settings, params))
        except ValueError as err:  # e.g. more GPUs than a candidate uses: not retried
            bad_input.fail(str(err))

    return plan(), plan_candidates()


def model_check(settings: Settings):
    """A task that fails (bad input) when the prepared data's classes or input differ from the run's model's
    production (:func:`check_run_fits_model`): the local DAG runs it between ``preprocess`` and ``train``."""

    @task(retry_policy=bad_input.RETRY_POLICY)
    def check_model(data: dict, params: dict | None = None) -> str:
        """The data fits the model it is meant for (or the run starts that model)."""
        from retrain_steps import artifacts, layout

        store_connection.apply_to_process(settings.artifact_conn_id)
        spec = artifacts.read_json(layout.file_in(data["splits"], layout.SPEC))
        try:
            return check_run_fits_model(settings, data["model"], spec)
        except ValueError as err:
            bad_input.fail(str(err))

    return check_model


def run_model(settings: Settings, params: dict) -> str:
    """The model a run trains (its form's, else the deployment's ``RETRAIN_MODEL``), checked against ``new_model``:
    ``ValueError`` for a bad name, for a new model whose name has a production version already, and for a model
    other than the deployment's that has none without ``new_model`` (a typo cannot start a model)."""
    from retrain_steps import registry

    model = registry.check_model_name(settings.model_of(params))
    if params.get("new_model") or model != settings.model:
        store_connection.apply_to_process(settings.artifact_conn_id)
        version = registry.production_version(settings.registry, model)
        if params.get("new_model") and version is not None:
            raise ValueError(f"model {model!r} exists (production {version}): 'New model' starts a model; "
                             f"name another model, or untick 'New model' to retrain {model}")
        if not params.get("new_model") and version is None:  # a typo must not start a model
            known = ", ".join(registry.models(settings.registry)) or "none yet"
            raise ValueError(f"model {model!r} has no production version (models: {known}); tick 'New model' "
                             "to start it")
    return model


def check_run_fits_model(settings: Settings, model: str, spec: dict) -> str:
    """``model`` when data of input spec ``spec`` (a ``spec.json``) can retrain it; ``ValueError`` naming both
    when the model's production predicts other classes or takes other inputs."""
    from retrain_steps import registry

    production = registry.production(settings.registry, model)
    if production is not None and (reason := registry.spec_mismatch(production, spec)):
        raise ValueError(f"this run cannot retrain model {model!r}: its production {production['version']} {reason}; "
                         "to train on this data, name another model and tick 'New model'")
    return model


def dataset_allowed(settings: Settings) -> tuple[str, ...]:
    """Where this run's dataset may come from: the deployment's prefixes (the store, ``RETRAIN_DATASET_ALLOWED``)
    and those of the Airflow Variable ``retrain_dataset_allowed`` as it is now (a JSON list or a comma-separated
    list; unset: none). A bad entry raises ``ValueError`` naming the Variable and the entry."""
    from airflow.sdk import Variable

    return (*settings.dataset_allowed, *uri_prefixes(Variable.get(ALLOW_VARIABLE, default=None) or "",
                                                     f"Airflow Variable {ALLOW_VARIABLE}"))


def warm_start_model(settings: Settings, params: dict) -> str | None:
    """The production version's folder when the run asks for a warm start; refuse what cannot work."""
    if not params.get("warm_start"):
        return None
    from retrain_steps import layout, registry

    store_connection.apply_to_process(settings.artifact_conn_id)
    model = settings.model_of(params)
    version = registry.production_version(settings.registry, model)
    if version is None:
        raise ValueError(f"warm start: model {model} has nothing in production yet; run once without warm start")
    card = registry.card(settings.registry, version)
    framework = card.get("framework")
    if framework != params["framework"]:
        raise ValueError(f"warm start: production {version} is a {framework} model; choose the framework "
                         f"{framework} or turn warm start off")
    trained = (card.get("params") or {}).get("architecture") or CNN  # versions from before the field: the CNN
    wanted = params.get("architecture") or AUTO_ARCHITECTURE
    if wanted not in (AUTO_ARCHITECTURE, trained):
        raise ValueError(f"warm start: production {version} is a {trained} model, not {wanted}; choose the "
                         f"architecture {trained} (or Automatic: the production model's) or turn warm start off")
    return layout.version_folder(settings.registry, version)
