"""``python -m serving.fetch``: fetch a bento from the artifact store and import it.

The chart's init container runs this so a new model needs no new image: it reads ``--uri``
(s3://, http(s)://, file://), verifies ``--sha256`` when given, and imports the bento into
``$BENTOML_HOME`` for ``bentoml serve`` in the main container. Both default to ``MODEL_URI`` and
``MODEL_SHA256`` from the environment (the chart's ConfigMap), so no runtime has to expand them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from retrain_steps import artifacts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serving.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=os.environ.get("MODEL_URI", ""), help="bento URI (default: $MODEL_URI)")
    parser.add_argument("--sha256", default=os.environ.get("MODEL_SHA256", ""),
                        help="expected sha256 of the bento file (default: $MODEL_SHA256; empty: not checked)")
    args = parser.parse_args(argv)
    if not args.uri:
        parser.error("--uri (or MODEL_URI) is required")
    try:
        data = artifacts.read_bytes(args.uri)
        digest = artifacts.verify_sha256(args.uri, data, args.sha256 or None)
    except artifacts.ArtifactError as err:
        print(f"serving.fetch: error: {err}", file=sys.stderr)
        return 2
    import bentoml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bento"
        path.write_bytes(data)
        bento = bentoml.import_bento(str(path))
    checked = "verified sha256" if args.sha256 else "sha256 not checked (none given)"
    print(f"imported {bento.tag} from {args.uri} ({checked}: {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
