"""``preprocess``: decide the run's input spec and split the dataset (seeded, stratified).

The input spec (:mod:`retrain_steps.input_spec`) comes from the data (size, channels, class
names, the profile the dataset declares) unless ``--image-size``, ``--channels`` or
``--profile`` override it; its normalisation statistics are measured on the train split.
Writes ``splits.npz`` (``x_train, y_train, x_val, y_val, x_test, y_test``; x raw uint8
``(n, H, W, C)`` at the spec's size, which ``train`` and ``evaluate`` pass through
:func:`retrain_steps.input_spec.prepare`), ``spec.json`` and ``stats.json``.
With ``--cache``, the result is also kept under ``<cache>/<key>``: a later run on the same
dataset version with the same settings copies it (verified) instead of recomputing it.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from retrain_steps import artifacts, data, layout, manifest
from retrain_steps.input_spec import PROFILES, InputSpec, convert

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="download output folder URI")
    parser.add_argument("--output", required=True, help="output folder URI")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--cache", default=None, help="folder URI of reusable preprocessing results")
    parser.add_argument("--image-size", type=int, default=0, metavar="PIXELS",
                        help="resize images to PIXELS x PIXELS (0: the dataset's own size)")
    parser.add_argument("--channels", choices=("auto", "1", "3"), default="auto",
                        help="1: grayscale, 3: RGB, auto: as the dataset")
    parser.add_argument("--profile", choices=("auto", *PROFILES), default="auto",
                        help="preprocessing profile (auto: the one the dataset declares, else image)")


def decide_spec(images, class_names: list[str], declared: str | None, args: argparse.Namespace) -> InputSpec:
    """The run's input spec (without statistics): from the data, with the command line's overrides."""
    profile = (declared or "image") if args.profile == "auto" else args.profile
    height, width = images.shape[1:3]
    if args.image_size:
        height = width = args.image_size
    channels = images.shape[3] if args.channels == "auto" else int(args.channels)
    try:
        return InputSpec(height=int(height), width=int(width), channels=int(channels),
                         class_names=tuple(class_names), profile=profile)
    except ValueError as err:
        raise data.DataError(f"input spec: {err}") from None


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
    dataset_uri = layout.file_in(args.input, layout.DATASET)
    raw = manifest.read_verified(args.input, layout.DATASET)
    key = manifest.input_key(
        "preprocess", dataset=artifacts.sha256(raw), seed=args.seed, val=args.val_fraction, test=args.test_fraction,
        image_size=args.image_size, channels=args.channels, profile=args.profile,
    )
    if done := manifest.up_to_date(args.output, key):
        log.info("preprocess: %s is up to date", args.output)
        return done
    cached = layout.cache_entry(args.cache, key) if args.cache else None
    if cached and (hit := manifest.reusable(cached, key)):
        produced, payloads = hit
        outputs = {name: artifacts.write_bytes(layout.file_in(args.output, name), data_) for name, data_ in payloads.items()}
        log.info("preprocess: dataset %s unchanged: reusing the preprocessing in %s",
                 produced["stats"]["dataset_sha256"][:12], cached)
        return manifest.write(args.output, "preprocess", key, outputs, stats=produced["stats"], reused_from=cached)
    arrays = data.load_npz(raw, dataset_uri, ("images", "target", "class_names"))
    images, target, class_names = data.check_canonical(arrays, dataset_uri)
    spec = decide_spec(images, class_names, data.profile_of(arrays), args)
    splits = split_indices(target, args.val_fraction, args.test_fraction, args.seed)
    x = convert(images, spec)
    arrays = {}
    for name, idx in splits.items():
        arrays[f"x_{name}"], arrays[f"y_{name}"] = x[idx], target[idx]
    if not len(arrays["x_val"]) or not len(arrays["x_test"]):
        raise data.DataError(f"{dataset_uri}: {len(target)} images are too few for a validation and a test split")
    spec = spec.with_statistics(arrays["x_train"])
    stats = {
        "dataset_sha256": artifacts.sha256(raw),
        "seed": args.seed,
        "sizes": {name: int(len(idx)) for name, idx in splits.items()},
        "input_spec": spec.to_dict(),
    }
    payloads = {layout.SPLITS: data.dump_npz(**arrays), layout.SPEC: artifacts.json_bytes(spec.to_dict()),
                layout.STATS: artifacts.json_bytes(stats)}
    log.info("preprocess: split sizes %s; input %s %dx%dx%d, %d classes", stats["sizes"], spec.profile,
             spec.height, spec.width, spec.channels, len(spec.class_names))
    for folder in filter(None, (args.output, cached)):  # the cache gets the same bytes, from memory
        outputs = {name: artifacts.write_bytes(layout.file_in(folder, name), data_) for name, data_ in payloads.items()}
    if cached:
        manifest.write(cached, "preprocess", key, outputs, stats=stats)
    return manifest.write(args.output, "preprocess", key, outputs, stats=stats)


def load_spec(uri: str) -> InputSpec:
    """The run's input spec from a preprocess output folder (verified against its manifest)."""
    import json

    return InputSpec.from_dict(json.loads(manifest.read_verified(uri, layout.SPEC)))


def load_splits(uri: str, spec: InputSpec, raw: bytes | None = None) -> dict[str, np.ndarray]:
    """Read the splits from a preprocess output folder (verified against its manifest) and check their shapes."""
    split_uri = layout.file_in(uri, layout.SPLITS)
    keys = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    arrays = data.load_npz(manifest.read_verified(uri, layout.SPLITS) if raw is None else raw, split_uri, keys)
    expected = (spec.height, spec.width, spec.channels)
    for name in ("train", "val", "test"):
        x, y = arrays[f"x_{name}"], arrays[f"y_{name}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != expected or y.shape != (x.shape[0],):
            raise data.DataError(f"{split_uri}: x_{name} must be uint8 (n, {', '.join(map(str, expected))}) "
                                 f"with matching y, got {x.dtype} {x.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(spec.class_names)):
            raise data.DataError(f"{split_uri}: y_{name} holds labels outside the {len(spec.class_names)} classes")
    return arrays
