"""The step commands of a retraining run: one pure function for both backends.

Whether a step runs as a local subprocess or as a pod, it gets the same ``cmds`` (the image's
entry point) and the same ``arguments`` built here, so there is no local-only code path.
"""

from __future__ import annotations

from retrain_steps import layout
from retrain_steps.artifacts import safe_name

STEPS_CMDS = ["python", "-m", "retrain_steps"]
PACKAGE_CMDS = ["python", "-m", "serving.package"]


def safe_run_id(run_id: str) -> str:
    """A run id usable as one path segment (``manual__2026-01-01T00:00:00+00:00`` → ``manual__2026-01-01T00-00-00-00-00``)."""
    return safe_name(run_id)


def data_steps(
    *, params: dict, run_id: str, artifact_store: str, default_dataset: str, allowed: tuple[str, ...] = ()
) -> dict:
    """Arguments of ``download`` and ``preprocess`` and their output folders for one run.

    With ``allowed`` (URI prefixes), a dataset elsewhere raises ``ValueError`` before any step
    reads it, and ``download`` gets the same list (``--allow``) so the step refuses it too. The
    configured default dataset is always allowed.
    """
    from retrain_steps.artifacts import ArtifactError, check_allowed

    dataset = layout.download_folder(artifact_store, run_id)
    splits = layout.preprocess_folder(artifact_store, run_id)
    source = params.get("dataset_uri") or default_dataset
    download = ["download", "--source", source, "--output", dataset]
    if allowed:
        prefixes = [*allowed, default_dataset]
        try:
            check_allowed(source, prefixes)
        except ArtifactError as err:
            raise ValueError(str(err)) from None
        download += [arg for prefix in prefixes for arg in ("--allow", prefix)]
    if params.get("dataset_sha256"):
        download += ["--sha256", params["dataset_sha256"]]
    preprocess = ["preprocess", "--input", dataset, "--output", splits, "--seed", str(params.get("seed", 0)),
                  "--cache", layout.preprocess_cache(artifact_store),
                  "--image-size", str(params.get("image_size") or 0),
                  "--channels", str(params.get("channels") or "auto"),
                  "--profile", str(params.get("preprocessing") or "auto")]
    return {"download": download, "preprocess": preprocess, "dataset": dataset, "splits": splits}


def production_baseline(*, run_id: str, artifact_store: str, registry: str, production_version: str | None) -> list[dict]:
    """``[]`` with nothing in production, else the ``evaluate`` of the production version on this
    run's test split (the ``evaluate_production`` task), which the gate compares the candidate with."""
    if not production_version:
        return []
    model = layout.version_folder(registry, production_version)
    evaluation = layout.evaluate_folder(artifact_store, run_id, layout.PRODUCTION_EVALUATION)
    evaluate = ["evaluate", "--data", layout.preprocess_folder(artifact_store, run_id), "--model", model,
                "--output", evaluation]
    return [{"version": production_version, "model": model, "evaluation": evaluation, "evaluate": evaluate}]


MAX_GPUS_PER_TRAIN_POD = 1


def candidates(*, params: dict, run_id: str, artifact_store: str, init_from: str | None = None) -> list[dict]:
    """One candidate per learning rate: its output URIs and its ``train`` and ``evaluate`` arguments.

    Raises ``ValueError`` for more GPUs per train pod than training uses (one device per
    candidate; candidates train in parallel, one pod each). ``init_from``: the model folder every
    candidate fine-tunes (warm start), else each starts fresh.
    """
    gpus = int(params.get("gpus", 0) or 0)
    if gpus > MAX_GPUS_PER_TRAIN_POD:
        raise ValueError(
            f"gpus={gpus}: a candidate trains on one GPU; set 'GPUs per train pod' to 0 or 1 "
            "(several learning rates train in parallel, one pod and one GPU each)"
        )
    splits = layout.preprocess_folder(artifact_store, run_id)
    out = []
    from retraining.params import learning_rates

    for index, learning_rate in enumerate(learning_rates(params["learning_rates"])):
        model = layout.train_folder(artifact_store, run_id, index)
        evaluation = layout.evaluate_folder(artifact_store, run_id, index)
        train = [
            "train", "--input", splits, "--output", model,
            "--framework", params["framework"],
            "--learning-rate", repr(float(learning_rate)),
            "--epochs", str(params["epochs"]),
            "--batch-size", str(params["batch_size"]),
            "--seed", str(params.get("seed", 0)),
            "--device", "auto",
        ]  # fmt: skip
        if params.get("augment"):
            train += ["--augment"]
        if params.get("patience"):
            train += ["--patience", str(params["patience"])]
        if init_from:
            train += ["--init-from", init_from]
        evaluate = ["evaluate", "--data", splits, "--model", model, "--output", evaluation]
        out.append(
            {
                "index": index,
                "learning_rate": float(learning_rate),
                "model": model,
                "evaluation": evaluation,
                "train": train,
                "evaluate": evaluate,
            }
        )
    return out


def train_arguments(candidate: dict) -> list[str]:
    return candidate["train"]


def evaluate_arguments(candidate: dict) -> list[str]:
    return candidate["evaluate"]


def track_arguments(*, candidates: list[dict], dataset: str, model: str, run_id: str, dag_id: str,
                    artifact_store: str, registry: str) -> list[str]:
    """Arguments of ``python -m retrain_steps track`` for a run: its dataset, each candidate's train and evaluate
    folders, the production model's evaluation on this run's split, and the registry (versions, champion)."""
    arguments = ["track", "--model-name", model, "--run-id", run_id, "--dag-id", dag_id, "--dataset", dataset,
                 "--baseline", layout.evaluate_folder(artifact_store, run_id, layout.PRODUCTION_EVALUATION),
                 "--registry", registry]
    for candidate in candidates:
        arguments += ["--candidate", candidate["model"], candidate["evaluation"]]
    return arguments


def package_arguments(*, candidate: dict, dataset: str, registry: str, run_id: str, model: str) -> list[str]:
    """Arguments of ``python -m serving.package`` for the selected candidate of a run of ``model``."""
    return [
        "--model", candidate["model"],
        "--evaluation", candidate["evaluation"],
        "--dataset", dataset,
        "--registry", registry,
        "--run-id", run_id,
        "--model-name", model,
    ]  # fmt: skip
