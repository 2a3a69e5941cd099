"""Where everything lives in the artifact store and the model registry, and what its files hold.

The one owner of the store's layout: every other module asks it for a path and reads or writes
the typed records below, so a file name or a field name is written once. Only the standard
library (and :func:`retrain_steps.artifacts.join`) is used: the Airflow control plane, the steps,
the KFP components and the model server all import it.

A run's step outputs, under the artifact store (each folder's ``manifest.json`` is written last)::

    step-outputs/<run id>/download/    dataset.npz, dataset.json
    step-outputs/<run id>/preprocess/  splits.npz, spec.json, stats.json
    step-outputs/<run id>/train/<i>/   model.pt | model.keras, model.json, metrics.json (TrainMetrics), curve.png,
                                     ood.json (OodStatistics)
    step-outputs/<run id>/evaluate/<i>/ metrics.json (Evaluation), confusion.png; <i> = production: the
                                     production model on this run's test split
    cache/preprocess/<key>/          a preprocess output any run with the same inputs reuses
    datasets/.watch/<id>.json        the dataset watcher's last fingerprint of a dataset URI

The model registry (its own URI)::

    versions/<version>/              the weights, model.json and ood.json as trained, digits_classifier.bento
                                     (the bento every backend serves), card.json (written last, once)
    versions/<version>/reproduced-by/<run id>.json  a later run that trained the same weights again (create-only)
    models/<model>/promotions/<seq>.json  a named model's promotion history, one create-only entry per change
                                     of its production (its alias, in MLflow's words)
    models/<model>/runs/<run id>.json  a run of that model: its candidates and its gate decision

Versions are global (a version id is its weights' hash); each card names the model it was trained
for (``card["model"]``). A registry from before named models holds one model, :data:`DEFAULT_MODEL`:
its cards name none, and its ``promotions/``, ``runs/`` and ``production.json`` (the pointer of
registries from before the history) are read as that model's, never written; new entries go under
``models/``.
"""

from __future__ import annotations

import re
from typing import TypedDict

from retrain_steps.artifacts import join, safe_name, sha256

# Step output files
DATASET = "dataset.npz"  #: download: the canonical dataset (images, target, class_names)
DATASET_CARD = "dataset.json"  #: download: the dataset's source, version, classes and counts
SPLITS = "splits.npz"  #: preprocess: x/y of the train, val and test splits
SPEC = "spec.json"  #: preprocess: the input spec the splits were converted with
STATS = "stats.json"  #: preprocess: split sizes, seed and dataset digest
MODEL_INFO = "model.json"  #: train (and a registry version): framework, weights file, input spec
METRICS = "metrics.json"  #: train: :class:`TrainMetrics`; evaluate: :class:`Evaluation`
OOD_STATS = "ood.json"  #: train (and a registry version, and its bento's model): :class:`OodStatistics`
CURVE_PLOT = "curve.png"  #: train: the training curve
CONFUSION_PLOT = "confusion.png"  #: evaluate: the confusion matrix
TRACKED_TRAIN_METRICS = "train_metrics.json"  #: a candidate's MLflow run: train's metrics.json, by this name
TRACKED_EVALUATION = "evaluation.json"  #: a candidate's MLflow run: evaluate's metrics.json, by this name
MANIFEST = "manifest.json"  #: every step folder: key and sha256 of each output, written last
WEIGHTS = {"torch": "model.pt", "tensorflow": "model.keras"}  #: the weights file by framework

STEP_OUTPUTS = "step-outputs"  #: the store's folder of runs' step outputs (``runs`` is the registry's run records;
#: runs from before 2026-11-30 wrote their outputs under ``runs/``, which only their cards' lineage names)

# Registry files
CARD = "card.json"
BENTO = "digits_classifier.bento"
LEGACY_PRODUCTION = "production.json"
RECORD_SUFFIX = ".json"  #: promotion entries, run records and reproductions
REPRODUCED_BY = "reproduced-by"  #: a version's folder of the later runs that trained the same weights
PRODUCTION_EVALUATION = "production"  #: the evaluate folder of the production model in a run


