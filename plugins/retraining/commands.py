"""The step commands of a retraining run: one pure function for both backends.

Whether a step runs as a local subprocess or as a pod, it gets the same ``cmds`` (the image's
entry point) and the same ``arguments`` built here, so there is no local-only code path.
"""

from __future__ import annotations

import re

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


def pretrained_uri(weights: str, artifact_store: str) -> str:
    """The URI of the form's *Pretrained weights*: a path inside the artifact store (``weights/resnet18.pth``) or a
    full URI inside it. ``ValueError`` naming it for anything else: a URI elsewhere (the train pods read only the
    store, with its credentials), a path climbing out of it (``..``, a symbolic link), the store itself."""
    from retrain_steps.artifacts import ArtifactError, StoreURI, check_allowed, join

    text = weights.strip()
    store = artifact_store.rstrip("/") + "/"
    try:
        if not text or text.endswith("/") or text.startswith("/"):  # a folder, or a local path read as the store's
            raise ArtifactError(text)
        target = check_allowed(text if "://" in text else join(artifact_store, text), [store])
        if target.path == StoreURI.parse(store).path.rstrip("/"):
            raise ArtifactError(text)
    except ArtifactError:
        raise ValueError(f"pretrained weights {weights!r}: not a file in the artifact store {store}; give a path "
                         f"inside it (e.g. weights/resnet18-imagenet.pth) or a URI under {store}") from None
    return str(target)


def train_options(params: dict, artifact_store: str) -> list[str]:
    """The ``train`` flags every candidate of a run shares beyond the basics: ``--augment``, ``--flip``,
    ``--patience``, ``--architecture`` (unless automatic), ``--pretrained`` with ``--pretrained-sha256``; each only
    when set, so a run of the form's defaults trains with the step's defaults.

    ``ValueError`` (bad input) for what cannot train: pretrained weights without their sha256 or the reverse, weights
    outside the store (:func:`pretrained_uri`), weights for the small CNN or for Keras (which trains only the small
    CNN), Keras with a standard architecture, pretrained weights with a warm start (both set the initial weights), an
    image size below what the architecture takes, flips without the augmentation they belong to."""
    from retraining.params import AUTO_ARCHITECTURE, CNN, SHA256

    framework = params.get("framework") or "torch"
    architecture = params.get("architecture") or AUTO_ARCHITECTURE
    weights, sha256 = (params.get("pretrained_weights") or "").strip(), (params.get("pretrained_sha256") or "").strip()
    if bool(weights) != bool(sha256):
        given, missing = ("Pretrained weights", "Pretrained weights sha256") if weights else \
            ("Pretrained weights sha256", "Pretrained weights")
        raise ValueError(f"{given} is set ({weights or sha256}) but {missing} is empty: give both, or neither")
    if sha256 and not re.fullmatch(SHA256, sha256):
        raise ValueError(f"Pretrained weights sha256 {sha256!r} is not 64 lower-case hex digits")
    if framework == "tensorflow" and architecture not in (AUTO_ARCHITECTURE, CNN):
        raise ValueError(f"architecture {architecture!r}: Keras (framework tensorflow) trains the small CNN only; "
                         f"choose the framework PyTorch for {architecture}, or the architecture 'Small CNN'")
    if weights and (framework == "tensorflow" or architecture == CNN):
        which = "Keras (framework tensorflow), which trains the small CNN only" if framework == "tensorflow" \
            else "the small CNN"
        raise ValueError(f"pretrained weights {weights!r} cannot start {which}: they are for a standard architecture "
                         "(choose the framework PyTorch and e.g. the architecture ResNet-18)")
    if weights and params.get("warm_start"):
        raise ValueError(f"pretrained weights {weights!r} and 'Warm start from production' both set the initial "
                         "weights: choose one")
    if params.get("flip") and not params.get("augment"):
        raise ValueError("'Horizontal flips' is part of the augmentation: tick 'Augment training images' too, or "
                         "untick 'Horizontal flips'")
    side = int(params.get("image_size") or 0)
    if side and architecture not in (AUTO_ARCHITECTURE, CNN):
        from retrain_steps.architectures import MIN_SIDE

        if side < MIN_SIDE.get(architecture, 0):
            raise ValueError(f"architecture {architecture!r} needs images of at least {MIN_SIDE[architecture]} px a "
                             f"side, and 'Image size' is {side}: raise it, or choose another architecture")
    options = []
    if params.get("augment"):
        options += ["--augment"]
    if params.get("flip"):
        options += ["--flip"]
    if params.get("patience"):
        options += ["--patience", str(params["patience"])]
    if architecture != AUTO_ARCHITECTURE:
        options += ["--architecture", architecture]
    if weights:
        options += ["--pretrained", pretrained_uri(weights, artifact_store), "--pretrained-sha256", sha256]
    return options


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
    options = train_options(params, artifact_store)
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
            *options,
        ]  # fmt: skip
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
