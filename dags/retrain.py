"""
### Retrain the digits classifier

**download → preprocess → check model → train (one candidate per learning rate) → evaluate →
select best → gate → package → deploy** for one named model (the form's *Model*), on a cron schedule, when the configured dataset's content changes
(the `retrain-dataset` asset's watcher), or from the *Trigger DAG* form.

Each step is the step image's CLI (`python -m retrain_steps <step>`, `python -m serving.package`),
run as a local subprocess (`RETRAIN_BACKEND=local`, the default) or as a Kubernetes pod
(`RETRAIN_BACKEND=kubernetes`) with the same arguments. The gate deploys the best candidate
only if it meets *Minimum test accuracy* and beats the model in production by more than
*Margin*; otherwise the run ends green and the gate task logs why. Deploying promotes the
registered version (the local model server swaps it in live) or runs `helm upgrade` of
`charts/serving`.
"""

from __future__ import annotations

from airflow.sdk import dag
from retraining import commands, config
from retraining.dag_defaults import dag_kwargs
from retraining.launcher import mapped_step_task, step_task
from retraining.planning import model_check, planning_head
from retraining.release import release_tasks

SETTINGS = config.parse_safe()  # never raises: a bad value fails the run's first tasks, not the import


@dag(dag_id="retrain", **dag_kwargs(SETTINGS, doc_md=__doc__, tags=[SETTINGS.backend], watch_dataset=True))
def retrain():
    data, candidates = planning_head(SETTINGS)
    common = {"cmds": commands.STEPS_CMDS, "settings": SETTINGS, "python_bin": SETTINGS.steps_python}
    download = step_task("download", arguments=data["download"], **common)
    preprocess = step_task("preprocess", arguments=data["preprocess"], **common)
    fits_model = model_check(SETTINGS)(data)
    train = mapped_step_task("train", arguments=candidates.map(commands.train_arguments), **common)
    evaluate = mapped_step_task("evaluate", arguments=candidates.map(commands.evaluate_arguments), **common)
    best = release_tasks(candidates=candidates, data=data, settings=SETTINGS)
    download >> preprocess >> fits_model >> train >> evaluate >> best


retrain()
