"""
### Promote or roll back a model version

Deploys a registered model version, or rolls back to the version production replaced, through
the same path as `retrain`'s `deploy_model` (local: the model server follows the registry;
kubernetes: `helm upgrade` of `charts/serving` from a worker, which holds the deploy RBAC).
The **Models** view triggers it; so can you (*Trigger* with the form below). A compare-and-swap:
when production is no longer *Expected production*, nothing is deployed and the run fails saying
which promotion won. Emits a `model-in-production` asset event and a notification.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from retrain_steps.registry import MAX_REASON_CHARS
from retraining import config
from retraining.dag_defaults import DEFAULT_ARGS
from retraining.model_assets import model_assets
from retraining.notify import RetrainNotifier

SETTINGS = config.settings()
PRODUCTION_ASSET = model_assets(SETTINGS)[1]


@dag(
    dag_id="promote_model",
    schedule=None,
    is_paused_upon_creation=False,  # the Models view's requests run without an unpause first
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    on_failure_callback=RetrainNotifier("run_failed", "{{ dag.dag_id }} run {{ run_id }} failed: {{ reason }}"),
    tags=["retraining", "models", SETTINGS.backend],
    doc_md=__doc__,
    params={
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
        "actor": Param("", type="string", title="On behalf of",
                       description="Who asked (the Models view fills it in); else the triggering user."),
    },
)
def promote_model():
    @task(outlets=[PRODUCTION_ASSET])
    def deploy_version(params: dict | None = None, dag_run=None, outlet_events=None) -> dict:
        from retrain_steps import registry

        from airflow.sdk.exceptions import AirflowFailException
        from retraining import announce, deploy, store_connection

        store_connection.apply_to_process()
        actor = params["actor"] or f"airflow:{getattr(dag_run, 'triggering_user_name', None) or 'unknown'}"
        expected = params["expected"] if params["expected"] else registry.CURRENT
        try:
            if params["action"] == "rollback":
                entry = deploy.rollback(SETTINGS, actor=actor, reason=params["reason"], expected=expected,
                                        run_id=dag_run.run_id)
            elif params["version"]:
                entry = deploy.deploy(SETTINGS, params["version"], expected=expected, actor=actor,
                                      reason=params["reason"] or "promoted by hand", run_id=dag_run.run_id)
            else:
                raise ValueError("promote needs a Version")
        except (registry.StalePromotion, ValueError) as err:  # a retry would not change the answer
            raise AirflowFailException(str(err)) from None
        announce.production_changed(SETTINGS, entry, outlet_events[PRODUCTION_ASSET], dag_run)
        return entry

    deploy_version()


promote_model()
