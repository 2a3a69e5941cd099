"""``download``: fetch a dataset in any supported format into the artifact store as one canonical version.

Reads ``--source`` (an image folder, an S3 prefix, a ``.zip``/``.tar.gz`` of one, an ``.npz`` or
a Label Studio export; see :mod:`retrain_steps.datasets`), verifies ``--sha256`` when given
(of the source object; of the canonical dataset for a folder), and writes ``dataset.npz`` (the
canonical dataset, whose sha256 is the dataset version) and ``dataset.json`` (the dataset card:
source, format, version, class names, counts per class, image sizes and modes seen, what was
skipped) under ``--output``. Both are written only after every check passed.
"""

from __future__ import annotations

import argparse
import logging

from retrain_steps import artifacts, datasets, layout, manifest

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True,
                        help="dataset URI: image folder (file:// or s3://…/), .zip/.tar.gz, .npz or Label Studio .json")
    parser.add_argument("--sha256", default=None,
                        help="expected sha256 of the source object (of the canonical dataset for a folder)")
    parser.add_argument("--output", required=True, help="output folder URI")
    parser.add_argument("--allow", action="append", default=[], metavar="PREFIX",
                        help="allowed dataset location (repeatable); when given, any other source (and any image "
                             "a Label Studio export names elsewhere) is refused unread")


def run(args: argparse.Namespace) -> dict:
    def check_location(uri: str) -> artifacts.StoreURI:
        """``uri`` parsed once; refused unless under an ``--allow`` prefix (when any is given). Read what it returns."""
        return artifacts.check_allowed(uri, args.allow) if args.allow else artifacts.StoreURI.parse(uri)

    source = check_location(args.source)
    raw = None if datasets.is_folder(source) else datasets.read_source(source)
    if raw is not None:  # one object: its bytes decide whether the last download is still current
        key = manifest.input_key("download", source_sha256=artifacts.sha256(raw), source=args.source)
        if args.sha256 is None and (done := manifest.up_to_date(args.output, key)):
            log.info("download: %s is up to date", args.output)
            return done
    canonical, source_digest = datasets.read(source, check_location, data=raw)
    payload = canonical.payload()
    digest = artifacts.sha256(payload)
    if args.sha256:
        actual = source_digest or digest
        if actual != args.sha256.lower():
            raise artifacts.ArtifactError(f"checksum mismatch for {args.source}: expected sha256 {args.sha256}, "
                                          f"got {actual}")
    if raw is None:
        key = manifest.input_key("download", content=digest, source=args.source)
    info: layout.DatasetCard = {"source": args.source, "source_sha256": source_digest, **canonical.card(digest)}
    outputs = {
        layout.DATASET: artifacts.write_bytes(layout.file_in(args.output, layout.DATASET), payload),
        layout.DATASET_CARD: artifacts.write_json(layout.file_in(args.output, layout.DATASET_CARD), info),
    }
    log.info("download: %s dataset, %d images of %s, classes %s, dataset version %s%s", info["format"],
             info["samples"], "x".join(map(str, info["image_size"])), info["class_counts"], info["version"],
             f", skipped {info['skipped']}" if info["skipped"] else "")
    return manifest.write(args.output, "download", key, outputs, dataset=info)
