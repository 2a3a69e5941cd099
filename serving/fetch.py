"""``python -m serving.fetch``: fetch a bento from the artifact store, verify it and import it.

:func:`import_bento` is the one way a bento reaches a model server: the chart's init container
runs this CLI (so a new model needs no new image) and the server's registry follower
(:class:`serving.service.RegistryFollower`) calls the function for every version it loads. It
reads the URI (s3://, http(s)://, file://), verifies the sha256 when given, and imports the bento
into ``$BENTOML_HOME`` (for ``bentoml serve`` in the main container, or for the follower to load
its model). The CLI's ``--uri`` and ``--sha256`` default to ``MODEL_URI`` and ``MODEL_SHA256``
from the environment (the chart's ConfigMap), so no runtime has to expand them.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from retrain_steps import artifacts

if TYPE_CHECKING:
    import bentoml

LOCK_FILE = "serving-import.lock"


@contextmanager
def _store_lock():
    """Serialise imports into this BentoML home (the worker processes of a server share it)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    home = Path(BentoMLContainer.bentoml_home.get())
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def import_bento(uri: str, sha256: str | None) -> tuple[bentoml.Bento, str, bool]:
    """Fetch the bento file at ``uri``, verify its sha256 (when given) and import it into the BentoML home.

    Returns ``(bento, sha256 of the file, imported)``; ``imported`` is False when the store
    already held that tag (a restarted pod, a second worker loading the same version), which is
    then used as it is. Raises :class:`retrain_steps.artifacts.ArtifactError` naming the URI when
    the file is missing, too large or fails the check: nothing is imported then.
    """
    data = artifacts.read_bytes(uri)
    digest = artifacts.verify_sha256(uri, data, sha256 or None)
    import bentoml
    from bentoml.exceptions import NotFound

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bento"
        path.write_bytes(data)
        try:
            bento = bentoml.Bento.import_from(str(path))
        except Exception as err:  # noqa: BLE001 (an archive error of any kind: the file is not a bento)
            raise artifacts.ArtifactError(f"{uri} is not a readable bento: {type(err).__name__}: {err}") from None
        with _store_lock():
            try:
                return bentoml.bentos.get(bento.tag), digest, False
            except NotFound:
                return bento.save(), digest, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serving.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=os.environ.get("MODEL_URI", ""), help="bento URI (default: $MODEL_URI)")
    parser.add_argument("--sha256", default=os.environ.get("MODEL_SHA256", ""),
                        help="expected sha256 of the bento file (default: $MODEL_SHA256; empty: not checked)")
    args = parser.parse_args(argv)
    if not args.uri:
        parser.error("--uri (or MODEL_URI) is required")
    try:
        bento, digest, imported = import_bento(args.uri, args.sha256)
    except artifacts.ArtifactError as err:
        print(f"serving.fetch: error: {err}", file=sys.stderr)
        return 2
    checked = "verified sha256" if args.sha256 else "sha256 not checked (none given)"
    done = "imported" if imported else "already in the store:"
    print(f"{done} {bento.tag} from {args.uri} ({checked}: {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
