"""``download``: fetch a dataset into the artifact store and record its version.

Reads ``--source`` (file://, s3:// or http(s)://), verifies ``--sha256`` when given, checks
the format, and writes ``dataset.npz`` plus ``dataset.json`` (content hash = dataset
version, sample and class counts) under ``--output``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from retrain_steps import artifacts, data, manifest

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="dataset URI (.npz with images, target)")
    parser.add_argument("--sha256", default=None, help="expected sha256 of the source object")
    parser.add_argument("--output", required=True, help="output folder URI")
    parser.add_argument("--allow", action="append", default=[], metavar="PREFIX",
                        help="allowed dataset location (repeatable); when given, any other source is refused unread")


def run(args: argparse.Namespace) -> dict:
    if args.allow:
        artifacts.check_allowed(args.source, args.allow)
    raw = artifacts.read_bytes(args.source)
    digest = artifacts.verify_sha256(args.source, raw, args.sha256)
    key = manifest.input_key("download", source_sha256=digest)
    if done := manifest.up_to_date(args.output, key):
        log.info("download: %s is up to date (dataset %s)", args.output, digest[:12])
        return done
    images, target = data.check_dataset(data.load_npz(raw, args.source, ("images", "target")), args.source)
    info = {
        "source": args.source,
        "sha256": digest,
        "version": digest[:12],
        "samples": int(images.shape[0]),
        "class_counts": {str(c): int(n) for c, n in zip(*np.unique(target, return_counts=True))},
    }
    outputs = {
        "dataset.npz": artifacts.write_bytes(artifacts.join(args.output, "dataset.npz"), raw),
        "dataset.json": artifacts.write_json(artifacts.join(args.output, "dataset.json"), info),
    }
    log.info("download: %d samples, dataset version %s", info["samples"], info["version"])
    return manifest.write(args.output, "download", key, outputs, dataset=info)
