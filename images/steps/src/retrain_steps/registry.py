"""A small model registry in the artifact store.

Layout under the registry URI::

    versions/<version>/model.pt | model.keras   the weights, as trained
    versions/<version>/model.json               framework, file name and input spec
    versions/<version>/digits_classifier.bento  the exported BentoML bento (added by package)
    versions/<version>/card.json                version, dataset, params, metrics, code commit,
                                                sha256 of every file; written last
    production.json                             {"version", "promoted_at", "previous"}

A version id is the first 12 hex digits of the weights' sha256, so registering the same model
twice gives the same version. Only the standard library and :mod:`retrain_steps.artifacts`
are used, so the Airflow control plane, the steps and the model server all read it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from retrain_steps import artifacts

PRODUCTION = "production.json"
CARD = "card.json"


def version_uri(registry: str, version: str, name: str = "") -> str:
    return artifacts.join(registry, "versions", version, name) if name else artifacts.join(registry, "versions", version)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def register(registry: str, model_uri: str, card: dict) -> dict:
    """Copy a trained model folder into the registry; return the card (without writing it).

    The caller adds what it knows (metrics, bento) and calls :func:`write_card`.
    """
    info = artifacts.read_json(artifacts.join(model_uri, "model.json"))
    weights = artifacts.read_bytes(artifacts.join(model_uri, info["file"]))
    version = artifacts.sha256(weights)[:12]
    files = {
        info["file"]: artifacts.write_bytes(version_uri(registry, version, info["file"]), weights),
        "model.json": artifacts.write_json(version_uri(registry, version, "model.json"), info),
    }
    return {**card, "version": version, "framework": info["framework"], "file": info["file"],
            "input_spec": info.get("input_spec"), "files": files}


def write_card(registry: str, card: dict) -> dict:
    """Write ``card.json`` for a registered version (the last write of a registration)."""
    artifacts.write_json(version_uri(registry, card["version"], CARD), card)
    return card


def card(registry: str, version: str) -> dict:
    """The card of a registered version; raise :class:`artifacts.ArtifactError` if unknown."""
    return artifacts.read_json(version_uri(registry, version, CARD))


def production(registry: str) -> dict | None:
    """The card of the version in production, or None when nothing was promoted yet."""
    version = production_version(registry)
    return None if version is None else card(registry, version)


def production_version(registry: str) -> str | None:
    """The version the production pointer names, or None when nothing was promoted yet."""
    pointer_uri = artifacts.join(registry, PRODUCTION)
    if not artifacts.exists(pointer_uri):
        return None
    return artifacts.read_json(pointer_uri)["version"]


def promotion_history(registry: str) -> list[str]:
    """Production versions, newest first: the one in production, then those it replaced.

    Each pointer names the version it replaced (``previous``); the history is what the pointers
    written so far remember (the current pointer and its predecessor).
    """
    pointer_uri = artifacts.join(registry, PRODUCTION)
    if not artifacts.exists(pointer_uri):
        return []
    pointer = artifacts.read_json(pointer_uri)
    return [v for v in (pointer["version"], pointer.get("previous")) if v]


def promote(registry: str, version: str) -> dict:
    """Point production at ``version`` (which must have a card); return the new pointer."""
    card(registry, version)  # refuse to promote an unknown or half-registered version
    pointer = {"version": version, "promoted_at": now(), "previous": production_version(registry)}
    artifacts.write_json(artifacts.join(registry, PRODUCTION), pointer)
    return pointer


def fetch_model(registry: str, version: str, folder: Path) -> dict:
    """Copy a version's weights and model.json into ``folder``, verifying their sha256."""
    version_card = card(registry, version)
    for name in (version_card["file"], "model.json"):
        uri = version_uri(registry, version, name)
        data = artifacts.read_bytes(uri)
        artifacts.verify_sha256(uri, data, version_card["files"][name])
        (folder / name).write_bytes(data)
    return version_card
