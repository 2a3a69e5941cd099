"""Deploying a registered model version: one path for both backends.

1. **Roll out**: ``local``, nothing to do (the local model server follows the production
   pointer); ``kubernetes``, ``helm upgrade`` of ``charts/serving`` with the version's bento, its
   sha256 and the serving image of this deployment, keeping the release's install-time values.
2. **Promote**, only after the rollout succeeded: a compare-and-swap in the registry's
   promotion history (``registry.promote`` with the production the gate compared against), which
   is what the next run's gate compares against on both backends.

A failed rollout raises; Helm has rolled the release back and production is unchanged. A stale
promotion (another run or a user changed production since the gate) raises
:class:`registry.StalePromotion` before the rollout, or, if it changed during the rollout, after
rolling the serving backend back to the production that won.
"""

from __future__ import annotations

import logging
import subprocess

from retrain_steps import registry

from retraining.config import Settings

log = logging.getLogger(__name__)

RELEASE = "serving"


def release_name(release: str, model: str) -> str:
    """The Helm release serving ``model``: the configured release for the default model (as before named
    models), ``<release>-<model>`` for the others (one release, one Service, per model)."""
    from retrain_steps.layout import DEFAULT_MODEL

    return release if model == DEFAULT_MODEL else f"{release}-{model}"


def helm_upgrade_command(
    *, chart: str, card: dict, image_repository: str, image_tag: str, namespace: str, release: str = RELEASE,
    timeout: str = "10m", helm: str = "helm",
) -> list[str]:
    """``helm upgrade --install`` of the serving chart with a new model version.

    ``--reset-then-reuse-values`` keeps what the platform engineer set at install (replicas,
    ingress, resources...) and only overrides the model and the image; ``--rollback-on-failure``
    restores the previous release when the rollout fails.
    """
    bento = card["bento"]
    return [
        helm, "upgrade", "--install", release, chart,
        "--namespace", namespace,
        "--reset-then-reuse-values",
        "--set-string", f"image.repository={image_repository}",
        "--set-string", f"image.tag={image_tag}",
        "--set-string", f"model.uri={bento['uri']}",
        "--set-string", f"model.version={card['version']}",
        "--set-string", f"model.sha256={bento['sha256']}",
        "--set-string", f"model.name={registry.model_of(card)}",
        "--rollback-on-failure",
        "--wait",
        "--timeout", timeout,
    ]  # fmt: skip


def run_helm(command: list[str]) -> None:
    """Run the helm command, logging its output; raise when the rollout failed."""
    log.info("Running: %s", " ".join(command))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    for line in (completed.stdout + completed.stderr).splitlines():
        log.info("%s", line)
    if completed.returncode != 0:
        raise RuntimeError(
            f"helm upgrade failed (exit {completed.returncode}); the previous release keeps serving "
            "and production was not changed"
        )


def roll_out(settings: Settings, card: dict) -> dict:
    """Make the serving backend run ``card``'s version; return where it went."""
    if settings.backend != "kubernetes":
        return {"backend": "local"}
    target = settings.serving
    release = release_name(target.release, registry.model_of(card))
    run_helm(
        helm_upgrade_command(
            chart=target.chart, card=card, image_repository=settings.pods.image_repository("serving"),
            image_tag=settings.pods.image_tag, namespace=target.namespace, release=release, helm=target.helm,
        )
    )
    return {"backend": "kubernetes", "release": release, "namespace": target.namespace}


def deploy(settings: Settings, version: str, *, model: str = "", expected=registry.CURRENT, actor: str = "",
           reason: str = "", run_id: str = "", action: str = "promote") -> dict:
    """Roll ``version`` out, then (only on success) promote it to ``model``'s production (default: the model it
    was trained for) if that is still ``expected``."""
    registry.check_reason(reason)  # before the rollout (registry.promote would refuse after it)
    card = registry.card(settings.registry, version)
    owner = registry.model_of(card)
    model = model or owner
    if owner != model:
        raise registry.OtherModel(f"version {version} belongs to model {owner!r}, not {model!r}; nothing was rolled out")
    if not card.get("bento", {}).get("uri"):
        raise ValueError(f"version {version} has no bento in the registry; package it first")
    current = registry.production_version(settings.registry, model)
    if expected is registry.CURRENT:
        expected = current
    elif current != expected:
        raise registry.StalePromotion(f"production is {current or 'empty'}, not {expected or 'empty'} as the promotion "
                                      f"of {version} expected; nothing was rolled out")
    if version == current:  # refused before the rollout (registry.promote would refuse after it)
        raise registry.NoOpPromotion(f"{version} is in production already: nothing to {action}, nothing was rolled out")
    target = roll_out(settings, card)
    try:
        entry = registry.promote(settings.registry, version, model=model, expected=expected, actor=actor,
                                 reason=reason, run_id=run_id, action=action)
    except registry.StalePromotion:
        winner = registry.production(settings.registry, model)
        if winner is not None and target["backend"] != "local":  # put the release back on the version that won
            roll_out(settings, winner)
        raise
    log.info("deployed %s of model %s (%s); production was %s", version, model, target["backend"], entry["previous"])
    follow_in_tracking(model, version)
    return {**target, **entry, "model": model}


def follow_in_tracking(model: str, version: str) -> None:
    """MLflow's alias ``champion`` of ``model`` follows a change of production, on every path (tracking on); a
    failure is logged, never raised: production changed either way, and the next ``track`` syncs the alias."""
    from retrain_steps import tracking

    from retraining.tracking_connection import tracking_settings

    try:
        tracking.champion(tracking_settings(), model, version)
    except Exception as err:  # noqa: BLE001 (MLflow down or refusing, a bad MLFLOW_* value)
        log.warning("MLflow alias champion of %s not moved to %s: %s", model, version, err)


def rollback(settings: Settings, *, model: str = "", actor: str = "", reason: str = "", expected=registry.CURRENT,
             run_id: str = "") -> dict:
    """Deploy the version ``model``'s production replaced (the same path as a promotion)."""
    model = model or settings.model
    latest = registry.latest_promotion(settings.registry, model)
    if not latest or not latest.get("previous"):
        raise ValueError(f"nothing to roll back to: model {model}'s production has no previous version")
    if expected is not registry.CURRENT and latest["version"] != expected:
        raise registry.StalePromotion(f"production is {latest['version']}, not {expected} as the page showed; "
                                      "nothing was rolled back")
    return deploy(settings, latest["previous"], model=model, expected=latest["version"], actor=actor, action="rollback",
                  reason=reason or f"rollback from {latest['version']}", run_id=run_id)
