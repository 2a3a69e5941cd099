"""``evaluate``: test-set accuracy, per-class report and confusion matrix of a trained model.

Writes ``metrics.json`` (``accuracy``, ``per_class``, ``confusion_matrix``) and
``confusion.png`` under ``--output``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from retrain_steps import artifacts, manifest, plots
from retrain_steps.features import N_CLASSES
from retrain_steps.models import load_predictor
from retrain_steps.preprocess import load_splits

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="preprocess output folder URI")
    parser.add_argument("--model", required=True, help="train output folder URI, or a registry version folder")
    parser.add_argument("--output", required=True, help="output folder URI")


def fetch_model(model_uri: str, folder: Path, fingerprint: dict) -> str:
    """Copy a model folder's weights into ``folder``, verifying their sha256; return its framework."""
    info = artifacts.read_json(artifacts.join(model_uri, "model.json"))
    name = info["file"]
    uri = artifacts.join(model_uri, name)
    data = artifacts.read_bytes(uri)
    artifacts.verify_sha256(uri, data, fingerprint.get(name))
    (folder / name).write_bytes(data)
    return info["framework"]


def report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    matrix = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    per_class = {}
    for label in range(N_CLASSES):
        hits, predicted, support = matrix[label, label], matrix[:, label].sum(), matrix[label].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[str(label)] = {
            "precision": float(precision), "recall": float(recall), "f1-score": float(f1), "support": int(support)
        }
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "samples": int(len(y_true)),
        "per_class": per_class,
        "macro_f1": float(np.mean([c["f1-score"] for c in per_class.values()])),
        "confusion_matrix": matrix.tolist(),
    }


def model_fingerprint(model_uri: str) -> dict:
    """The sha256 of a model folder's files: a train output (its manifest) or a registry version (its card)."""
    manifest_uri = artifacts.join(model_uri, manifest.MANIFEST)
    if artifacts.exists(manifest_uri):
        return artifacts.read_json(manifest_uri)["outputs"]
    return artifacts.read_json(artifacts.join(model_uri, "card.json"))["files"]


def run(args: argparse.Namespace) -> dict:
    fingerprint = model_fingerprint(args.model)
    splits_bytes = manifest.read_verified(args.data, "splits.npz")
    key = manifest.input_key("evaluate", splits=artifacts.sha256(splits_bytes), model=fingerprint)
    if done := manifest.up_to_date(args.output, key):
        log.info("evaluate: %s is up to date", args.output)
        return done
    splits = load_splits(args.data, splits_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        framework = fetch_model(args.model, Path(tmp), fingerprint)
        probabilities = load_predictor(Path(tmp), framework)(splits["x_test"])
    metrics = report(splits["y_test"], probabilities.argmax(axis=1))
    metrics["framework"] = framework
    outputs = {
        "metrics.json": artifacts.write_json(artifacts.join(args.output, "metrics.json"), metrics),
        "confusion.png": artifacts.write_bytes(
            artifacts.join(args.output, "confusion.png"),
            plots.confusion_matrix(np.asarray(metrics["confusion_matrix"])),
        ),
    }
    log.info("evaluate: test accuracy %.4f on %d samples", metrics["accuracy"], metrics["samples"])
    return manifest.write(args.output, "evaluate", key, outputs, metrics={"accuracy": metrics["accuracy"]})