class DatasetCard(TypedDict, total=False):
    """``download``'s ``dataset.json``: what a dataset version is (a card's ``dataset`` copies part of it)."""

    source: str
    source_sha256: str | None
    sha256: str
    version: str  #: the first 12 hex digits of the canonical dataset's sha256
    format: str
    samples: int
    class_names: list[str]
    class_counts: dict[str, int]
    image_size: list[int]
    channels: int
    profile: str
    skipped: dict[str, int]  #: files skipped, by reason
    sizes_seen: dict[str, int]
    modes_seen: dict[str, int]


class TrainMetrics(TypedDict, total=False):
    """``train``'s ``metrics.json``: the candidate's params, its best epoch and the per-epoch history."""

    framework: str
    learning_rate: float
    epochs: int
    batch_size: int
    seed: int
    best_epoch: int
    epochs_run: int
    patience: int
    augment: bool
    flip: bool  #: horizontal flips in the augmentation
    architecture: str  #: "cnn" or a torchvision classifier (retrain_steps.architectures); absent: cnn
    stem: str  #: a standard architecture's stem, "imagenet" or "small" (architectures.stem_for); none for the CNN
    pretrained: dict  #: fine-tuned from a weights file: uri, sha256, head_epochs, backbone_lr_scale...
    warm_start_from: str | None
    val_accuracy: float
    val_loss: float
    recipe: dict  #: torch path: the resolved recipe (retrain_steps.recipe.Recipe)
    samples_per_s: float
    history: list[dict]


class OodStatistics(TypedDict):
    """``train``'s ``ood.json``: what :mod:`retrain_steps.ood` scores served images against."""

    score: str  #: the score's name (:data:`retrain_steps.ood.SCORE`)
    threshold_quantile: float  #: the quantile of the held-out errors taken as the threshold
    threshold: float  #: the reconstruction error a score of 1 stands for
    held_out_samples: int  #: validation images measured
    held_out_quantiles: dict[str, float]  #: their scores at a few quantiles
    explained_variance: float  #: the training variance the subspace explains
    pool: int  #: consecutive flattened values averaged into one feature (absent: 1)
    mean: list[float]  #: the mean prepared training image, flattened and pooled
    components: list[list[float]]  #: the subspace's unit basis, one flattened, pooled image a row


class Evaluation(TypedDict, total=False):
    """``evaluate``'s ``metrics.json``, under the names the card, the gate and the Models view use.

    A model that predicts other classes than the test split has is not comparable: ``comparable``
    is False, ``test_accuracy`` None and ``reason`` says why.
    """

    test_accuracy: float | None
    macro_f1: float
    samples: int
    per_class: dict[str, dict]
    confusion_matrix: list[list[int]]
    class_names: list[str]
    framework: str
    comparable: bool
    reason: str


class CardMetrics(TypedDict):
    """A version card's ``metrics`` (and a run record's candidate metrics)."""

    test_accuracy: float | None
    macro_f1: float | None
    val_accuracy: float | None


#: the :class:`TrainMetrics` fields a card keeps as ``params``
TRAIN_PARAMS = ("framework", "architecture", "stem", "pretrained", "learning_rate", "epochs", "batch_size", "seed",
                "patience", "augment", "flip", "warm_start_from")


def card_metrics(evaluation: Evaluation, train: TrainMetrics) -> CardMetrics:
    """A card's metrics from its candidate's evaluation and training (``KeyError`` names a missing one)."""
    return {"test_accuracy": evaluation["test_accuracy"], "macro_f1": evaluation["macro_f1"],
            "val_accuracy": train["val_accuracy"]}


def card_params(train: TrainMetrics) -> dict:
    """A card's params: what its candidate was trained with."""
    return {name: train.get(name) for name in TRAIN_PARAMS}


def file_in(folder: str, name: str) -> str:
    """The URI of file ``name`` in a step output folder or a registry version folder."""
    return join(folder, name)


# A run's step outputs


def run_folder(artifact_store: str, run_id: str) -> str:
    """A run's step outputs (the run id made one path segment)."""
    return join(artifact_store, STEP_OUTPUTS, safe_name(run_id))


def download_folder(artifact_store: str, run_id: str) -> str:
    return join(run_folder(artifact_store, run_id), "download")


def preprocess_folder(artifact_store: str, run_id: str) -> str:
    return join(run_folder(artifact_store, run_id), "preprocess")


def train_folder(artifact_store: str, run_id: str, index: int) -> str:
    return join(run_folder(artifact_store, run_id), "train", str(index))


