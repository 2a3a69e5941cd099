"""
### Promote or roll back a model version

Deploys a registered version of a model, or rolls that model back to the version its production replaced, through
the same path as `retrain`'s `deploy_model` (local: the model server follows the registry;
kubernetes: `helm upgrade` of `charts/serving` from a worker, which holds the deploy RBAC).
The **Models** view triggers it; so can you (*Trigger* with the form below). A compare-and-swap:
when production is no longer *Expected production*, nothing is deployed and the run fails saying
which promotion won; promoting the version in production is refused too. The history records the
user who triggered the run as who did it. Emits a `model-in-production` asset event and a notification.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from retrain_steps.registry import MAX_REASON_CHARS
from retraining import bad_input, config
from retraining.dag_defaults import DEFAULT_ARGS, described
from retraining.model_assets import model_assets
from retraining.params import model_param

SETTINGS = config.parse_safe()  # never raises: a bad value fails the run's task, not the import
PRODUCTION_ASSET = model_assets(SETTINGS)[1]


def actor(dag_run) -> str:
    """Who asked: the user who triggered the run (Airflow authenticated them), never a value from the conf."""
    user = getattr(dag_run, "triggering_user_name", None)
    return f"user:{user}" if user else f"airflow:{dag_run.run_type}"


@dag(
    dag_id="promote_model",
    schedule=None,
    is_paused_upon_creation=False,  # the Models view's requests run without an unpause first
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    params={
        "model": model_param(SETTINGS.model, description="The model whose production changes (see Models); "
                             "a version of another model is refused."),
        "action": Param("promote", type="string", enum=["promote", "rollback"], title="Action",
                        description="promote: deploy Version; rollback: deploy the version production replaced."),
        "version": Param(None, type=["null", "string"], pattern="^[0-9a-f]{12}$", title="Version",
                         description="The registered version to promote (12 hex digits; see Models). "
                         "Ignored by rollback."),
        "expected": Param(None, type=["null", "string"], title="Expected production",
                          description="The version you expect in production now; refused if it changed. "
                          "Empty: whatever is in production when the task runs."),
        "reason": Param("", type="string", maxLength=MAX_REASON_CHARS, title="Reason",
                        description="Recorded in the promotion history."),
    },
    **described(SETTINGS, doc_md=__doc__, tags=["retraining", "models", SETTINGS.backend]),
)
def promote_model():
    @task(outlets=[PRODUCTION_ASSET], retry_policy=bad_input.RETRY_POLICY)
    def deploy_version(params: dict | None = None, dag_run=None, outlet_events=None) -> dict:
        from retrain_steps import registry

        from retraining import announce, deploy, store_connection

        try:
            SETTINGS.check()
            if "actor" in (dag_run.conf or {}):
                raise ValueError("the conf may not name an actor: the history records the user who triggered the run")
            store_connection.apply_to_process(SETTINGS.artifact_conn_id)
            expected = params["expected"] if params["expected"] else registry.CURRENT
            if params["action"] == "rollback":
                entry = deploy.rollback(SETTINGS, model=params["model"], actor=actor(dag_run), reason=params["reason"],
                                        expected=expected, run_id=dag_run.run_id)
            elif params["version"]:
                entry = deploy.deploy(SETTINGS, params["version"], model=params["model"], expected=expected,
                                      actor=actor(dag_run), reason=params["reason"] or "promoted by hand",
                                      run_id=dag_run.run_id)
            else:
                raise ValueError("promote needs a Version")
        except (registry.StalePromotion, ValueError) as err:  # a retry would not change the answer
            bad_input.fail(str(err))
        announce.production_changed(SETTINGS, entry, outlet_events[PRODUCTION_ASSET], dag_run)
        return entry

    deploy_version()


promote_model()
