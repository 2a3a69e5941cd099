"""Model versions as Airflow Assets: Airflow's Assets view shows the model's history.

- ``model-versions``: an event per version registered by ``package`` (extra: model, version, metrics,
  dataset version, run);
- ``model-in-production``: an event per change of a model's production (extra: model, version, previous, action,
  actor, reason, metrics), from the DAG's ``deploy_model`` and from the Models view.
"""

from __future__ import annotations

from retrain_steps import layout

from retraining.config import Settings

REGISTERED, PRODUCTION = "model-versions", "model-in-production"


def model_assets(settings: Settings) -> tuple:
    """The two assets of this deployment's registry: (registered versions, production)."""
    from airflow.sdk import Asset

    return (Asset(name=REGISTERED, uri=layout.versions_folder(settings.registry), group="model"),
            Asset(name=PRODUCTION, uri=layout.models_folder(settings.registry), group="model"))


def registered_extra(card: dict) -> dict:
    return {"model": card.get("model", layout.DEFAULT_MODEL), "version": card["version"], "metrics": card.get("metrics", {}), "run_id": card.get("run_id", ""),
            "dataset_version": (card.get("dataset") or {}).get("version", ""), "framework": card.get("framework", "")}


def production_extra(entry: dict, card: dict | None) -> dict:
    return {"model": entry.get("model", layout.DEFAULT_MODEL), "version": entry["version"], "previous": entry.get("previous"), "action": entry.get("action"),
            "actor": entry.get("actor", ""), "reason": entry.get("reason", ""), "run_id": entry.get("run_id", ""),
            "metrics": (card or {}).get("metrics", {})}
