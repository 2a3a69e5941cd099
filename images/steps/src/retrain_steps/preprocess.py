"""``preprocess``: seeded stratified train/val/test split and normalisation.

Writes ``splits.npz`` (``x_train, y_train, x_val, y_val, x_test, y_test``; x as float32
``(n, 1, 8, 8)`` through :func:`retrain_steps.features.to_model_input`) and ``stats.json``.
With ``--cache``, the result is also kept under ``<cache>/<key>``: a later run on the same
dataset version with the same settings copies it (verified) instead of recomputing it.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from retrain_steps import artifacts, data, manifest
from retrain_steps.features import to_model_input

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="download output folder URI")
    parser.add_argument("--output", required=True, help="output folder URI")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--cache", default=None, help="folder URI of reusable preprocessing results")


def split_indices(target: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified split: the same ``seed`` and labels always give the same indices."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"fractions must be in (0, 1) and sum below 1, got val={val}, test={test}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(target):
        idx = rng.permutation(np.flatnonzero(target == label))
        n_test, n_val = round(len(idx) * test), round(len(idx) * val)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def run(args: argparse.Namespace) -> dict:
    dataset_uri = artifacts.join(args.input, "dataset.npz")
    raw = manifest.read_verified(args.input, "dataset.npz")
    key = manifest.input_key(
        "preprocess", dataset=artifacts.sha256(raw), seed=args.seed, val=args.val_fraction, test=args.test_fraction
    )
    if done := manifest.up_to_date(args.output, key):
        log.info("preprocess: %s is up to date", args.output)
        return done
    cached = artifacts.join(args.cache, key[:24]) if args.cache else None
    if cached and (hit := manifest.reusable(cached, key)):
        produced, payloads = hit
        outputs = {name: artifacts.write_bytes(artifacts.join(args.output, name), data_) for name, data_ in payloads.items()}
        log.info("preprocess: dataset %s unchanged: reusing the preprocessing in %s",
                 produced["stats"]["dataset_sha256"][:12], cached)
        return manifest.write(args.output, "preprocess", key, outputs, stats=produced["stats"], reused_from=cached)
    images, target = data.check_dataset(data.load_npz(raw, dataset_uri, ("images", "target")), dataset_uri)
    splits = split_indices(target, args.val_fraction, args.test_fraction, args.seed)
    x = to_model_input(images)
    arrays = {}
    for name, idx in splits.items():
        arrays[f"x_{name}"], arrays[f"y_{name}"] = x[idx], target[idx]
    stats = {
        "dataset_sha256": artifacts.sha256(raw),
        "seed": args.seed,
        "sizes": {name: int(len(idx)) for name, idx in splits.items()},
        "train_mean": float(arrays["x_train"].mean()),
        "train_std": float(arrays["x_train"].std()),
    }
    payloads = {"splits.npz": data.dump_npz(**arrays), "stats.json": artifacts.json_bytes(stats)}
    log.info("preprocess: split sizes %s", stats["sizes"])
    for folder in filter(None, (args.output, cached)):  # the cache gets the same bytes, from memory
        outputs = {name: artifacts.write_bytes(artifacts.join(folder, name), data_) for name, data_ in payloads.items()}
    if cached:
        manifest.write(cached, "preprocess", key, outputs, stats=stats)
    return manifest.write(args.output, "preprocess", key, outputs, stats=stats)


def load_splits(uri: str, raw: bytes | None = None) -> dict[str, np.ndarray]:
    """Read ``splits.npz`` from a preprocess output folder (verified against its manifest) and check its shapes."""
    split_uri = artifacts.join(uri, "splits.npz")
    keys = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    arrays = data.load_npz(manifest.read_verified(uri, "splits.npz") if raw is None else raw, split_uri, keys)
    for name in ("train", "val", "test"):
        x, y = arrays[f"x_{name}"], arrays[f"y_{name}"]
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8) or y.shape != (x.shape[0],):
            raise data.DataError(f"{split_uri}: x_{name} must be (n, 1, 8, 8) with matching y, got {x.shape}")
    return arrays
