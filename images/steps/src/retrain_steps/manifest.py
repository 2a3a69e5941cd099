"""Step manifests: what makes a step idempotent and its outputs verifiable.

A step writes its outputs first and ``manifest.json`` last. The manifest records a key
derived from the step's arguments and input digests, and the sha256 of every output. A
rerun with the same key whose outputs still match their digests is skipped, so retries
and repeated runs do no work and never leave a half-written output behind.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from retrain_steps import artifacts, layout

MANIFEST = layout.MANIFEST


def code_digest() -> str:
    """A digest of this package's source, so a code change invalidates earlier outputs."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def input_key(step: str, **inputs: Any) -> str:
    """A stable digest of a step's name, inputs (arguments, input digests) and code."""
    payload = json.dumps({"step": step, "code": code_digest(), **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def up_to_date(output: str, key: str) -> dict | None:
    """Return the manifest at ``output`` if it matches ``key`` and every output verifies."""
    hit = reusable(output, key)
    return hit[0] if hit else None


def write(output: str, step: str, key: str, outputs: dict[str, str], **extra: Any) -> dict:
    """Write the manifest for outputs already written (``{name: sha256}``)."""
    manifest = {"step": step, "key": key, "outputs": outputs, **extra}
    artifacts.write_json(artifacts.join(output, MANIFEST), manifest)
    return manifest


def reusable(folder: str, key: str) -> tuple[dict, dict[str, bytes]] | None:
    """``(manifest, {name: bytes})`` of a finished result with ``key`` at ``folder``, each output read
    once and verified; None when there is none or any output is missing or corrupted."""
    uri = artifacts.join(folder, MANIFEST)
    if not artifacts.exists(uri):
        return None
    produced = artifacts.read_json(uri)
    if produced.get("key") != key:
        return None
    try:
        return produced, {name: read_verified(folder, name) for name in produced.get("outputs", {})}
    except artifacts.ArtifactError:
        return None


def read_verified(folder: str, name: str) -> bytes:
    """Read output ``name`` of the step that wrote ``folder``, verified against its manifest.

    Raise :class:`artifacts.ArtifactError` when the producing step has not finished (no
    manifest) or the object differs from what it wrote (corrupted or replaced): rerun that step.
    """
    manifest_uri = artifacts.join(folder, MANIFEST)
    if not artifacts.exists(manifest_uri):
        raise artifacts.ArtifactError(f"{folder} has no {MANIFEST}: the step that writes it did not finish")
    produced = artifacts.read_json(manifest_uri)
    expected = produced.get("outputs", {}).get(name)
    if expected is None:
        raise artifacts.ArtifactError(f"{folder}/{MANIFEST} does not list {name}")
    uri = artifacts.join(folder, name)
    data = artifacts.read_bytes(uri)
    if artifacts.sha256(data) != expected:
        raise artifacts.ArtifactError(
            f"{uri} does not match its manifest (sha256 {artifacts.sha256(data)[:12]}…, written as "
            f"{expected[:12]}…): it was corrupted or replaced; rerun the {produced.get('step', 'producing')} step"
        )
    return data
