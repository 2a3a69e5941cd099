"""
### Retrain the digits classifier on Kubeflow Pipelines

The same steps as `retrain` (**download → preprocess → train candidates → evaluate**) run as one
Kubeflow Pipelines run (`images/steps/pipelines/retrain.yaml`, submitted through the KFP REST API
by `KubeflowPipelinesRunOperator`; the **Kubeflow Run** button links to it), then the same
**select best → gate → package → deploy** release stage as `retrain`.

Connection `kubeflow_default` (type *Kubeflow Pipelines*): host = the KFP endpoint; auth in the
extra (`none`, `token`, `sa_token_file`, `cookie`). The pipeline gets the exact step arguments
the pods and the local backend get, so it writes to the same artifact-store paths.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from kubeflow_pipelines.operators.kubeflow import KubeflowPipelinesRunOperator
from retraining import config
from retraining.dag_defaults import dag_kwargs
from retraining.planning import planning_head
from retraining.release import release_tasks

SETTINGS = config.parse_safe(kubeflow=True)  # never raises: a bad value fails the first tasks, not the import
PIPELINE_PACKAGE = str(config.PROJECT_ROOT / "images" / "steps" / "pipelines" / "retrain.yaml")


@dag(dag_id="retrain_kubeflow", **dag_kwargs(SETTINGS, doc_md=__doc__, tags=["kubeflow"]))
def retrain_kubeflow():
    @task
    def pipeline_arguments(data: dict, candidates: list[dict], params: dict | None = None) -> dict:
        """The KFP pipeline's parameters: the step arguments, and the GPUs per train task."""
        return {
            "download_argv": data["download"],
            "preprocess_argv": data["preprocess"],
            "candidates": [{"train": c["train"], "evaluate": c["evaluate"]} for c in candidates],
            "gpus": int(params["gpus"]),
        }

    data, candidates = planning_head(SETTINGS)
    kubeflow_run = KubeflowPipelinesRunOperator(
        task_id="kubeflow_run",
        kfp_conn_id=SETTINGS.kfp.conn_id,
        pipeline_package=PIPELINE_PACKAGE,
        pipeline_name=SETTINGS.kfp.pipeline_name,
        pipeline_params=pipeline_arguments(data, candidates),
        experiment="retrain-digits",
        # the deployment's step images (registry and tag, as the pods use), not the compiled placeholders
        images={"steps": SETTINGS.pods.image("steps"), "train": SETTINGS.pods.image("train")},
        node_selector=dict([SETTINGS.pods.gpu_node_selector]),  # GPU nodes as the pods path sends them
        run_name="retrain-{{ run_id }}",
        poll_interval=SETTINGS.kfp.poll_seconds,
        timeout_seconds=SETTINGS.kfp.timeout_seconds,
    )
    best = release_tasks(candidates=candidates, data=data, settings=SETTINGS)
    kubeflow_run >> best


retrain_kubeflow()
