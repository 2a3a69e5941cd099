"""The retraining steps as a Kubeflow Pipelines v2 pipeline: download → preprocess → train
(one task per candidate, in parallel) → evaluate.

Each component is a lightweight Python component whose base image is the step's image and
whose body calls the step CLI's entry function, ``retrain_steps.__main__.main(argv)``, through the
step protocol (``retrain_steps.protocol.call_step``: exit 2, bad input, raises ``StepFailed`` saying
so), with the argument lists the Airflow side builds (``plugins/retraining/commands.py``): the same CLI
and arguments as the pods and the local backend. Outputs go to the artifact store URIs inside those
arguments; the components also emit ``Metrics`` and ``ClassificationMetrics`` so the KFP UI shows
validation/test accuracy and the confusion matrix.

Compile (in the kfp environment, ``.venv-kfp``)::

    python -m pipelines.retrain images/steps/pipelines/retrain.yaml

The compiled images are placeholders (``<registry>/steps:latest``, ``<registry>/train:latest``):
the Airflow operator replaces them with the deployment's images at submission (``images=``).
The step images carry kfp (``requirements/kfp-runtime.txt``), so no component installs it at
start (air-gapped clusters work). Credentials come from the ``artifact-store`` Secret, as on
the pods path; train tasks get the GPU settings of ``use_gpus``.
"""


import os
import sys

from kfp import compiler, dsl, kubernetes
from kfp.dsl import ClassificationMetrics, Metrics, Output
from retrain_steps.accelerators import DEFAULT_GPU_NODE_SELECTOR, GPU_RESOURCE, GPU_TOLERATION

REGISTRY = os.environ.get("RETRAIN_IMAGE_REGISTRY", "ghcr.io/example/retrain")
TAG = os.environ.get("RETRAIN_IMAGE_TAG", "latest")
STEPS_IMAGE = f"{REGISTRY}/steps:{TAG}"
TRAIN_IMAGE = f"{REGISTRY}/train:{TAG}"
ARTIFACT_SECRET = os.environ.get("RETRAIN_ARTIFACT_SECRET", "artifact-store")


@dsl.component(base_image=STEPS_IMAGE, install_kfp_package=False)
def run_step(argv: list) -> str:
    """Run one step CLI (download, preprocess) and return its output folder URI."""
    from retrain_steps.__main__ import main
    from retrain_steps.protocol import call_step

    call_step(main, argv)  # the step protocol: exit 2 (bad input) and 1 raise StepFailed, which says which
    return argv[argv.index("--output") + 1]


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train(argv: list, gpus: int, metrics: Output[Metrics]) -> str:
    """Train one candidate on ``gpus`` GPUs (0: CPU); log its validation metrics, architecture and pretrained
    weights (``argv`` carries ``--architecture``/``--pretrained``, as on the pods)."""
    from retrain_steps import artifacts, layout
    from retrain_steps.__main__ import main
    from retrain_steps.protocol import call_step

    call_step(main, argv)
    output = argv[argv.index("--output") + 1]
    result = artifacts.read_json(layout.file_in(output, layout.METRICS))
    for key in ("val_accuracy", "val_loss", "learning_rate", "samples_per_s"):
        metrics.log_metric(key, float(result[key]))
    metrics.metadata["model_uri"] = output
    metrics.metadata["gpus"] = gpus
    metrics.metadata["architecture"] = result.get("architecture", "cnn")  # models trained before it was recorded: cnn
    if result.get("stem"):  # a standard architecture's
        metrics.metadata["stem"] = result["stem"]
    if result.get("pretrained"):
        metrics.metadata["pretrained"] = result["pretrained"]["uri"]
    return output


@dsl.component(base_image=STEPS_IMAGE, install_kfp_package=False)
def evaluate(argv: list, metrics: Output[Metrics], confusion: Output[ClassificationMetrics]) -> str:
    """Evaluate one candidate on the test split; log accuracy and the confusion matrix (its rows and
    columns are the dataset's classes, named as the evaluate step's metrics name them)."""
    from retrain_steps import artifacts, layout
    from retrain_steps.__main__ import main
    from retrain_steps.protocol import call_step

    call_step(main, argv)
    output = argv[argv.index("--output") + 1]
    result = artifacts.read_json(layout.file_in(output, layout.METRICS))
    metrics.log_metric("test_accuracy", float(result["test_accuracy"]))
    metrics.log_metric("macro_f1", float(result["macro_f1"]))
    confusion.log_confusion_matrix(result["class_names"], result["confusion_matrix"])
    return output


def use_gpus(task: dsl.PipelineTask, count) -> dsl.PipelineTask:
    """The one place for GPU settings: accelerator type and limit, GPU taint toleration, GPU nodes."""
    task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(count)
    kubernetes.add_toleration(task, **GPU_TOLERATION)
    key, value = DEFAULT_GPU_NODE_SELECTOR  # the deployment's RETRAIN_GPU_NODE_SELECTOR replaces it at submission
    kubernetes.add_node_selector(task, label_key=key, label_value=value)
    return task


def use_artifact_store(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The artifact store's credentials from the Kubernetes Secret (as ``envFrom`` on the pods path)."""
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    kubernetes.use_secret_as_env(task, secret_name=ARTIFACT_SECRET, secret_key_to_env={k: k for k in keys})
    # endpoint and region are absent for AWS S3 itself
    for key in ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        kubernetes.use_secret_as_env(task, secret_name=ARTIFACT_SECRET, secret_key_to_env={key: key}, optional=True)
    return task


@dsl.pipeline(name="retrain-digits", description="download → preprocess → train candidates → evaluate")
def retrain_pipeline(
    download_argv: list,
    preprocess_argv: list,
    candidates: list,
    gpus: int = 1,
):
    """``candidates``: one dict per learning rate with ``train`` and ``evaluate`` argument lists."""
    download = use_artifact_store(run_step(argv=download_argv).set_display_name("download"))
    preprocess = use_artifact_store(run_step(argv=preprocess_argv).set_display_name("preprocess")).after(download)
    with dsl.ParallelFor(candidates) as candidate:
        trained = use_gpus(use_artifact_store(train(argv=candidate.train, gpus=gpus)), gpus).after(preprocess)
        use_artifact_store(evaluate(argv=candidate.evaluate)).after(trained)


def compile_to(path: str) -> None:
    compiler.Compiler().compile(retrain_pipeline, package_path=path)


if __name__ == "__main__":
    compile_to(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "retrain.yaml"))
