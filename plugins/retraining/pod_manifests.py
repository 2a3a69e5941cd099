"""Every pod the kubernetes backend would launch for one run, as Kubernetes manifests.

Builds each step's KubernetesPodOperator exactly as the DAG does (same kwargs from
:mod:`retraining.pods`, same arguments from :mod:`retraining.commands`), renders its templates
with the run's params and asks the operator for its pod (``build_pod_request_obj``), with no
cluster. ``make manifests`` writes them to build/manifests/ for review; the tests validate
them against the Kubernetes OpenAPI schema.
"""

from __future__ import annotations

from types import SimpleNamespace

from retraining import commands
from retraining.config import Settings
from retraining.params import retrain_params


def default_params(**overrides) -> dict:
    params = {name: param.value for name, param in retrain_params().items()}
    return {**params, **overrides}


def render_pods(
    settings: Settings, params: dict, run_id: str = "manual__review", production_version: str | None = None
) -> dict[str, dict]:
    """``{name: manifest}`` for download, preprocess, train-<i>, evaluate-<i>, evaluate-production
    (when ``production_version`` is given), package and track, in the order a run launches them."""
    from kubernetes.client import ApiClient

    from retraining.pods import pod_operator_kwargs
    from retraining.step_pod import StepPodOperator

    data = commands.data_steps(params=params, run_id=run_id, artifact_store=settings.artifact_store,
                               default_dataset=settings.dataset_uri, allowed=settings.dataset_allowed)
    baseline = commands.production_baseline(run_id=run_id, artifact_store=settings.artifact_store,
                                            registry=settings.registry, production_version=production_version)
    candidates = commands.candidates(params=params, run_id=run_id, artifact_store=settings.artifact_store)
    planned = [("download", -1, commands.STEPS_CMDS, data["download"]),
               ("preprocess", -1, commands.STEPS_CMDS, data["preprocess"])]
    planned += [("train", c["index"], commands.STEPS_CMDS, c["train"]) for c in candidates]
    planned += [("evaluate", c["index"], commands.STEPS_CMDS, c["evaluate"]) for c in candidates]
    planned += [("evaluate_production", 0, commands.STEPS_CMDS, b["evaluate"]) for b in baseline]
    model = settings.model_of(params)
    package = commands.package_arguments(candidate=candidates[0], dataset=data["dataset"],
                                         registry=settings.registry, run_id=run_id, model=model)
    planned.append(("package", -1, commands.PACKAGE_CMDS, package))
    track = commands.track_arguments(candidates=candidates, dataset=data["dataset"], model=model, run_id=run_id,
                                     dag_id="retrain", artifact_store=settings.artifact_store, registry=settings.registry)
    planned.append(("track", -1, commands.STEPS_CMDS, track))
    pods = {}
    for step, index, cmds, arguments in planned:
        kwargs = pod_operator_kwargs(step, cmds=cmds, settings=settings)
        operator = StepPodOperator(task_id=step, arguments=arguments, **kwargs)
        ti = SimpleNamespace(dag_id="retrain", task_id=step, map_index=index, try_number=1)
        context = {"params": params, "ti": ti, "run_id": run_id, "dag": SimpleNamespace()}
        operator.render_template_fields(context)
        pod = operator.build_pod_request_obj(context, dry_run=True)
        name = step.replace("_", "-") if step == "evaluate_production" else step if index < 0 else f"{step}-{index}"
        pods[name] = ApiClient().sanitize_for_serialization(pod)
    return pods
