"""What the registry knows of its models, for people: the Models view and the ``models`` CLI read it.

:func:`overview`: one row per named model (production, classes, dataset). :func:`model_catalog`: one model's
catalog, one row per version, from three records of the registry: the version cards (registered
by ``package``), the run records (every candidate of a run and the gate's decision, written by
``gate``; how the run ended, written when it ends, failed runs too) and the promotion history.
A version's row is the run that registered it (its card's), or else the first run that trained
it: later runs that trained the same weights are its reproductions (:func:`version`). Status,
newest evidence first:

- ``production``: the version the newest promotion names;
- ``previous``: the version production replaced (what a rollback deploys);
- ``retired``: was production before that;
- ``registered``: packaged, never promoted (its deploy was refused or failed);
- ``rejected``: a run's best candidate that the gate kept out (``why`` says why);
- ``candidate``: trained, not the best of its run;
- ``promoted``: was promoted, but which version is production is unknown: the newest promotion
  entry cannot be read (``problems`` names it).

A record that cannot be read (a truncated promotion entry, run record or card) is left out and
named in ``problems``: the rest is still shown.
"""

from __future__ import annotations

from retrain_steps import artifacts, layout, registry

from retraining import selection


def _candidate_row(run: dict, candidate: dict) -> dict:
    best = candidate.get("index") == run.get("best")
    gate = run.get("gate", {})
    if best and not gate.get("deploy"):
        status, why = "rejected", f"gate: {gate.get('reason', '')}"
    elif best:
        status, why = "registered", f"gate: {gate.get('reason', '')}"
    else:
        winner = next((c for c in run.get("candidates", []) if c.get("index") == run.get("best")), {})
        status, why = "candidate", f"not the best candidate of its run: {selection.why_not_best(candidate, winner)}"
    return {
        "version": candidate["version"], "status": status, "why": why, "run_id": run["run_id"],
        "dag_id": run.get("dag_id", ""), "created_at": run.get("recorded_at", ""),
        "metrics": {"test_accuracy": candidate.get("test_accuracy"), "val_accuracy": candidate.get("val_accuracy"),
                    "val_loss": candidate.get("val_loss")},
        "params": {"learning_rate": candidate.get("learning_rate")},
        "model_uri": candidate.get("model"), "evaluation_uri": candidate.get("evaluation"), "card": None,
    }


def _card_row(card: dict) -> dict:
    return {
        "version": card["version"], "status": "registered", "why": "packaged; never promoted",
        "run_id": card.get("run_id", ""), "dag_id": "", "created_at": card.get("created_at", ""),
        "metrics": card.get("metrics", {}), "params": card.get("params", {}),
        "model_uri": card.get("source", {}).get("model"), "evaluation_uri": card.get("source", {}).get("evaluation"),
        "card": card,
    }


def overview(registry_uri: str) -> list[dict]:
    """One row per model, by name: ``{"name", "production", "classes", "dataset", "test_accuracy", "versions",
    "last_run", "problems"}`` (classes, dataset and accuracy of the production version, else of the newest one;
    ``problems``: the model's records that could not be read, as in :func:`model_catalog`)."""
    rows, cards = [], every_card(registry_uri)  # read once for every model, not once per model
    for name in registry.models(registry_uri, cards[0]):
        catalog = model_catalog(registry_uri, name, cards=cards)
        production = catalog["production"]["version"] if catalog["production"] else None
        shown = next((r for r in catalog["versions"] if r["version"] == production), None) or next(
            (r for r in catalog["versions"] if r["card"]), None)
        card = (shown or {}).get("card") or {}
        dataset = card.get("dataset") or {}
        rows.append({
            "name": name, "production": production,
            "classes": (card.get("input_spec") or {}).get("class_names") or dataset.get("class_names") or [],
            "dataset": dataset.get("source") or dataset.get("uri") or "",
            "test_accuracy": (card.get("metrics") or {}).get("test_accuracy"),
            "versions": len(catalog["versions"]), "last_run": catalog["runs"][0]["run_id"] if catalog["runs"] else "",
            "problems": catalog["problems"],
        })
    return rows


def every_card(registry_uri: str) -> tuple[list[dict], list[registry.UnreadableEntry]]:
    """The version cards of every model, and the cards that could not be read (whose model is unknown)."""
    unreadable: list[registry.UnreadableEntry] = []
    return registry.versions(registry_uri, unreadable), unreadable