def evaluate_folder(artifact_store: str, run_id: str, index: int | str) -> str:
    """Candidate ``index``'s evaluation, or :data:`PRODUCTION_EVALUATION`'s."""
    return join(run_folder(artifact_store, run_id), "evaluate", str(index))


def preprocess_cache(artifact_store: str) -> str:
    """Preprocess outputs by input key, shared by every run."""
    return join(artifact_store, "cache", "preprocess")


def cache_entry(cache: str, key: str) -> str:
    return join(cache, key[:24])


def dataset_watch_record(artifact_store: str, dataset_uri: str) -> str:
    """Where the dataset watcher records the last fingerprint it saw of ``dataset_uri``."""
    return join(artifact_store, "datasets", ".watch", f"{sha256(dataset_uri.encode())[:16]}{RECORD_SUFFIX}")


# The registry

DEFAULT_MODEL = "digits"  #: ``RETRAIN_MODEL``'s default, and the one model of a registry from before named models
#: a model's name: 1 to 40 of a-z, 0-9 and '-', not starting or ending with '-' (a DNS label that leaves room for
#: the Helm release ``serving-<model>``, at most 53 characters)
MODEL_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
MODEL_NAME_RULE = "1 to 40 of a-z, 0-9 and '-', not starting or ending with '-'"


def models_folder(registry: str) -> str:
    return join(registry, "models")


def model_folder(registry: str, model: str) -> str:
    return join(models_folder(registry), model)


def versions_folder(registry: str) -> str:
    return join(registry, "versions")


def version_folder(registry: str, version: str) -> str:
    """A registered version's folder (a model folder: weights and ``model.json``, like a train output)."""
    return join(versions_folder(registry), version)


def version_file(registry: str, version: str, name: str) -> str:
    return join(version_folder(registry, version), name)


def card(registry: str, version: str) -> str:
    return version_file(registry, version, CARD)


def bento(registry: str, version: str) -> str:
    return version_file(registry, version, BENTO)


def promotions_folder(registry: str, model: str) -> str:
    return join(model_folder(registry, model), "promotions")


def legacy_promotions_folder(registry: str) -> str:
    """The promotion history of a registry from before named models (:data:`DEFAULT_MODEL`'s first entries)."""
    return join(registry, "promotions")


def promotion_entry(registry: str, model: str, seq: int) -> str:
    """Entry ``seq`` of a model's promotion history (zero-padded: listing order is ``seq`` order)."""
    return join(promotions_folder(registry, model), f"{seq:08d}{RECORD_SUFFIX}")


def is_record(name: str) -> bool:
    """Whether a name listed in the promotions or runs folder is a record (not a temporary file)."""
    return name.endswith(RECORD_SUFFIX)


def run_records_folder(registry: str, model: str) -> str:
    return join(model_folder(registry, model), "runs")


def legacy_run_records_folder(registry: str) -> str:
    """The run records of a registry from before named models (:data:`DEFAULT_MODEL`'s)."""
    return join(registry, "runs")


def run_record(registry: str, model: str, run_id: str) -> str:
    """Where a run of ``model`` is recorded (:func:`run_file_name`)."""
    return join(run_records_folder(registry, model), run_file_name(run_id))


def run_file_name(run_id: str) -> str:
    """A record named after a run. A name longer than 236 characters (which, with the suffix and an
    atomic write's temporary suffix, would pass the 255-byte limit of a file name) keeps its head and
    ends in a hash of the id."""
    name = safe_name(run_id)
    if len(name) > 236:
        name = f"{name[:219]}-{sha256(run_id.encode())[:16]}"
    return f"{name}{RECORD_SUFFIX}"


def reproductions_folder(registry: str, version: str) -> str:
    """The records of later runs that trained a version's weights again (its card keeps the first run)."""
    return version_file(registry, version, REPRODUCED_BY)


def reproduction(registry: str, version: str, run_id: str) -> str:
    """Where run ``run_id``'s reproduction of ``version`` is recorded (one create-only file per run)."""
    return join(reproductions_folder(registry, version), run_file_name(run_id))


def legacy_production(registry: str) -> str:
    """``production.json`` of a registry from before the promotion history."""
    return join(registry, LEGACY_PRODUCTION)
