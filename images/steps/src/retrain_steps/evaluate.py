"""``evaluate``: test-set accuracy, per-class report and confusion matrix of a trained model.

The test split is prepared with the *model's* input spec (:func:`retrain_steps.input_spec.prepare`),
so a production model is measured on this run's test images even when its size or
normalisation differ. Writes the metrics (:class:`retrain_steps.layout.Evaluation`: ``test_accuracy``,
``macro_f1``, ``per_class`` by class name, ``class_names``, ``confusion_matrix``, the names the card
and the Models view use) and the confusion plot under ``--output``. A model that predicts other
classes than the data has cannot be compared: the metrics say so (``comparable: false``,
``test_accuracy: null``) and the gate decides without it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from retrain_steps import artifacts, layout, manifest, plots
from retrain_steps.input_spec import prepare, spec_of_model
from retrain_steps.models import load_predictor
from retrain_steps.preprocess import load_spec, load_splits

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="preprocess output folder URI")
    parser.add_argument("--model", required=True, help="train output folder URI, or a registry version folder")
    parser.add_argument("--output", required=True, help="output folder URI")


def fetch_model(model_uri: str, folder: Path, fingerprint: dict, info: dict | None = None) -> dict:
    """Copy a model folder's weights (verifying their sha256) and its model info into ``folder``; return the
    info (``info``, when the caller has read it already). With ``model.json`` beside the weights,
    :func:`retrain_steps.models.load_predictor` builds the architecture it names."""
    info = info or artifacts.read_json(layout.file_in(model_uri, layout.MODEL_INFO))
    name = info["file"]
    uri = layout.file_in(model_uri, name)
    data = artifacts.read_bytes(uri)
    artifacts.verify_sha256(uri, data, fingerprint.get(name))
    (folder / name).write_bytes(data)
    (folder / layout.MODEL_INFO).write_bytes(artifacts.json_bytes(info))
    return info


def report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> layout.Evaluation:
    """Test accuracy, per-class precision/recall/F1/support (by class name) and the confusion matrix."""
    n_classes = len(class_names)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    per_class = {}
    for label, name in enumerate(class_names):
        hits, predicted, support = matrix[label, label], matrix[:, label].sum(), matrix[label].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision), "recall": float(recall), "f1-score": float(f1), "support": int(support)
        }
    return {
        "test_accuracy": float((y_true == y_pred).mean()),
        "samples": int(len(y_true)),
        "per_class": per_class,
        "macro_f1": float(np.mean([c["f1-score"] for c in per_class.values()])),
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


def model_fingerprint(model_uri: str) -> dict:
    """The sha256 of a model folder's files: a train output (its manifest) or a registry version (its card)."""
    manifest_uri = layout.file_in(model_uri, layout.MANIFEST)
    if artifacts.exists(manifest_uri):
        return artifacts.read_json(manifest_uri)["outputs"]
    return artifacts.read_json(layout.file_in(model_uri, layout.CARD))["files"]


def run(args: argparse.Namespace) -> dict:
    fingerprint = model_fingerprint(args.model)
    splits_bytes = manifest.read_verified(args.data, layout.SPLITS)
    data_spec = load_spec(args.data)
    key = manifest.input_key("evaluate", splits=artifacts.sha256(splits_bytes), spec=data_spec.to_dict(),
                             model=fingerprint)
    if done := manifest.up_to_date(args.output, key):
        log.info("evaluate: %s is up to date", args.output)
        return done
    model_info = artifacts.read_json(layout.file_in(args.model, layout.MODEL_INFO))
    model_spec = spec_of_model(model_info)
    if model_spec.class_names != data_spec.class_names:
        reason = (f"the model predicts classes {list(model_spec.class_names)}, the test split has "
                  f"{list(data_spec.class_names)}")
        metrics: layout.Evaluation = {"test_accuracy": None, "comparable": False, "reason": reason}
        log.warning("evaluate: not comparable: %s", reason)
        outputs = {layout.METRICS: artifacts.write_json(layout.file_in(args.output, layout.METRICS), metrics)}
        return manifest.write(args.output, "evaluate", key, outputs, metrics=metrics)
    splits = load_splits(args.data, data_spec, splits_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        framework = fetch_model(args.model, Path(tmp), fingerprint, model_info)["framework"]
        probabilities = load_predictor(Path(tmp), framework, model_spec)(prepare(splits["x_test"], model_spec))
    metrics = report(splits["y_test"], probabilities.argmax(axis=1), list(model_spec.class_names))
    metrics["framework"] = framework
    outputs = {
        layout.METRICS: artifacts.write_json(layout.file_in(args.output, layout.METRICS), metrics),
        layout.CONFUSION_PLOT: artifacts.write_bytes(
            layout.file_in(args.output, layout.CONFUSION_PLOT),
            plots.confusion_matrix(np.asarray(metrics["confusion_matrix"]), metrics["class_names"]),
        ),
    }
    log.info("evaluate: test accuracy %.4f on %d samples", metrics["test_accuracy"], metrics["samples"])
    return manifest.write(args.output, "evaluate", key, outputs, metrics={"test_accuracy": metrics["test_accuracy"]})
