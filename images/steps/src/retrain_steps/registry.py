"""A small model registry in the artifact store.

Where its files live is :mod:`retrain_steps.layout`'s (versions with their weights, model info,
bento and card; promotion entries ``{"seq", "version", "previous", "action", "actor", "run_id",
"reason", "at"}``; run records; reproductions ``{"version", "run_id", "at", "dataset", "metrics",
"params", "code_commit", "source"}``; the legacy ``production.json``, read as entry 0, never written).

The production version is the newest promotion entry. A promotion is a compare-and-swap: it
names the production it expects to replace and creates entry ``seq + 1`` only if nobody else
did (``artifacts.create_bytes``: ``link(2)`` on disk, ``If-None-Match: *`` on S3), so of two
writers promoting against the same production exactly one wins and the other gets
:class:`StalePromotion`. A version id is the first 12 hex digits of the weights' sha256, so
registering the same model twice gives the same version. A version's files and its card are
written once (the same create-only write): the card names the run that registered the version
first, and a later run that trains the same weights again (a deterministic retrain) is recorded
beside it as a reproduction, so the lineage of a version cannot be rewritten. Only the standard library and
:mod:`retrain_steps.artifacts` / :mod:`retrain_steps.layout` are used, so the Airflow control plane, the steps and the model
server all read it.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from retrain_steps import artifacts, layout

MAX_REASON_CHARS = 1000  #: the longest reason a promotion records (the view, the DAG's Param and the CLI refuse more)
MAX_RUN_ID_CHARS = 250  #: Airflow's own limit on a run id; ``runs/<id>.json`` then fits a 255-byte file name
VERSION_PATTERN = re.compile(r"[0-9a-f]{12}")  #: what :func:`version_id` makes


class InvalidId(ValueError):
    """A version or run id that cannot name anything in the registry (refused before the store is touched)."""


class UnreadableEntry(artifacts.ArtifactError):
    """A registry record (promotion entry, run record, card) that cannot be read; ``uri`` names the file."""

    def __init__(self, uri: str, what: str, detail: str) -> None:
        super().__init__(f"{what} {artifacts.local_path(uri) or uri} is unreadable ({detail}); repair or remove it")
        self.uri = uri


def _shown(value) -> str:
    """A value for a message: its repr, shortened when long (an attacker's megabyte is not echoed)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(value) if isinstance(value, str) else len(text)} characters)"


def check_version(version) -> str:
    """``version`` if it is a version id (12 hex digits), else :class:`InvalidId`."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvalidId(f"not a version id: {_shown(version)} (a version is 12 hex digits)")
    return version


def check_run_id(run_id) -> str:
    """``run_id`` if it can be an Airflow run id (1 to :data:`MAX_RUN_ID_CHARS` characters), else :class:`InvalidId`."""
    if not isinstance(run_id, str) or not 0 < len(run_id) <= MAX_RUN_ID_CHARS:
        raise InvalidId(f"not a run id: {_shown(run_id)} (1 to {MAX_RUN_ID_CHARS} characters)")
    return run_id


def check_reason(reason: str) -> str:
    """``reason`` if it is at most :data:`MAX_REASON_CHARS` characters, else ``ValueError`` saying so."""
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"reason is {len(reason)} characters long; at most {MAX_REASON_CHARS} are recorded")
    return reason


def _read_record(uri: str, what: str, keys: dict[str, type], problems: list | None) -> dict | None:
    """A JSON object with ``keys`` of those types; :class:`UnreadableEntry` otherwise (appended to
    ``problems`` and None returned when the caller collects them). A missing file is an ``ArtifactError``."""
    try:
        try:
            data = artifacts.read_bytes(uri)
        except artifacts.ArtifactError:
            if not artifacts.exists(uri):
                raise
            raise ValueError("cannot be read (too large, or not a regular file)") from None
        try:
            record = json.loads(data)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"invalid JSON: {err}") from None
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        wrong = [key for key, kind in keys.items() if not isinstance(record.get(key), kind)]
        if wrong:
            raise ValueError(f"no valid {', '.join(wrong)}")
    except ValueError as err:
        error = UnreadableEntry(uri, what, str(err))
        if problems is None:
            raise error from None
        problems.append(error)
        return None
    return record


READ_CONCURRENCY = artifacts.S3_CONNECTIONS  #: records of a remote store read at once: their round trips overlap


def _read_records(uris: list[str], what: str, keys: dict[str, type], problems: list | None,
                  missing_ok: bool = False) -> list[dict | None]:
    """:func:`_read_record` of each of ``uris``, in order; on a remote store (S3, HTTP) up to
    :data:`READ_CONCURRENCY` at once, as the registry's records are many small objects. ``missing_ok``: a missing
    file is None, not an error. ``problems`` gets the unreadable ones in the order of ``uris``."""

    def read(uri: str) -> tuple[dict | None, list]:
        found: list = []
        try:
            return _read_record(uri, what, keys, found if problems is not None else None), found
        except artifacts.ArtifactError as err:  # a missing file, or an UnreadableEntry
            if missing_ok and not isinstance(err, UnreadableEntry):
                return None, found
            raise

    if len(uris) < 2 or artifacts.local_path(uris[0]) is not None:
        results = [read(uri) for uri in uris]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(READ_CONCURRENCY, len(uris)), thread_name_prefix="registry-read") as pool:
            results = list(pool.map(read, uris))
    for _, found in results:
        if problems is not None:
            problems.extend(found)
    return [record for record, _ in results]


ENTRY_KEYS = {"seq": int, "version": str}  #: what a promotion entry must hold to be read


def _read_entry(uri: str, problems: list | None = None) -> dict | None:
    return _read_record(uri, "promotion entry", ENTRY_KEYS, problems)


def version_uri(registry: str, version: str, name: str = "") -> str:
    """A version's folder, or file ``name`` in it."""
    return layout.version_file(registry, version, name) if name else layout.version_folder(registry, version)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def version_id(weights_sha256: str) -> str:
    """A model's registry version: the first 12 hex digits of its weights' sha256."""
    return weights_sha256[:12]


def model_version(model_uri: str) -> str:
    """The registry version of a trained model folder, from the sha256 its train step's manifest
    recorded for the weights (the weights are read and hashed only when there is no manifest)."""
    info = artifacts.read_json(layout.file_in(model_uri, layout.MODEL_INFO))
    manifest_uri = layout.file_in(model_uri, layout.MANIFEST)
    recorded = artifacts.read_json(manifest_uri).get("outputs", {}) if artifacts.exists(manifest_uri) else {}
    if info["file"] in recorded:
        return version_id(recorded[info["file"]])
    return version_id(artifacts.sha256(artifacts.read_bytes(layout.file_in(model_uri, info["file"]))))


def register(registry: str, model_uri: str, card: dict) -> dict:
    """Copy a trained model folder into the registry; return the card (without writing it).

    The caller adds what it knows (metrics, bento) and calls :func:`write_card`. A file the
    version has already (the same weights registered before) is kept, not rewritten.
    """
    info = artifacts.read_json(layout.file_in(model_uri, layout.MODEL_INFO))
    weights = artifacts.read_bytes(layout.file_in(model_uri, info["file"]))
    version = version_id(artifacts.sha256(weights))
    files = {
        info["file"]: keep_first(layout.version_file(registry, version, info["file"]), weights, same_bytes=True),
        layout.MODEL_INFO: keep_first(layout.version_file(registry, version, layout.MODEL_INFO),
                                      artifacts.json_bytes(info)),
    }
    return {**card, "version": version, "framework": info["framework"], "file": info["file"],
            "input_spec": info.get("input_spec"), "files": files}


def keep_first(uri: str, data: bytes, *, same_bytes: bool = False) -> str:
    """Create a version's file, or keep the one there (written by an earlier registration); its sha256.

    ``same_bytes``: the file is content-addressed (the weights, whose hash is the version id), so one kept
    must hold exactly ``data``; other bytes there are refused naming the file, never adopted."""
    try:
        return artifacts.create_bytes(uri, data)
    except artifacts.ArtifactExists:
        kept = artifacts.sha256(artifacts.read_bytes(uri))
        if same_bytes and kept != (expected := artifacts.sha256(data)):
            raise artifacts.ArtifactError(f"{uri} holds other bytes (sha256 {kept}) than the weights it is named for "
                                          f"(sha256 {expected}): remove that file and register again") from None
        return kept


class VersionRegistered(artifacts.ArtifactExists):
    """The version has a card already: its lineage is written once (see :func:`record_reproduction`)."""


def write_card(registry: str, card: dict) -> dict:
    """Create the card of a registered version (the last write of a registration), once.

    Create-only, like a promotion entry: when the version has a card already (another run
    registered the same weights first) :class:`VersionRegistered` is raised and the card is
    left as it is; :func:`reproduced` records the later run instead.
    """
    try:
        artifacts.create_bytes(layout.card(registry, card["version"]), artifacts.json_bytes(card))
    except artifacts.ArtifactExists:
        raise VersionRegistered(f"version {card['version']} is registered already (its card is written once); "
                                f"run {card.get('run_id') or '(none)'} reproduced it") from None
    return card


def reproduced(registry: str, later: dict) -> dict:
    """The card of version ``later["version"]``, registered already by an earlier run; ``later``
    (the card a later run would have written) is recorded as a reproduction when it names a run
    other than the card's."""
    existing = card(registry, later["version"])
    if later.get("run_id") and later["run_id"] != existing.get("run_id"):
        record_reproduction(registry, later)
    return existing


def record_reproduction(registry: str, later: dict) -> dict:
    """Record that run ``later["run_id"]`` trained version ``later["version"]`` again (``later``: the card
    it would have written): its own create-only file beside the version (a retry of the same run keeps
    the first record); return the record."""
    run_id = check_run_id(later.get("run_id"))
    record = {"version": check_version(later["version"]), "run_id": run_id, "at": later.get("created_at") or now(),
              "dataset": later.get("dataset", {}), "metrics": later.get("metrics", {}),
              "params": later.get("params", {}), "code_commit": later.get("code_commit", ""),
              "source": later.get("source", {})}
    uri = layout.reproduction(registry, record["version"], run_id)
    try:
        artifacts.create_bytes(uri, artifacts.json_bytes(record))
    except artifacts.ArtifactExists:
        return _read_record(uri, "reproduction", {"run_id": str}, None)
    return record


def reproductions(registry: str, version: str, problems: list | None = None) -> list[dict]:
    """The later runs that trained ``version`` again, oldest first (``problems``: as :func:`promotions`)."""
    folder = layout.reproductions_folder(registry, check_version(version))
    uris = [artifacts.join(folder, name) for name in artifacts.list_names(folder) if layout.is_record(name)]
    records = _read_records(uris, "reproduction", {"run_id": str}, problems)
    return sorted(filter(None, records), key=lambda r: str(r.get("at", "")))


def card(registry: str, version: str) -> dict:
    """The card of a registered version; raise :class:`artifacts.ArtifactError` if unknown."""
    return artifacts.read_json(layout.card(registry, version))


def card_if_registered(registry: str, version: str) -> dict | None:
    """The card of ``version``, None when it has none; :class:`UnreadableEntry` when it cannot be read (one card is
    read, as :func:`versions` reads each)."""
    uri = layout.card(registry, check_version(version))
    return _read_records([uri], "version card", {"version": str}, None, missing_ok=True)[0]


def check_model_name(model) -> str:
    """``model`` if it can name a model (:data:`layout.MODEL_NAME`), else :class:`InvalidId`."""
    if not isinstance(model, str) or not layout.MODEL_NAME.fullmatch(model):
        raise InvalidId(f"not a model name: {_shown(model)} ({layout.MODEL_NAME_RULE})")
    return model


def model_of(card: dict) -> str:
    """The model a version was trained for (cards from before named models: :data:`layout.DEFAULT_MODEL`)."""
    return card.get("model") or layout.DEFAULT_MODEL


# The input spec of digits models trained before specs were stored (retrain_steps.input_spec.DIGITS, which needs numpy)
LEGACY_SPEC = {"height": 8, "width": 8, "channels": 1, "class_names": [str(d) for d in range(10)], "profile": "digits"}


def spec_mismatch(card: dict, spec: dict) -> str | None:
    """None when data of input spec ``spec`` (a ``spec.json``) can retrain the model of version ``card``, else
    how they differ (classes; size, channels or preprocessing profile)."""
    theirs = card.get("input_spec") or LEGACY_SPEC
    if list(theirs["class_names"]) != list(spec["class_names"]):
        return f"predicts classes {list(theirs['class_names'])}, this run's data has {list(spec['class_names'])}"
    shape = ("profile", "height", "width", "channels")
    if [theirs.get(k) for k in shape] != [spec.get(k) for k in shape]:
        described = ", ".join(f"{k} {{}}" for k in shape)
        return (f"takes inputs of {described.format(*(theirs.get(k) for k in shape))}, this run prepares inputs of "
                f"{described.format(*(spec.get(k) for k in shape))}")
    return None


def models(registry: str, cards: list[dict] | None = None) -> list[str]:
    """The registry's models, by name: those with a folder under ``models/``, and :data:`layout.DEFAULT_MODEL`
    when a registry from before named models has its history, runs or versions (``cards``: :func:`versions`, when
    the caller read them already; they are read otherwise)."""
    names = set(artifacts.list_names(layout.models_folder(registry), folders=True))
    if layout.DEFAULT_MODEL not in names and (
        artifacts.list_names(layout.legacy_promotions_folder(registry))
        or artifacts.exists(layout.legacy_production(registry))
        or artifacts.list_names(layout.legacy_run_records_folder(registry))
        or any(model_of(c) == layout.DEFAULT_MODEL for c in (cards if cards is not None else versions(registry, [])))
    ):
        names.add(layout.DEFAULT_MODEL)
    return sorted(name for name in names if layout.MODEL_NAME.fullmatch(name))


def production(registry: str, model: str = layout.DEFAULT_MODEL) -> dict | None:
    """The card of ``model``'s version in production, or None when nothing was promoted yet."""
    version = production_version(registry, model)
    return None if version is None else card(registry, version)


def _legacy(model: str) -> bool:
    """Whether ``model`` also owns the history and runs of a registry from before named models."""
    return model == layout.DEFAULT_MODEL


def promotions(registry: str, problems: list | None = None, *, model: str = layout.DEFAULT_MODEL) -> list[dict]:
    """``model``'s promotion history, oldest first (for :data:`layout.DEFAULT_MODEL`, a registry's history from
    before named models comes first, and a legacy ``production.json`` is entry 0).

    An unreadable entry raises :class:`UnreadableEntry`, or, given a ``problems`` list, is left
    out and appended to it (for readers that show what they can).
    """
    return read_promotions(registry, problems, model=model)[0]


def read_promotions(registry: str, problems: list | None = None, *,
                    model: str = layout.DEFAULT_MODEL) -> tuple[list[dict], bool]:
    """:func:`promotions`, and whether the newest entry (the one :func:`latest_promotion` reads) was read: False
    when it is among ``problems``, so which version is in production is unknown. One listing and one read of each
    entry."""
    folders = [layout.promotions_folder(registry, check_model_name(model))]
    if _legacy(model):
        folders.insert(0, layout.legacy_promotions_folder(registry))
    uris = [artifacts.join(folder, name) for folder in folders for name in _entry_names(folder)]
    read = _read_records(uris, "promotion entry", ENTRY_KEYS, problems)
    entries = sorted((entry for entry in read if entry is not None), key=lambda e: e["seq"])
    legacy = None if not _legacy(model) or (entries and entries[0]["seq"] == 0) else _legacy_entry(registry)
    return ([legacy, *entries] if legacy else entries), not read or read[-1] is not None


def latest_promotion(registry: str, model: str = layout.DEFAULT_MODEL) -> dict | None:
    """``model``'s newest promotion entry (one listing and one read: the server polls it)."""
    folder = layout.promotions_folder(registry, check_model_name(model))
    names = _entry_names(folder)
    if names:
        return _read_entry(artifacts.join(folder, names[-1]))
    if not _legacy(model):
        return None
    folder = layout.legacy_promotions_folder(registry)
    names = _entry_names(folder)
    return _read_entry(artifacts.join(folder, names[-1])) if names else _legacy_entry(registry)


def _entry_names(folder: str) -> list[str]:
    return [name for name in artifacts.list_names(folder) if layout.is_record(name)]  # zero-padded: sorted by seq


def _legacy_entry(registry: str) -> dict | None:
    """The production pointer of a registry from before the history, as entry 0 (None when absent)."""
    legacy_uri = layout.legacy_production(registry)
    if not artifacts.exists(legacy_uri):
        return None
    pointer = artifacts.read_json(legacy_uri)
    return {"seq": 0, "version": pointer["version"], "previous": pointer.get("previous"), "action": "promote",
            "actor": "", "run_id": "", "at": pointer.get("promoted_at", ""),
            "reason": "promoted before the registry kept a promotion history"}


def production_version(registry: str, model: str = layout.DEFAULT_MODEL) -> str | None:
    """``model``'s version in production (its newest promotion), or None when nothing was promoted yet."""
    latest = latest_promotion(registry, model)
    return latest["version"] if latest else None


def promotion_history(registry: str, model: str = layout.DEFAULT_MODEL) -> list[str]:
    """``model``'s versions that were in production, newest first, each once: the one serving, then its predecessors."""
    seen: list[str] = []
    for entry in reversed(promotions(registry, model=model)):
        if entry["version"] not in seen:
            seen.append(entry["version"])
    return seen


class StalePromotion(Exception):
    """Production is not the version the promotion expected to replace; the message says which it is."""


class NoOpPromotion(ValueError):
    """The version asked for is production already: an entry would record it as replacing itself."""


class OtherModel(ValueError):
    """The version was trained for another model: it cannot become this model's production."""


CURRENT = object()  #: ``expected=CURRENT``: replace whatever is in production when the call reads it


def promote(registry: str, version: str, *, model: str = layout.DEFAULT_MODEL,
            expected: str | None | object = CURRENT, actor: str = "", reason: str = "", run_id: str = "",
            action: str = "promote") -> dict:
    """Make ``version`` (which must have a card, for ``model``) ``model``'s production, if that is still ``expected``.

    Creates the model's next promotion entry; raises :class:`StalePromotion` when production is not
    ``expected`` or another promotion was written between the read and the create,
    :class:`NoOpPromotion` when ``version`` is production already, and :class:`OtherModel` when
    ``version`` was trained for another model.
    """
    check_reason(reason)
    owner = model_of(card(registry, version))  # refuse to promote an unknown or half-registered version
    if owner != check_model_name(model):
        raise OtherModel(f"version {version} belongs to model {owner!r}, not {model!r}: promote it as {owner}")
    latest = latest_promotion(registry, model)
    current = latest["version"] if latest else None
    if expected is not CURRENT and current != expected:
        raise StalePromotion(
            f"production is {current or 'empty'}, not {expected or 'empty'} as this promotion of {version} "
            f"expected (changed by {_who(latest)}); compare {version} with {current} again"
        )
    if version == current:
        raise NoOpPromotion(f"{version} is in production already ({_who(latest)}): nothing to {action}")
    seq = latest["seq"] + 1 if latest else 1
    entry = {"seq": seq, "version": version, "previous": current, "action": action, "actor": actor,
             "run_id": run_id, "reason": reason, "at": now()}
    try:
        artifacts.create_bytes(layout.promotion_entry(registry, model, seq), artifacts.json_bytes(entry))
    except artifacts.ArtifactExists:
        raise StalePromotion(
            f"another promotion replaced production {current or 'empty'} first "
            f"({_who(latest_promotion(registry, model))}); compare {version} with it again"
        ) from None
    return entry


def _who(entry: dict | None) -> str:
    if not entry:
        return "nobody"
    by = entry.get("actor") or "someone"
    run = f", run {entry['run_id']}" if entry.get("run_id") else ""
    return f"{entry['action']} of {entry['version']} by {by}{run} at {entry.get('at', '?')}"


def record_run(registry: str, run_id: str, record: dict, model: str = layout.DEFAULT_MODEL) -> str:
    """Write a run's candidates and gate decision (one record per run, rewritten), under its model."""
    return artifacts.write_json(run_uri(registry, run_id, model), {**record, "run_id": run_id, "model": model})


def run_uri(registry: str, run_id: str, model: str = layout.DEFAULT_MODEL) -> str:
    """Where a run of ``model`` is recorded (:func:`layout.run_record`); :class:`InvalidId` for what cannot be
    a run id or a model name."""
    return layout.run_record(registry, check_model_name(model), check_run_id(run_id))


def run_record(registry: str, run_id: str, model: str = layout.DEFAULT_MODEL) -> dict:
    """A run's record (for :data:`layout.DEFAULT_MODEL`, also one from before named models): :class:`InvalidId`,
    :class:`UnreadableEntry` or ``ArtifactError`` (none) otherwise."""
    uri = run_uri(registry, run_id, model)
    if _legacy(model) and not artifacts.exists(uri):
        legacy = artifacts.join(layout.legacy_run_records_folder(registry), layout.run_file_name(run_id))
        uri = legacy if artifacts.exists(legacy) else uri
    return _read_record(uri, "run record", {"run_id": str}, None)


def runs(registry: str, problems: list | None = None, *, model: str = layout.DEFAULT_MODEL) -> list[dict]:
    """``model``'s recorded runs, newest first by the time each was recorded (``problems``: as :func:`promotions`)."""
    folders = [layout.run_records_folder(registry, check_model_name(model))]
    if _legacy(model):
        folders.append(layout.legacy_run_records_folder(registry))
    uris: dict[str, str] = {}
    for folder in folders:  # a run recorded in both (updated after the move) is the model folder's
        for name in artifacts.list_names(folder):
            if layout.is_record(name) and name not in uris:
                uris[name] = artifacts.join(folder, name)
    records = _read_records(list(uris.values()), "run record", {"run_id": str}, problems)
    return sorted(filter(None, records), key=lambda r: r.get("recorded_at", ""), reverse=True)


def versions(registry: str, problems: list | None = None, *, model: str | None = None) -> list[dict]:
    """The cards of the registered versions (those with a card) of ``model`` (None: of every model), newest first
    (``problems``: as :func:`promotions`)."""
    uris = [layout.card(registry, version)
            for version in artifacts.list_names(layout.versions_folder(registry), folders=True)]
    cards = _read_records(uris, "version card", {"version": str}, problems,
                          missing_ok=True)  # a folder being packaged has no card yet
    cards = [c for c in cards if c is not None and (model is None or model_of(c) == model)]
    return sorted(cards, key=lambda c: c.get("created_at", ""), reverse=True)
