"""What a change of production tells the world: the asset event's extra and a notification.

Shared by ``retrain``'s ``deploy_model`` and the ``promote_model`` DAG.
"""

from __future__ import annotations

from retraining import model_assets, notify
from retraining.config import Settings


def production_changed(settings: Settings, entry: dict, asset_event, dag_run) -> None:
    """After a change of production: the ``model-in-production`` asset event's extra, and a notification."""
    from retrain_steps import registry

    card = registry.card(settings.registry, entry["version"])
    model = entry.get("model") or registry.model_of(card)
    asset_event.extra = model_assets.production_extra({**entry, "model": model}, card)
    text = (f"{dag_run.dag_id} run {dag_run.run_id}: {entry['action']} of {model} {entry['version']} by "
            f"{entry.get('actor') or 'unknown'} (was {entry.get('previous') or 'empty'}): {entry.get('reason', '')}")
    notify.send("deployed", text, settings.notify_conn_id, dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                version=entry["version"], previous=entry.get("previous"), reason=entry.get("reason", ""),
                actor=entry.get("actor", ""), model=model)