def model_catalog(registry_uri: str, model: str = layout.DEFAULT_MODEL, *, cards=None) -> dict:
    """One model's catalog: ``{"model", "production", "promotions", "runs", "versions", "problems"}``, every
    version of the model once, newest first.

    ``problems``: ``{"uri", "error"}`` of each record that could not be read (an unreadable card in every model's:
    its model is unknown); ``production`` is None both when nothing was promoted and when the newest promotion
    entry is one of them. ``cards``: :func:`every_card`, when the caller read them already.
    """
    unreadable: list[registry.UnreadableEntry] = []
    promotions, production_known = registry.read_promotions(registry_uri, unreadable, model=model)
    runs = registry.runs(registry_uri, unreadable, model=model)
    every, unreadable_cards = cards or every_card(registry_uri)
    unreadable += unreadable_cards
    rows: dict[str, dict] = {}
    trained: dict[tuple[str, str], dict] = {}  # (run, version): that run's row of the version
    for run in reversed(runs):  # oldest first: a version's row is the first run that trained it
        for candidate in run.get("candidates", []):
            if candidate.get("version"):
                trained[run["run_id"], candidate["version"]] = _candidate_row(run, candidate)
                rows.setdefault(candidate["version"], trained[run["run_id"], candidate["version"]])
    for card in every:
        if registry.model_of(card) != model:  # another model's version
            continue
        row = _card_row(card)
        seen = trained.get((card.get("run_id", ""), card["version"])) or rows.get(card["version"])
        if seen:  # packaged after its run's gate: keep the run's view, add the card's (its run registered it)
            row = {**seen, "card": card, "status": "registered", "run_id": card.get("run_id") or seen["run_id"],
                   "metrics": {**seen["metrics"], **row["metrics"]}, "params": {**seen["params"], **row["params"]}}
        rows[card["version"]] = row
    for run in runs:
        refused = run.get("deploy", {}).get("refused")
        best = next((c for c in run.get("candidates", []) if c.get("index") == run.get("best")), None)
        if refused and best and best.get("version") in rows:
            rows[best["version"]]["why"] = f"deploy refused: {refused}"
    latest = promotions[-1] if promotions and production_known else None
    for entry in promotions:
        if entry["version"] in rows:
            status = "retired" if production_known else "promoted"
            rows[entry["version"]]["status"], rows[entry["version"]]["why"] = status, _promotion_why(entry)
    if latest:
        if latest.get("previous") in rows:
            rows[latest["previous"]]["status"] = "previous"
        if latest["version"] in rows:
            rows[latest["version"]]["status"], rows[latest["version"]]["why"] = "production", _promotion_why(latest)
    for row in rows.values():
        row["promotions"] = [e for e in promotions if e["version"] == row["version"]]
    versions = sorted(rows.values(), key=lambda r: r["created_at"] or "", reverse=True)
    return {"model": model, "production": latest, "promotions": list(reversed(promotions)), "runs": runs,
            "versions": versions, "problems": [{"uri": err.uri, "error": str(err)} for err in unreadable]}


def _promotion_why(entry: dict) -> str:
    by = entry.get("actor") or "unknown"
    run = f" (run {entry['run_id']})" if entry.get("run_id") else ""
    return f"{entry['action']} by {by}{run} at {entry.get('at', '')}: {entry.get('reason', '')}".rstrip(": ")


def version(registry_uri: str, version_id: str, model: str = layout.DEFAULT_MODEL) -> dict:
    """One version of ``model`` with its reproductions; :class:`registry.InvalidId` (a ``ValueError``) for what
    is not a version id, ``KeyError`` when the model has never seen it."""
    registry.check_version(version_id)
    catalog = model_catalog(registry_uri, model)
    return with_reproductions(registry_uri, find(catalog, version_id), catalog["problems"])


def with_reproductions(registry_uri: str, row: dict, problems: list[dict]) -> dict:
    """``row`` with ``reproduced_by``: the later runs that trained its weights again, oldest first
    (an unreadable record is left out and appended to ``problems``)."""
    unreadable: list[registry.UnreadableEntry] = []
    found = registry.reproductions(registry_uri, row["version"], unreadable) if row.get("card") else []
    problems.extend({"uri": err.uri, "error": str(err)} for err in unreadable)
    return {**row, "reproduced_by": found}


def find(catalog: dict, version_id: str) -> dict:
    """The row of ``version_id`` in a :func:`model_catalog` answer; ``KeyError`` when it has none."""
    for row in catalog["versions"]:
        if row["version"] == version_id:
            return row
    raise KeyError(version_id)


def lineage(row: dict) -> dict:
    """Where a version comes from: dataset, params, code commit, metrics, the run that made it, and the
    later runs that reproduced it (each with its own dataset URI and metrics)."""
    card = row.get("card") or {}
    return {
        "version": row["version"], "status": row["status"], "why": row["why"],
        "dataset": card.get("dataset", {}), "params": row["params"], "code_commit": card.get("code_commit", ""),
        "metrics": row["metrics"], "run_id": row["run_id"], "framework": card.get("framework", ""),
        "input_spec": card.get("input_spec"), "model_uri": row["model_uri"], "evaluation_uri": row["evaluation_uri"],
        "reproduced_by": [{key: record.get(key) for key in ("run_id", "at", "dataset", "metrics", "code_commit")}
                          for record in row.get("reproduced_by", [])],
    }


def training_history(row: dict) -> list[dict]:
    """The version's per-epoch history (``train``'s metrics), ``[]`` when the run's files are gone."""
    if not row.get("model_uri"):
        return []
    try:
        return artifacts.read_json(layout.file_in(row["model_uri"], layout.METRICS)).get("history", [])
    except (artifacts.ArtifactError, AttributeError, TypeError):
        return []


def evaluation(row: dict) -> dict:
    """The version's test-set evaluation (``evaluate``'s metrics), ``{}`` when gone."""
    if not row.get("evaluation_uri"):
        return {}
    try:
        return artifacts.read_json(layout.file_in(row["evaluation_uri"], layout.METRICS))
    except (artifacts.ArtifactError, AttributeError, TypeError):
        return {}
